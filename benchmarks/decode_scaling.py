"""Why JPEG decode threads do or do not scale: for each CPU decoder (data/jpeg.py), through the
training loader (BatchLoader, CPU, no read-ahead), side by side in one process, in alternating rounds:

  img/s with 1 and with N decode threads, and their ratio per round (the median is reported);
  CPU seconds per image (process time: what a core pays, whatever the load of the machine);
  GIL-held time per image: a pure-Python thread spins while one thread decodes; the time the
    spinner is neither on a CPU nor waiting for one (Linux schedstat) is time it waited for the
    GIL, i.e. time the decoding thread held it. With G seconds held per image, threads can never
    deliver more than 1/G img/s in all, whatever the number of cores.

    python benchmarks/decode_scaling.py STORE [--threads 2] [--batch-size 64] [--batches 8] [--rounds 5]
"""
import argparse
import statistics
import threading
import time

import numpy as np
import torch

from alexnet.data.jpeg import simplejpeg
from alexnet.data.loader import BatchLoader
from alexnet.data.store import open_store


def run(reader, decoder: str, threads: int, batch: int, batches: int) -> tuple[float, float]:
    """(img/s wall, CPU seconds per image) for `batches` batches of epoch 0."""
    loader = BatchLoader(reader, batch, shuffle=True, seed=0, threads=threads, prefetch=0, max_batches=batches,
                         cpu_decoder=decoder)
    wall, cpu = time.perf_counter(), time.process_time()
    n = sum(len(y) for _, y in loader.batches(0))
    return n / (time.perf_counter() - wall), (time.process_time() - cpu) / n


def _sched(tid: int) -> float:
    """Seconds thread `tid` has been on a CPU or runnable (waiting for one)."""
    with open(f"/proc/self/task/{tid}/schedstat") as f:
        run_ns, wait_ns, _ = f.read().split()
    return (int(run_ns) + int(wait_ns)) / 1e9


def gil_held(reader, decoder: str, batch: int, batches: int) -> float:
    """Seconds per image the decoding thread held the GIL (see the module docstring)."""
    stop, tid, span = threading.Event(), [], []

    def spin():
        tid.append(threading.get_native_id())
        t0, s0 = time.perf_counter(), _sched(tid[0])
        while not stop.is_set():
            pass
        span.append((time.perf_counter() - t0, _sched(tid[0]) - s0))

    loader = BatchLoader(reader, batch, shuffle=True, seed=0, threads=1, prefetch=0, max_batches=batches,
                         cpu_decoder=decoder)
    spinner = threading.Thread(target=spin)
    spinner.start()
    n = sum(len(y) for _, y in loader.batches(0))
    stop.set()
    spinner.join()
    wall, runnable = span[0]
    return max(0.0, wall - runnable) / n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("store", help="a jpeg store (alexnet prepare --format jpeg)")
    p.add_argument("--threads", type=int, default=2, help="compared with 1 thread")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=8, help="batches per measurement")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians are reported)")
    a = p.parse_args()
    store = open_store(a.store)
    reader = store.split("train")
    decoders = ["pillow"] + (["simplejpeg"] if simplejpeg is not None else [])
    print(f"{store}; {a.batches} batches of {a.batch_size} per measurement, {a.rounds} rounds, "
          f"torch intra-op threads {torch.get_num_threads()} (not used by CPU decoding)")
    run(reader, decoders[0], 1, a.batch_size, 2)  # warm the page cache
    res: dict = {d: {"r1": [], "rn": [], "ratio": [], "cpu1": [], "cpun": [], "gil": []} for d in decoders}
    for _ in range(a.rounds):
        for d in decoders:
            r1, c1 = run(reader, d, 1, a.batch_size, a.batches)
            rn, cn = run(reader, d, a.threads, a.batch_size, a.batches)
            g = gil_held(reader, d, a.batch_size, a.batches)
            for k, v in zip(res[d], (r1, rn, rn / r1, c1, cn, g)):
                res[d][k].append(v)
    med = {d: {k: statistics.median(v) for k, v in r.items()} for d, r in res.items()}
    print(f"{'decoder':<11} {'1 thr img/s':>11} {f'{a.threads} thr img/s':>11} {'ratio':>6} {'range':>11} "
          f"{'CPU ms/img 1':>12} {f'CPU ms/img {a.threads}':>12} {'GIL us/img':>10} {'GIL cap img/s':>13}")
    for d, m in med.items():
        lo, hi = min(res[d]["ratio"]), max(res[d]["ratio"])
        cap = 1 / m["gil"] if m["gil"] > 0 else float("inf")
        print(f"{d:<11} {m['r1']:>11.0f} {m['rn']:>11.0f} {m['ratio']:>5.2f}x {lo:>5.2f}-{hi:<5.2f} "
              f"{1e3 * m['cpu1']:>12.3f} {1e3 * m['cpun']:>12.3f} {1e6 * m['gil']:>10.0f} {cap:>13.0f}")
    if len(decoders) == 2:
        ratio = [s / p for s, p in zip(res["simplejpeg"]["r1"], res["pillow"]["r1"])]
        print(f"simplejpeg / pillow, 1 thread, paired by round: median {statistics.median(ratio):.2f}x "
              f"(range {min(ratio):.2f}-{max(ratio):.2f})")
    print(f"(page cache warm; load from other processes shows in the ranges; {np.__name__} {np.__version__})")


if __name__ == "__main__":
    main()
