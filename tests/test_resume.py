"""`alexnet train --resume RUN --set ...`: overrides that may change on resume are validated and
applied for real; the rest are refused with one line; nothing on disk changes when refused."""
import json

import pytest

from alexnet.cli import main
from alexnet.train.schedule import PlateauSchedule
from alexnet.config import ScheduleConfig

from conftest import tiny_overrides


@pytest.fixture
def run(tiny_store, tmp_path, capsys):
    out = tmp_path / "run"
    sets = tiny_overrides(tiny_store, out, "schedule.epochs=1", "train.max_steps_per_epoch=2")
    assert main(["train", "--preset", "quick", "--set", *sets]) == 0
    capsys.readouterr()
    return out


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alexnet: error: ") and "\n" not in err
    return err


def test_resume_override_out_of_range_is_refused_and_changes_nothing(run, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert "optim.lr must be > 0" in _error(capsys, ["train", "--resume", str(run), "--set", "optim.lr=-1"])
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_resume_override_of_the_net_or_data_is_refused(run, capsys):
    for item in ("model.width=0.5", "data.crop=48", "optim.batch_size=8", "train.seed=3"):
        err = _error(capsys, ["train", "--resume", str(run), "--set", item])
        assert f"--set {item}: {item.split('=')[0]} cannot change when a run resumes" in err


def test_resume_applies_budget_and_lr_for_real(run, capsys):
    assert main(["train", "--resume", str(run), "--set", "schedule.epochs=2", "optim.lr=0.001"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epoch"] == 2 and summary["lr"] == pytest.approx(0.001)
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [row["lr"] for row in log if row["kind"] == "train"]
    assert lrs[:2] == [pytest.approx(0.01)] * 2 and lrs[2:] == [pytest.approx(0.001)] * 2  # epoch 2 at the new lr
    assert json.loads((run / "config.json").read_text())["optim"]["lr"] == 0.001
    # a later resume continues at the recorded lr, it does not re-apply or undo it
    assert main(["train", "--resume", str(run), "--set", "schedule.epochs=3", "schedule.max_cuts=0"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["lr"] == pytest.approx(0.001)


def test_a_bad_saved_value_can_be_repaired_by_an_override(run, capsys):
    cfg = json.loads((run / "config.json").read_text())
    cfg["schedule"]["epochs"] = 0  # e.g. written by hand, or by an older version
    (run / "config.json").write_text(json.dumps(cfg))
    assert "schedule.epochs must be >= 1" in _error(capsys, ["train", "--resume", str(run)])
    assert main(["train", "--resume", str(run), "--set", "schedule.epochs=2"]) == 0


def test_schedule_reduce_and_restart_keep_the_cuts():
    s = PlateauSchedule(ScheduleConfig(), 0.01)
    s.reduce()
    assert s.lr == pytest.approx(0.001) and s.state.cuts == 0
    s.restart_at(0.05)
    assert s.lr == 0.05 and s.state.cuts == 0


def test_resume_from_best_pt_says_to_use_last_pt(run, capsys):
    """best.pt holds the net without its training state: resuming from it names what to give instead."""
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    err = _error(capsys, ["train", "--resume", str(run / "best.pt"), "--epochs", "2"])
    assert f"resume from {run / 'last.pt'} or the run folder {run}" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert main(["train", "--resume", str(run / "last.pt"), "--epochs", "2"]) == 0  # what it said works
