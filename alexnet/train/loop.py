"""The training loop (§5): SGD with the paper's rule on random augmented crops, validation every
epoch, the lr divided by 10 when validation error stops improving, checkpoints that resume exactly.

Exact resume: the data order is a function of (seed, epoch) and every step reseeds the
augmentation and dropout RNGs from (seed, step), so a checkpoint needs only (epoch, batch,
step) besides the model, optimiser and schedule to continue bit for bit.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint as ckpt
from ..config import Config, ScheduleConfig
from ..data.store import StoreError
from ..errors import CheckpointError, ConfigError, DivergenceError
from ..evaluate import PredictOptions, predict, topk_errors
from ..nets.model import build_model
from ..runtime import autocast, configure_torch, run_facts
from . import distributed
from .checkpointing import CheckpointWriter, Hook
from .health import Health
from .optim import apply_lr
from .parts import Parts, build_parts
from .phases import Phases
from .resume import net_differences, same_net
from .run import RunFolder
from .schedule import build_schedule


EpochHook = Callable[["Trainer"], None]


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class StopRequest:
    """Ctrl-C / SIGTERM set a flag that the loop reads between steps, so a step is never cut in
    half; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass(frozen=True)
class Drive:
    """How far one call of Trainer.fit goes, besides the schedule's end and Ctrl-C / SIGTERM."""

    steps: int = 0  # stop after this many steps of the call (0: no limit); a step budget replaces the schedule's epochs
    seconds: float = 0.0  # stop after the first step that ends this long after the call (0: no deadline)
    losses: bool = False  # return every step's loss and whether all were finite (one host sync, at the end)


class _Budget:
    """A Drive counted from the step and the moment fit was called, and the losses it keeps."""

    def __init__(self, drive: Drive, step: int):
        self.drive, self.last = drive, step + drive.steps if drive.steps else math.inf
        self.deadline = time.perf_counter() + drive.seconds if drive.seconds else math.inf
        self.losses: list[torch.Tensor] = []
        self.finite: list[torch.Tensor] = []

    def keep(self, loss: torch.Tensor, finite: torch.Tensor) -> None:
        if self.drive.losses:
            self.losses.append(loss)
            self.finite.append(finite)

    def steps_done(self, step: int) -> bool:
        return step >= self.last

    def past_deadline(self) -> bool:
        return time.perf_counter() >= self.deadline

    def result(self) -> dict:
        if not self.drive.losses:
            return {}
        if not self.losses:
            return {"losses": [], "finite": True}
        return {"losses": torch.stack(self.losses).float().cpu().tolist(), "finite": bool(torch.stack(self.finite).all())}


