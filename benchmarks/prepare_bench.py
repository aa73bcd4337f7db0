"""prepare's speed as a whole process (`python -m alexnet prepare`, start-up included): for each
worker count, two set sizes (--limit-per-class), in alternating rounds; reports the median wall
time of each, the marginal rate (extra images / extra seconds: what each image costs once
running) and the fixed start-up (time of the small set minus its images at the marginal rate).

    python benchmarks/prepare_bench.py SRC [--workers 1 2] [--per-class 10 60] [--format jpeg]
        [--rounds 3] [--baseline DIR]

SRC: a source folder or archive, e.g. the generated ImageNet-like JPEGs of `alexnet bench data
--source synthetic` (WORK/synthetic-N, 10 classes). --baseline DIR also runs the package found in
DIR (e.g. an export of an older commit) in the same rounds, for a side-by-side ratio.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(code: Path, src: str, out: Path, workers: int, per_class: int, fmt: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "alexnet", "prepare", src, str(out), "--format", fmt, "--workers", str(workers),
           "--limit-per-class", str(per_class), "--quiet"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=code)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    seconds = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def listed(src: str, per_class: int) -> int:
    """Images a run with --limit-per-class reads (so rates count what is converted)."""
    sys.path.insert(0, str(ROOT))
    from alexnet.data.sources import list_source
    listing = list_source(Path(src).resolve())
    return sum(min(len(es), per_class) for cls in listing.splits.values() for es in cls.values())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--per-class", type=int, nargs=2, default=[10, 60], help="small and large --limit-per-class")
    p.add_argument("--format", default="jpeg", choices=["raw", "jpeg"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--baseline", default=None, help="folder holding another version of the alexnet package")
    p.add_argument("--work", default=None, help="folder for the stores (default: a temporary one)")
    a = p.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="prepare-bench-"))
    codes = {"this": ROOT} | ({"baseline": Path(a.baseline).resolve()} if a.baseline else {})
    counts = [listed(a.src, k) for k in a.per_class]
    times: dict = {(c, w, k): [] for c in codes for w in a.workers for k in a.per_class}
    for _ in range(a.rounds):
        for w in a.workers:
            for k in a.per_class:
                for c, code in codes.items():
                    times[(c, w, k)].append(run_once(code, a.src, work / "out", w, k, a.format))
    print(f"prepare {a.src} --format {a.format}: {counts[0]} and {counts[1]} images, {a.rounds} rounds, "
          f"{os.cpu_count()} CPUs (median wall seconds, whole process)")
    print(f"{'code':<9} {'workers':>7} {f'{counts[0]} img s':>10} {f'{counts[1]} img s':>10} "
          f"{'marginal img/s':>14} {'start-up s':>10} {'all-told img/s':>14}")
    for c in codes:
        for w in a.workers:
            t0, t1 = (statistics.median(times[(c, w, k)]) for k in a.per_class)
            marginal = (counts[1] - counts[0]) / (t1 - t0) if t1 > t0 else float("inf")
            start = t0 - counts[0] / marginal
            print(f"{c:<9} {w:>7} {t0:>10.2f} {t1:>10.2f} {marginal:>14.0f} {start:>10.2f} {counts[1] / t1:>14.0f}")
    if a.baseline:
        for w in a.workers:
            for k, n in zip(a.per_class, counts):
                r = [b / t for t, b in zip(times[("this", w, k)], times[("baseline", w, k)])]
                print(f"speed-up vs baseline, {w} workers, {n} images: median {statistics.median(r):.2f}x "
                      f"(range {min(r):.2f}-{max(r):.2f}, paired by round)")


if __name__ == "__main__":
    main()
