"""End to end on real images: prepare -> train -> eval through the CLI, and exact resume."""
import json

import pytest
import torch

from alexnet.checkpoint import load_checkpoint
from alexnet.cli import main
from alexnet.config import build_config
from alexnet.data.store import open_store
from alexnet.evaluate import PredictOptions, evaluate_checkpoints, load_model, predict, topk_errors
from alexnet.train import open_trainer

from conftest import IMAGENETTE, tiny_overrides


def test_cli_prepare_train_eval(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["prepare", str(IMAGENETTE), str(store), "--size", "72", "--limit-per-class", "8", "--quiet"]) == 0
    assert "stored 160" in capsys.readouterr().out  # 8 images x 10 classes x 2 splits, all readable
    run = tmp_path / "run"
    sets = tiny_overrides(store, run, "schedule.epochs=2", "train.ckpt_every_steps=2")
    assert main(["train", "--preset", "quick", "--set", *sets]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["epoch"] == 2 and summary["step"] == 10  # 80 // 16 per epoch
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines if l["kind"] == "train"] == list(range(1, 11))
    val = [l for l in lines if l["kind"] == "val"]
    assert len(val) == 2 and all(0 <= l["top1_error"] <= 1 and l["top5_error"] <= l["top1_error"] for l in val)
    assert json.loads((run / "config.json").read_text())["model"]["width"] == 0.125

    assert main(["eval", str(run / "best.pt"), "--data", str(store), "--views", "10crop", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 80 and result["views"] == "10crop"
    # the same number computed independently: softmax of the ten views averaged by hand
    model, cfg, _ = load_model(run / "best.pt", torch.device("cpu"))
    reader = open_store(store).split("val")
    x = reader.read(torch.arange(len(reader)).numpy()).float() - open_store(store).mean
    views = [x[..., y:y + 64, c:c + 64] for y, c in [(0, 0), (0, 8), (8, 0), (8, 8), (4, 4)]]
    views += [v.flip(-1) for v in views]
    with torch.no_grad():
        probs = torch.stack([torch.softmax(model(v), -1) for v in views]).mean(0)
    manual = topk_errors(probs, torch.as_tensor(reader.labels))
    assert result["top1_error"] == pytest.approx(manual["top1_error"])
    assert result["top5_error"] == pytest.approx(manual["top5_error"])


def test_ensemble_averages_softmax(tiny_store, tmp_path):
    paths = []
    for seed in (1, 2):
        cfg = build_config("quick", tiny_overrides(tiny_store, tmp_path / f"r{seed}", "schedule.epochs=1",
                                                   f"train.seed={seed}", "train.max_steps_per_epoch=2"))
        open_trainer(cfg).fit()
        paths.append(str(tmp_path / f"r{seed}" / "last.pt"))
    store = open_store(tiny_store)
    result = evaluate_checkpoints(paths, store, "val", "center")
    models = [load_model(p, torch.device("cpu"))[0] for p in paths]
    reader = store.split("val")
    single = [predict([m], reader, store.mean, PredictOptions(64, "center", 64)) for m in models]
    expect = topk_errors((single[0] + single[1]) / 2, torch.as_tensor(reader.labels))
    assert result["top1_error"] == pytest.approx(expect["top1_error"])


def _weights(path):
    return load_checkpoint(path)["model"]


def test_save_resume_gives_identical_next_steps(tiny_store, tmp_path):
    common = ["schedule.epochs=2", "train.deterministic=true", "data.prefetch=0"]
    full = open_trainer(build_config("quick", tiny_overrides(tiny_store, tmp_path / "full", *common)))
    full.fit()
    # stop after 3 steps (mid-epoch: 7 steps per epoch), save, resume in a fresh Trainer
    part = open_trainer(build_config("quick", tiny_overrides(tiny_store, tmp_path / "part", *common)))
    part.run_steps(3)
    part.save()
    resumed = open_trainer(build_config("quick", tiny_overrides(tiny_store, tmp_path / "part", *common)), resume=True)
    assert (resumed.epoch, resumed.batch, resumed.step) == (0, 3, 3)
    resumed.fit()
    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "part" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert full.step == resumed.step == 14


def test_resume_accepts_older_configs_and_other_impls_but_not_another_net(tiny_store, tmp_path):
    from alexnet.checkpoint import save_checkpoint
    from alexnet.errors import ConfigError
    sets = tiny_overrides(tiny_store, tmp_path / "run", "schedule.epochs=1", "train.max_steps_per_epoch=1")
    open_trainer(build_config("quick", sets)).fit()
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    del state["config"]["model"]["grouped_impl"]  # a checkpoint from before that field existed
    save_checkpoint(state, tmp_path / "run" / "last.pt")
    for impl in ("model.grouped_impl=split", "model.lrn_impl=reference"):  # how, not what: resumable
        open_trainer(build_config("quick", [*sets, impl]), resume=True)
    with pytest.raises(ConfigError, match="different model config"):
        open_trainer(build_config("quick", [*sets, "model.dropout=0.3"]), resume=True)