class Trainer:
    """Runs `parts` (train/parts.py) through fit, the one training loop. With a RunFolder it logs,
    validates and checkpoints; without one it only steps (the experiments, benchmarks)."""

    def __init__(self, cfg: Config, parts: Parts, run: RunFolder | None = None, checkpoint_hook: Hook | None = None,
                 phases: Phases | None = None, hooks: Sequence[EpochHook] = ()):
        self.cfg, self.parts, self.run = cfg, parts, run
        self.phases = phases or Phases()  # where the wall time goes (train/phases.py; bench train)
        self.writer = CheckpointWriter(hook=checkpoint_hook)  # checkpoints written in the background
        self.hooks = tuple(hooks)  # called with the trainer after each epoch's validation and checkpoint
        self.model, self.optimizer = parts.model, parts.optimizer
        # owns the lr; sized from the loader this trainer steps through (warm-up and decay count its steps)
        self.schedule = build_schedule(cfg.schedule, cfg.optim.lr, len(parts.loader))
        self.epoch, self.batch, self.step = 0, 0, 0
        self.best_error = math.inf
        self.log = run.open_log() if run is not None else None
        # CUDA graphs (torch.compile mode reduce-overhead) replay into static output buffers: each step
        # tells torch a new iteration begins, and nothing the graph outputs is kept past its step
        self.cudagraphs = cfg.train.compile and cfg.train.compile_mode == "reduce-overhead"
        agree = (lambda dead: distributed.stop_agreed(dead, True, parts.layout)) if parts.layout.world > 1 else None
        self.health = Health(cfg.health, cfg.optim.lr, parts.loader.reader.labels, parts.val_reader.labels,
                             str(run.path) if run is not None else "", agree)  # stops a dead run (train/health.py)

    # -- one step -----------------------------------------------------------------------------
    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on a uint8 batch; returns (loss, finite) as device tensors (no host sync)."""
        cfg, p = self.cfg, self.parts
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        gen = step_generator(cfg.train.seed, self.step)
        n = images.shape[0] * p.layout.replicas  # drawn for the global batch; this replica keeps its rows
        d = p.augment.draw(n, images.shape[-1], gen)
        d = distributed.local_draws(d, p.layout)
        # dropout masks, replayable; .numpy() reads the CPU draw on the host (never a device sync)
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen).numpy()[0]))
        x = p.augment(images.to(p.device, non_blocking=True), d)
        if cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels.to(p.device, non_blocking=True)
        with autocast(p.device, cfg.train.precision):
            logits = p.forward(x)  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), y)  # §3.5 multinomial logistic regression
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norms = torch._foreach_norm([q.grad for q in self.model.parameters() if q.grad is not None])
        finite = torch.isfinite(loss) & torch.isfinite(torch.stack(grad_norms).sum())
        apply_lr(self.optimizer, self.schedule.advance(self.step))  # the schedule owns the lr; this is where it applies
        self.optimizer.step()
        return loss.detach(), finite

    def run_steps(self, n: int) -> dict:
        """N steps from where the run stands (fit with a step budget): the per-step losses as
        floats and whether every step was finite."""
        out = self.fit(Drive(steps=n, losses=True))
        return {"losses": out["losses"], "finite": out["finite"]}

    def set_schedule(self, cfg: ScheduleConfig) -> None:
        """Train with schedule `cfg` instead, sized from this trainer's loader (the experiments plan
        their cuts once the trainer is built); before the first step only."""
        if self.step:
            raise RuntimeError("the schedule is set before the first step")
        self.cfg = dataclasses.replace(self.cfg, schedule=cfg)  # what checkpoints record
        self.schedule = build_schedule(cfg, self.cfg.optim.lr, len(self.parts.loader))

    # -- checkpoints --------------------------------------------------------------------------
    def record(self, val: dict[str, float] | None = None) -> ckpt.Record:
        """The run now as a checkpoint record (checkpoint.Record): the whole net (a collective under
        model parallelism), what using it needs without the store, and the training state.
        `val`: the validation just measured on these weights (their metrics)."""
        model, optimizer = self.parts.state_dicts()
        self.gathered = (self.step, model)  # the whole net now (rank 0; see whole_net)
        store, cfg = self.parts.store, self.cfg
        progress = {"epoch": self.epoch, "batch": self.batch, "step": self.step, "best_error": self.best_error,
                    "world": self.parts.layout.world}
        metrics = [] if val is None else [ckpt.validation_metric(
            cfg, val["top1_error"], f"epoch {self.epoch}", top5_error=val["top5_error"], epoch=self.epoch, step=self.step)]
        inp = ckpt.InputMeta.from_state(store.input_meta())  # so the net is usable without its store
        return ckpt.Record(cfg, model, list(store.classes), list(store.class_names), inp, progress, metrics,
                           ckpt.recipe_of(cfg, progress, inp),
                           ckpt.TrainingState(optimizer, self.schedule.state_dict(), self.health.state_dict()))

    def whole_net(self) -> nn.Module | None:
        """The whole net as it stands, for rank 0's epoch hooks (TensorBoard's figures): the model
        itself, or under §3.2 model parallelism (each rank holds one column) a one-device copy built
        from the record gathered at this step by every rank (the checkpoint after validation); None
        when no record was gathered at this step."""
        if self.parts.columns is None:
            return self.model
        step, model = getattr(self, "gathered", (None, None))
        if step != self.step or model is None:
            return None
        net = build_model(self.cfg.model)
        net.load_state_dict(model)
        return net.to(self.parts.device).eval()

    def state(self) -> dict:
        """The record as the dict a checkpoint file holds (last.pt)."""
        return self.record().to_state()

    def save(self, name: str = "last.pt") -> None:
        """Write a checkpoint now and wait until it is on disk (for callers outside the loop)."""
        state = self.state()  # every rank takes part (model parallelism gathers); rank 0 alone writes
        if self.parts.layout.is_main:
            self.writer.save({self.run.path / name: state})
            self.writer.wait()

    def _checkpoint(self, best: bool = False, val: dict[str, float] | None = None) -> None:
        """last.pt, and best.pt (the same record without the training state), snapshotted now and
        written in the background (train/checkpointing.py); rank 0 alone writes. `val`: the
        validation of these weights, if they were just validated (their metrics)."""
        record = self.record(val)
        if not self.parts.layout.is_main:
            return
        files = {self.run.last: record.to_state()}
        if best:
            files[self.run.best] = record.without_training().to_state()
        with self.phases("checkpoint"):
            self.writer.save(files)

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at `path` (or its .prev twin if it is damaged)."""
        self.writer.wait()
        state, used = ckpt.load_with_fallback(path, map_location=self.parts.device)
        if used != path:
            print(f"alexnet: warning: {path} is missing or damaged; resuming from {used}", file=sys.stderr)
        record = ckpt.Record.from_state(state, used)
        if record.training is None:
            raise CheckpointError(f"{used} holds a net without its training state (optimiser, schedule), as best.pt "
                                  f"does: resume from {used.with_name('last.pt')} or the run folder {used.parent}")
        saved = state["config"]  # as written: resume.same_net knows what older configs left out
        if not same_net(saved, self.cfg):
            raise ConfigError(f"{used} was trained with a different model config ({net_differences(saved, self.cfg)}): "
                              "resume with the saved values, or start a new run")
        self.parts.load_state_dicts(record.model, record.training.optimizer)
        self.schedule.load_state_dict(record.training.schedule)
        if record.config.optim.lr != self.cfg.optim.lr:
            self.schedule.restart_at(self.cfg.optim.lr)  # resumed with --set optim.lr=...: from here on
        p = record.progress
        self.epoch, self.batch, self.step, self.best_error = p["epoch"], p["batch"], p["step"], p["best_error"]
        distributed.note_world_change(p["world"], self.parts.layout, self.cfg.optim.batch_size)
        self.health.load_state_dict(record.training.health, self.step)

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        p = self.parts
        net = p.forward if p.layout.world == 1 else p.model  # not through DDP: the ranks' shares differ in size
        how = PredictOptions(self.cfg.data.crop, self.cfg.eval.val_views, self.cfg.eval.batch_size, p.device,
                             self.cfg.train.precision, self.cfg.train.channels_last, threads=self.cfg.loader.threads,
                             on_device=True, **p.layout.eval_shard())  # in the precision and layout it trains in
        probs = predict([net], p.val_reader, p.augment.mean, how)
        self.model.train()
        return topk_errors(probs, torch.as_tensor(p.val_reader.labels, dtype=torch.int64))

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, drive: Drive = Drive()) -> dict:
        """The training driver (nanoGPT's one loop), called by `alexnet train` and finetune, the
        experiments and the benchmarks: from where the run stands, one step per batch, epoch after
        epoch until the schedule ends, a `drive` rule stops it (a step budget, a deadline) or
        Ctrl-C does. With a run folder each epoch ends in validation and checkpoints and a stop
        saves last.pt; without one it only steps. Returns the summary once the last checkpoint is
        on disk."""
        try:
            summary = self._fit(_Budget(drive, self.step))
        except BaseException:
            with contextlib.suppress(CheckpointError):  # the error in flight is the one to report
                self.writer.wait()  # a rollback reads last.pt: let the write in flight finish
            raise
        with self.phases("checkpoint"):
            self.writer.wait()
        return summary

    def _fit(self, budget: _Budget) -> dict:
        with StopRequest() as stop:
            while budget.drive.steps or not self.schedule.finished(self.epoch):
                try:
                    status = self._run_epoch(stop, budget)
                    if self.batch == len(self.parts.loader) and status != "interrupted":
                        self._end_epoch()
                except StoreError as e:  # a damaged image: keep the steps done, say how to go on
                    raise StoreError(f"{e}; {self._save_before_error()}") from None
                if status != "done":  # "interrupted" (Ctrl-C, SIGTERM) or "stopped" (the drive's rules)
                    if self.run is not None:
                        self.save()
                    return self._summary(status, budget)
        return self._summary("finished", budget)

    def _run_epoch(self, stop: StopRequest, budget: _Budget) -> str:
        """The rest of this epoch, a step per batch; "done" at its end, else why it stopped."""
        cfg, n, layout = self.cfg, len(self.parts.loader), self.parts.layout
        self.model.train()
        bar = _progress(cfg.train.progress and self.run is not None, n, self.batch, f"epoch {self.epoch + 1}")
        window = _Window()
        batches = self.phases.iterate("data", self.parts.loader.batches(self.epoch, start=self.batch))
        try:
            for images, labels in batches:
                with self.phases("step"):
                    loss, finite = self.train_step(images, labels)
                self.batch, self.step = self.batch + 1, self.step + 1
                budget.keep(loss, finite)
                window.add(loss, finite, images.shape[0], self.step)
                if self.run is not None:
                    self._log_and_checkpoint(window, bar)
                late = budget.past_deadline()
                why = "stopped" if budget.steps_done(self.step) or late else "interrupted"
                # the step budget ends on the same step on every rank; a deadline or Ctrl-C is shared at log steps
                if budget.steps_done(self.step) or distributed.stop_agreed(
                        stop.requested or late, self.step % cfg.train.log_every_steps == 0, layout):
                    if self.run is not None:  # a non-finite step is a divergence, not a clean stop
                        self._check_finite(window.first_bad)
                    return why
        finally:
            batches.close()
            _close(bar)
        return "done"

    def _log_and_checkpoint(self, w: _Window, bar) -> None:
        """Every train.log_every_steps and at the epoch's end: a log line (the loop's one host sync)
        and the health check; every train.ckpt_every_steps: last.pt."""
        tc = self.cfg.train
        if self.step % tc.log_every_steps == 0 or self.batch == len(self.parts.loader):
            self._check_finite(w.first_bad)
            mean_loss = distributed.mean_over_replicas(w.loss_sum, self.parts.layout).item() / w.count
            rate = w.seen * self.parts.layout.replicas / (time.perf_counter() - w.t0)
            lr = self.schedule.lr_at(self.step - 1)
            self.log.write("train", self.step, loss=mean_loss, lr=lr, img_per_s=rate, epoch=self.epoch)
            self.health.check_step(self.model, self.step, mean_loss)  # a layer that passes no gradient stops the run
            _update_bar(bar, w.count, loss=f"{mean_loss:.3f}", lr=f"{lr:.0e}", img_s=f"{rate:.0f}")
            w.loss_sum, w.count = None, 0
        if tc.ckpt_every_steps and self.step % tc.ckpt_every_steps == 0:
            self._check_finite(w.first_bad)
            self._checkpoint()

    def _save_before_error(self) -> str:
        if self.run is None:
            return "the steps done were not saved (no run folder)"
        if self.step == 0:
            return "no training step was done yet"
        if not all(bool(torch.isfinite(q).all()) for q in self.model.parameters()):
            return "the weights are not finite, so nothing was saved"
        self.save()
        return (f"the {self.step} steps done are saved in {self.run.last}: continue with "
                f"`alexnet train --resume {self.run.path}` once the store is repaired")

    def _check_finite(self, first_bad: torch.Tensor | None) -> None:
        first_bad = distributed.first_over_ranks(first_bad, self.parts.layout)  # all ranks stop together
        if first_bad is not None and int(first_bad) >= 0:
            kept = (f"the last good checkpoint {self.run.last} is kept" if self.run.last.exists()
                    else "no checkpoint had been written yet")
            raise DivergenceError(f"non-finite loss or gradient at step {int(first_bad)}: stopped; {kept} (lower "
                                  "optim.lr or use train.on_divergence=rollback)")

    def _end_epoch(self) -> None:
        done, tc = self.epoch + 1, self.cfg.train
        if self.run is None:  # stepping only: no validation, checkpoint or log
            self.epoch, self.batch = done, 0
            return
        if not (_due(done, tc.val_every_epochs) or self.schedule.finished(done)):
            self.epoch, self.batch = done, 0  # no validation after this epoch (train.val_every_epochs)
            if _due(done, tc.ckpt_every_epochs):
                self._checkpoint()
            return
        with self.phases("validation"):
            metrics = self.validate()
        err = metrics["top1_error"]
        at_chance = self.health.at_chance(self.step, err)
        cut = False if at_chance else self.schedule.observe(self.epoch, err)  # no cuts spent on a net at chance
        self.epoch, self.batch = self.epoch + 1, 0
        self.log.write("val", self.step, epoch=self.epoch, lr_cut=cut, split=self.parts.val_name, **metrics)
        _print(self.cfg.train.progress, f"epoch {self.epoch}: {self.parts.val_name} top-1 error {err:.4f}, top-5 error "
               f"{metrics['top5_error']:.4f}, lr {self.schedule.lr:g}" + (" (cut)" if cut else ""))
        improved = err < self.best_error
        self.best_error = min(self.best_error, err)
        if improved or _due(done, tc.ckpt_every_epochs) or self.schedule.finished(done):
            self._checkpoint(best=improved, val=metrics)
        for hook in self.hooks if self.parts.layout.is_main else ():  # rank 0 speaks for the job
            hook(self)
        self.health.stop_if_stuck(self.step)  # at chance for train.chance_steps: stop, checkpoints kept

    def rollback(self) -> None:
        """After a divergence: back to the last good checkpoint with the lr divided by schedule.factor."""
        distributed.barrier(self.parts.layout)  # rank 0 has finished writing it
        self.restore(self.run.last)
        self.schedule.reduce()
        self.log.write("rollback", self.step, lr=self.schedule.lr)

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            if self.log is not None:
                self.log.close()
                self.log = None
            self.parts.layout.close()

    def _summary(self, status: str, budget: _Budget) -> dict:
        return {"status": status, "run": str(self.run.path) if self.run is not None else None,
                "epoch": self.epoch, "step": self.step,
                "best_val_top1_error": self.best_error if math.isfinite(self.best_error) else None,  # JSON has no inf
                "val_split": self.parts.val_name,  # where that error and best.pt's choice come from
                "lr": self.schedule.lr, **budget.result()}


