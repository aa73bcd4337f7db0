"""Converting source files into stored images, in the worker processes of `prepare`: decode with
Pillow, convert to RGB, rescale so the shorter side is S and centre-crop to S x S (§2), and
accumulate the sums for the mean image (§2) and the RGB PCA (§4.1) of each chunk."""
from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from alexnet.data import sources, tars
from alexnet.data.jpeg import decode_fast


# ---- one image ---------------------------------------------------------------------------


class _Skip(Exception):
    """This file cannot be stored; the message is the reason written to the manifest."""


# The formats image datasets hold. Pillow can open about 40; the others are never tried (an EPS
# file named .JPEG would make Pillow run Ghostscript from PATH).
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
FORMAT_NAMES = "JPEG, PNG, WebP, BMP, TIFF or GIF"


def open_image(fp) -> Image.Image:
    """Image.open for a file or file object, only in IMAGE_FORMATS (UnidentifiedImageError otherwise)."""
    return Image.open(fp, formats=IMAGE_FORMATS)


def stored_image(img: Image.Image, size: int, draft: bool = True) -> Image.Image:
    """The one way an opened file becomes the S x S RGB image a store holds, for `prepare` and for
    `predict` (ship/weights.py stored_pixels) alike: only IMAGE_FORMATS; large JPEGs decoded at a
    reduced scale (set_draft); the EXIF orientation applied (photos from phones are stored sideways
    with a tag); 16-bit greyscale scaled to 8 bits; RGB; shorter side to S, central S x S (§2)."""
    if img.format is not None and img.format not in IMAGE_FORMATS:  # None: made in memory, not read from a file
        # refused before any decoding: a format's own reader may run programs
        raise UnidentifiedImageError(f"{img.format} is not read (only {FORMAT_NAMES})")
    if draft:
        set_draft(img, size)
    img.load()  # decode now: truncated files fail here (LOAD_TRUNCATED_IMAGES is off)
    return resize_crop(to_rgb(ImageOps.exif_transpose(img)), size)


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB, like ImageFolder's loader (greyscale, CMYK, palette, RGBA...), except 16-bit greyscale,
    which Pillow's convert() clips at 255 (a photo comes out all white): scaled, v * 255 / 65535."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        v = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        img = Image.fromarray(((v * 255 + 32767) // 65535).astype(np.uint8), "L")
    return img.convert("RGB")


def load_image(data: bytes, size: int, draft: bool = True) -> Image.Image:
    """Decode `data` into an RGB S x S PIL image (stored_image), or raise _Skip with the reason."""
    if not data:
        raise _Skip("empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; both are bombs to us.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_image(io.BytesIO(data)) as img:
                return stored_image(img, size, draft)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _Skip(f"decompression bomb: {e}") from None
    except UnidentifiedImageError:
        raise _Skip(f"not an image Pillow can read (read: {FORMAT_NAMES})") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure (OSError, SyntaxError, ...) is a skip
        raise _Skip(f"corrupt image: {type(e).__name__}: {e}") from None


def set_draft(img: Image.Image, size: int) -> None:
    """Large JPEGs: let libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling) while the shorter
    side stays >= 2 x size, as Pillow's own thumbnail() does (its reducing_gap=2). A 2000x1500
    photo then decodes about 4x faster; the bilinear resize to `size` that follows still shrinks
    by 2x or more, so the result stays within a level or two of a full decode (tests check this).
    Images with a shorter side below 4 x size (most of ImageNet) decode in full, as before."""
    w, h = img.size
    short = min(w, h)
    if img.format == "JPEG" and short >= 4 * size:
        k = 2 * size / short
        img.draft(None, (math.ceil(w * k), math.ceil(h * k)))


def resize_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side -> size (bilinear, antialiased by PIL when shrinking), then central crop."""
    w, h = img.size
    short, long = min(w, h), max(w, h)
    new_long = int(size * long / short)  # torchvision.transforms.Resize(size) arithmetic
    if new_long > 8 * size:
        # Extreme aspect ratio: resizing the whole strip first could take gigabytes, so
        # resample only the central square (same geometry, slightly different edge pixels).
        x0, y0 = (w - short) / 2, (h - short) / 2
        return img.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + short, y0 + short))
    nw, nh = (size, new_long) if w <= h else (new_long, size)
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))  # torchvision CenterCrop
    return img.crop((left, top, left + size, top + size))


def to_chw(img: Image.Image) -> np.ndarray:
    return np.asarray(img).transpose(2, 0, 1)  # (S, S, 3) -> (3, S, S) uint8


# ---- one chunk (runs in a worker process) --------------------------------------------------


SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # JPEG chroma subsampling -> Pillow's code


@dataclass
class Job:
    index: int  # position in the global chunk order
    split: str
    size: int
    fmt: str
    quality: int
    stats: bool  # accumulate mean/PCA sums (the stats split only)
    items: list[tuple[int, str, bytes | str | tuple[str, int, int] | None, str]]
    # (label, name, payload, read error); payload: the bytes, a file's path, or (tar path, offset, size)
    draft: bool = True  # reduced-scale decoding of large JPEGs (see set_draft)
    hook: Callable[[str, int], None] | None = None  # prepare.Hook, called at "worker"
    subsampling: str = "4:2:0"  # jpeg only: chroma subsampling of the stored files
    progressive: bool = False  # jpeg only: progressive instead of baseline files
    shard: str | None = None  # write the images to this file instead of returning them (worker processes)


@dataclass
class ChunkResult:
    index: int
    split: str
    images: np.ndarray | list[bytes] | None  # raw: (n, 3, S, S) uint8; jpeg: n encoded files; None: in `shard`
    labels: list[int]
    names: list[str]
    skips: list[tuple[str, str]]  # (name, reason)
    pixel_sum: np.ndarray | None  # (3, S, S) int64, sum of the stored images
    rgb_outer: np.ndarray | None  # (3, 3) int64, sum over pixels of x x^T, x the RGB vector
    lengths: list[int] | None = None  # jpeg: bytes of each stored file, in order
    shard: str | None = None  # the file holding the images' bytes, in order (Job.shard)


def read_payload(payload: bytes | str | tuple[str, int, int] | None) -> bytes:
    """The source file's bytes: given, read from a folder, or read from a plain .tar at an offset."""
    if isinstance(payload, str):
        return sources.read_file(payload)
    if isinstance(payload, tuple):
        return tars.read_member(*payload)
    return payload or b""


def encode(img: Image.Image, job: Job) -> bytes:
    return encode_jpeg(img, job.quality, job.subsampling, job.progressive)


def encode_jpeg(img: Image.Image, quality: int, subsampling: str, progressive: bool) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling], progressive=progressive)
    return buf.getvalue()


