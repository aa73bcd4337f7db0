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
    for v, extra in r["extra_gap"].items():
        assert extra[0] == pytest.approx(r["runs"][v][0]["gap"] - r["runs"]["paper net"][0]["gap"])
    conv = r["dropout_convergence"][0]
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


def test_paper_recipe(tiny_store, tmp_path, monkeypatch):
    r = run("paper-recipe", tiny_store, tmp_path)
    assert set(r["arms"]) == {"paper", "bias 0.1", "He init"} and r["chance"] == pytest.approx(0.9)
    for runs in r["arms"].values():
        x = runs[0]
        assert x["epochs"] == 2 and len(x["val_top1_error"]) == 2 and x["best_error"] == min(x["val_top1_error"])
        assert x["left_chance"] is None or x["val_top1_error"][x["left_chance"] - 1] <= 0.85
    # resumable per epoch: a rerun trains nothing; a record cut back to one epoch trains one more
    from alexnet.train.loop import Trainer
    steps = []
    real = Trainer.run_steps
    monkeypatch.setattr(Trainer, "run_steps", lambda self, n: steps.append(n) or real(self, n))
    run("paper-recipe", tiny_store, tmp_path)
    assert steps == []
    rec = tmp_path / "work" / "paper-recipe" / "tiny" / "He-init-s0.json"
    data = json.loads(rec.read_text())
    data["epochs"] = data["epochs"][:1]
    rec.write_text(json.dumps(data))
    again = run("paper-recipe", tiny_store, tmp_path)
    assert len(steps) == 1 and again["arms"]["He init"][0]["epochs"] == 2