class _Window:
    """The steps since the last log line: summed loss (a device tensor), images, and the first
    non-finite step (-1 while all is well), all without a host sync."""

    def __init__(self):
        self.t0, self.seen, self.loss_sum, self.count, self.first_bad = time.perf_counter(), 0, None, 0, None

    def add(self, loss: torch.Tensor, finite: torch.Tensor, images: int, step: int) -> None:
        self.seen, self.count = self.seen + images, self.count + 1
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        self.first_bad = _first_bad(self.first_bad, finite, step)


def _due(epochs_done: int, every: int) -> bool:
    """Whether an every-k-epochs action (train.val_every_epochs, train.ckpt_every_epochs) falls now; 0: never."""
    return every > 0 and epochs_done % every == 0


def _first_bad(first_bad, finite: torch.Tensor, step: int) -> torch.Tensor:
    """Device-side record of the first non-finite step (-1 while all is well): no host sync."""
    if first_bad is None:
        first_bad = torch.full((), -1, dtype=torch.int64, device=finite.device)
    return torch.where((first_bad < 0) & ~finite, torch.full_like(first_bad, step), first_bad)


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True, leave=False)


def _update_bar(bar, n: int, **postfix) -> None:
    if bar is not None:
        bar.update(n)
        bar.set_postfix(postfix, refresh=False)


