"""bench data: encoded reads + batched decode match the store's reader; the benchmark runs end to
end on a tiny synthetic source (CPU: the GPU row is reported as skipped)."""
import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.bench.data import ROWS, bench_data, format_data
from alexnet.bench.sources import make_synthetic
from alexnet.data.gpu_decode import decode_batch
from alexnet.data.prepare import prepare
from alexnet.data.store import StoreError, open_store
from conftest import IMAGENETTE


@pytest.fixture(scope="module")
def jpeg_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "imagenette-jpeg-72"
    prepare(IMAGENETTE, out, size=72, fmt="jpeg", splits=["val"], limit_per_class=2, progress=False, workers=1)
    return open_store(out)


def test_read_encoded_and_decode_batch_match_read(jpeg_store):
    reader = jpeg_store.split("val")
    idx = np.array([5, 0, 3, 3, len(reader) - 1])
    encoded = reader.read_encoded(idx)
    assert len(encoded) == len(idx)
    assert all(e.dtype == torch.uint8 and e.dim() == 1 and e[:2].tolist() == [0xFF, 0xD8] for e in encoded)  # JPEG SOI
    decoded = decode_batch(encoded, torch.device("cpu"))
    expected = reader.read(idx)
    assert decoded.shape == expected.shape == (len(idx), 3, 72, 72) and decoded.dtype == torch.uint8
    diff = (decoded.int() - expected.int()).abs()
    assert diff.max() <= 8 and diff.float().mean() < 0.5  # libjpeg(-turbo) both sides: IDCT rounding at most
    with pytest.raises(IndexError):
        reader.read_encoded(np.array([len(reader)]))


def test_read_encoded_refuses_raw_store(tiny_store):
    with pytest.raises(StoreError, match="jpeg"):
        open_store(tiny_store).split("train").read_encoded(np.array([0]))


def test_synthetic_images_have_requested_sizes(tmp_path):
    sizes = [((80, 60), 0.5), ((60, 80), 0.3), ((70, 70), 0.2)]
    root = make_synthetic(tmp_path / "syn", 24, archive=IMAGENETTE, sizes=sizes, threads=2)
    files = sorted(root.rglob("*.JPEG"))
    assert len(files) == 24 and len({f.parent.name for f in files}) == 10
    seen = set()
    for f in files:
        with Image.open(f) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            seen.add(img.size)
    assert seen <= {(80, 60), (60, 80), (70, 70)} and len(seen) > 1
    mtime = files[0].stat().st_mtime_ns
    make_synthetic(tmp_path / "syn", 24, archive=IMAGENETTE, sizes=sizes)  # same parameters: reused
    assert files[0].stat().st_mtime_ns == mtime


def test_bench_data_synthetic_tiny(tmp_path):
    sizes = [((160, 120), 0.7), ((120, 160), 0.3)]
    result = bench_data("synthetic", tmp_path, torch.device("cpu"), batch=8, batches=2, workers=2, crop=56, size=64,
                        warmup=1, data_dir=IMAGENETTE.parent, synthetic_images=40, synthetic_sizes=sizes, rows=list(ROWS))
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == list(ROWS)
    for name in ("store-jpeg-mixed", "store-jpeg-dali"):
        assert rows[name]["img_s"] is None and "CUDA" in rows[name]["skipped"]
    assert rows["store-jpeg-pillow"]["loader"] == {"cpu_decoder": "pillow"}
    for name in ("torchvision", "store-raw", "store-jpeg-cpu", "store-jpeg-pillow"):
        assert rows[name]["img_s"] > 0 and rows[name]["skipped"] is None and rows[name]["bytes_per_image"] > 0
    assert rows["store-raw"]["bytes_per_image"] == 3 * 64 * 64
    assert rows["store-jpeg-gpu"]["img_s"] is None and "CUDA" in rows["store-jpeg-gpu"]["skipped"]
    assert result["images"] == 40 and result["jpeg_mean_bytes"] > 0
    assert result["ratios"]["best_store_vs_torchvision"] > 0
    text = format_data(result)
    assert "store-jpeg-gpu" in text and "skipped" in text
