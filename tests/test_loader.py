"""The batch loader: decode threads, device decoding, clean shutdown, errors (real Imagenette images)."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from alexnet.config import build_config
from alexnet.data.loader import BatchLoader
from alexnet.data.prepare import prepare
from alexnet.data.jpeg import decode_pillow
from alexnet.data.store import open_store
from alexnet.errors import ConfigError
from alexnet.train import train

from conftest import IMAGENETTE, tiny_overrides


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    kw = dict(size=72, limit_per_class=6, progress=False, workers=2)
    return {fmt: open_store(prepare(IMAGENETTE, root / fmt, fmt=fmt, **kw).out) for fmt in ("raw", "jpeg")}


def epoch(loader: BatchLoader, e: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader.batches(e))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


@pytest.mark.parametrize("fmt", ["raw", "jpeg"])
def test_threads_give_the_same_batches(stores, fmt):
    reader = stores[fmt].split("train")
    one = epoch(BatchLoader(reader, 7, shuffle=True, seed=3, threads=1, prefetch=0))
    many = epoch(BatchLoader(reader, 7, shuffle=True, seed=3, threads=3, prefetch=2))
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1])
    order = BatchLoader(reader, 7, shuffle=True, seed=3).indices(0)[: len(one[1])]
    assert torch.equal(one[0], reader.read(order))  # and they are the images at the epoch's indices


def test_device_decode_matches_the_cpu_decoder(stores):
    """decode=device hands the stored JPEG bytes to torchvision's batched decoder (nvJPEG on
    CUDA, libjpeg-turbo here); on the CPU its pixels equal Pillow's decode of the same bytes."""
    reader = stores["jpeg"].split("val")
    cpu = epoch(BatchLoader(reader, 5, shuffle=False, drop_last=False, threads=2))
    dev = epoch(BatchLoader(reader, 5, shuffle=False, drop_last=False, decode="device"))
    assert torch.equal(cpu[1], dev[1]) and torch.equal(cpu[0], dev[0])
    first = np.frombuffer(reader.read_encoded(np.array([0]))[0].numpy().tobytes(), np.uint8)
    assert torch.equal(cpu[0][0], torch.from_numpy(decode_pillow(first)).permute(2, 0, 1))


def losses(run) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line["loss"] for line in lines if line["kind"] == "train"]


def test_training_with_device_decode_and_threads_is_unchanged(stores, tmp_path):
    """The same run three ways: one thread, four threads, decode=device. Same pixels, same losses."""
    runs = {"one": ["data.threads=1", "data.prefetch=0"], "four": ["data.threads=4"], "device": ["data.decode=device"]}
    for name, extra in runs.items():
        sets = tiny_overrides(stores["jpeg"].path, tmp_path / name, "optim.batch_size=8", "schedule.epochs=1",
                              "train.deterministic=true", *extra)
        train(build_config("quick", sets))
    assert len(losses(tmp_path / "one")) == 7  # 60 train images // 8
    assert losses(tmp_path / "one") == losses(tmp_path / "four") == losses(tmp_path / "device")


def test_device_decode_needs_a_jpeg_store(stores):
    with pytest.raises(ConfigError, match="loader.decode=device .* raw store"):
        BatchLoader(stores["raw"].split("train"), 4, shuffle=True, decode="device")


def test_abandoned_epoch_stops_its_threads(stores):
    before = threading.active_count()
    loader = BatchLoader(stores["jpeg"].split("train"), 4, shuffle=True, threads=3, prefetch=2)
    batches = loader.batches(0)
    next(batches)
    batches.close()  # e.g. Ctrl-C mid-epoch
    assert threading.active_count() == before


class _Failing:
    """A reader whose images at index 5 cannot be decoded."""

    size, labels = 4, np.zeros(20, np.int64)

    def __len__(self):
        return 20

    def read(self, idx, out=None):
        if 5 in idx:
            raise OSError("image 5 is corrupt")
        return out.zero_() if out is not None else torch.zeros(len(idx), 3, 4, 4, dtype=torch.uint8)


@pytest.mark.parametrize("threads,prefetch", [(1, 0), (3, 2)])
def test_decode_errors_reach_the_consumer(threads, prefetch):
    loader = BatchLoader(_Failing(), 4, shuffle=False, threads=threads, prefetch=prefetch)
    with pytest.raises(OSError, match="image 5 is corrupt"):
        list(loader.batches(0))