def _close(bar) -> None:
    if bar is not None:
        bar.close()


def _print(enabled: bool, message: str) -> None:
    if enabled:
        from tqdm import tqdm
        tqdm.write(message)


def open_trainer(cfg: Config, resume: bool = False, checkpoint_hook: Hook | None = None,
                 phases: Phases | None = None, init: Callable[[nn.Module], None] | None = None,
                 checkpoint: Path | None = None, hooks: Sequence[EpochHook] = (),
                 layout: distributed.Layout | None = None, given: Collection[str] | None = None) -> Trainer:
    """A Trainer that writes into cfg.train.out: the folder checked, the parts built, the last
    checkpoint (or `checkpoint`) restored when resuming, else `init` applied to the new net (fine-
    tuning loads pretrained layers with it), and config.json written once all of that succeeded.
    Under torchrun, this process's share of the job (`layout`, default: from the environment);
    after an elastic restart (torchrun --max-restarts) it continues from the last checkpoint.
    `checkpoint_hook` (tests) is called by the checkpoint writer (train/checkpointing.py).
    `given`: the config keys the user set; the store's facts replace the others (parts.check_data),
    and what was taken is printed, logged (metrics.jsonl "start") and recorded in run.json."""
    configure_torch(cfg.train.threads, cfg.train.deterministic, cfg.train.cudnn_benchmark)
    layout = layout or distributed.from_env(cfg.train.device, cfg.train.model_parallel)
    device = distributed.process_device(cfg.train.device, layout.local_rank)
    restarted = not resume and distributed.restart_count() > 0 and RunFolder.has_checkpoint(cfg.train.out)
    cfg = cfg if layout.is_main else distributed.quiet(cfg)  # rank 0 alone shows progress
    run = RunFolder(cfg.train.out, resume or restarted, writer=layout.is_main)
    parts = build_parts(cfg, device, layout, given)  # a config or data error stops here, before anything is written
    cfg = parts.cfg  # fitted to the store: what is saved and trained with
    run.create()
    trainer = Trainer(cfg, parts, run, checkpoint_hook, phases, hooks)
    if parts.from_store:
        taken = " ".join(f"{k}={v}" for k, v in parts.from_store.items())
        if layout.is_main:
            print(f"alexnet: from the store {parts.store.path}: {taken}", file=sys.stderr)
    try:
        if resume or restarted:
            trainer.restore(checkpoint or run.last)
        elif init is not None:
            init(trainer.model)
        if restarted:
            trainer.log.write("restart", trainer.step, attempt=distributed.restart_count(), world=layout.world)
        distributed.wrap(trainer.parts, cfg)
        run.save_config(cfg)
        facts = {"resumed": resume or restarted, "world_size": layout.world, "precision": cfg.train.precision,
                 **run_facts(device), "from_store": parts.from_store}
        run.record_start(facts)
        trainer.log.write("start", trainer.step, **facts)
    except BaseException:
        trainer.close()
        raise
    return trainer


def train(cfg: Config, resume: bool = False, init: Callable[[nn.Module], None] | None = None,
          checkpoint: Path | None = None, hooks: Sequence[EpochHook] = (),
          layout: distributed.Layout | None = None, given: Collection[str] | None = None) -> dict:
    """Train with divergence handling: 'stop' raises; 'rollback' reloads last.pt with lr x0.1 (3 times at most).
    `init`, `checkpoint`, `layout` and `given`: see open_trainer. `hooks` run after every epoch (e.g. viz's
    TensorBoard images; a callback, as train/ may not import viz/)."""
    trainer = open_trainer(cfg, resume, init=init, checkpoint=checkpoint, hooks=hooks, layout=layout, given=given)
    try:
        for attempt in range(4):
            try:
                return trainer.fit()
            except DivergenceError:
                if cfg.train.on_divergence != "rollback" or attempt == 3 or not trainer.run.last.exists():
                    raise
                trainer.rollback()
        raise AssertionError("unreachable")
    except BaseException:
        trainer.close()
        trainer.run.discard()  # failed before its first checkpoint: the same --out starts clean
        raise
    finally:
        trainer.close()
