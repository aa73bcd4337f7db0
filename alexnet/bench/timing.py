"""The one way the benchmarks time things: run a callable after warm-up, synchronising the device
so that queued GPU work is counted, and report per-call times and the whole stretch."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..runtime import sync


@dataclass
class Timing:
    calls: int
    seconds: float  # wall time of all timed calls together
    median: float  # median seconds per call (per_call=True), else seconds / calls

    def rate(self, items_per_call: int) -> float:
        """Items per second over the whole stretch."""
        return items_per_call * self.calls / self.seconds


def timed(fn: Callable[[], object], calls: int, warmup: int, device: torch.device, per_call: bool = True) -> Timing:
    """Time `calls` calls of fn after `warmup` untimed ones (compilation, cuDNN autotuning, the
    allocator, loader read-ahead). per_call=True syncs after every call and keeps the median;
    per_call=False syncs only at the ends, so consecutive calls may overlap as in training."""
    for _ in range(warmup):
        fn()
        if per_call:
            sync(device)
    sync(device)
    times = []
    start = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        if per_call:
            sync(device)
            times.append(time.perf_counter() - t)
    sync(device)
    total = time.perf_counter() - start
    median = sorted(times)[len(times) // 2] if times else total / calls
    return Timing(calls, total, median)
