"""The images the benchmarks read, made from the bundled Imagenette archive:

  imagenette  its train split extracted to files (224x224 JPEGs of ~13 KB: much cheaper to
              decode than real ImageNet files), for torchvision's ImageFolder loader.
  synthetic   ImageNet-like JPEGs: mostly 500x375 and 375x500 (some other sizes), quality 90,
              real Imagenette photos upscaled with real high-frequency detail and sensor-like
              noise added so the files have photo-like entropy (~100 KB).
Both are written once under a work folder and reused while their parameters are unchanged.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import UserError

# (width, height), weight: mostly ImageNet's typical 500x375 landscape / 375x500 portrait.
SYNTHETIC_SIZES: list[tuple[tuple[int, int], float]] = [
    ((500, 375), 0.50), ((375, 500), 0.20), ((500, 333), 0.08), ((333, 500), 0.04), ((500, 500), 0.06),
    ((500, 400), 0.04), ((640, 480), 0.04), ((800, 600), 0.02), ((300, 225), 0.02)]
SYNTHETIC_QUALITY = 90
SYNTHETIC_CLASSES = 10
_DONE = "done.json"


def read_done(folder: Path) -> dict | None:
    try:
        return json.loads((folder / _DONE).read_text())
    except (OSError, ValueError):
        return None


def extract_imagenette(archive: Path, out: Path) -> Path:
    """The train split of the archive as files under OUT; returns the ImageFolder root
    (OUT/imagenette/train). Reused when a previous extraction finished."""
    params = {"archive": str(archive.resolve()), "size": archive.stat().st_size}
    if read_done(out) != params:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        with tarfile.open(archive) as tf:
            members = [m for m in tf if m.isfile() and "/train/" in f"/{m.name}"]
            tf.extractall(out, members=members, filter="data")
        (out / _DONE).write_text(json.dumps(params))
    roots = [p for p in out.glob("*/train") if p.is_dir()] + ([out / "train"] if (out / "train").is_dir() else [])
    if not roots:
        raise UserError(f"{archive} has no train/<class>/<image> folders")
    return roots[0]


def _source_photos(archive: Path, stride: int = 3) -> list[bytes]:
    """Every `stride`-th train photo of the archive, as JPEG bytes (one sequential pass)."""
    photos = []
    with tarfile.open(archive) as tf:
        k = 0
        for m in tf:
            if m.isfile() and "/train/" in f"/{m.name}":
                if k % stride == 0:
                    f = tf.extractfile(m)
                    if f is not None:
                        photos.append(f.read())
                k += 1
    if not photos:
        raise UserError(f"{archive} has no train photos to build synthetic images from")
    return photos


def _synthetic_image(i: int, photos: list[bytes], sizes: list[tuple[tuple[int, int], float]], seed: int,
                     quality: int) -> tuple[bytes, tuple[int, int]]:
    """Image i: photo i upscaled to a drawn size, plus real high-frequency detail (the high-pass
    of another photo, tiled at its native scale) and luminance/chroma noise. Deterministic in (seed, i)."""
    from PIL import Image, ImageFilter
    rng = np.random.default_rng([seed, i])
    weights = np.array([w for _, w in sizes], np.float64)
    w, h = sizes[rng.choice(len(sizes), p=weights / weights.sum())][0]
    with Image.open(io.BytesIO(photos[i % len(photos)])) as src:
        base = np.asarray(src.convert("RGB").resize((w, h), Image.BICUBIC), np.float32)
    with Image.open(io.BytesIO(photos[(7 * i + 3) % len(photos)])) as other:
        grey = other.convert("L")
        detail = np.asarray(grey, np.float32) - np.asarray(grey.filter(ImageFilter.GaussianBlur(1.0)), np.float32)
    reps = (-(-h // detail.shape[0]), -(-w // detail.shape[1]))
    detail = np.tile(detail, reps)[:h, :w]
    noise = rng.standard_normal((h, w, 1), dtype=np.float32) * 10 + rng.standard_normal((h, w, 3), dtype=np.float32) * 5
    pixels = np.clip(base + 3 * detail[:, :, None] + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)  # default 4:2:0 chroma, as most camera JPEGs
    return buf.getvalue(), (w, h)


def make_synthetic(out: Path, n: int = 2000, *, archive: Path, sizes: list[tuple[tuple[int, int], float]] | None = None,
                   classes: int = SYNTHETIC_CLASSES, quality: int = SYNTHETIC_QUALITY, seed: int = 0,
                   threads: int | None = None) -> Path:
    """Generate N ImageNet-like JPEGs as OUT/train/cNN/NNNNNN.JPEG (image i in class i % classes);
    returns OUT/train. Reused when OUT was finished with the same parameters, else rebuilt."""
    sizes = sizes or SYNTHETIC_SIZES
    if n < classes:
        raise UserError(f"synthetic source needs at least {classes} images (one per class), got {n}")
    params = {"n": n, "classes": classes, "sizes": [[list(s), w] for s, w in sizes], "quality": quality, "seed": seed,
              "archive": str(archive.resolve()), "recipe": 1}
    root = out / "train"
    done = read_done(out)
    if done is not None and {k: v for k, v in done.items() if k != "mean_bytes"} == params:
        return root
    shutil.rmtree(out, ignore_errors=True)
    for c in range(classes):
        (root / f"c{c:02d}").mkdir(parents=True)
    photos = _source_photos(archive)

    def one(i: int) -> int:
        data, _ = _synthetic_image(i, photos, sizes, seed, quality)
        (root / f"c{i % classes:02d}" / f"{i:06d}.JPEG").write_bytes(data)
        return len(data)

    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:  # Pillow and numpy release the GIL
        total = sum(pool.map(one, range(n)))
    (out / _DONE).write_text(json.dumps({**params, "mean_bytes": total / n}))
    return root