class _Sums:
    """Exact sums over a chunk's stored images: per-pixel (mean image, §2) and RGB x x^T (PCA, §4.1)."""

    def __init__(self, size: int):
        self.pixels = np.zeros((3, size, size), np.uint32)  # exact for up to 16 million images
        self.outer = np.zeros((3, 3), np.float64)

    def add(self, pixels: np.ndarray) -> None:  # (3, S, S) uint8
        np.add(self.pixels, pixels, out=self.pixels)
        x = pixels.reshape(3, -1).astype(np.float64)
        self.outer += x @ x.T  # integers below 2**53: exact, so sums are order-independent


def convert_chunk(job: Job) -> ChunkResult:
    if job.hook:
        job.hook("worker", job.index)
    stored: list[np.ndarray] = []
    encoded: list[bytes] = []
    labels, names, skips = [], [], []
    sums = _Sums(job.size) if job.stats else None
    for label, name, payload, error in job.items:
        try:
            if error:
                raise _Skip(error)
            img = load_image(read_payload(payload), job.size, job.draft)
        except OSError as e:
            skips.append((name, f"cannot read: {e.strerror or e}"))
            continue
        except _Skip as e:
            skips.append((name, str(e)))
            continue
        if job.fmt == "jpeg":
            encoded.append(encode(img, job))
            # Statistics describe what the reader will return: the decoded JPEG (jpeg.decode_fast).
            pixels = decode_fast(encoded[-1]).transpose(2, 0, 1) if sums else None
        else:
            pixels = to_chw(img)
            stored.append(pixels)
        if sums:
            sums.add(pixels)
        labels.append(label)
        names.append(name)
    if job.fmt == "jpeg":
        images: np.ndarray | list[bytes] | None = encoded
    else:
        images = np.stack(stored) if stored else np.zeros((0, 3, job.size, job.size), np.uint8)
    lengths = [len(b) for b in encoded] if job.fmt == "jpeg" else None
    if job.shard is not None:  # only the small results go back through the pipe
        with open(job.shard, "wb") as f:
            f.write(b"".join(encoded) if job.fmt == "jpeg" else np.ascontiguousarray(images).reshape(-1))
        images = None
    return ChunkResult(job.index, job.split, images, labels, names, skips,
                       sums.pixels.astype(np.int64) if sums else None,
                       np.rint(sums.outer).astype(np.int64) if sums else None, lengths, job.shard)
