"""prepare's rate on ImageNet as distributed, on full-size-like JPEGs: a user's plan for the real set.

Builds the ILSVRC2012 release's structure (a train tar of class tars, the flat val tar, the devkit
with meta.mat and the ground truth: tests/imagenet_fakes.py) from the bundled Imagenette, each
224x224 image upscaled (bicubic) to 500x375 and saved as a JPEG of quality 90: ImageNet's typical
size (most of its photos are about 500x375 or 500x333, ~110 KB). Then times the whole process of
`python -m alexnet prepare SRC OUT --size 256 --format F --quiet`, start-up included, `--rounds`
times for each format in turn, and reports the median wall time and images per second; one extra
run without --quiet records prepare's own estimate line for the same work.

    PYTHONPATH=. python benchmarks/imagenet_rate.py [--data ../shared/data] [--work /tmp/imagenet-like]
        [--train 50] [--val 10] [--rounds 3] [--json benchmarks/imagenet-rate-cpu.json]
"""
import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import imagenet_fakes  # noqa: E402  the release's structures, shared with the tests

FULL_SIZE = (500, 375)


def upscaled(data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB").resize(FULL_SIZE, Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build(data_dir: Path, work: Path, n_train: int, n_val: int) -> Path:
    src = work / f"ILSVRC2012-{n_train}-{n_val}"
    if (src / "ILSVRC2012_devkit_t12.tar.gz").is_file():
        return src
    shutil.rmtree(src, ignore_errors=True)
    photos = imagenet_fakes.read_photos(data_dir / "imagenette-224.tar.gz", 10, n_train + n_val)
    photos = {w: [upscaled(d) for d in images] for w, images in photos.items()}
    imagenet_fakes.official(src, photos, "2012", n_train, n_val)
    return src


def run(src: Path, out: Path, fmt: str, quiet: bool = True) -> tuple[float, str]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "alexnet", "prepare", str(src), str(out), "--size", "256", "--format", fmt]
    t = time.perf_counter()
    proc = subprocess.run(cmd + (["--quiet"] if quiet else []), env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    estimate = next((line for line in proc.stderr.splitlines() if line.startswith("prepare: ")), "")
    shutil.rmtree(out, ignore_errors=True)
    return seconds, estimate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--work", default="/tmp/imagenet-like")
    ap.add_argument("--train", type=int, default=50, help="train images per class (10 classes)")
    ap.add_argument("--val", type=int, default=10, help="val images per class")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--formats", nargs="+", default=["raw", "jpeg"])
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    src = build(Path(a.data), Path(a.work), a.train, a.val)
    images = 10 * (a.train + a.val)
    out = Path(a.work) / "out"
    times: dict[str, list[float]] = {f: [] for f in a.formats}
    for _ in range(a.rounds):
        for fmt in a.formats:  # alternating, so a drift of the host's speed touches both
            times[fmt].append(run(src, out, fmt)[0])
    result = {"command": " ".join(["python", "benchmarks/imagenet_rate.py", *sys.argv[1:]]),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "host": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "images": images, "image_size": list(FULL_SIZE), "jpeg_quality": 90,
              "source_bytes": sum(p.stat().st_size for p in src.iterdir()), "formats": {}}
    for fmt in a.formats:
        median = statistics.median(times[fmt])
        _, estimate = run(src, out, fmt, quiet=False)
        result["formats"][fmt] = {"wall_s": [round(t, 3) for t in times[fmt]], "median_s": round(median, 3),
                                  "img_per_s": round(images / median, 1), "estimate_line": estimate}
        print(f"{fmt}: {images} images in {median:.2f} s (median of {a.rounds}) = {images / median:.1f} img/s; "
              f"prepare said: {estimate}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
