"""Reduced-scale decoding of large JPEGs in `prepare` (alexnet.data.convert.set_draft): time and
pixel difference against a full decode, both followed by the same resize to S.

Inputs: the first N Imagenette photos, upscaled to W x H with fine noise (photo-like detail) and
saved as JPEG quality 90, as tests/test_prepare.py does.

    python benchmarks/draft_bench.py [--archive ../shared/data/imagenette-224.tar.gz] [--n 20] [--size 256]
"""
import argparse
import io
import tarfile
import time

import numpy as np
from PIL import Image

from alexnet.data.convert import load_image


def photos(archive: str, n: int, w: int, h: int) -> list[bytes]:
    out, rng = [], np.random.default_rng(0)
    with tarfile.open(archive) as tf:
        for m in tf:
            if len(out) == n:
                break
            if m.isfile() and m.name.endswith(".JPEG"):
                img = Image.open(io.BytesIO(tf.extractfile(m).read())).convert("RGB").resize((w, h), Image.BICUBIC)
                noisy = (np.asarray(img) + rng.integers(-12, 13, (h, w, 3))).clip(0, 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(noisy).save(buf, "JPEG", quality=90)
                out.append(buf.getvalue())
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--archive", default="../shared/data/imagenette-224.tar.gz")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--height", type=int, default=1536)
    a = p.parse_args()
    data = photos(a.archive, a.n, a.width, a.height)
    results = {}
    for draft in (True, False):
        t = time.perf_counter()
        results[draft] = [np.asarray(load_image(d, a.size, draft=draft)).astype(int) for d in data]
        ms = 1000 * (time.perf_counter() - t) / len(data)
        print(f"{'draft' if draft else 'full '} decode + resize: {ms:.1f} ms per image")
    diff = np.stack([np.abs(x - y) for x, y in zip(results[True], results[False])])
    print(f"{len(data)} JPEGs of {a.width}x{a.height}, mean {np.mean([len(d) for d in data]) / 1e3:.0f} KB, "
          f"S={a.size}: |draft - full| mean {diff.mean():.2f}, max {diff.max()} levels")


if __name__ == "__main__":
    main()
