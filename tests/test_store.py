"""The store format and reader, on small subsets of the real archives (conftest: $ALEXNET_DATA or ../shared/data)."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from alexnet.data.prepare import prepare
from alexnet.data.store import StoreError, open_store

from conftest import CIFAR, IMAGENETTE, need

K = 5  # images per class per split


def reference(data: bytes, size: int) -> np.ndarray:
    """Independent expectation: torchvision's Resize(size) + CenterCrop(size) on the PIL image."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = TF.center_crop(TF.resize(img, size), size)
    return np.asarray(img).transpose(2, 0, 1)  # (3, S, S) uint8


def source_images(archive: Path, top: str, store) -> dict[str, list[tuple[str, bytes]]]:
    """split -> [(name, bytes)] of the files the store lists, read straight from the archive."""
    with tarfile.open(archive) as tf:
        out = {}
        for split in store.splits:
            names = (store.path / f"{split}.files.txt").read_text().splitlines()
            out[split] = [(n, tf.extractfile(f"{top}/{n}").read()) for n in names]
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    need(IMAGENETTE, CIFAR)
    root = tmp_path_factory.mktemp("stores")
    kw = dict(limit_per_class=K, workers=1, progress=False)
    made = {
        "inet_raw": prepare(IMAGENETTE, root / "inet_raw", size=72, **kw),
        "inet_jpeg": prepare(IMAGENETTE, root / "inet_jpeg", size=72, fmt="jpeg", **kw),  # quality 90, 4:2:0
        "cifar_raw": prepare(CIFAR, root / "cifar_raw", size=40, **kw),  # 32 -> 40: upscaling
    }
    return {k: open_store(s.out) for k, s in made.items()}


@pytest.mark.parametrize("key,archive,top,size", [
    ("inet_raw", IMAGENETTE, "imagenette", 72), ("cifar_raw", CIFAR, "cifar10", 40)])
def test_raw_round_trip_is_pixel_exact(stores, key, archive, top, size):
    store = stores[key]
    assert store.size == size and store.format == "raw" and store.num_classes == 10
    assert store.classes == sorted(store.classes)
    for split, files in source_images(archive, top, store).items():
        reader = store.split(split)
        assert len(reader) == len(files) == 10 * K
        images = reader.read(np.arange(len(reader)))
        assert images.dtype == torch.uint8 and images.shape == (10 * K, 3, size, size)
        for i, (name, data) in enumerate(files):
            assert np.array_equal(images[i].numpy(), reference(data, size)), name
            assert store.classes[reader.labels[i]] == name.split("/")[1]  # label = folder class
        assert reader.labels.dtype == np.int64
        assert np.bincount(reader.labels, minlength=10).tolist() == [K] * 10


def test_jpeg_round_trip_within_tolerance(stores):
    store = stores["inet_jpeg"]
    assert store.format == "jpeg"
    for split, files in source_images(IMAGENETTE, "imagenette", store).items():
        reader = store.split(split)
        images = reader.read(np.arange(len(reader))).numpy().astype(np.float64)
        expected = np.stack([reference(d, 72) for _, d in files]).astype(np.float64)
        # The default format (quality 90, 4:2:0): 3.3 levels at 72px, where a 224px photo shrinks to dense
        # detail; 3.0 at 256px on ImageNet-like photos (docs/guide.md "Store format").
        assert np.abs(images - expected).mean() < 4
        assert np.array_equal(reader.labels, stores["inet_raw"].split(split).labels)


@pytest.mark.parametrize("key", ["inet_raw", "inet_jpeg", "cifar_raw"])
def test_mean_and_pca_match_numpy(stores, key):
    store = stores[key]
    train = store.split("train")
    x = train.read(np.arange(len(train))).numpy().astype(np.float64)  # (N, 3, S, S), what is stored
    assert store.mean.dtype == torch.float32 and store.mean.shape == (3, store.size, store.size)
    np.testing.assert_allclose(store.mean.numpy(), x.mean(axis=0), rtol=0, atol=1e-4)
    rgb = x.transpose(1, 0, 2, 3).reshape(3, -1)  # every train pixel
    cov = np.cov(rgb, bias=True)
    vals, vecs = store.pca_eigvals.double().numpy(), store.pca_eigvecs.double().numpy()
    assert vals.shape == (3,) and vecs.shape == (3, 3)
    assert np.all(np.diff(vals) <= 0)  # descending
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=1e-5)  # orthonormal columns
    np.testing.assert_allclose(vecs @ np.diag(vals) @ vecs.T, cov, rtol=1e-4, atol=1e-2)


def test_read_order_and_pickling(stores):
    reader = stores["inet_raw"].split("val")
    all_images = reader.read(np.arange(len(reader)))
    idx = np.array([7, 3, 3, 0, 49])
    assert torch.equal(reader.read(idx), all_images[idx])
    assert reader.read(np.array([], np.int64)).shape == (0, 3, 72, 72)
    with pytest.raises(IndexError):
        reader.read(np.array([len(reader)]))
    reader.read(np.array([0]))  # opens the memmap; pickling must not copy it
    blob = pickle.dumps(reader)
    assert len(blob) < 10_000
    assert torch.equal(pickle.loads(blob).read(idx), all_images[idx])
    jpeg = stores["inet_jpeg"].split("val")
    assert torch.equal(pickle.loads(pickle.dumps(jpeg)).read(idx), jpeg.read(idx))


def test_unknown_split_names_available(stores):
    with pytest.raises(StoreError, match="available: train, val"):
        stores["inet_raw"].split("test")


def test_open_missing_or_empty(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "nothing")
    with pytest.raises(StoreError, match="alexnet prepare"):
        open_store(tmp_path)


def _tiny_store(root: Path) -> Path:
    src = root / "src"
    for split in ("train", "val"):
        for cls, colour in (("a", (200, 10, 10)), ("b", (10, 10, 200))):
            (src / split / cls).mkdir(parents=True)
            Image.new("RGB", (20, 12), colour).save(src / split / cls / "x.png")
    prepare(src, root / "out", size=8, workers=1, progress=False)
    return root / "out"


def test_open_refuses_incomplete_and_damaged(tmp_path):
    out = _tiny_store(tmp_path)
    assert open_store(out).split("train").read(np.array([0, 1])).shape == (2, 3, 8, 8)
    meta = json.loads((out / "store.json").read_text())
    (out / "store.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(StoreError, match="incomplete store at .*again"):
        open_store(out)
    (out / "store.json").write_text(json.dumps(meta))
    with open(out / "train.u8", "ab") as f:
        f.truncate(8 * 8 * 3)  # one image instead of two
    with pytest.raises(StoreError, match="damaged store .*train.u8"):
        open_store(out)
    (out / "store.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable store.json"):
        open_store(out)
