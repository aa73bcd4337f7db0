"""Decoding stored JPEGs on the CPU, straight into the batch buffer.

Two decoders of one libjpeg-turbo, with identical pixels (tests/test_jpeg.py):
  simplejpeg  (the default when installed) one C call per image that releases the GIL for the
              whole decode and writes into the caller's buffer: decode threads scale with cores.
  pillow      the fallback: Image.open parses the file's markers in Python, and the decode, the
              RGB conversion and the array copy each drop and retake the GIL, so threads queue on
              it (benchmarks/decode_scaling.py measures how much of each image holds the GIL).

The batch buffer is channels-last in memory, (B, S, S, 3) viewed as (B, 3, S, S), because a
JPEG decodes to interleaved RGB rows: each image lands in its own slot with no transpose copy.
(Reduced-scale DCT decoding pays only when fewer pixels than stored are wanted: prepare uses it
for large source photos, convert.set_draft; the loader needs every stored pixel for §4.1 crops.)
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

try:
    import simplejpeg
except ImportError:  # optional at run time: Pillow decodes the same pixels, slower with threads
    simplejpeg = None

DECODERS = ("auto", "simplejpeg", "pillow")


class DecodeError(ValueError):
    """A stored JPEG did not decode to the expected image; the message names it."""


def resolve(decoder: str) -> str:
    """The decoder `decoder` names ("auto": simplejpeg if installed, else pillow)."""
    if decoder not in DECODERS:
        raise ValueError(f"{decoder!r} is not one of {', '.join(DECODERS)}")
    if decoder == "auto":
        return "simplejpeg" if simplejpeg is not None else "pillow"
    if decoder == "simplejpeg" and simplejpeg is None:
        raise ImportError("the simplejpeg decoder is not installed: pip install simplejpeg (or use pillow)")
    return decoder


def decode_into(data: np.ndarray | bytes, out: np.ndarray, decoder: str) -> None:
    """Decode one stored JPEG into `out`, an (S, S, 3) uint8 C-contiguous array."""
    h, w, _ = out.shape
    if decoder == "simplejpeg":
        assert simplejpeg is not None
        try:
            fh, fw, _, _ = simplejpeg.decode_jpeg_header(data)
            if (fh, fw) != (h, w):
                raise DecodeError(f"the file is {fw}x{fh}, expected {w}x{h}")
            simplejpeg.decode_jpeg(data, "RGB", buffer=out)  # fills `out` in place, GIL released
        except ValueError as e:  # DecodeError included
            raise DecodeError(str(e)) from None
        return
    try:
        img = decode_pillow(data)
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's ways of saying "not a valid JPEG"
        raise DecodeError(f"{type(e).__name__}: {e}") from None
    if img.shape != out.shape:
        raise DecodeError(f"decoded to {img.shape[1]}x{img.shape[0]}, expected {w}x{h}")
    out[...] = img


def decode_pillow(data: np.ndarray | bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB through Pillow."""
    with Image.open(io.BytesIO(memoryview(data))) as img:
        return np.asarray(img.convert("RGB"))


def decode_fast(data: np.ndarray | bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB of any JPEG, with the fastest installed decoder (identical pixels)."""
    if simplejpeg is not None:
        return simplejpeg.decode_jpeg(data, "RGB")
    return decode_pillow(data)


def batch_buffer(n: int, size: int, pin: bool = False) -> "torch.Tensor":  # noqa: F821 - torch imported lazily
    """An (n, 3, S, S) uint8 tensor laid out channels-last, (n, S, S, 3) in memory (pinned if `pin`)."""
    import torch
    return torch.empty((n, size, size, 3), dtype=torch.uint8, pin_memory=pin).permute(0, 3, 1, 2)


def image_slots(out: "torch.Tensor") -> np.ndarray | None:  # noqa: F821
    """The (n, S, S, 3) array behind a channels-last (n, 3, S, S) tensor, or None if it is not one."""
    hwc = out.permute(0, 2, 3, 1)
    return hwc.numpy() if hwc.is_contiguous() else None
