"""§5 schedule: divide lr by 10 when validation error stops improving, three times, then stop."""
from alexnet.config import ScheduleConfig
from alexnet.train.schedule import PlateauSchedule


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
