"""Checkpoints off the step's path (train/checkpointing.py): a snapshot taken at save() and
written by a background thread, one write at a time, errors surfacing in the caller; best.pt
holds the weights without the optimiser state."""
import errno
import json
import threading

import pytest
import torch

from alexnet.checkpoint import load_checkpoint
from alexnet.cli import main
from alexnet.errors import CheckpointError
from alexnet.train.checkpointing import CheckpointWriter

from conftest import tiny_overrides


class Gate:
    """A writer hook that holds each write (serialised, not yet renamed) until released."""

    def __init__(self):
        self.entered, self.release, self.log = threading.Event(), threading.Event(), []

    def __call__(self, point, path):
        self.log.append(("in", path.name))
        self.entered.set()
        assert self.release.wait(30)
        self.log.append(("out", path.name))


def test_save_returns_at_once_and_writes_the_snapshot(tmp_path):
    gate = Gate()
    writer = CheckpointWriter(hook=gate)
    w = torch.arange(6.0)
    writer.save({tmp_path / "last.pt": {"model": {"w": w}, "progress": {"step": 1}}})
    assert gate.entered.wait(30)
    assert not (tmp_path / "last.pt").exists()  # still being written
    w += 100  # training goes on and changes the weights in place
    gate.release.set()
    writer.wait()
    state = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(state["model"]["w"], torch.arange(6.0)) and state["progress"]["step"] == 1
    writer.close()


def test_one_write_in_flight_and_shared_tensors_copied_once(tmp_path):
    gate = Gate()
    gate.release.set()
    writer = CheckpointWriter(hook=gate)
    w = torch.ones(3)
    writer.save({tmp_path / "last.pt": {"model": {"w": w}, "optimizer": {"v": w * 2}},
                 tmp_path / "best.pt": {"model": {"w": w}}})
    writer.save({tmp_path / "last.pt": {"model": {"w": w + 1}}})  # waits for the first job
    writer.close()
    assert gate.log == [("in", "last.pt"), ("out", "last.pt"), ("in", "best.pt"), ("out", "best.pt"),
                        ("in", "last.pt"), ("out", "last.pt")]
    assert torch.equal(load_checkpoint(tmp_path / "best.pt")["model"]["w"], torch.ones(3))
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["model"]["w"], torch.full((3,), 2.0))


def test_writer_error_is_raised_by_the_next_call(tmp_path, monkeypatch):
    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    writer = CheckpointWriter()
    monkeypatch.setattr(torch, "save", full_disk)
    writer.save({tmp_path / "last.pt": {"w": torch.zeros(2)}})
    with pytest.raises(CheckpointError, match="last.pt: No space left on device; the previous one is intact"):
        writer.wait()
    writer.wait()  # reported once


def test_failed_background_write_stops_training_with_one_line(tiny_store, tmp_path, monkeypatch, capsys):
    real = torch.save
    calls = {"n": 0}

    def fails_second(*a, **k):  # the first checkpoint is written, the disk is full from the second on
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)
    monkeypatch.setattr(torch, "save", fails_second)
    sets = tiny_overrides(tiny_store, tmp_path / "run", "schedule.epochs=3", "train.ckpt_every_steps=2")
    assert main(["train", "--preset", "quick", "--set", *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alexnet: error: could not write checkpoint ") and "\n" not in err
    assert "No space left on device; the previous one is intact" in err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["progress"]["step"] == 2  # the good one


def test_best_is_weights_without_optimizer_state(tiny_store, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "quick", "--set", *tiny_overrides(tiny_store, run, "schedule.epochs=1")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["status"] == "finished"
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert "optimizer" not in best and "optimizer" in last
    assert set(best) >= {"config", "model", "classes"}
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])
    assert main(["eval", str(run / "best.pt"), "--data", str(tiny_store), "--json"]) == 0
