"""CPU JPEG decoding of the store (data/jpeg.py): simplejpeg's pixels equal Pillow's for every
store format; decoding straight into a channels-last batch buffer; Pillow as the fallback; a
damaged image reaches the caller with its index named."""
from __future__ import annotations

import io
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.data import jpeg
from alexnet.data.loader import BatchLoader
from alexnet.data.prepare import prepare
from alexnet.data.store import StoreError, open_store
from alexnet.errors import ConfigError
from conftest import IMAGENETTE



def test_simplejpeg_is_installed():
    assert jpeg.simplejpeg is not None, "simplejpeg is a dependency (pyproject.toml): pip install -e '.[test]'"


def real_photos(n: int) -> list[Image.Image]:
    """The first n Imagenette photos (RGB), read from the start of the archive."""
    out = []
    with tarfile.open(IMAGENETTE) as tf:
        for m in tf:
            if m.isfile() and m.name.endswith(".JPEG"):
                out.append(Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB"))
                if len(out) == n:
                    return out
    raise AssertionError(f"fewer than {n} photos in {IMAGENETTE}")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [p.resize((72, 72), Image.BILINEAR) for p in real_photos(6)]


def encode(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("quality", [90, 95])
@pytest.mark.parametrize("subsampling", [0, 2])  # 4:4:4, 4:2:0
@pytest.mark.parametrize("progressive", [False, True])
def test_simplejpeg_equals_pillow(photos, quality, subsampling, progressive):
    """One libjpeg-turbo under both (accurate integer IDCT, fancy upsampling): identical pixels."""
    for img in photos + [photos[0].convert("L")]:  # a greyscale file comes out as equal RGB channels
        data = encode(img, quality=quality, subsampling=subsampling, progressive=progressive)
        out = np.empty((72, 72, 3), np.uint8)
        jpeg.decode_into(np.frombuffer(data, np.uint8), out, "simplejpeg")
        assert np.array_equal(out, jpeg.decode_pillow(data))


def test_wrong_size_or_corrupt_file_is_a_decode_error(photos):
    data = encode(photos[0], quality=95)
    for decoder in ("simplejpeg", "pillow"):
        with pytest.raises(jpeg.DecodeError, match="72x72, expected 64x64"):
            jpeg.decode_into(data, np.empty((64, 64, 3), np.uint8), decoder)
        with pytest.raises(jpeg.DecodeError):
            jpeg.decode_into(data[:20] + bytes(200), np.empty((72, 72, 3), np.uint8), decoder)


@pytest.fixture(scope="module")
def store(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("jpegstore")
    for i, img in enumerate(photos * 2):
        folder = root / "src" / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:02d}.jpg", quality=97)
    prepare(root / "src", root / "store", size=64, fmt="jpeg", workers=1, progress=False)
    return open_store(root / "store")


def test_reader_decodes_in_place_with_either_decoder(store):
    reader = store.split("train")
    idx = np.array([5, 0, 11, 3])
    fast = reader.read(idx)  # a new jpeg batch is channels-last: decoded in place
    assert fast.shape == (4, 3, 64, 64) and fast.permute(0, 2, 3, 1).is_contiguous()
    plain = torch.empty(4, 3, 64, 64, dtype=torch.uint8)  # a contiguous `out`: decoded, then transposed
    assert reader.read(idx, plain, "pillow") is plain
    assert torch.equal(fast, plain) and torch.equal(fast, reader.read(idx, decoder="pillow"))
    mean = reader.read(np.arange(len(reader))).double().mean(0)
    assert torch.allclose(mean.float(), store.mean, atol=1e-4)  # prepare's statistics: the same pixels


def test_pillow_is_the_fallback(store, monkeypatch):
    reader = store.split("train")
    want = reader.read(np.arange(8))
    monkeypatch.setattr(jpeg, "simplejpeg", None)
    assert jpeg.resolve("auto") == "pillow"
    loader = BatchLoader(reader, 4, shuffle=False, threads=2, max_batches=2)
    assert loader.cpu_decoder == "pillow"
    assert torch.equal(torch.cat([x for x, _ in loader.batches(0)]), want)
    with pytest.raises(ConfigError, match="loader.cpu_decoder: .*not installed"):
        BatchLoader(reader, 4, shuffle=False, cpu_decoder="simplejpeg")
    with pytest.raises(ConfigError, match="loader.cpu_decoder='turbo' is not one of auto, simplejpeg, pillow"):
        BatchLoader(reader, 4, shuffle=False, cpu_decoder="turbo")


@pytest.mark.parametrize("decoder", ["simplejpeg", "pillow"])
def test_damaged_image_is_named(store, tmp_path, decoder):
    bad = tmp_path / "bad"
    shutil.copytree(store.path, bad)
    offsets = np.load(bad / "train.offsets.npy")
    with open(bad / "train.jpg.bin", "r+b") as f:  # overwrite image 7 past its header with garbage
        f.seek(int(offsets[7]) + 2)
        f.write(b"\xff\x00" * 200)
    loader = BatchLoader(open_store(bad).split("train"), 6, shuffle=False, threads=2, cpu_decoder=decoder)
    with pytest.raises(StoreError, match=r"damaged store .*bad: image 7 of train.jpg.bin \(from train/c1/03.jpg\) cannot be decoded .*delete the store"):
        list(loader.batches(0))
