"""Why JPEG decode threads do or do not scale: for each CPU decoder (data/jpeg.py), through the
training loader (BatchLoader, CPU, no read-ahead), side by side in one process, in alternating rounds:

  img/s with 1 and with N decode threads, and their ratio per round (the median is reported);
  CPU seconds per image (process time: what a core pays, whatever the load of the machine);
  CPU time per image outside libjpeg's decode (see outside_decode): an upper bound on the time
    each image holds the GIL. With G seconds held per image, threads can never deliver more than
    1/G img/s in all, whatever the number of cores.

    python benchmarks/decode_scaling.py STORE [--threads 2 4 16] [--batch-size 64] [--batches 8] [--rounds 5]
"""
import argparse
import statistics
import time

import numpy as np
import torch

from alexnet.data import jpeg
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


def outside_decode(reader, decoder: str, n: int) -> float:
    """CPU seconds per image the reader spends outside libjpeg's decode, on this thread: its
    read() of n images minus a bare simplejpeg.decode_jpeg of the same files (the same library and
    pixels, one C call that holds no GIL). That remainder (Python, file parsing, copies) is where the
    GIL can be held: an upper bound on the GIL-held time per image, measured in thread CPU time so
    that the load of the machine does not inflate it."""
    idx = np.arange(min(n, len(reader)))
    files = [f.numpy() for f in reader.read_encoded(idx)]
    out = jpeg.batch_buffer(len(idx), reader.size)
    out.zero_()  # touched: page faults of a fresh buffer are not the decoder's (the loader reuses its buffers)
    scratch = np.zeros((reader.size, reader.size, 3), np.uint8)
    t = time.thread_time()
    for f in files:
        simplejpeg.decode_jpeg(f, "RGB", buffer=scratch)
    bare = time.thread_time() - t
    t = time.thread_time()
    reader.read(idx, out, decoder)
    return max(0.0, time.thread_time() - t - bare) / len(idx)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("store", help="a jpeg store (alexnet prepare --format jpeg)")
    p.add_argument("--threads", type=int, nargs="+", default=[2], help="thread counts compared with 1 thread")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=8, help="batches per measurement")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians are reported)")
    a = p.parse_args()
    if simplejpeg is None:
        raise SystemExit("needs simplejpeg (pip install simplejpeg): it is the yardstick of the decode itself")
    store = open_store(a.store)
    reader = store.split("train")
    decoders = ["pillow", "simplejpeg"]
    print(f"{store}; {a.batches} batches of {a.batch_size} per measurement, {a.rounds} rounds, "
          f"torch intra-op threads {torch.get_num_threads()} (not used by CPU decoding)")
    run(reader, decoders[0], 1, a.batch_size, 2)  # warm the page cache
    res: dict = {d: {"r1": [], "cpu1": [], "gil": []} | {f"{k}{n}": [] for n in a.threads for k in ("r", "x", "cpu")}
                 for d in decoders}
    for _ in range(a.rounds):
        for d in decoders:
            r1, c1 = run(reader, d, 1, a.batch_size, a.batches)
            res[d]["r1"].append(r1)
            res[d]["cpu1"].append(c1)
            for n in a.threads:
                rn, cn = run(reader, d, n, a.batch_size, a.batches)
                res[d][f"r{n}"].append(rn)
                res[d][f"x{n}"].append(rn / r1)
                res[d][f"cpu{n}"].append(cn)
            res[d]["gil"].append(outside_decode(reader, d, a.batch_size * a.batches))
    med = {d: {k: statistics.median(v) for k, v in r.items()} for d, r in res.items()}
    print(f"{'decoder':<11} {'threads':>7} {'img/s':>7} {'vs 1 thread':>11} {'range':>11} {'CPU ms/img':>10}")
    for d, m in med.items():
        print(f"{d:<11} {1:>7} {m['r1']:>7.0f} {'':>11} {'':>11} {1e3 * m['cpu1']:>10.3f}")
        for n in a.threads:
            lo, hi = min(res[d][f"x{n}"]), max(res[d][f"x{n}"])
            print(f"{d:<11} {n:>7} {m[f'r{n}']:>7.0f} {m[f'x{n}']:>10.2f}x {lo:>5.2f}-{hi:<5.2f} "
                  f"{1e3 * m[f'cpu{n}']:>10.3f}")
    for d, m in med.items():
        cap = 1 / m["gil"] if m["gil"] > 0 else float("inf")
        print(f"{d:<11} CPU outside the decode {1e6 * m['gil']:.0f} us/image (where the GIL can be held): "
              f"threads together cannot exceed ~{cap:.0f} img/s if all of it holds the GIL")
    ratio = [s / p for s, p in zip(res["simplejpeg"]["r1"], res["pillow"]["r1"])]
    print(f"simplejpeg / pillow, 1 thread, paired by round: median {statistics.median(ratio):.2f}x "
          f"(range {min(ratio):.2f}-{max(ratio):.2f})")
    print(f"(page cache warm; load from other processes shows in the ranges; {np.__name__} {np.__version__})")


if __name__ == "__main__":
    main()
