"""Every experiment of the paper at its tiny size, on real CIFAR-10 and Imagenette images: it
runs from the command line, writes result.json / a plot / table.md with the fields the README
shows, and a rerun reuses the finished units instead of training again."""
import json

import numpy as np
import pytest

from alexnet.cli import main
from alexnet.data.subset import SubsetReader, balanced_indices
from conftest import CIFAR


@pytest.fixture(scope="module")
def cifar_store(tmp_path_factory):
    """20 real CIFAR-10 images per class and split, 32x32."""
    from alexnet.data.prepare import prepare
    out = tmp_path_factory.mktemp("stores") / "cifar-32"
    prepare(CIFAR, out, size=32, limit_per_class=20, progress=False, workers=2)
    return out


def run(name: str, store, tmp_path, *extra) -> dict:
    out = tmp_path / "results" / name
    assert main(["experiment", name, "--data", str(store), "--size", "tiny", "--out", str(out),
                 "--work", str(tmp_path / "work"), "--quiet", *extra]) == 0
    assert (out / f"{name}.png").stat().st_size > 1000 and (out / "table.md").read_text().startswith("|")
    result = json.loads((out / "result.json").read_text())
    assert result["experiment"] == name and result["size"] == "tiny" and result["date"] and result["device"]
    return result


def test_subset_reader_reads_the_chosen_images(tiny_store):
    from alexnet.data.store import open_store
    split = open_store(tiny_store).split("train")
    idx = balanced_indices(split.labels, 3, seed=1)
    assert len(idx) == 30 and np.bincount(split.labels[idx]).tolist() == [3] * 10
    sub = SubsetReader(split, idx)
    assert (sub.read(np.array([4, 0])).numpy() == split.read(idx[[4, 0]]).numpy()).all()
    assert (sub.labels == split.labels[idx]).all() and len(sub) == 30


def test_figure1(cifar_store, tmp_path):
    r = run("figure1", cifar_store, tmp_path)
    assert set(r["curves"]) == {"relu", "tanh"} and r["settings"]["seeds"] == 1
    for act in ("relu", "tanh"):
        assert r["sweeps"][act]["best_lr"] in r["settings"]["lrs"]
        curve = r["curves"][act][0]
        assert curve["images"] == 160 and 1 <= len(curve["train_error"]) <= 2
        assert all(0 <= e <= 1 for e in curve["train_error"])
    assert set(r["speedup"]) == {"0.5", "0.4", "0.3", "0.25"}


def test_lrn_cifar(cifar_store, tmp_path):
    r = run("lrn-cifar", cifar_store, tmp_path)
    assert set(r["test_error"]) == {"without_lrn", "with_lrn"} and r["paper"] == {"without_lrn": 0.13, "with_lrn": 0.11}
    assert r["runs"]["true"][0]["test_images"] == 100 and r["runs"]["false"][0]["train_images"] == 160


def test_ablations_then_tencrop_reuse_the_nets(tiny_store, tmp_path, monkeypatch):
    r = run("ablations", tiny_store, tmp_path)
    rows = r["rows"]
    assert len(rows) == 10 and rows["paper net"]["delta_top1"] == 0
    assert rows["no LRN"]["paper_delta"] == [1.4, 1.2] and rows["pooling 2/2"]["paper_delta"] == [0.4, 0.3]
    for row in rows.values():
        assert 0 <= row["10crop_top1_error"] <= 1 and row["per_seed"][0]["images"] == 20
    # tencrop-ensemble (2 nets at the tiny size): seed 0 comes from the ablation run, seed 1 is trained now
    from alexnet.experiments import common
    trained = []
    real = common.train_or_fail
    monkeypatch.setattr("alexnet.experiments.ablations.train_or_fail", lambda t, p: trained.append(1) or real(t, p))
    t = run("tencrop-ensemble", tiny_store, tmp_path)
    assert len(trained) == 1 and len(t["singles"]) == 2
    e = t["ensembles"][0]
    assert e["10crop"]["top1_error"] >= 0 and e["checkpoints"][0].endswith("paper-net-s0.pt") and e["seeds"] == [0, 1]


def test_overfitting(tiny_store, tmp_path):
    r = run("overfitting", tiny_store, tmp_path)
    assert set(r["summary"]) == {"paper net", "no augmentation", "no dropout"} and r["settings"]["seeds"] == 1
    for v, runs in r["runs"].items():
        run0 = runs[0]
        assert run0["train_images"] == 40 and run0["val_images"] == 20
        assert run0["gap"] == pytest.approx(run0["val_top1_error"] - run0["train_top1_error"])
    for v, runs in r["runs"].items():  # 4 steps end at chance: a failure, counted and kept out of the effects
        assert r["failed_runs"][v] == sum(x["failed"] for x in runs)
    base = r["runs"]["paper net"][0]
    for v, extra in r["extra_gap"].items():
        both = not (r["runs"][v][0]["failed"] or base["failed"])
        assert extra == ([pytest.approx(r["runs"][v][0]["gap"] - base["gap"])] if both else [])
    assert r["convergence_yardstick"] == "mid-budget"
    for conv in r["dropout_convergence"]:
        assert conv["ratio"] == pytest.approx(conv["steps_a"] / conv["steps_b"]) and conv["steps_a"] >= 1
    k = r["kernels"][0]
    assert 0 < k["trained"]["low_frequency_share"] < 1 and k["init"]["random_chroma"] == pytest.approx(2 / 3)
    assert k["trained"]["low_frequency_share"] != k["init"]["low_frequency_share"]  # it trained
    assert 0 <= k["trained"]["fc7_neighbour_agreement"] <= 1 and 0 <= k["init"]["fc7_neighbour_agreement"] <= 1


