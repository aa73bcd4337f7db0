"""The loop at the model's speed (issue 10), on CPU:

- no host sync in a training step or in validation except every train.log_every_steps: counted
  with a dispatch mode that sees every scalar read of a tensor (.item(), int(), float(), bool():
  aten._local_scalar_dense, a device sync on CUDA), plus .cpu(), .tolist() and
  torch.cuda.synchronize calls from the loop's thread;
- CUDA graphs (train.compile_mode=reduce-overhead) replay into static buffers: the loop marks
  each step's start and keeps nothing a forward returned past its step. A stand-in forward that
  reuses one input and one output buffer (as a CUDA graph does) trains exactly like the plain one.
"""
import threading

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from alexnet.config import build_config
from alexnet.train import Trainer, build_parts, open_trainer

from conftest import tiny_overrides


class SyncCounter(TorchDispatchMode):
    """Records (trainer step, what) for every host sync the loop's thread asks for."""

    def __init__(self, where=lambda: None):
        super().__init__()
        self.where, self.events, self.thread = where, [], threading.current_thread()
        self._saved = {}

    def _record(self, what):
        if threading.current_thread() is self.thread:
            self.events.append((self.where(), what))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self._record("item")
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        for owner, name in ((torch.Tensor, "cpu"), (torch.Tensor, "tolist"), (torch.cuda, "synchronize")):
            real = getattr(owner, name)
            self._saved[(owner, name)] = real

            def spy(*a, _real=real, _name=name, **k):
                self._record(_name)
                return _real(*a, **k)
            setattr(owner, name, spy)
        return super().__enter__()

    def __exit__(self, *exc):
        for (owner, name), real in self._saved.items():
            setattr(owner, name, real)
        return super().__exit__(*exc)


def _trainer(store, out, *extra):
    return open_trainer(build_config("quick", tiny_overrides(store, out, "train.log_every_steps=3", *extra)))


def test_training_steps_and_validation_do_not_sync(tiny_store, tmp_path):
    trainer = _trainer(tiny_store, tmp_path / "run")
    batches = trainer.parts.loader.batches(0)
    steps = [next(batches) for _ in range(4)]
    batches.close()
    with SyncCounter() as counter:
        for images, labels in steps:
            trainer.train_step(images, labels)
    assert counter.events == []
    with SyncCounter() as counter:
        errors = trainer.validate()
    assert [what for _, what in counter.events] == ["tolist"]  # one transfer: the two error rates at the end
    assert set(errors) == {"top1_error", "top5_error"}
    trainer.close()


def test_fit_syncs_only_every_log_every_steps(tiny_store, tmp_path):
    trainer = _trainer(tiny_store, tmp_path / "run", "schedule.epochs=2")  # 7 steps per epoch, log every 3
    with SyncCounter(lambda: trainer.step) as counter:
        trainer.fit()
    trainer.close()
    log_steps = {3, 6, 7, 9, 12, 14}  # every 3rd step (counted over the run) and each epoch's last
    steps = [s for s, _ in counter.events]
    assert set(steps) <= log_steps, counter.events
    # a few scalars per log line (loss, non-finite flag, the dead-layer check of train/health.py), one per validation
    assert len(steps) <= 4 * len(log_steps), counter.events


class StaticBuffers(nn.Module):
    """What a CUDA graph does to a forward: the input is copied into a static buffer, and the output
    is one static buffer that the next call overwrites."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.x, self.y = model, None, None

    def forward(self, x):
        self.x = torch.empty_like(x) if self.x is None else self.x
        self.x.copy_(x)
        y = self.model(self.x)
        self.y = torch.empty_like(y) if self.y is None else self.y.detach()
        return self.y.copy_(y)


def test_cuda_graph_buffers_train_like_the_plain_forward(tiny_store, tmp_path, monkeypatch):
    sets = tiny_overrides(tiny_store, tmp_path / "x", "train.deterministic=true", "data.prefetch=0")
    plain = build_config("quick", sets)
    graphed = build_config("quick", sets + ["train.compile=true", "train.compile_mode=reduce-overhead"])
    torch.use_deterministic_algorithms(True)
    try:
        expect = Trainer(plain, build_parts(plain, torch.device("cpu"))).run_steps(9)  # crosses an epoch
        parts = build_parts(plain, torch.device("cpu"))  # the same weights (seeded), not compiled
        parts.forward = StaticBuffers(parts.model)
        marks = []
        monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
        got = Trainer(graphed, parts).run_steps(9)
    finally:
        torch.use_deterministic_algorithms(False)
    assert len(marks) == 9
    assert got == expect
    assert expect["finite"] and len(set(expect["losses"])) > 1


def test_validation_and_checkpoint_only_after_the_last_epoch(tiny_store, tmp_path):
    """A fixed budget (schedule.kind=linear) with train.val_every_epochs=0 and ckpt_every_epochs=0:
    one validation and one checkpoint, after the last epoch; the lr decays over the whole run."""
    import json
    writes = []
    sets = tiny_overrides(tiny_store, tmp_path / "run", "schedule.epochs=3", "schedule.kind=linear",
                          "schedule.warmup_epochs=1", "train.val_every_epochs=0", "train.ckpt_every_epochs=0")
    trainer = open_trainer(build_config("quick", sets), checkpoint_hook=lambda point, path: writes.append(path.name))
    summary = trainer.fit()
    trainer.close()
    assert summary["status"] == "finished" and summary["step"] == 21
    assert writes == ["last.pt", "best.pt"]
    log = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in log if l["kind"] == "val"] == [3]
    lrs = [l["lr"] for l in log if l["kind"] == "train"]
    assert lrs[0] == pytest.approx(0.01 / 7) and max(lrs) == pytest.approx(0.01) and lrs[-1] < 0.01 / 7
