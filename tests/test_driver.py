"""The one training driver (Trainer.fit with a Drive): the experiments' schedules count the steps
of the loader they really train on, their planned cuts are a schedule kind, and the drive's rules
(a step budget, a deadline) stop it cleanly, on real Imagenette images."""
import pytest

from alexnet.config import build_config
from alexnet.experiments.common import train_phases, trainer_on
from alexnet.train import Drive, Trainer, open_trainer

from conftest import tiny_overrides


@pytest.fixture
def applied_lrs(monkeypatch):
    """The lr each training step applied to the optimiser, in order."""
    lrs = []
    real = Trainer.train_step

    def step(self, images, labels):
        out = real(self, images, labels)
        lrs.append(self.optimizer.param_groups[0]["lr"])
        return out
    monkeypatch.setattr(Trainer, "train_step", step)
    return lrs


def test_experiment_warmup_and_decay_count_the_subset_steps(tiny_store, tmp_path, applied_lrs):
    # 4 images of each class: 40 images, 2 batches of 16 per epoch (the whole split would give 7)
    cfg = build_config(None, tiny_overrides(tiny_store, tmp_path / "x", "schedule.kind=linear", "schedule.epochs=2",
                                            "schedule.warmup_epochs=1", "optim.lr=0.01"))
    trainer = trainer_on(cfg, 4)
    summary = trainer.fit()
    assert summary["status"] == "finished" and summary["step"] == 4 and summary["run"] is None
    # warm-up over the first epoch's 2 steps, then linear decay to 0 at the end of 4 steps
    assert applied_lrs == pytest.approx([0.01 / 2, 0.01, 0.01, 0.01 / 2])


def test_planned_cuts_are_a_schedule_kind(tiny_store, tmp_path, applied_lrs):
    cfg = build_config(None, tiny_overrides(tiny_store, tmp_path / "x", "optim.lr=0.01"))
    trainer = trainer_on(cfg, 4)
    losses = train_phases(trainer, [3, 2])
    assert len(losses) == 5 and trainer.step == 5 and (trainer.epoch, trainer.batch) == (2, 1)
    assert trainer.cfg.schedule.kind == "cuts" and trainer.cfg.schedule.cut_steps == (3,)
    assert applied_lrs == [0.01] * 3 + [0.01 * 0.1] * 2  # exactly the rollback's division, at step 3


def test_step_budget_and_deadline_stop_and_save(tiny_store, tmp_path):
    sets = tiny_overrides(tiny_store, tmp_path / "run", "schedule.epochs=2")
    trainer = open_trainer(build_config(None, sets))
    first = trainer.fit(Drive(steps=9))  # crosses the first epoch's end (7 steps): validated, then 2 more
    assert (first["status"], first["step"], first["epoch"]) == ("stopped", 9, 1)
    assert first["best_val_top1_error"] is not None and (tmp_path / "run" / "last.pt").is_file()
    rest = trainer.fit(Drive(seconds=1e-9))  # past the deadline after the next step
    assert (rest["status"], rest["step"]) == ("stopped", 10)
    done = trainer.fit()
    assert (done["status"], done["step"], done["epoch"]) == ("finished", 14, 2)
    trainer.close()


def test_store_facts_come_back_in_a_new_config(tiny_store, tmp_path):
    import torch

    from alexnet.train import build_parts
    sets = [s for s in tiny_overrides(tiny_store, tmp_path / "x") if not s.startswith("model.num_classes")]
    cfg = build_config(None, sets)
    parts = build_parts(cfg, torch.device("cpu"))
    assert cfg.model.num_classes == 0  # the caller's config is left as it is
    assert parts.cfg.model.num_classes == 10 and parts.from_store == {"model.num_classes": 10}
    assert Trainer(parts.cfg, parts).state()["config"]["model"]["num_classes"] == 10


def test_config_sections_and_the_old_spellings():
    from alexnet.config import Config, RANGES, choices, from_dict, to_dict
    old = ["data.threads=3", "data.prefetch=0", "data.decode=device", "train.max_steps_per_epoch=2",
           "train.dead_steps=7", "train.chance_steps=9", "train.ddp_bucket_mb=50"]
    cfg = build_config(None, old)
    assert (cfg.loader.threads, cfg.loader.prefetch, cfg.loader.decode, cfg.loader.max_batches) == (3, 0, "device", 2)
    assert (cfg.health.dead_steps, cfg.health.chance_steps, cfg.ddp.bucket_mb) == (7, 9, 50)
    saved = to_dict(Config())  # a checkpoint's config from before the sections
    for section in ("loader", "health", "ddp"):
        del saved[section]
    saved["data"]["threads"], saved["train"]["dead_steps"] = 5, 11
    assert from_dict(saved).loader.threads == 5 and from_dict(saved).health.dead_steps == 11
    assert RANGES["loader.device_share"] == "(0, 1]" and RANGES["health.dead_steps"] == "[0, inf)"
    assert choices("loader.decode") == ("cpu", "device") and choices("data.decode") == ("cpu", "device")
