"""Batched JPEG decoding with NVIDIA DALI (`pip install 'alexnet[dali]'`, loader.backend=dali): the
same bytes and the same (B, 3, S, S) uint8 batch as gpu_decode.decode_batch, from DALI's image
decoder: "mixed" on CUDA (nvJPEG, with the card's hardware JPEG engine where it has one: A100,
H100, H200), its CPU decoder (libjpeg-turbo) on the CPU. Only the decode is DALI's: the order of
the batches and the §4.1 augmentation stay the loader's and augment.py's, so a run is the same
run with either backend (tests/test_dali.py compares the pixels).

One DALI pipeline per loader, built on first use in the loader's read-ahead thread: an external
source fed one batch of encoded files per run, then the decoder.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError

HW_DECODER_LOAD = 0.75  # share of each batch DALI sends to the hardware decoder (the rest: CUDA); DALI's default is 0.9


def check_dali(decode: str) -> None:
    """ConfigError unless DALI can be used for loader.decode=`decode`."""
    if decode != "device":
        raise ConfigError("loader.backend=dali decodes on the training device: set loader.decode=device as well")
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        raise ConfigError("loader.backend=dali needs NVIDIA DALI: pip install 'alexnet[dali]' "
                          "(or use loader.backend=torchvision)") from None


class DaliDecoder:
    """Callable like gpu_decode.decode_batch: (B encoded JPEG tensors, device) -> (B, 3, S, S) uint8."""

    def __init__(self, max_batch: int, threads: int):
        self.max_batch, self.threads = max_batch, max(1, threads)
        self.pipe = None
        self.device: torch.device | None = None

    def _build(self, device: torch.device) -> None:
        from nvidia.dali import fn, pipeline_def, types

        @pipeline_def
        def decode_pipe():
            files = fn.external_source(name="jpegs", dtype=types.UINT8)
            if device.type == "cuda":
                return fn.decoders.image(files, device="mixed", output_type=types.RGB, hw_decoder_load=HW_DECODER_LOAD)
            return fn.decoders.image(files, device="cpu", output_type=types.RGB)

        gpu = device.index if device.index is not None else torch.cuda.current_device() if device.type == "cuda" else None
        self.pipe = decode_pipe(batch_size=self.max_batch, num_threads=self.threads, device_id=gpu,
                                prefetch_queue_depth=1)
        self.pipe.build()
        self.device = device

    def __call__(self, encoded: list[torch.Tensor], device: torch.device | str) -> torch.Tensor:
        device = torch.device(device)
        if not encoded:
            raise ValueError("decode needs at least one image")
        if self.pipe is None or self.device != device:
            self._build(device)
        assert self.pipe is not None
        self.pipe.feed_input("jpegs", [t.numpy() for t in encoded])
        (out,) = self.pipe.run()  # B images (S, S, 3)
        return _to_torch(out.as_tensor(), device).permute(0, 3, 1, 2)  # (B, 3, S, S), channels-last in memory


def _to_torch(batch, device: torch.device) -> torch.Tensor:
    """A dense DALI tensor (B, S, S, 3) uint8 as a torch tensor on `device` (one copy on the current stream)."""
    shape = tuple(batch.shape())
    if device.type != "cuda":
        return torch.from_numpy(np.array(batch))
    from nvidia.dali.plugin.pytorch import feed_ndarray
    out = torch.empty(shape, dtype=torch.uint8, device=device)
    feed_ndarray(batch, out, cuda_stream=torch.cuda.current_stream(device))
    return out
