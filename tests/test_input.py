"""Issue 11: bad input, tried as a hostile user would. Every case is one line on stderr, exit code
2 (or works as a user expects), and nothing on disk is lost or half-written. The two sweeps at the
end discover the config fields (from the Config dataclasses) and the commands and arguments (from
the argparse parser), so that fields and commands added later are swept too."""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import shutil
import tarfile
import warnings
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

import numpy as np
import pytest
import torch

from alexnet.checkpoint import load_checkpoint, save_checkpoint
from alexnet.cli import build_parser, main
from alexnet.cli.args import Number
from alexnet.config import RANGES, Config, ModelConfig
from alexnet.data.loader import epoch_order
from alexnet.data.prepare import PrepareError, prepare, statistics
from alexnet.data.store import open_store
from alexnet.errors import InputWarning
from alexnet.nets.sizes import feature_side, pooled_side, sizing_net, smallest_input

from conftest import DATA, IMAGENETTE

# ---- helpers --------------------------------------------------------------------------------


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr). Argument errors exit via SystemExit."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(capsys, argv: list[str], *names: str) -> str:
    """The command fails with exit code 2 and one line on stderr, no traceback, naming one of `names`."""
    rc, _, err = run_cli(capsys, argv)
    err = err.strip()
    assert rc == 2, f"{argv}: exit code {rc}, stderr {err!r}"
    assert "\n" not in err and "Traceback" not in err, f"{argv}: {err}"
    assert err.startswith("alexnet") and ": error: " in err, err
    assert not names or any(n in err for n in names), f"{argv}: {err!r} names none of {names}"
    return err


def snapshot(*roots: Path) -> dict[str, object]:
    """Every file under roots with its size and modification time, every folder by name."""
    found: dict[str, object] = {}
    for root in roots:
        for p in [root, *root.rglob("*")] if root.exists() else []:
            found[str(p)] = "dir" if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
    return found


SMALL = ["model.num_classes=3", "model.width=0.125", "data.size=72", "data.crop=64", "optim.batch_size=8",
         "eval.batch_size=64", "train.progress=false", "train.log_every_steps=1", "model.init=kaiming",
         "model.input_scale=0.01724", "schedule.epochs=1",
         "data.holdout=0"]  # a one-epoch run of a small paper net on a 3-class store, every training image trains


def overrides(store: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.store={store}", f"train.out={out}", *SMALL, *extra]


# ---- real images, laid out in several ways ----------------------------------------------------


@pytest.fixture(scope="module")
def photos() -> dict[str, list[bytes]]:
    """12 real JPEGs of each of the first 3 classes of the Imagenette archive (read from its start)."""
    got: dict[str, list[bytes]] = {}
    with tarfile.open(IMAGENETTE) as tf:
        for m in tf:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) != 4:
                continue
            if parts[2] not in got and len(got) == 3:
                break
            if len(got.setdefault(parts[2], [])) < 12:
                got[parts[2]].append(tf.extractfile(m).read())
    assert len(got) == 3 and all(len(v) == 12 for v in got.values()), f"{IMAGENETTE} ({DATA}) is not as expected"
    return got


def class_tree(root: Path, photos: dict[str, list[bytes]]) -> Path:
    """root/train/<wnid>/*.JPEG (8 per class) and root/val/<wnid>/*.JPEG (4 per class)."""
    for wnid, images in photos.items():
        for i, data in enumerate(images):
            path = root / ("train" if i < 8 else "val") / wnid / f"{wnid}_{i}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return root


