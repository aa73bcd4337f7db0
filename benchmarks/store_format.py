"""The jpeg store's format chosen on numbers: for JPEG quality x chroma subsampling x progressive,
the bytes per stored S x S image, the CPU decode time per image (simplejpeg, one thread, CPU
time: what a core pays whatever the load), and the difference from the raw store's pixels (the
exact rescale + crop of §2 that --format raw keeps). Every variant encodes the same images; the
decode timings alternate between variants round by round. ImageNet's size is projected from
the bytes per image (1,331,167 train + val images).

    python benchmarks/store_format.py SRC [--n 200] [--size 256] [--rounds 3]

SRC: a folder of source JPEGs, e.g. WORK/synthetic-N/train of `alexnet bench data --source
synthetic` (ImageNet-like 500x375 photos), or an extracted Imagenette train folder.
"""
import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
import simplejpeg

from alexnet.data.convert import SUBSAMPLING, load_image

IMAGENET_IMAGES = 1_281_167 + 50_000


def variants() -> list[tuple[int, str, bool]]:
    return [(q, sub, prog) for q in (90, 95) for sub in ("4:4:4", "4:2:0") for prog in (False, True)]


def encode(img, quality: int, sub: str, progressive: bool) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=SUBSAMPLING[sub], progressive=progressive)
    return buf.getvalue()


def decode_ms(files: list[bytes]) -> float:
    t = time.process_time()
    for f in files:
        simplejpeg.decode_jpeg(f, "RGB")
    return 1e3 * (time.process_time() - t) / len(files)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("src", help="folder of source JPEGs (searched recursively)")
    p.add_argument("--n", type=int, default=200, help="images")
    p.add_argument("--size", type=int, default=256, help="stored side S")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    paths = sorted(q for q in Path(a.src).rglob("*") if q.suffix.lower() in (".jpg", ".jpeg"))[: a.n]
    raw = [load_image(q.read_bytes(), a.size) for q in paths]  # what --format raw stores
    ref = np.stack([np.asarray(img) for img in raw]).astype(np.int16)  # (n, S, S, 3)
    files = {v: [encode(img, *v) for img in raw] for v in variants()}
    times: dict = {v: [] for v in files}
    for _ in range(a.rounds):
        for v in files:
            times[v].append(decode_ms(files[v]))
    print(f"{len(raw)} images from {a.src}, stored at {a.size}x{a.size}; decode: simplejpeg, 1 thread, CPU ms "
          f"(median of {a.rounds} rounds)")
    print(f"{'quality':>7} {'chroma':>6} {'progr.':>6} {'KB/img':>7} {'ImageNet GB':>11} {'decode ms':>9} "
          f"{'|diff| mean':>11} {'PSNR dB':>7}")
    for (q, sub, prog), enc in files.items():
        dec = np.stack([simplejpeg.decode_jpeg(f, "RGB") for f in enc]).astype(np.int16)
        diff = np.abs(dec - ref)
        psnr = 10 * np.log10(255**2 / np.mean(diff.astype(np.float64) ** 2))
        kb = np.mean([len(f) for f in enc]) / 1e3
        print(f"{q:>7} {sub:>6} {'yes' if prog else 'no':>6} {kb:>7.1f} {kb * IMAGENET_IMAGES / 1e6:>11.1f} "
              f"{statistics.median(times[(q, sub, prog)]):>9.3f} {diff.mean():>11.2f} {psnr:>7.1f}")


if __name__ == "__main__":
    main()
