"""prepare at full speed: workers read their own files (folders, plain .tar) and write shards, the
chunking adapts to small sets, and the stored JPEG format is an option; the bytes never depend on
how the work was split."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from alexnet.data import tars
from alexnet.data.prepare import CHUNK_FILES, PrepareError, auto_chunk, prepare
from alexnet.data.store import open_store
from test_prepare import photo, store_bytes


def tree(root):
    src = root / "src"
    for split, n in (("train", 14), ("val", 5)):
        for i in range(n):
            folder = src / split / f"c{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            photo(60 + 7 * i, 40 + 5 * i, i).save(folder / f"{i:02d}.jpg", quality=90)
    (src / "train" / "c0" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return src


def plain_tar(src, path):
    with tarfile.open(path, "w") as tf:  # uncompressed, like ImageNet's own archives
        tf.add(src, arcname="top")
    return path


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_bytes_do_not_depend_on_workers_chunks_or_source_form(tmp_path, fmt):
    src = tree(tmp_path)
    archive = plain_tar(src, tmp_path / "src.tar")
    assert tars.is_plain_tar(archive) and not tars.is_plain_tar(src / "train" / "c0" / "00.jpg")
    ref = prepare(src, tmp_path / "ref", size=24, fmt=fmt, workers=1, progress=False)
    runs = {"shards": dict(src=src, workers=2, chunk_files=4),  # worker processes write shards
            "tar": dict(src=archive, workers=2, chunk_files=3)}  # and read the plain tar at the offsets
    for name, kw in runs.items():
        got = prepare(kw.pop("src"), tmp_path / name, size=24, fmt=fmt, progress=False, **kw)
        assert (got.stored, got.skipped) == (ref.stored, ref.skipped) == (19, 1)
        assert store_bytes(tmp_path / name) == store_bytes(tmp_path / "ref"), name
        assert not list((tmp_path / name).glob("*.tmp"))  # every shard appended, then removed


def test_auto_chunk_feeds_every_worker():
    assert auto_chunk(100, 2) == 16 and auto_chunk(1000, 2) == 125 and auto_chunk(13_394, 16) == 210
    assert auto_chunk(1_281_167, 16) == CHUNK_FILES and auto_chunk(3, 8) == 16


@pytest.mark.parametrize("subsampling,progressive", [("4:2:0", False), ("4:4:4", True)])
def test_store_format_options_round_trip(tmp_path, subsampling, progressive):
    import simplejpeg
    src = tree(tmp_path)
    prepare(src, tmp_path / "out", size=32, fmt="jpeg", quality=90, subsampling=subsampling, progressive=progressive,
            workers=1, progress=False)
    store = open_store(tmp_path / "out")
    assert (store.meta["jpeg_subsampling"], store.meta["jpeg_progressive"]) == (subsampling, progressive)
    assert store.meta["arguments"]["subsampling"] == subsampling
    reader = store.split("train")
    blob = (store.path / "train.jpg.bin").read_bytes()
    offsets = np.load(store.path / "train.offsets.npy")
    first = blob[offsets[0] : offsets[1]]
    assert simplejpeg.decode_jpeg_header(first)[3] == subsampling.replace(":", "")
    with Image.open(io.BytesIO(first)) as img:
        assert bool(img.info.get("progressive")) == progressive
    images = reader.read(np.arange(len(reader)))
    assert np.allclose(images.double().mean(0).numpy(), store.mean.numpy(), atol=1e-4)  # stats = decoded pixels
    with pytest.raises(PrepareError, match="different arguments"):
        prepare(src, tmp_path / "out", size=32, fmt="jpeg", quality=90, subsampling="4:2:2", progress=False)
    with pytest.raises(PrepareError, match="--subsampling '4:1:1': use one of 4:4:4, 4:2:2, 4:2:0"):
        prepare(src, tmp_path / "x", fmt="jpeg", subsampling="4:1:1", progress=False)
