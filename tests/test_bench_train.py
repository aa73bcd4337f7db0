"""`alexnet bench train` on the CPU: the real loop for a few steps next to the synthetic step,
with the parts of the wall time adding up (the numbers that matter come from a GPU)."""
import json

import pytest

from alexnet.cli import main

from conftest import tiny_overrides


def test_bench_train_reports_parts_and_rates(tiny_store, tmp_path, capsys):
    sets = [s for s in tiny_overrides(tiny_store, tmp_path / "unused") if not s.startswith(("data.store", "train.out"))]
    out = tmp_path / "result.json"
    argv = ["bench", "train", "--preset", "quick", "--data", str(tiny_store), "--epochs", "1", "--synthetic-steps", "2",
            "--warmup", "0", "--final-eval", "center", "--json", "--json-out", str(out),
            "--set", *sets, "train.max_steps_per_epoch=3"]
    assert main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r == json.loads(out.read_text())
    assert r["status"] == "finished" and r["steps"] == 3 and r["images"] == 3 * 16 and r["run"] is None
    assert set(r["phases"]) == {"data", "step", "validation", "checkpoint", "other"}
    assert r["phases"]["step"]["calls"] == 3 and r["phases"]["data"]["calls"] == 4  # the 4th finds the epoch's end
    assert r["phases"]["validation"]["calls"] == 1
    assert sum(p["seconds"] for p in r["phases"].values()) == pytest.approx(r["wall_s"])
    assert r["img_s"] == pytest.approx(r["images"] / r["wall_s"])
    assert r["synthetic_img_s"] > 0 and r["end_to_end_vs_synthetic"] == pytest.approx(r["img_s"] / r["synthetic_img_s"])
    assert r["final_eval"]["views"] == "center" and r["final_eval"]["images"] == 120
    assert 0 <= r["final_eval"]["top1_error"] <= 1


def test_bench_train_bad_arguments_are_one_line(tiny_store, capsys):
    assert main(["bench", "train", "--data", str(tiny_store), "--epochs", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--epochs" in err and ">= 0" in err
