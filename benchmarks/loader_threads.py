"""Loader alone (no augmentation, no model): img/s of BatchLoader over a store for several
data.threads values, side by side in one process. Shows how JPEG decoding scales with threads.

    python benchmarks/loader_threads.py STORE [--threads 1 2 4] [--batch-size 256] [--batches 20]
"""
import argparse
import time

import torch

from alexnet.data.loader import BatchLoader
from alexnet.data.store import open_store


def rate(reader, batch: int, batches: int, threads: int, device: str, decode: str) -> float:
    loader = BatchLoader(reader, batch, shuffle=True, seed=0, threads=threads, device=device, decode=decode)
    it = loader.batches(0)
    next(it)  # warm-up: threads started, first read-ahead done
    t = time.perf_counter()
    for _ in range(batches):
        images, _ = next(it)
    if images.is_cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t
    it.close()
    return batch * batches / elapsed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--decode", default="cpu", choices=["cpu", "device"])
    a = p.parse_args()
    store = open_store(a.store)
    reader = store.split("train")
    print(f"{store}: batch {a.batch_size}, {a.batches} timed batches, device {a.device}, decode {a.decode}")
    for threads in a.threads:
        print(f"threads {threads:>2}: {rate(reader, a.batch_size, a.batches, threads, a.device, a.decode):9.1f} img/s")


if __name__ == "__main__":
    main()
