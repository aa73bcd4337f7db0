"""data.holdout: the per-epoch validation (schedule, health, best.pt) runs on images held out of the
training split and never trained on, so the reported validation split chooses nothing (§6: the
paper tuned on its validation set and reported test)."""
import hashlib
import json

import numpy as np
import pytest
import torch

from alexnet.checkpoint import load_checkpoint
from alexnet.config import Config, build_config, from_dict, to_dict
from alexnet.data.store import open_store
from alexnet.data.subset import SubsetReader, holdout_indices
from alexnet.evaluate import PredictOptions, load_model, predict, topk_errors
from alexnet.train import train
from alexnet.train.parts import build_parts

from conftest import tiny_overrides


def test_holdout_is_class_balanced_disjoint_and_fixed_by_its_seed():
    labels = np.repeat(np.arange(4), [100, 40, 9, 2])
    kept, held = holdout_indices(labels, 0.1, seed=0)
    assert np.intersect1d(kept, held).size == 0 and np.union1d(kept, held).tolist() == list(range(len(labels)))
    assert np.bincount(labels[held]).tolist() == [10, 4, 1, 1]  # 10% of each class, at least one, never a whole class
    again, other = holdout_indices(labels, 0.1, seed=0)[1], holdout_indices(labels, 0.1, seed=1)[1]
    assert again.tolist() == held.tolist() and other.tolist() != held.tolist()


def test_default_holds_out_and_old_configs_validated_on_val():
    assert Config().data.holdout == 0.02
    saved = to_dict(Config())
    del saved["data"]["holdout"]  # a run saved before data.holdout existed validated on data.val_split
    assert from_dict(saved).data.holdout == 0.0
    with pytest.raises(Exception, match="data.holdout"):
        build_config(None, ["data.holdout=0.7"])


def _pixels(reader, indices) -> set[str]:
    images = reader.read(np.asarray(indices))
    return {hashlib.sha1(im.numpy().tobytes()).hexdigest() for im in images}


def test_training_batches_never_hold_a_held_out_image(tiny_store, tmp_path):
    cfg = build_config("quick", tiny_overrides(tiny_store, tmp_path / "run", "data.holdout=0.25"))
    parts = build_parts(cfg, torch.device("cpu"))
    assert isinstance(parts.val_reader, SubsetReader) and parts.val_name == "holdout"
    assert len(parts.val_reader) == 30  # 3 of the 12 training images of each of the 10 classes
    trained = set()
    for images, _ in parts.loader.batches(0):  # a whole epoch, as the loop reads it
        trained |= {hashlib.sha1(im.numpy().tobytes()).hexdigest() for im in images}
    held = _pixels(parts.val_reader, range(len(parts.val_reader)))
    assert len(trained) == 80 and len(held) == 30  # 90 left: 5 whole batches of 16 (drop_last) per epoch
    assert not trained & held
    val = open_store(tiny_store).split("val")
    assert not held & _pixels(val, range(len(val)))  # the holdout comes from the training split


def test_best_pt_is_chosen_on_the_holdout(tiny_store, tmp_path):
    run = tmp_path / "run"
    cfg = build_config("quick", tiny_overrides(tiny_store, run, "data.holdout=0.25", "schedule.epochs=3",
                                               "train.precision=fp32", "train.channels_last=false"))
    summary = train(cfg)
    assert summary["val_split"] == "holdout"
    val = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"val"' in l]
    assert [v["split"] for v in val] == ["holdout"] * 3
    best = min(v["top1_error"] for v in val)
    assert load_checkpoint(run / "best.pt")["progress"]["best_error"] == summary["best_val_top1_error"] == best
    # independently: best.pt's error on the held-out training images is that number
    model, saved, _ = load_model(run / "best.pt", torch.device("cpu"))
    store = open_store(tiny_store)
    train_split = store.split("train")
    held = SubsetReader(train_split, holdout_indices(np.asarray(train_split.labels), 0.25)[1])
    probs = predict([model], held, store.mean, PredictOptions(saved.data.crop, "center", 64))
    assert topk_errors(probs, torch.as_tensor(held.labels))["top1_error"] == pytest.approx(best)


def test_too_few_images_for_a_batch_names_what_the_holdout_took(tiny_store, tmp_path):
    from alexnet.errors import ConfigError
    sets = tiny_overrides(tiny_store, tmp_path / "x", "optim.batch_size=115")
    held = ["data.holdout=0.02"]  # one image of each of the 10 classes: 110 of the 120 train
    with pytest.raises(ConfigError) as e:
        build_parts(build_config(None, sets + held), torch.device("cpu"))
    assert str(e.value) == ("split 'train' has 120 images and data.holdout=0.02 held out 10 for validation, leaving "
                            "110, fewer than one batch of optim.batch_size=115: set optim.batch_size=110 or less, or "
                            "data.holdout=0 (validate on data.val_split, all 120 train)")
    build_parts(build_config(None, sets), torch.device("cpu"))  # data.holdout=0: 120 images, one batch
    with pytest.raises(ConfigError, match="has 120 images, fewer than one batch of optim.batch_size=121: set "
                                          "optim.batch_size=120 or less$"):
        build_parts(build_config(None, tiny_overrides(tiny_store, tmp_path / "x", "optim.batch_size=121")),
                    torch.device("cpu"))