def test_unknown_store_is_a_clear_error(tmp_path, capsys):
    assert main(["experiment", "figure1", "--data", str(tmp_path / "none"), "--size", "tiny"]) == 2
    assert "no store" in capsys.readouterr().err


def test_every_ablation_arm_is_paired_with_the_baseline(tiny_store, tmp_path):
    """Each arm of a seed starts from the baseline's weights in every layer whose shape it shares,
    and its first step sees the same input (images, crops, reflections, colour noise) and draws
    its dropout masks from the same RNG state (same state and shape: the same masks)."""
    import torch
    from alexnet.experiments import ablations
    from alexnet.experiments.common import Context, paired_trainer

    ctx = Context(name="ablations", data=tiny_store, out=tmp_path, work=tmp_path, size="tiny", progress=False)

    def first_step(variant):
        trainer = paired_trainer(ablations.config(ctx, variant, seed=3))
        weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        seen = {}
        model = trainer.model
        model.register_forward_pre_hook(lambda m, a: [seen.setdefault("input", a[0].detach().clone()), None][1])
        drop = model.classifier.drop6
        drop.register_forward_pre_hook(lambda m, a: [seen.setdefault("rng", (torch.get_rng_state(), a[0].shape)), None][1])
        images, labels = next(iter(trainer.parts.loader.batches(0)))
        trainer.train_step(images, labels)
        return weights, seen, labels

    base, base_seen, base_labels = first_step("paper net")
    shared_somewhere = 0
    for variant in ablations.VARIANTS:
        weights, seen, labels = first_step(variant)
        assert torch.equal(labels, base_labels), variant  # the same images in the same order
        shared = [k for k, v in weights.items() if k in base and v.shape == base[k].shape]
        assert shared and all(torch.equal(weights[k], base[k]) for k in shared), variant
        shared_somewhere += len(shared) < len(base) or len(weights) > len(base)  # layers removed, resized or added
        if variant != "no PCA noise":  # its input differs by the colour noise alone: the crops are the same
            assert torch.equal(seen["input"], base_seen["input"]), variant
        if variant != "no dropout":
            assert torch.equal(seen["rng"][0], base_seen["rng"][0]) and seen["rng"][1] == base_seen["rng"][1], variant
    assert shared_somewhere == 4  # no conv3, no conv4, one column, sixth conv: other layers, still paired
    # without the paired init, removing conv3 shifts the draws of the layers after it (the defect it mends)
    from alexnet.experiments.common import trainer_on
    plain = trainer_on(ablations.config(ctx, "no conv3", seed=3)).model.state_dict()
    assert not torch.equal(plain["classifier.fc8.weight"], base["classifier.fc8.weight"])


def test_paper_recipe_resumes_per_epoch_as_if_never_stopped(tiny_store, tmp_path, monkeypatch):
    from alexnet.experiments import common
    from alexnet.train.loop import Trainer
    whole = run("paper-recipe", tiny_store, tmp_path / "whole")
    assert set(whole["arms"]) == {"paper", "bias 0.1", "He init"} and whole["chance"] == pytest.approx(0.9)
    for runs in whole["arms"].values():
        x = runs[0]
        assert x["epochs"] == 2 and len(x["val_top1_error"]) == 2 and x["best_error"] == min(x["val_top1_error"])
        assert x["left_chance"] is None or x["val_top1_error"][x["left_chance"] - 1] <= 0.85
    # stopped by --hours after the first arm's first epoch: nothing written, that epoch kept
    calls = []
    real_check = common.Context.check_budget

    def spent(self):
        calls.append(1)
        if len(calls) > 1:
            raise common.BudgetSpent("spent")
    monkeypatch.setattr(common.Context, "check_budget", spent)
    out, work = tmp_path / "cut" / "results" / "paper-recipe", tmp_path / "cut" / "work"
    args = ["experiment", "paper-recipe", "--data", str(tiny_store), "--size", "tiny", "--out", str(out),
            "--work", str(work), "--quiet"]
    assert main(args) == 0 and not (out / "result.json").exists()
    assert len(json.loads((work / "paper-recipe" / "tiny" / "paper-s0.json").read_text())["epochs"]) == 1
    monkeypatch.setattr(common.Context, "check_budget", real_check)
    steps = []
    real = Trainer.run_steps
    monkeypatch.setattr(Trainer, "run_steps", lambda self, n: steps.append(n) or real(self, n))
    resumed = run("paper-recipe", tiny_store, tmp_path / "cut")
    assert len(steps) == 5  # the paper arm's second epoch, two each for the others
    for arm, runs in whole["arms"].items():  # the resumed run is the uninterrupted one, epoch by epoch
        assert resumed["arms"][arm][0]["val_top1_error"] == runs[0]["val_top1_error"], arm
    steps.clear()
    run("paper-recipe", tiny_store, tmp_path / "cut")
    assert steps == []  # everything cached


def test_convergence_yardstick_is_inside_both_runs():
    """§4.2's steps to converge: the loss both runs reach by mid-budget, not the slower run's last
    loss (which would make its steps the budget). Straight-line losses, worked by hand."""
    from alexnet.experiments.overfitting import steps_to_common_loss
    slow = list(np.linspace(2.3, 1.0, 100))  # with dropout
    fast = list(np.linspace(2.3, 0.5, 100))  # without
    c = steps_to_common_loss(slow, fast, window=1)
    assert c["loss"] == pytest.approx(slow[49])  # the slow run's level at step 50 of 100
    assert c["steps_a"] == 50 and c["steps_b"] == 37  # fast: 2.3 - 1.8 i / 99 <= slow[49] first at i = 36
    assert c["ratio"] == pytest.approx(50 / 37)
