"""Issue 5: nothing lost when a run is killed, nothing let in from hostile input.

The kill tests run real training processes and kill them with SIGKILL (or SIGINT) at
several steps, then resume, and compare the final weights bitwise with an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from alexnet.checkpoint import load_checkpoint
from alexnet.cli import main
from alexnet.config import build_config
from alexnet.train import Trainer, train

from conftest import REPO, tiny_overrides

# 7 steps per epoch, 3 epochs; checkpoints every 2 steps and at each epoch's end
KILL_RUN = ["schedule.epochs=3", "train.deterministic=true", "train.ckpt_every_steps=2", "model.width=0.25"]


def _start(store: Path, out: Path, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "alexnet", "train"]
    cmd += ["--resume", str(out)] if resume else ["--preset", "quick", "--set", *tiny_overrides(store, out, *KILL_RUN)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _steps_logged(out: Path) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(l)["step"] for l in lines if l.endswith("}") and '"train"' in l]
    return max(steps, default=0)


def _run_until(store: Path, out: Path, step: int, sig: int, checkpointed: bool = False) -> subprocess.Popen:
    """Start a run and send `sig` once it has logged `step` (and, with checkpointed, once a
    checkpoint is on disk: they are written in the background, so one may still be in flight)."""
    proc = _start(store, out)
    deadline = time.time() + 120
    while (_steps_logged(out) < step or (checkpointed and not (out / "last.pt").exists())) \
            and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    proc.send_signal(sig)
    proc.wait(60)
    return proc


@pytest.fixture(scope="module")
def reference(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = _start(tiny_store, out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return load_checkpoint(out / "last.pt")


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kill_at", [3, 9, 16])  # mid-epoch 1, mid-epoch 2, mid-epoch 3
def test_kill9_then_resume_is_bitwise_identical(tiny_store, tmp_path, reference, kill_at):
    out = tmp_path / "run"
    proc = _run_until(tiny_store, out, kill_at, signal.SIGKILL, checkpointed=True)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = _steps_logged(out)
    assert killed_at < 21
    proc = _start(tiny_store, out, resume=True)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    final = load_checkpoint(out / "last.pt")
    assert final["progress"]["step"] == reference["progress"]["step"] == 21
    assert _same_weights(final["model"], reference["model"])
    assert final["schedule"] == reference["schedule"]


def test_kill9_during_a_background_checkpoint_write(tiny_store, tmp_path, reference):
    """Checkpoints are written by a background thread while training goes on: a kill -9 in the
    middle of a write (the third write of last.pt, step 6's, serialised but not yet renamed) keeps
    the previous checkpoint (step 4), and --resume still ends bitwise identical."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "tests" / "ckpt_hooks.py"), "3", "7", *tiny_overrides(tiny_store, out, *KILL_RUN)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _steps_logged(out) == 7  # training went on to the epoch's end while step 6's write was in flight
    assert load_checkpoint(out / "last.pt")["progress"]["step"] == 4  # the previous checkpoint, intact
    assert len(list(out.glob(".last.pt.*.tmp"))) == 1  # the write that was cut short
    proc = _start(tiny_store, out, resume=True)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    final = load_checkpoint(out / "last.pt")
    assert final["progress"]["step"] == 21 and _same_weights(final["model"], reference["model"])
    assert not list(out.glob(".*.tmp"))  # the resume removed the stale temporary file


def test_ctrl_c_saves_and_exits_cleanly(tiny_store, tmp_path, reference):
    out = tmp_path / "run"
    proc = _run_until(tiny_store, out, 5, signal.SIGINT)
    assert proc.returncode == 130, proc.stderr.read()
    assert "Traceback" not in proc.stderr.read()
    state = load_checkpoint(out / "last.pt")
    assert json.loads(proc.stdout.read().strip().splitlines()[-1])["status"] == "interrupted"
    assert state["progress"]["step"] >= 5  # saved where it stopped, not at the last periodic checkpoint
    proc = _start(tiny_store, out, resume=True)
    assert proc.wait(300) == 0
    assert _same_weights(load_checkpoint(out / "last.pt")["model"], reference["model"])


def test_divergence_stops_naming_the_step_and_keeps_last_good(tiny_store, tmp_path, capsys):
    out = tmp_path / "run"
    sets = tiny_overrides(tiny_store, out, "schedule.epochs=3", "optim.lr=1e6", "train.ckpt_every_steps=1")
    assert main(["train", "--preset", "quick", "--set", *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alexnet: error: non-finite loss or gradient at step ") and "\n" not in err
    bad_step = int(err.split("at step ")[1].split(":")[0])
    if (out / "last.pt").exists():  # whatever was saved before the divergence is finite and older
        state = load_checkpoint(out / "last.pt")
        assert state["progress"]["step"] < bad_step
        assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_divergence_rollback_lowers_lr(tiny_store, tmp_path, monkeypatch):
    cfg = build_config("quick", tiny_overrides(tiny_store, tmp_path / "run", "schedule.epochs=2",
                                               "train.on_divergence=rollback", "train.ckpt_every_steps=2"))
    real = Trainer.train_step
    poisoned = {"done": False}

    def step(self, images, labels):  # one poisoned step (at step 5), as a bad batch or overflow would
        loss, finite = real(self, images, labels)
        if self.step == 4 and not poisoned["done"]:
            poisoned["done"] = True
            return loss, torch.tensor(False)
        return loss, finite
    monkeypatch.setattr(Trainer, "train_step", step)
    result = train(cfg)
    assert result["status"] == "finished" and result["lr"] == pytest.approx(0.001)
    log = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["lr"] for l in log if l["kind"] == "rollback"] == [pytest.approx(0.001)]


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alexnet: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_hostile_configs_and_paths(tiny_store, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--preset", "quick", "--set", *tiny_overrides(tiny_store, run)]
    assert "must be > 0" in _cli_error(capsys, base + ["optim.lr=-1"])
    assert "batch_size must be >= 1" in _cli_error(capsys, base + ["optim.batch_size=0"])
    assert "unknown config key 'train.epochs'" in _cli_error(capsys, base + ["train.epochs=3"])
    assert "data.crop=200 is larger than the store's 72px" in _cli_error(capsys, base + ["data.size=256", "data.crop=200"])
    assert "set model.num_classes=10" in _cli_error(capsys, base + ["model.num_classes=1000"])
    assert str(tmp_path / "nope") in _cli_error(capsys, base + [f"data.store={tmp_path / 'nope'}"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot write to run folder" in _cli_error(capsys, base + [f"train.out={blocker / 'sub'}"])
    assert "fewer than one batch" in _cli_error(capsys, base + ["optim.batch_size=4096"])
    assert "no preset 'papr'" in _cli_error(capsys, ["train", "--preset", "papr"])
    assert not (run / "last.pt").exists()


def test_existing_run_is_not_overwritten(tiny_store, tmp_path, capsys):
    run = tmp_path / "run"
    sets = tiny_overrides(tiny_store, run, "schedule.epochs=1", "train.max_steps_per_epoch=1")
    assert main(["train", "--preset", "quick", "--set", *sets]) == 0
    before = (run / "last.pt").read_bytes()
    assert "--resume" in _cli_error(capsys, ["train", "--preset", "quick", "--set", *sets])
    assert (run / "last.pt").read_bytes() == before
    assert "nothing to resume" in _cli_error(capsys, ["train", "--resume", str(tmp_path / "empty")])


def test_bad_checkpoint_for_eval(tiny_store, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert "bad.pt is truncated or not a checkpoint" in _cli_error(capsys, ["eval", str(bad), "--data", str(tiny_store)])
    assert "does not exist" in _cli_error(capsys, ["eval", str(tmp_path / "none.pt"), "--data", str(tiny_store)])
