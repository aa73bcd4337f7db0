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


# ---- the record: one format for every file of a net ----------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tiny_store, tmp_path_factory):
    """A copy of the tiny store and a run of 2 epochs of 2 steps on it (best.pt and last.pt)."""
    import shutil

    from alexnet.cli import main
    from conftest import tiny_overrides
    root = tmp_path_factory.mktemp("record")
    store = root / "store"
    shutil.copytree(tiny_store, store)
    sets = tiny_overrides(store, root / "run", "schedule.epochs=2", "train.max_steps_per_epoch=2")
    assert main(["train", "--set", *sets]) == 0
    return root / "run", store


def test_best_is_last_without_training_state(tiny_run):
    import json

    from alexnet.data.store import open_store
    run, store = tiny_run
    best, last = ckpt.read_record(run / "best.pt"), ckpt.read_record(run / "last.pt")
    assert last.training is not None and best.training is None  # best.pt: nothing only resuming needs
    assert set(ckpt.load_checkpoint(run / "best.pt")) == set(ckpt.load_checkpoint(run / "last.pt")) - \
        {"optimizer", "schedule", "health"}
    opened = open_store(store)
    for r in (best, last):  # what using the net needs, without its store
        assert r.classes == opened.classes and r.class_names == opened.class_names
        assert torch.equal(r.input.mean, opened.mean) and r.input.size == opened.size == 72
        assert torch.equal(r.input.pca_eigvecs, opened.pca_eigvecs)
        assert r.recipe["command"] == "alexnet train" and r.recipe["store"] == str(opened.path)
    vals = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"val"' in l]
    vals = [v for v in vals if v["kind"] == "val"]
    assert [m["top1_error"] for m in last.metrics] == [vals[-1]["top1_error"]]  # its own epoch, not the best one
    assert last.metrics[0]["epoch"] == 2 and last.progress["epoch"] == 2
    best_epoch = min(range(len(vals)), key=lambda i: (vals[i]["top1_error"], i)) + 1
    assert [(m["top1_error"], m["epoch"]) for m in best.metrics] == [(vals[best_epoch - 1]["top1_error"], best_epoch)]
    assert ckpt.Record.from_state(best.to_state(), "again").to_state().keys() == best.to_state().keys()


def _as_version_1(state: dict, best: bool) -> dict:
    """A file as alexnet wrote it before the record (version 1): best.pt had no input, metrics or recipe."""
    old = {k: v for k, v in state.items() if k not in ("metrics", "recipe")}
    old["version"] = 1
    if best:
        old = {k: old[k] for k in ("format", "version", "config", "model", "progress", "classes", "class_names")}
    return old


def test_version_1_files_load_or_say_what_to_do(tiny_run, tmp_path):
    import shutil

    from alexnet.cli import main
    from alexnet.evaluate import read_record
    run, store = tiny_run
    best = ckpt.load_checkpoint(run / "best.pt")
    old_best, old_last = tmp_path / "run" / "best.pt", tmp_path / "run" / "last.pt"
    old_best.parent.mkdir()
    ckpt.save_checkpoint(_as_version_1(best, True), old_best)
    ckpt.save_checkpoint(_as_version_1(ckpt.load_checkpoint(run / "last.pt"), False), old_last)
    assert ckpt.load_checkpoint(old_best)["version"] == 1 and "input" not in ckpt.load_checkpoint(old_best)
    record = read_record(old_best)  # its store is there: the input statistics come from it
    assert torch.equal(record.input.mean, best["input"]["mean"]) and record.input.size == 72
    assert [m["top1_error"] for m in record.metrics] == [best["progress"]["best_error"]]
    assert read_record(old_last).metrics == []  # last.pt's weights are not the best's: no borrowed number
    moved = tmp_path / "moved"
    shutil.move(store, moved)
    try:
        with pytest.raises(CheckpointError) as e:
            read_record(old_best)
        assert "\n" not in str(e.value) and "last.pt" in str(e.value) and str(store) in str(e.value)
        assert read_record(old_last).input.size == 72  # version 1 last.pt carried its input
        assert main(["export", str(old_best), "--weights", str(tmp_path / "w.safetensors")]) == 2
    finally:
        shutil.move(moved, store)


def test_a_newer_record_is_refused_in_one_line(tiny_run, tmp_path):
    run, _ = tiny_run
    state = ckpt.load_checkpoint(run / "best.pt")
    ckpt.save_checkpoint({**state, "version": ckpt.VERSION + 1}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer than this alexnet reads"):
        ckpt.read_record(tmp_path / "new.pt")
