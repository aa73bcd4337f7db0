"""§5 schedule: divide lr by 10 when validation error stops improving, three times, then stop."""
import pytest

from alexnet.config import ScheduleConfig
from alexnet.train.schedule import PlateauSchedule, build_schedule


def test_cuts_after_patience_and_stops_after_tail():
    s = PlateauSchedule(ScheduleConfig(patience=2, max_cuts=3, tail_epochs=1, epochs=100), base_lr=0.01)
    errors = [0.9, 0.8, 0.8, 0.85,   # two epochs without a new best -> cut 1 at epoch 3
              0.7, 0.75, 0.7,        # cut 2 at epoch 6
              0.71, 0.72,            # cut 3 at epoch 8
              0.6]                   # tail epoch
    cuts = [s.observe(e, err) for e, err in enumerate(errors)]
    assert [i for i, c in enumerate(cuts) if c] == [3, 6, 8]
    assert abs(s.lr - 1e-5) < 1e-18
    assert s.finished(len(errors))
    assert not PlateauSchedule(ScheduleConfig(patience=2, tail_epochs=1), 0.01).finished(5)


def test_threshold_and_budget():
    s = PlateauSchedule(ScheduleConfig(patience=1, threshold=0.05, epochs=4), base_lr=0.1)
    assert not s.observe(0, 0.5)
    assert s.observe(1, 0.47)  # improvement below threshold counts as none
    assert s.finished(4) and not s.finished(3)


def test_state_round_trip():
    s = PlateauSchedule(ScheduleConfig(patience=1), 0.01)
    s.observe(0, 0.5), s.observe(1, 0.6)
    t = PlateauSchedule(ScheduleConfig(patience=1), 0.01)
    t.load_state_dict(s.state_dict())
    assert t.state == s.state and t.lr == 0.001


def test_decay_schedules_warm_up_then_reach_zero_at_the_budget():
    from alexnet.train.schedule import build_schedule
    lin = build_schedule(ScheduleConfig(kind="linear", warmup_epochs=1, epochs=5), 0.1, steps_per_epoch=10)
    cos = build_schedule(ScheduleConfig(kind="cosine", warmup_epochs=1, epochs=5), 0.1, steps_per_epoch=10)
    assert [round(lin.lr_at(s), 6) for s in (0, 4, 9)] == [0.01, 0.05, 0.1]  # (step + 1) / 10 of the peak
    assert lin.lr_at(10) == cos.lr_at(10) == 0.1  # the decay starts at the peak
    assert abs(lin.lr_at(30) - 0.05) < 1e-12 and abs(cos.lr_at(30) - 0.05) < 1e-12  # half way: both at half
    assert cos.lr_at(20) > lin.lr_at(20)  # the cosine stays higher early on
    assert 0 < lin.lr_at(49) < 0.003 and lin.lr_at(50) == 0.0  # the last step of the budget is the smallest
    assert lin.advance(30) == lin.lr == lin.lr_at(30)
    assert not lin.observe(0, 0.5) and not lin.finished(4) and lin.finished(5)
    again = build_schedule(ScheduleConfig(kind="linear", warmup_epochs=1, epochs=5), 0.1, steps_per_epoch=10)
    again.load_state_dict(lin.state_dict())
    assert again.lr == lin.lr
    lin.reduce()
    assert abs(lin.lr_at(30) - 0.005) < 1e-12


def test_plateau_needs_validation_every_epoch():
    import pytest
    from alexnet.config import build_config
    from alexnet.errors import ConfigError
    with pytest.raises(ConfigError, match="train.val_every_epochs=1"):
        build_config(None, ["train.val_every_epochs=2"])
    assert build_config(None, ["train.val_every_epochs=0", "schedule.kind=cosine"]).schedule.kind == "cosine"
    with pytest.raises(ConfigError, match="warmup_epochs"):
        build_config(None, ["schedule.kind=linear", "schedule.warmup_epochs=90"])


def test_step_schedule_divides_at_even_points_of_the_budget():
    s = build_schedule(ScheduleConfig(kind="step", epochs=8, max_cuts=3), 0.01, steps_per_epoch=10)
    # cuts after 1/4, 2/4 and 3/4 of the 80 steps
    assert [s.lr_at(i) for i in (0, 19, 20, 39, 40, 59, 60, 79)] == pytest.approx(
        [0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    assert not s.observe(0, 0.5) and s.finished(8) and not s.finished(7)
    paper = build_schedule(ScheduleConfig(kind="step"), 0.01, steps_per_epoch=1)  # 90 epochs, 3 cuts
    assert [e for e in range(1, 90) if paper.lr_at(e) < paper.lr_at(e - 1)] == [23, 45, 68]
