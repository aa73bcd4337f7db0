"""The README's main job, shrunk: find the archive, prepare the whole of Imagenette, train, evaluate."""
import json

from alexnet.cli import main

from conftest import DATA


def test_quickstart_end_to_end(tmp_path, capsys):
    sets = ["model.width=0.125", "data.size=72", "data.crop=64", "schedule.epochs=1", "train.max_steps_per_epoch=3",
            "train.progress=false"]
    assert main(["quickstart", "--data-dir", str(DATA), "--work", str(tmp_path), "--set", *sets]) == 0
    out = capsys.readouterr().out
    assert "read 13394, stored 13394, skipped 0" in out  # the whole archive, every image readable
    results = json.loads((tmp_path / "runs" / "quickstart-quick" / "results.json").read_text())
    assert results["center"]["images"] == results["10crop"]["images"] == 3925
    assert all(0 <= r["top5_error"] <= r["top1_error"] <= 1 for r in results.values())
    assert "top-1 accuracy" in out and "reported: best.pt, chosen by the error on 5% of each class held out" in out
    record = json.loads((tmp_path / "results" / "quickstart" / "result.json").read_text())
    assert record["checkpoint"] == "best.pt" and record["chosen_on"] == "holdout"  # data.holdout, not the val split
    assert {v: r["top1_error"] for v, r in record["results"].items()} == {v: r["top1_error"] for v, r in results.items()}
    assert record["epochs"] == 1 and record["steps"] == 3 and record["torch"] and record["date"]
    assert set(record["seconds"]) == {"prepare", "train", "eval_center", "eval_10crop", "total"}
    assert (tmp_path / "results" / "quickstart" / "metrics.jsonl").read_text().count('"split": "holdout"') == 1
    # again: the store and the finished run are reused, nothing is retrained
    assert main(["quickstart", "--data-dir", str(DATA), "--work", str(tmp_path), "--set", *sets]) == 0
    assert '"step": 3' in capsys.readouterr().out


def test_quickstart_without_archive_says_where_it_looked(tmp_path, capsys):
    assert main(["quickstart", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no imagenette-224.tar.gz found (looked in {tmp_path})" in err
