"""Where a run's wall time goes, for `alexnet bench train`: the loop wraps its parts in
`phases("data" | "step" | "validation" | "checkpoint")`. The default `Phases` does nothing; a
`PhaseTimer` (passed in by a benchmark) adds up each part's wall time. With sync=True it waits for
the device at each boundary, so the GPU work a part queued is charged to that part (at the cost
of the overlap between parts that an unmeasured run has)."""
from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator

import torch

from ..runtime import sync


class Phases:
    """No measurement (what the loop uses unless a benchmark passes a PhaseTimer)."""

    def __call__(self, name: str):
        return contextlib.nullcontext()

    def iterate(self, name: str, items: Iterable) -> Iterable:
        return items


class PhaseTimer(Phases):
    def __init__(self, device: torch.device, sync_device: bool = True):
        self.device, self.sync_device = device, sync_device
        self.times: dict[str, list[float]] = defaultdict(list)  # seconds of every call, in order

    @contextlib.contextmanager
    def __call__(self, name: str):
        if self.sync_device:
            sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync_device:
                sync(self.device)
            self.times[name].append(time.perf_counter() - start)

    def iterate(self, name: str, items: Iterable) -> Iterator:
        """`items`, each next() timed as `name` (waiting for the loader is the "data" phase)."""
        it = iter(items)
        try:
            while True:
                with self(name):
                    item = next(it, _END)
                if item is _END:
                    return
                yield item
        finally:
            if hasattr(it, "close"):
                it.close()

    def summary(self, wall: float) -> dict[str, dict]:
        """Per phase: total seconds, share of `wall`, calls, first and median call; plus "other"."""
        out = {}
        for name, ts in self.times.items():
            ordered = sorted(ts)
            out[name] = {"seconds": sum(ts), "share": sum(ts) / wall, "calls": len(ts), "first_s": ts[0],
                         "median_s": ordered[len(ordered) // 2]}
        other = wall - sum(v["seconds"] for v in out.values())
        out["other"] = {"seconds": other, "share": other / wall, "calls": None, "first_s": None, "median_s": None}
        return out


_END = object()
