"""`alexnet bench curve`: fast and reference paths train alike, from the same weights."""
import json

import numpy as np

from alexnet.bench.curve import moving_average
from alexnet.cli import main

from conftest import tiny_overrides


def test_bench_curve_fast_path_tracks_reference_far_inside_noise(tiny_store, tmp_path, capsys):
    out = tmp_path / "curve.json"
    sets = tiny_overrides(tiny_store, tmp_path / "unused")  # train.out is replaced by fresh temp folders
    argv = ["bench", "curve", "--data", str(tiny_store), "--preset", "quick", "--steps", "10", "--window", "4",
            "--device", "cpu", "--json", "--out", str(out), "--set", *sets]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == result
    assert result["steps"] == 10 and result["batch"] == 16 and result["batches_per_epoch"] == 7  # 120 // 16: crosses an epoch
    assert all(len(result["losses"][name]) == 10 for name in ("ref", "fast", "noise"))
    assert all(result["finite"].values())
    # same initial weights: checked tensor by tensor, and seen in the first step, where ref and fast
    # compute the same formula on the same batch (fp32 on CPU: only summation order differs)
    assert result["same_init"]
    assert abs(result["first_loss"]["fast"] - result["first_loss"]["ref"]) < 1e-5
    assert result["runs"]["noise"]["seed"] == result["runs"]["ref"]["seed"] + 1
    assert abs(result["first_loss"]["noise"] - result["first_loss"]["ref"]) > 1e-3  # another batch
    # the gaps, recomputed from the per-step losses
    gap = np.abs(moving_average(result["losses"]["fast"], 4) - moving_average(result["losses"]["ref"], 4))
    assert np.isclose(gap.max(), result["fast_vs_ref"]["max_abs"]) and np.isclose(gap.mean(), result["fast_vs_ref"]["mean_abs"])
    assert result["fast_vs_ref"]["max_abs"] < 0.01 * result["noise_vs_ref"]["max_abs"]
    assert result["within_noise"]


def test_bench_curve_table_and_missing_store(tiny_store, tmp_path, capsys):
    sets = tiny_overrides(tiny_store, tmp_path / "unused")
    assert main(["bench", "curve", "--data", str(tiny_store), "--preset", "quick", "--steps", "3", "--window", "2",
                 "--device", "cpu", "--set", *sets]) == 0
    text = capsys.readouterr().out
    assert "within noise:" in text and "fast vs ref" in text
    assert main(["bench", "curve", "--data", str(tmp_path / "nowhere"), "--preset", "quick", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alexnet: error: no store at") and "\n" not in err
