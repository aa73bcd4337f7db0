"""A dead run is never "finished" (train/health.py): the collapse provoked on CPU (the paper's init
at a huge lr kills every ReLU of a layer within a few steps, as lr 0.01 did at full width on
Imagenette), the one-line stop, the checkpoints kept, no plateau cut spent on a net at chance, and
no false alarm on a healthy run."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import alexnet.train.health as health
from alexnet.cli import main
from alexnet.config import HealthConfig
from alexnet.errors import DeadRunError
from alexnet.train.health import Health, silent_layers

from conftest import tiny_overrides

KILL = ("model.init=paper", "model.input_scale=1", "optim.lr=1")  # the paper's init, 100x its lr


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("alexnet: error: ") and "\n" not in err and "Traceback" not in err
    assert "finished" not in captured.out
    return err


def test_a_dead_net_stops_with_one_line_and_keeps_its_checkpoints(tiny_store, tmp_path, capsys):
    out = tmp_path / "run"
    sets = tiny_overrides(tiny_store, out, *KILL, "schedule.epochs=3", "health.dead_steps=5", "train.ckpt_every_steps=2")
    err = _error(capsys, ["train", "--preset", "quick", "--set", *sets])
    assert err.startswith("alexnet: error: the net is dead at step ") and "exactly zero gradient" in err
    assert "optim.lr" in err and "model.init=kaiming" in err and str(out) in err
    step = int(err.split("at step ")[1].split(":")[0])
    assert step < 14  # within two epochs of 7 steps: the run did not go on to "finish"
    assert (out / "last.pt").is_file() and (out / "config.json").is_file()


def test_at_chance_no_cut_is_spent_and_the_run_stops(tiny_store, tmp_path, capsys, monkeypatch):
    # the same dead net with the layer check off: validation sits at chance (one class for every
    # image); its loss wanders near ln(10) after the blow-up, so the test widens the tolerance
    monkeypatch.setattr(health, "LOSS_TOLERANCE", 1.0)
    out = tmp_path / "run"
    sets = tiny_overrides(tiny_store, out, *KILL, "schedule.epochs=4", "schedule.patience=1", "health.dead_steps=0",
                          "health.chance_steps=14", "train.log_every_steps=7")
    err = _error(capsys, ["train", "--preset", "quick", "--set", *sets])
    # epoch 1's loss window holds the blow-up (not pinned); epochs 2 and 3 are: 14 steps at chance
    assert err.startswith("alexnet: error: the net is stuck at chance at step 21: validation top-1 error 0.9000")
    assert "at every epoch end since step 7" in err
    val = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if '"val"' in l]
    assert [v["top1_error"] for v in val] == [pytest.approx(0.9)] * 3
    assert not any(v["lr_cut"] for v in val)  # patience 1 would have cut at epochs 2 and 3
    assert (out / "last.pt").is_file()


def test_healthy_runs_raise_no_alarm(tiny_store, tmp_path, capsys):
    for name, extra in (("paper", ("model.init=paper", "model.input_scale=1")), ("kaiming", ())):
        sets = tiny_overrides(tiny_store, tmp_path / name, *extra, "schedule.epochs=2", "health.dead_steps=1")
        assert main(["train", "--preset", "quick", "--set", *sets]) == 0, name
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["status"] == "finished"


def test_silent_layers_names_the_layers_dead_relus_cut_off():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("fc6", nn.Linear(8, 200))
    net.add_module("relu6", nn.ReLU())
    net.add_module("fc7", nn.Linear(200, 200))
    net.add_module("relu7", nn.ReLU())
    net.add_module("fc8", nn.Linear(200, 4))
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))

    def silent(dead_fc7_units: int) -> list[str]:
        net.zero_grad()
        with torch.no_grad():
            net.fc7.bias.fill_(0.0)
            net.fc7.bias[:dead_fc7_units] = -100.0  # these ReLUs are zero for every image
        nn.functional.cross_entropy(net(x), y).backward()
        return silent_layers(net)
    assert silent(0) == []  # alive
    assert silent(190) == []  # 95% of fc7 silent: not yet dead
    assert silent(199) == ["fc7"]  # 99.5%
    assert silent(200) == ["fc6", "fc7", "fc8"]  # no gradient below fc7, and fc8 sees zeros; fc8's bias still learns
    for p in net.parameters():  # every gradient zero: a perfectly fitted batch, not a dead net
        p.grad.zero_()
    assert silent_layers(net) == []


def _health(**cfg) -> Health:
    train_labels = np.repeat(np.arange(10), 100)
    val_labels = np.concatenate([np.repeat(np.arange(10), 30), np.zeros(20, dtype=np.int64)])  # class 0: 50 of 320
    return Health(HealthConfig(**cfg), 0.01, train_labels, val_labels, "runs/x")


def test_chance_is_the_majority_class_and_the_no_input_loss():
    h = _health()
    assert h.chance_loss == pytest.approx(np.log(10)) and h.chance_accuracy == pytest.approx(50 / 320)
    h.last_loss = np.log(10) + 0.01
    assert h.at_chance(100, 1 - 50 / 320) and h.state.chance_since == 0
    assert not h.at_chance(200, 0.5) and h.state.chance_since == -1  # learning: the clock resets
    h.last_loss = 1.5  # validation at chance but the training loss falls: the clock does not run
    assert h.at_chance(300, 0.9) and h.state.chance_since == -1


def test_the_paper_inits_plateau_does_not_stop_a_run_but_5000_steps_do():
    h = _health()  # defaults: chance_steps 5000
    h.last_loss = float(np.log(10))
    for step in range(74, 1600, 74):  # ~1500 steps at chance (docs/paper.md "init"), 74 steps an epoch
        assert h.at_chance(step, 0.85)
        h.stop_if_stuck(step)
    with pytest.raises(DeadRunError, match="stuck at chance at step 5032.*lower optim.lr"):
        for step in range(1628, 6000, 74):
            h.at_chance(step, 0.85)
            h.stop_if_stuck(step)
    off = _health(chance_steps=0)
    off.last_loss = float(np.log(10))
    off.at_chance(100_000, 0.85)
    off.stop_if_stuck(100_000)


def test_health_state_survives_a_checkpoint():
    h = _health()
    h.last_loss = float(np.log(10))
    h.at_chance(74, 0.85)
    resumed = _health()
    resumed.load_state_dict(h.state_dict(), 74)
    assert resumed.state == h.state
    old = _health()
    old.load_state_dict(None, 740)  # a checkpoint from before health checks: counts from where it resumes
    assert old.state.epoch_start == 740 and old.state.chance_since == -1