def tiny_imagenet_tree(root: Path, photos: dict[str, list[bytes]]) -> Path:
    """Tiny ImageNet's layout: top/train/<wnid>/images/*.JPEG with <wnid>_boxes.txt,
    top/val/images/*.JPEG with val_annotations.txt (file, wnid, box), top/test/images/*.JPEG (no
    labels), top/wnids.txt and top/words.txt."""
    top = root / "tiny-imagenet"
    (top / "val" / "images").mkdir(parents=True)
    (top / "test" / "images").mkdir(parents=True)
    (top / "wnids.txt").write_text("\n".join(photos) + "\n")
    (top / "words.txt").write_text("".join(f"{w}\tsomething\n" for w in photos))
    rows = []
    for wnid, images in photos.items():
        (top / "train" / wnid / "images").mkdir(parents=True)
        (top / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t10\t10\n")
        for i, data in enumerate(images[:8]):
            (top / "train" / wnid / "images" / f"{wnid}_{i}.JPEG").write_bytes(data)
        for i, data in enumerate(images[8:]):
            name = f"val_{len(rows)}.JPEG"
            (top / "val" / "images" / name).write_bytes(data)
            (top / "test" / "images" / f"test_{len(rows)}.JPEG").write_bytes(data)
            rows.append(f"{name}\t{wnid}\t0\t0\t10\t10\n")
    (top / "val" / "val_annotations.txt").write_text("".join(rows))
    return root


@pytest.fixture(scope="module")
def src3(photos, tmp_path_factory) -> Path:
    return class_tree(tmp_path_factory.mktemp("src3"), photos)


@pytest.fixture(scope="module")
def s3(src3, tmp_path_factory) -> Path:
    """3 classes, 24 train / 12 val images, raw at 72px."""
    out = tmp_path_factory.mktemp("stores") / "s3"
    prepare(src3, out, size=72, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def s3j(src3, tmp_path_factory) -> Path:
    """The same images as s3, stored as JPEG."""
    out = tmp_path_factory.mktemp("stores") / "s3j"
    prepare(src3, out, size=72, fmt="jpeg", workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def run3(s3, tmp_path_factory) -> Path:
    """A finished one-epoch run on s3 (best.pt, last.pt, config.json)."""
    out = tmp_path_factory.mktemp("runs") / "run3"
    assert main(["train", "--preset", "quick", "--set", *overrides(s3, out, "train.max_steps_per_epoch=2")]) == 0
    return out


# ---- 1. prepare on a common layout; empty splits, classes and statistics ---------------------


def test_prepare_reads_the_tiny_imagenet_layout_or_says_what_to_give(photos, tmp_path, capsys):
    src, out = tiny_imagenet_tree(tmp_path / "src", photos), tmp_path / "store"
    argv = ["prepare", str(src), str(out), "--size", "16", "--quiet", "--workers", "1"]
    err = one_line_error(capsys, argv + ["--splits", "train", "val", "test"], "test/")  # test/ has no labels
    assert "--labels test=FILE" in err and "--splits train val" in err
    assert not out.exists()
    ann = src / "tiny-imagenet" / "val" / "val_annotations.txt"
    # issue 27 9a: the labels file beside val/images/ is used, and said; test/ (no labels) is left out, and said
    rc, stdout, _ = run_cli(capsys, argv)
    assert rc == 0
    notes = [line for line in stdout.splitlines() if line.startswith("  note: ")]
    assert notes == ["  note: labels of val/ from val/val_annotations.txt, found beside its images "
                     "(--labels val=FILE to use another)",
                     "  note: test/ holds only images/ and no labels file: left out (give --labels test=FILE to store it)"]
    given = tmp_path / "given"  # --labels still overrides: the same file given by hand labels the same way
    assert run_cli(capsys, ["prepare", str(src), str(given), "--size", "16", "--quiet", "--workers", "1",
                            "--splits", "train", "val", "--labels", f"val={ann}"])[0] == 0
    assert np.array_equal(open_store(given).split("val").labels, open_store(out).split("val").labels)
    store = open_store(out)
    assert store.classes == sorted(photos) and store.splits == ["train", "val"]
    assert (len(store.split("train")), len(store.split("val"))) == (24, 12)
    # every class's images are its own: files listed in store order, labels from the folders / annotations
    wnid_of = {row.split("\t")[0]: row.split("\t")[1] for row in ann.read_text().splitlines()}
    for split in ("train", "val"):
        names = (out / f"{split}.files.txt").read_text().splitlines()
        labels = [store.classes[i] for i in store.split(split).labels]
        if split == "train":
            assert all(n.split("/")[1] == c and "/images/" in n for n, c in zip(names, labels))
        else:
            assert labels == [wnid_of[n.rsplit("/", 1)[1]] for n in names]
    train = store.split("train").read(np.arange(24)).double()  # the §2 mean is over real images, not zeros
    assert np.allclose(store.mean.numpy(), train.mean(0).numpy(), atol=1e-3) and store.pca_eigvals[0] > 0
    # skipped: 3 boxes files, wnids.txt, words.txt, the annotations file; the line says so and why
    line, *rest = stdout.strip().splitlines()  # the summary, the notes, then each skipped file by name
    skipped = [x for x in rest if not x.startswith("  note: ")]
    assert line.startswith("read 42, stored 36, skipped 6 -> ")
    assert len(skipped) == 6 and all(s.startswith("  skipped ") for s in skipped)
    assert store.class_names == ["something"] * len(photos)  # from Tiny ImageNet's words.txt
    assert "main reasons: 3 not an image Pillow can read, 2 not in a <split>/<class>/ folder" in line


def test_a_split_or_class_with_no_images_is_an_error(photos, tmp_path, capsys):
    src = class_tree(tmp_path / "a", photos)
    (src / "train" / "n00000000").mkdir()  # an empty class folder
    err = one_line_error(capsys, ["prepare", str(src), str(tmp_path / "out-a"), "--size", "16"], "n00000000")
    assert "no images in split train" in err and not (tmp_path / "out-a").exists()
    src = class_tree(tmp_path / "b", photos)
    (src / "test" / "n01440764").mkdir(parents=True)  # a split whose only class folder is empty
    err = one_line_error(capsys, ["prepare", str(src), str(tmp_path / "out-b"), "--size", "16"], "split test")
    assert "has no images to store" in err and not (tmp_path / "out-b").exists()


def test_statistics_over_zero_images_is_an_error(photos, tmp_path, capsys):
    src = class_tree(tmp_path / "src", photos)
    first = sorted(photos)[0]
    for f in (src / "train" / first).iterdir():  # one class's training images all unreadable
        f.write_bytes(b"not a jpeg at all")
    out = tmp_path / "out"
    # issue 31: one class folder of hostile files does not fail the whole run: the rest is stored, the
    # summary line names the class, skipped.tsv each file
    rc, stdout, _ = run_cli(capsys, ["prepare", str(src), str(out), "--size", "16", "--quiet", "--workers", "1"])
    line = stdout.splitlines()[0]
    assert rc == 0 and line.startswith("read 36, stored 28, skipped 8 ") and f"no image of class {first} could" in line
    store = open_store(out)
    assert np.bincount(store.split("train").labels, minlength=3).tolist() == [0, 8, 8]
    assert len(store.split("val")) == 12
    for f in (src / "train").rglob("*.JPEG"):
        f.write_bytes(b"not a jpeg at all")
    err = one_line_error(capsys, ["prepare", str(src), str(tmp_path / "out2"), "--size", "16", "--quiet", "--workers", "1"], "split train")
    assert "none of the 24 files of split train could be stored (not an image Pillow can read)" in err
    with pytest.raises(PrepareError, match="at least one"):
        statistics(np.zeros((3, 4, 4), np.int64), np.zeros((3, 3), np.int64), 0)


# ---- 2. resume overrides ----------------------------------------------------------------------


def test_resume_with_a_non_finite_override_or_new_run_flags_changes_nothing(run3, capsys):
    before = snapshot(run3)
    for item in ("optim.lr=inf", "optim.lr=nan", "schedule.factor=-inf", "optim.lr=-1"):
        one_line_error(capsys, ["train", "--resume", str(run3), "--set", item], item.split("=")[0])
    for flag in ("--preset", "--data", "--out"):
        assert "cannot be used with --resume" in one_line_error(capsys, ["train", "--resume", str(run3), flag, "x"], flag)
    assert snapshot(run3) == before


# ---- 3. eval compares class names ---------------------------------------------------------------


def test_eval_compares_class_names_remaps_an_order_and_refuses_other_names(run3, s3, tmp_path, capsys):
    rc, out, _ = run_cli(capsys, ["eval", str(run3 / "best.pt"), "--data", str(s3), "--json"])
    assert rc == 0
    base = json.loads(out)
    state = load_checkpoint(run3 / "best.pt")
    perm = [2, 0, 1]  # the same net with its outputs in another order, and its class list to match
    weights = dict(state["model"])
    for key in ("classifier.fc8.weight", "classifier.fc8.bias"):
        weights[key] = weights[key][perm]
    save_checkpoint({**state, "model": weights, "classes": [state["classes"][i] for i in perm]}, tmp_path / "perm.pt")
    rc, out, _ = run_cli(capsys, ["eval", str(tmp_path / "perm.pt"), "--data", str(s3), "--json"])
    assert rc == 0
    permuted = json.loads(out)
    assert (permuted["top1_error"], permuted["top5_error"]) == (base["top1_error"], base["top5_error"])
    # a net of other classes, with the same count: refused, naming them
    other = ["apple", state["classes"][2], "zebra"]
    save_checkpoint({**state, "classes": other}, tmp_path / "other.pt")
    err = one_line_error(capsys, ["eval", str(tmp_path / "other.pt"), "--data", str(s3)], "apple")
    assert state["classes"][0] in err and "zebra" in err


# ---- 4. crops and the net -----------------------------------------------------------------------


def test_crop_too_small_for_the_net_is_one_line_and_writes_nothing(s3, tmp_path, capsys):
    err = one_line_error(capsys, ["summary", "--crop", "56"], "--crop 56")
    assert "smallest input is 64px" in err
    err = one_line_error(capsys, ["summary", "--set", "model.arch=cifar4", "data.crop=7", "data.size=32"], "data.crop=7")
    assert "smallest input is 8px" in err
    out = tmp_path / "run"
    err = one_line_error(capsys, ["train", "--set", *overrides(s3, out, "data.crop=56")], "data.crop=56")
    assert "smallest input is 64px" in err and not out.exists()


def test_pool5_smaller_than_the_papers_6x6_warns(capsys):
    with pytest.warns(InputWarning, match=r"--crop 64: the last pooling layer is 1x1, smaller than the 6x6.*>= 224"):
        assert main(["summary", "--crop", "64"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        assert main(["summary", "--crop", "224"]) == 0  # the paper's crop: no warning
    capsys.readouterr()


@pytest.mark.parametrize("cfg", [ModelConfig(), ModelConfig(arch="owt"), ModelConfig(arch="cifar4"),
                                 ModelConfig(pool_kernel=2), ModelConfig(extra_conv=True, remove_conv=3)],
                         ids=["paper", "owt", "cifar4", "pool2", "conv6-no-conv3"])
def test_smallest_input_is_what_the_net_takes(cfg):
    net = sizing_net(cfg).eval()
    low, full = smallest_input(net), smallest_input(net, pooled_side(net))
    with torch.no_grad():
        for side in sorted({1, low - 1, low, low + 1, full - 1, full, 224} - {0}):
            try:
                real = net.features(torch.zeros(1, 3, side, side)).shape[-1]
            except RuntimeError:  # "Output size is too small" and its kin
                real = 0
            assert feature_side(net, side) == real, side
        assert net.features(torch.zeros(1, 3, full, full)).shape[-1] == pooled_side(net)


def test_crop_larger_than_the_store_names_a_crop_that_fits(s3, photos, tmp_path, capsys):
    sets = overrides(s3, tmp_path / "run", "data.crop=100", "data.size=100")
    err = one_line_error(capsys, ["train", "--set", *sets], "data.crop=100")
    assert "larger than the store's 72px images" in err and "use data.crop=64" in err
    small = tmp_path / "s32"
    prepare(class_tree(tmp_path / "src", photos), small, size=32, workers=1, progress=False)
    err = one_line_error(capsys, ["train", "--set", *overrides(small, tmp_path / "run")], "data.crop=64")
    assert "at least 64px: prepare a store with --size 64 or more" in err
    assert not (tmp_path / "run").exists()


def test_data_size_contradicting_the_store_is_refused(s3, tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--set", *overrides(s3, tmp_path / "run", "data.size=256")], "data.size=256")
    assert "holds 72px images: set data.size=72" in err and not (tmp_path / "run").exists()


def test_a_preset_takes_what_the_store_knows_and_the_run_says_what_it_took(s3, tmp_path, capsys, monkeypatch):
    """`--preset quick --data STORE` on a 3-class store of 72px images: the preset's 144px side and
    128px crop yield to the store (the crop keeps the preset's 128-of-144 margin: 64), the class
    count is the store's; the run prints and records what it took, and says how it ran (run.json).
    The preset's own shape prints no pool5 warning; a crop the user sets that gives one does."""
    import subprocess
    run = tmp_path / "run"
    argv = ["train", "--preset", "quick", "--data", str(s3), "--out", str(run), "--epochs", "1", "-b", "8",
            "--set", "model.width=0.125", "train.progress=false", "train.max_steps_per_epoch=2"]
    monkeypatch.setattr("sys.argv", ["alexnet", *argv])  # the process's command line, as the console script has it
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"from the store {s3}: data.crop=64 data.size=72 model.num_classes=3" in err
    saved = json.loads((run / "config.json").read_text())
    assert (saved["data"]["size"], saved["data"]["crop"], saved["model"]["num_classes"]) == (72, 64, 3)
    (start,) = json.loads((run / "run.json").read_text())["starts"]
    assert start["from_store"] == {"data.crop": 64, "data.size": 72, "model.num_classes": 3}
    assert start["command"] == "alexnet " + " ".join(argv) and start["resumed"] is False
    assert (start["world_size"], start["torch_device"], start["precision"], start["torch"]) == (1, "cpu", "bf16", torch.__version__)  # the preset's
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True).stdout
    assert start["commit"].split("+")[0] == head.strip()
    logged = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"start"' in l]
    assert [e["from_store"] for e in logged] == [start["from_store"]]
    # what the user sets must agree with the store; a crop the user sets is theirs, warnings included
    err = one_line_error(capsys, [*argv[:6], str(tmp_path / "r2"), *argv[7:], "model.num_classes=10"], "model.num_classes=10")
    assert "has 3 classes: set model.num_classes=3, or leave it out" in err
    with pytest.warns(InputWarning, match="data.crop=64: the last pooling layer is 1x1"):
        assert main([*argv[:6], str(tmp_path / "r3"), *argv[7:], "data.crop=64"]) == 0
    capsys.readouterr()


# ---- 5. tracebacks that are now one line --------------------------------------------------------


def test_prepare_into_an_unwritable_folder_is_one_line(src3, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["prepare", str(src3), str(blocker / "out"), "--size", "16", "--quiet", "--workers", "1"]
    assert "cannot build the store" in one_line_error(capsys, argv, str(blocker))

    def refused(self, *args, **kwargs):  # a folder without write permission (root may write anywhere)
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "mkdir", refused)
    out = tmp_path / "locked" / "out"
    err = one_line_error(capsys, ["prepare", str(src3), str(out), "--size", "16", "--quiet", "--workers", "1"], str(out))
    assert "Permission denied" in err and not out.exists()


def test_negative_or_huge_seed_is_refused(s3, tmp_path, capsys):
    for value in ("-1", str(2**32)):
        assert "train.seed must be in" in one_line_error(
            capsys, ["train", "--set", *overrides(s3, tmp_path / "run", f"train.seed={value}")], "train.seed")
    assert not (tmp_path / "run").exists()


def test_eval_batch_size_zero_or_negative_is_one_line(run3, s3, capsys):
    for value in ("0", "-5"):
        err = one_line_error(capsys, ["eval", str(run3), "--data", str(s3), "--batch-size", value], "--batch-size")
        assert "must be an integer >= 1" in err


def _damage(store: Path, index: int) -> bytes:
    """Overwrite image `index` of a JPEG store's train.jpg.bin with garbage of the same length."""
    offsets = np.load(store / "train.offsets.npy")
    start, end = int(offsets[index]), int(offsets[index + 1])
    with open(store / "train.jpg.bin", "r+b") as f:
        f.seek(start)
        f.write(np.random.default_rng(index).integers(0, 256, end - start, dtype=np.uint8).tobytes())
    return (store / "train.files.txt").read_text().splitlines()[index].encode()


@pytest.mark.parametrize("decode", ["cpu", "device"])  # device: torchvision's batched decoder (nvJPEG on CUDA)
def test_damaged_jpeg_store_mid_epoch_names_the_image_and_keeps_the_steps(s3j, tmp_path, capsys, decode):
    store = tmp_path / "store"
    shutil.copytree(s3j, store)
    intact = (store / "train.jpg.bin").read_bytes()
    index = int(epoch_order(24, 0, seed=0)[2 * 8])  # the first image of the third batch of epoch 0
    source = _damage(store, index).decode()
    out = tmp_path / "run"
    err = one_line_error(capsys, ["train", "--set", *overrides(store, out, f"data.decode={decode}")], str(store))
    assert f"image {index} of train.jpg.bin (from {source})" in err and "run the same `alexnet prepare` again" in err
    assert f"the 2 steps done are saved in {out / 'last.pt'}" in err and f"--resume {out}" in err
    assert load_checkpoint(out / "last.pt")["progress"]["step"] == 2
    (store / "train.jpg.bin").write_bytes(intact)  # repaired, as a fresh prepare would write it
    assert main(["train", "--resume", str(out)]) == 0
    assert load_checkpoint(out / "last.pt")["progress"]["step"] == 3


# ---- 6. non-finite floats ----------------------------------------------------------------------


def test_non_finite_floats_are_refused_everywhere(s3, tmp_path, capsys):
    for item in ("optim.lr=inf", "optim.lr=nan", "optim.momentum=-inf", "model.init_bias=nan", "optim.lr=1e999"):
        err = one_line_error(capsys, ["train", "--set", *overrides(s3, tmp_path / "run", item)], item.split("=")[0])
        assert "finite" in err
    preset = tmp_path / "inf.toml"
    preset.write_text("[optim]\nlr = inf\n")
    assert "optim.lr must be a finite number" in one_line_error(capsys, ["config", "--preset", str(preset)], "optim.lr")
    assert not (tmp_path / "run").exists()


def test_divergence_before_any_checkpoint_says_none_was_kept(s3, tmp_path, capsys):
    out = tmp_path / "run"
    err = one_line_error(capsys, ["train", "--set", *overrides(s3, out, "optim.lr=1e6")], "non-finite")
    assert "no checkpoint had been written yet" in err and "is kept" not in err
    assert not out.exists()  # nothing to resume, nothing left to block the same --out


# ---- 7. confusing messages -----------------------------------------------------------------------


def test_pytorch_style_flags_get_a_hint(s3, capsys):
    err = one_line_error(capsys, ["train", "--data", str(s3), "--learning-rate", "0.1"], "--learning-rate")
    assert "use --set optim.lr=0.1" in err
    err = one_line_error(capsys, ["train", "--lrn-alpha=0.001"], "--lrn-alpha")
    assert "use --set model.lrn_alpha=0.001" in err
    err = one_line_error(capsys, ["eval", "x.pt", "--data", str(s3), "--batchsize", "4"], "--batchsize")
    assert "did you mean --batch-size?" in err


def test_eval_device_without_cuda_names_the_flag(run3, s3, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    err = one_line_error(capsys, ["eval", str(run3), "--data", str(s3), "--device", "cuda"], "--device")
    assert "train.device" not in err


def test_prepare_bad_arguments_name_the_argument(src3, tmp_path, capsys):
    out = tmp_path / "out"
    for flag, value in (("--size", "0"), ("--quality", "500"), ("--limit-per-class", "0"), ("--workers", "-1")):
        one_line_error(capsys, ["prepare", str(src3), str(out), flag, value], f"argument {flag}")
    assert not out.exists()


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_pickle_refusal_is_whole_and_true(s3, tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "model": _RunsCode()}, path)
    err = one_line_error(capsys, ["eval", str(path), "--data", str(s3)], str(path))
    assert f"{os.system.__module__}.system" in err and "could run code" in err
    assert "plain state dicts are accepted" not in err and err.endswith("such as its own checkpoints")


def test_eval_of_a_run_folder_takes_its_best_pt(run3, s3, tmp_path, capsys):
    rc, out, _ = run_cli(capsys, ["eval", str(run3), "--data", str(s3), "--json"])
    assert rc == 0 and json.loads(out)["checkpoints"] == [str(run3 / "best.pt")]
    (tmp_path / "empty").mkdir()
    assert "without best.pt" in one_line_error(capsys, ["eval", str(tmp_path / "empty"), "--data", str(s3)], "empty")


def test_train_failing_on_its_first_batch_leaves_the_out_folder_as_it_was(s3j, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(s3j, store)
    intact = (store / "train.jpg.bin").read_bytes()
    _damage(store, int(epoch_order(24, 0, seed=0)[0]))  # in the very first batch
    out = tmp_path / "run"
    assert "no training step was done yet" in one_line_error(capsys, ["train", "--set", *overrides(store, out)], str(store))
    assert not out.exists()
    mine = tmp_path / "mine"  # a folder the user made: kept, and left as it was
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    one_line_error(capsys, ["train", "--set", *overrides(store, mine)], str(store))
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    (store / "train.jpg.bin").write_bytes(intact)
    assert main(["train", "--set", *overrides(store, out, "train.max_steps_per_epoch=1")]) == 0  # the same --out


def test_top5_with_five_or_fewer_classes_says_it_is_trivial(run3, s3, capsys):
    rc, out, _ = run_cli(capsys, ["eval", str(run3), "--data", str(s3)])
    assert rc == 0 and "top-5 error 0.00% (top-5 error is 0 by construction: the store has only 3 classes)" in out
    rc, out, _ = run_cli(capsys, ["eval", str(run3), "--data", str(s3), "--json"])
    assert json.loads(out)["note"].startswith("top-5 error is 0 by construction")


# ---- the sweeps --------------------------------------------------------------------------------


def config_fields() -> list[tuple[str, object]]:
    """(section.name, type) of every field of the config tree, discovered from the dataclasses."""
    cfg = Config()
    return [(f"{s.name}.{name}", typ) for s in dataclasses.fields(cfg)
            for name, typ in get_type_hints(type(getattr(cfg, s.name))).items()]


def outside(interval: str, integer: bool) -> list[str]:
    """Values just outside an interval such as "[0, 1)"."""
    low, high = (float(x) for x in interval[1:-1].split(","))
    step = 1 if integer else 1e-3
    values = []
    if math.isfinite(low):
        values.append(low - step if interval[0] == "[" else low)
    if math.isfinite(high):
        values.append(high + step if interval[-1] == "]" else high)
    return [str(int(v)) if integer else repr(v) for v in values]


# string fields where "" means something (the default): a bad value of their own kind instead
STR_BAD = {"finetune.source": ["/nonexistent/model.pt"], "finetune.freeze": ["conv9", "fc6..conv1"]}


def bad_values(key: str, typ) -> list[str]:
    if get_origin(typ) is Literal:
        return ["bogus", ""]
    if typ is bool:
        return ["maybe", ""]
    if typ is str:
        return STR_BAD.get(key, [""])
    integer = typ is int
    assert key in RANGES, f"{key} has no range in alexnet.config.RANGES: add one (and its check comes for free)"
    wrong_type = ["1.5", "ten", "inf"] if integer else ["ten", "inf", "-inf", "nan"]
    return wrong_type + outside(RANGES[key], integer)


def wrong_toml(typ) -> str:
    """A TOML value of the wrong type for a field of type `typ`."""
    return "1" if typ in (bool, str) else '"bogus"' if get_origin(typ) is Literal else "true"


def test_sweep_every_config_field_with_bad_values_through_the_cli(s3, tmp_path, capsys, monkeypatch):
    """Every field, every bad value: exit 2, one line naming the field, no file created or changed."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # relative defaults (runs/...) would land here
    out = tmp_path / "run"
    before = snapshot(tmp_path, s3)
    swept = 0
    for key, typ in config_fields():
        for value in bad_values(key, typ):
            one_line_error(capsys, ["train", "--set", *overrides(s3, out), f"{key}={value}"], key)
            swept += 1
        section, name = key.split(".")
        preset = tmp_path / "bad.toml"
        preset.write_text(f"[{section}]\n{name} = {wrong_toml(typ)}\n")
        one_line_error(capsys, ["config", "--preset", str(preset)], key)
        preset.unlink()
        if typ is float:
            for text in ("inf", "-inf", "nan"):
                preset.write_text(f"[{section}]\n{name} = {text}\n")
                one_line_error(capsys, ["config", "--preset", str(preset)], key)
                preset.unlink()
        assert snapshot(tmp_path, s3) == before, key
    assert swept > 150 and len(config_fields()) == len({k for k, _ in config_fields()})


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command of the CLI (the leaves of the subcommand tree), discovered from the parser."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, path + (name,))
    return found or [(path, parser)]


def bad_arguments(action: argparse.Action) -> list[str]:
    """Bad values for an argument that argparse checks itself: its choices or its typed range."""
    if action.choices:
        return ["bogus"]
    if isinstance(action.type, Number):
        values = ["ten", "inf", "nan"] + (["1.5"] if action.type.kind is int else [])
        if math.isfinite(action.type.low):
            values.append(str(action.type.kind(action.type.low - 1)))
        if math.isfinite(action.type.high):
            values.append(str(action.type.kind(action.type.high + 1)))
        return values
    return []


def baselines(s3: Path, src3: Path, ckpt: Path, tmp: Path) -> dict[tuple[str, ...], list[str]]:
    """A valid, quick invocation of each command; each path or name argument is then made bad in turn."""
    return {
        ("quickstart",): ["--data-dir", str(DATA), "--work", str(tmp / "qs"), "--set", *SMALL],
        ("train",): ["--preset", "quick", "--data", str(s3), "--out", str(tmp / "run"), "--set", *SMALL],
        ("eval",): [str(ckpt), "--data", str(s3), "--device", "cpu"],
        ("prepare",): [str(src3), str(tmp / "out"), "--size", "16", "--quiet", "--workers", "1"],
        ("summary",): ["--set", "model.width=0.125", "data.crop=224"],
        ("config",): [],
        ("bench", "model"): ["--device", "cpu", "--batch-size", "2", "--steps", "1", "--warmup", "0"],
        ("bench", "data"): ["--device", "cpu", "--batches", "1", "--synthetic-images", "10", "--work", str(tmp / "bd"),
                            "--data-dir", str(DATA)],
        ("bench", "curve"): ["--data", str(s3), "--preset", "quick", "--steps", "1", "--device", "cpu",
                             "--set", f"train.out={tmp / 'curve'}", *SMALL],
        ("bench", "train"): ["--data", str(s3), "--preset", "quick", "--epochs", "1", "--out", str(tmp / "bt"),
                             "--device", "cpu", "--synthetic-steps", "1", "--warmup", "0", "--final-eval", "none",
                             "--set", *SMALL],
        ("predict",): [str(ckpt), str(src3)],
        ("export",): [str(ckpt), "--weights", str(tmp / "w.safetensors")],
        ("finetune",): [str(ckpt), "--data", str(s3), "--out", str(tmp / "ft"), "--epochs", "1",
                        "--set", "train.max_steps_per_epoch=1", "train.progress=false"],
        ("experiment",): ["lrn-cifar", "--data", str(s3), "--size", "tiny", "--out", str(tmp / "results"),
                          "--work", str(tmp / "exp"), "--quiet"],
        ("viz", "kernels"): [str(ckpt), "-o", str(tmp / "k.png")],
        ("viz", "predictions"): [str(ckpt), "--data", str(s3), "-n", "2", "-o", str(tmp / "p.png")],
        ("viz", "neighbours"): [str(ckpt), "--data", str(s3), "--queries", "1", "-k", "1", "-o", str(tmp / "n.png")],
        ("viz", "codes"): [str(ckpt), "--data", str(s3), "--bits", "8", "--steps", "1", "-o", str(tmp / "codes")],
        ("report",): [str(ckpt.parent), "-o", str(tmp / "r.html")],
    }


def with_value(base: list[str], action: argparse.Action, value: str, parser: argparse.ArgumentParser) -> list[str]:
    """`base` with the argument of `action` set to `value` (replaced if present, else added)."""
    if not action.option_strings:  # a positional: the one in base at its place among the parser's positionals
        order = [a for a in parser._actions if not a.option_strings].index(action)
        positionals = [i for i, a in enumerate(base) if not a.startswith("-") and (i == 0 or not base[i - 1].startswith("-"))]
        i = positionals[order]
        return base[:i] + [value] + base[i + 1:]
    flag = action.option_strings[-1]
    if flag in base:
        i = base.index(flag)
        return base[:i + 1] + [value] + base[i + 2:]
    return base + [flag, value]


def test_sweep_every_cli_argument_with_bad_values(s3, src3, run3, tmp_path, capsys, monkeypatch):
    """Every argument of every command: exit 2, one line naming the argument (or the bad value), no
    traceback, no file created or changed. Typed and choice arguments are checked by argparse;
    names and paths by the command, run from a valid invocation with that one argument made bad."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad_path = str(blocker / "nothing")  # neither an existing path nor a creatable one, nor a name
    base_of = baselines(s3, src3, run3 / "best.pt", tmp_path)
    before = snapshot(tmp_path, s3, src3, run3)
    untyped, swept = [], 0
    for path, parser in commands(build_parser()):
        base = base_of.get(path)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.nargs == 0 or action.dest == "overrides":
                continue  # flags without values; --set is the config sweep's
            if action.type in (int, float):
                untyped.append(f"alexnet {' '.join(path)} {action.option_strings}")
            named = [*action.option_strings, action.metavar or action.dest]
            for value in bad_arguments(action):
                argv = [*path, action.option_strings[0] if action.option_strings else value]
                argv += [value] if action.option_strings else []
                one_line_error(capsys, argv, *named)
                swept += 1
            if action.type is None and not action.choices:  # a path or a name, checked when the command runs
                argv = [*path, *with_value(base, action, bad_path, parser)] if base else [*path, bad_path]
                one_line_error(capsys, argv, *named, bad_path, "nothing")
                swept += 1
        assert snapshot(tmp_path, s3, src3, run3) == before, path
    assert not untyped, f"numeric arguments without a range (use alexnet.cli.args.Number): {untyped}"
    assert swept > 60


def test_a_flag_and_set_that_disagree_are_refused(s3, tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--data", str(s3), "--set", *overrides(tmp_path / "other", tmp_path / "run")],
                         "data.store")
    assert "given twice" in err and not (tmp_path / "run").exists()
