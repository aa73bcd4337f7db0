"""Batched JPEG decoding on the training device: the bytes from `SplitReader.read_encoded`
go to torchvision's decoder (nvJPEG on CUDA, libjpeg on CPU) in one call per batch."""
from __future__ import annotations

import warnings

import torch
from torchvision.io import ImageReadMode, decode_jpeg


def decode_batch(encoded: list[torch.Tensor], device: torch.device | str) -> torch.Tensor:
    """encoded: B 1-D uint8 CPU tensors, each a JPEG file of the same S x S size ->
    (B, 3, S, S) uint8 on `device` (greyscale files come out as RGB)."""
    if not encoded:
        raise ValueError("decode_batch needs at least one image")
    device = torch.device(device)
    with warnings.catch_warnings():
        # torchvision 0.29 marks its image decoders deprecated (in favour of TorchCodec); they still work.
        warnings.simplefilter("ignore", DeprecationWarning)
        images = decode_jpeg(list(encoded), mode=ImageReadMode.RGB, device=device)
    return torch.stack(images)
