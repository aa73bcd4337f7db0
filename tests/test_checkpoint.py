"""Checkpoints cannot be half-written, damaged ones are detected, and no file runs code."""
import errno
import os
import pickle

import pytest
import torch

from alexnet import checkpoint as ckpt
from alexnet.errors import CheckpointError


def _state(v: float) -> dict:
    return {"model": {"w": torch.full((64, 64), v)}, "progress": {"step": int(v)}}


def test_round_trip_and_prev(tmp_path):
    p = tmp_path / "last.pt"
    ckpt.save_checkpoint(_state(1.0), p)
    ckpt.save_checkpoint(_state(2.0), p)
    assert ckpt.load_checkpoint(p)["progress"]["step"] == 2
    assert ckpt.load_checkpoint(ckpt.prev_path(p))["progress"]["step"] == 1
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary files left


def test_flipped_byte_is_detected_and_prev_is_the_fallback(tmp_path):
    p = tmp_path / "last.pt"
    ckpt.save_checkpoint(_state(1.0), p)
    ckpt.save_checkpoint(_state(2.0), p)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor payload: torch.load alone would accept it
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.load_checkpoint(p)
    state, used = ckpt.load_with_fallback(p)
    assert used == ckpt.prev_path(p) and state["progress"]["step"] == 1


def test_truncated_file_is_detected(tmp_path):
    p = tmp_path / "last.pt"
    ckpt.save_checkpoint(_state(1.0), p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        ckpt.load_checkpoint(p)


def test_disk_full_mid_write_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    p = tmp_path / "last.pt"
    ckpt.save_checkpoint(_state(1.0), p)
    good = p.read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        real_save(obj, f, *a, **k)  # part of the bytes reach the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device; the previous one is intact"):
        ckpt.save_checkpoint(_state(2.0), p)
    assert p.read_bytes() == good
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_crafted_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": Evil()}, p)
    with pytest.raises(CheckpointError, match="could run code"):
        ckpt.load_checkpoint(p)
    assert not (tmp_path / "pwned").exists()
    raw = tmp_path / "raw.pkl"  # a bare pickle, not even a zip
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        ckpt.load_checkpoint(raw)
    assert not (tmp_path / "pwned").exists()


def test_missing_file_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
