"""loader.backend=dali (optional extra alexnet[dali]): DALI's decoder gives the loader the same
batches as torchvision's and as the CPU decoder, and a missing DALI is a clear config error.
The pixel test runs where DALI is installed (its CPU decoder; the GPU suite checks CUDA)."""
from __future__ import annotations

import pytest
import torch

from alexnet.data import dali_decode
from alexnet.data.loader import BatchLoader
from alexnet.errors import ConfigError
from test_jpeg import photos, store  # noqa: F401 - fixtures: a small jpeg store of real photos


def epoch(loader: BatchLoader) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader.batches(0))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def test_dali_batches_equal_the_cpu_decoder(store):  # noqa: F811
    import nvidia.dali  # noqa: F401 - in the test extra (pyproject.toml): a missing DALI fails, never skips
    reader = store.split("train")
    cpu = epoch(BatchLoader(reader, 5, shuffle=True, seed=2, drop_last=False, threads=2))
    dali = epoch(BatchLoader(reader, 5, shuffle=True, seed=2, drop_last=False, decode="device", backend="dali"))
    half = epoch(BatchLoader(reader, 5, shuffle=True, seed=2, drop_last=False, decode="device", backend="dali",
                             device_share=0.6, threads=2))
    assert torch.equal(cpu[1], dali[1]) and torch.equal(cpu[0], dali[0]) and torch.equal(cpu[0], half[0])
    assert len(cpu[1]) == len(reader)  # the last, smaller batch too


def test_dali_needs_device_decode_and_the_package(store, monkeypatch):  # noqa: F811
    reader = store.split("train")
    with pytest.raises(ConfigError, match="loader.backend=dali decodes on the training device: set loader.decode=device"):
        BatchLoader(reader, 4, shuffle=False, backend="dali")
    monkeypatch.setitem(__import__("sys").modules, "nvidia.dali", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"needs NVIDIA DALI: pip install 'alexnet\[dali\]'"):
        BatchLoader(reader, 4, shuffle=False, decode="device", backend="dali")
    assert dali_decode.HW_DECODER_LOAD > 0


def test_device_share_splits_each_batch(store):  # noqa: F811
    """decode=device with device_share < 1: the device decoder takes the first part of each batch,
    CPU threads the rest, at once; the batch is the same as either alone."""
    reader = store.split("train")
    whole = epoch(BatchLoader(reader, 5, shuffle=True, seed=4, drop_last=False, decode="device"))
    for share, threads in ((0.5, 1), (0.3, 3), (0.99, 2)):
        split = epoch(BatchLoader(reader, 5, shuffle=True, seed=4, drop_last=False, decode="device",
                                  device_share=share, threads=threads))
        assert torch.equal(whole[0], split[0]) and torch.equal(whole[1], split[1])
    with pytest.raises(ConfigError, match=r"loader.device_share must be in \(0, 1\] \(got 0\)"):
        BatchLoader(reader, 4, shuffle=False, decode="device", device_share=0)
