"""What a prepare will cost, said before it starts: the images, the store's size on disk (exact
for raw, from a measured sample for jpeg), the free space, and the time from converting a short
sample on this host; `check` refuses when the disk cannot hold it."""
from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .convert import Job, convert_chunk
from .sources import Entry

MARGIN = 0.1  # of the estimated store: the sample's spread (JPEG sizes vary), the small files beside it
MARGIN_BYTES = 4 * 2**20  # and a few MB for the file system's blocks and the files of an almost empty store
SAMPLE = 32  # images converted to measure (1 in 100 of a small set, at least 4); spread over the set
FreeSpace = Callable[[Path], int]
"""Bytes free on the disk holding a path (tests inject a small one to stand for a full disk)."""


def free_space(path: Path) -> int:
    return shutil.disk_usage(_existing(path)).free


@dataclass
class Estimate:
    images: int  # still to convert
    total: int  # in the plan
    store_bytes: int  # on disk for the images still to convert
    free_bytes: int
    seconds: float  # to convert them, from the sample, over `workers` processes
    sample: int  # images converted to measure
    per_image: float  # seconds per image over the sample, one process
    workers: int
    what: str  # "raw 256px" / "jpeg q90 256px"
    where: Path

    def needed(self) -> int:
        """The store's bytes with a margin: the estimate is from a sample, and the labels, offsets,
        names, manifest, mean image and the file system's own blocks come on top (issue 31: an
        estimate of 962.6 KB "fit" in 1.0 MB free, then the disk filled)."""
        return int(self.store_bytes * (1 + MARGIN)) + MARGIN_BYTES

    def fits(self) -> bool:
        return self.needed() <= self.free_bytes

    def line(self) -> str:
        todo = f"{self.images:,} images" if self.images == self.total else f"{self.images:,} of {self.total:,} images left"
        rate = f"{self.per_image * 1e3:.1f} ms/img on {self.sample} sampled, {self.workers} worker(s)"
        return (f"prepare: {todo} -> {self.what} store of {_bytes(self.store_bytes)}; {_bytes(self.free_bytes)} free "
                f"on {self.where}; {'under' if self.seconds < 1 else 'about'} {_duration(self.seconds)} ({rate})")

    def refusal(self) -> str:
        return (f"{self.where} has {_bytes(self.free_bytes)} free but the {self.what} store needs about "
                f"{_bytes(self.store_bytes)} more, {_bytes(self.needed())} with a margin ({self.images:,} images): "
                "free space, choose another OUT, or make a smaller store (--format jpeg, a smaller --size, --classes N, --limit-per-class N)")


def estimate(entries: list[Entry], total: int, read: Callable[[Entry], bytes], *, size: int, fmt: str,
             quality: int, subsampling: str, progressive: bool, draft: bool, workers: int, out: Path,
             space: FreeSpace = free_space, stream: bool = False) -> Estimate:
    """Convert a sample of `entries` (those still to convert) as a worker does (read, decode, §2
    resize and crop, encode, the §2/§4.1 sums) and scale it up to all of them.
    `stream`: the source is one compressed stream, so sample its first members (cheap to reach)."""
    picks = _sample(entries, stream)
    per_image, image_bytes = 0.0, 3 * size * size
    if picks:
        def job(items: list) -> Job:
            return Job(-1, picks[0].split, size, fmt, quality, True, items, draft, None, subsampling, progressive)
        t = time.perf_counter()
        items = []
        for e in picks:
            try:
                items.append((0, e.name, read(e), ""))
            except OSError as err:
                items.append((0, e.name, None, f"cannot read: {err}"))
        reading = time.perf_counter() - t
        convert_chunk(job(items[:1]))  # warm-up: the first image pays for the decoders' set-up
        t = time.perf_counter()
        res = convert_chunk(job(items))
        per_image = (reading + time.perf_counter() - t) / len(picks)
        if fmt == "jpeg" and res.lengths:
            image_bytes = statistics.fmean(res.lengths)
    # + the label (int64), the offset (jpeg, int64) and the source path written beside each image
    extra = 8 + (8 if fmt == "jpeg" else 0) + (statistics.fmean(len(e.name) + 1 for e in picks) if picks else 0)
    what = f"jpeg q{quality} {size}px" if fmt == "jpeg" else f"raw {size}px"
    where = _existing(out)
    workers = max(1, min(workers, os.cpu_count() or 1))
    return Estimate(len(entries), total, int(len(entries) * (image_bytes + extra)), space(out),
                    len(entries) * per_image / workers, len(picks), per_image, workers, what, where)


def _sample(entries: list[Entry], stream: bool) -> list[Entry]:
    k = min(SAMPLE, max(4, len(entries) // 100), len(entries))  # a 100-image prepare should not wait for it
    if not k:
        return []
    if stream:
        return sorted(entries, key=lambda e: e.offset)[:k]
    return [entries[i * len(entries) // k] for i in range(k)]


def _existing(path: Path) -> Path:
    while not path.exists():  # OUT may not exist yet: its nearest existing folder is on the same disk
        path = path.parent
    return path


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _duration(s: float) -> str:
    if s < 1:
        return "1 s"
    if s < 60:
        return f"{s:.0f} s"
    m = round(s / 60)
    return f"{m} min" if m < 60 else f"{m // 60} h {m % 60:02d} min"
