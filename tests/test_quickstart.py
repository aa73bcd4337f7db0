"""The README's main job, shrunk: find the archive, prepare the whole of Imagenette, train, evaluate."""
import json

from alexnet.cli import main
from alexnet.cli.quickstart import quickstart_table

from conftest import DATA


def test_quickstart_end_to_end(tmp_path, capsys):
    sets = ["model.width=0.125", "data.size=72", "data.crop=64", "schedule.epochs=1", "train.max_steps_per_epoch=3",
            "train.progress=false"]
    assert main(["quickstart", "--data-dir", str(DATA), "--work", str(tmp_path), "--results", str(tmp_path / "rec"),
                 "--set", *sets]) == 0
    out = capsys.readouterr().out
    assert "read 13394, stored 13394, skipped 0" in out  # the whole archive, every image readable
    results = json.loads((tmp_path / "runs" / "quickstart-quick" / "results.json").read_text())
    assert results["center"]["images"] == results["10crop"]["images"] == 3925
    assert all(0 <= r["top5_error"] <= r["top1_error"] <= 1 for r in results.values())
    assert "top-1 accuracy" in out and "reported: best.pt, chosen by the error on 5% of each class held out" in out
    # the record the README's headline comes from: the same errors, the time of each phase
    folder = tmp_path / "rec"
    record = json.loads((folder / "result.json").read_text())
    run = tmp_path / "runs" / "quickstart-quick"
    assert json.loads((run / "quickstart.json").read_text()) == record and not (tmp_path / "results").exists()
    assert {v: (e["top1"], e["top5"]) for v, e in record["errors"].items()} == \
        {v: (r["top1_error"], r["top5_error"]) for v, r in results.items()}
    t = record["seconds"]
    assert min(t["prepare"], t["train"], t["evaluate"]) > 0 and abs(t["prepare"] + t["train"] + t["evaluate"] - t["total"]) < 0.5
    assert record["reused"] == {"store": False, "run": False} and record["images"] == 3925 and record["date"]
    assert (folder / "table.md").read_text().strip() == quickstart_table(record)
    assert record["checkpoint"] == "best.pt" and record["chosen_on"] == "holdout"  # data.holdout, not the val split
    assert record["epochs"] == 1 and record["steps"] == 3 and record["torch"]
    assert (folder / "metrics.jsonl").read_text().count('"split": "holdout"') == 1 and (folder / "config.json").exists()
    # again: the store and the finished run are reused, nothing is retrained, and the record says so
    assert main(["quickstart", "--data-dir", str(DATA), "--work", str(tmp_path), "--set", *sets]) == 0
    assert '"step": 3' in capsys.readouterr().out
    again = json.loads((run / "quickstart.json").read_text())  # without --results: the run folder alone
    assert again["reused"] == {"store": True, "run": True} and again["errors"] == record["errors"]
    assert "store and run reused" in (run / "quickstart.md").read_text()
    assert json.loads((folder / "result.json").read_text()) == record


def test_quickstart_without_archive_says_where_it_looked(tmp_path, capsys):
    assert main(["quickstart", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no imagenette-224.tar.gz found (looked in {tmp_path})" in err
