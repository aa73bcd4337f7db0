"""Batches of stored uint8 images delivered on the training device, in an order that is a pure
function of (seed, epoch), so a run resumes mid-epoch exactly.

How a batch is made (one batch ahead of the model, or `prefetch` batches):
  - a read-ahead thread takes the batch's indices; `threads` threads decode slices of it
    (data/jpeg.py: simplejpeg holds no GIL while it decodes, straight into the batch buffer,
    which is channels-last for jpeg stores; raw stores are one numpy copy, GIL released);
  - on CUDA the images land in a reused pinned buffer and are copied to the GPU on a side
    stream, so the copy overlaps the model's compute; with decode="device" the JPEG bytes go
    to nvJPEG instead (torchvision.io.decode_jpeg on the GPU), on the same side stream;
  - the consumer's stream waits for that copy with an event: no host sync in the step.
Augmentation (crop, reflection, PCA noise, mean) then runs on the device: data/augment.py.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from . import jpeg
from ..config import LoaderConfig, check_section
from ..errors import ConfigError


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """A permutation of range(n), the same on every rank and after every resume."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)


def shard(order: np.ndarray, rank: int, world: int, even: bool) -> np.ndarray:
    """This rank's share. even=True (training) drops the last len % world samples so every rank
    takes the same number of steps; even=False (evaluation) keeps them all, so across ranks every
    sample appears exactly once."""
    if even:
        order = order[: len(order) - len(order) % world]
    return order[rank::world]


def auto_threads() -> int:
    """Decode threads when data.threads=0: every core this process may use (at most 32)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(32, cores))


class BatchLoader:
    """`reader`'s images in batches of `batch_size` (this rank's share of each epoch), read as
    `settings` says (the config's loader section, built once: train/parts.py; default: one decode
    thread); keyword `changes` replace fields of it (threads=2, decode="device", ...)."""

    def __init__(self, reader, batch_size: int, *, shuffle: bool, seed: int = 0, drop_last: bool = True,
                 rank: int = 0, world: int = 1, device: torch.device | str = "cpu",
                 settings: LoaderConfig | None = None, **changes):
        self.reader, self.batch_size, self.shuffle, self.seed = reader, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world, self.device = drop_last, rank, world, torch.device(device)
        self.settings = s = dataclasses.replace(settings or LoaderConfig(threads=1), **changes)
        check_section("loader", s)  # the config's choices and ranges (config.py), also for settings built here
        if s.decode == "device" and getattr(reader, "format", "jpeg") != "jpeg":
            raise ConfigError(f"loader.decode=device decodes JPEG on the device, but {reader} is a "
                              f"{reader.format} store: use loader.decode=cpu, or prepare with --format jpeg")
        try:
            self.cpu_decoder = jpeg.resolve(s.cpu_decoder)  # "simplejpeg" or "pillow"
        except ImportError as e:
            raise ConfigError(f"loader.cpu_decoder: {e}") from None
        if s.backend == "dali":
            from .dali_decode import check_dali
            check_dali(s.decode)
        self.threads = s.threads if s.threads > 0 else auto_threads()
        self.prefetch, self.max_batches = s.prefetch, s.max_batches  # max_batches 0: all; >0 truncates each epoch
        self.decode, self.device_share, self.backend = s.decode, s.device_share, s.backend

    def on(self, reader) -> BatchLoader:
        """A loader with these settings over another reader (the experiments' subsets)."""
        return BatchLoader(reader, self.batch_size, shuffle=self.shuffle, seed=self.seed, drop_last=self.drop_last,
                           rank=self.rank, world=self.world, device=self.device, settings=self.settings)

    def indices(self, epoch: int) -> np.ndarray:
        order = epoch_order(len(self.reader), epoch, self.seed, self.shuffle)
        return shard(order, self.rank, self.world, even=self.drop_last)

    def __len__(self) -> int:
        n = len(self.reader) // self.world if self.drop_last else len(self.indices(0))
        batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    def forever(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Epoch after epoch from `epoch`, without end (benchmarks); closing it stops the read-ahead."""
        for e in itertools.count(epoch):
            yield from self.batches(e)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images (B, 3, S, S) uint8, labels (B,) int64), both on the device, from batch
        `start` of `epoch`."""
        idx = self.indices(epoch)
        plan = [idx[b * self.batch_size : (b + 1) * self.batch_size] for b in range(start, len(self))]
        fetch = _Fetcher(self)
        items = (fetch(chunk) for chunk in plan)
        if self.prefetch:
            items = _prefetched(items, self.prefetch)
        try:
            for images, labels, ready in items:
                if ready is not None:  # CUDA: made on the side stream; order the consumer after it
                    stream = torch.cuda.current_stream(self.device)
                    stream.wait_event(ready)
                    images.record_stream(stream)  # the allocator must not hand the memory back early
                    labels.record_stream(stream)
                yield images, labels
        finally:
            items.close()
            fetch.close()


class _Fetcher:
    """Makes one batch: decode on CPU threads (into a reused pinned buffer on CUDA), then copy
    to the GPU on a side stream; or, decode="device", hand the JPEG bytes to the device decoder,
    all of them, or the first `device_share` of the batch while CPU threads decode the rest."""

    SLOTS = 2  # pinned staging buffers: one being filled while the other's copy finishes

    def __init__(self, loader: BatchLoader):
        self.reader, self.device, self.decode = loader.reader, loader.device, loader.decode
        self.threads, self.batch_size = loader.threads, loader.batch_size
        self.jpeg = getattr(self.reader, "format", None) == "jpeg"
        self.decoder = (loader.cpu_decoder,) if self.jpeg else ()  # read()'s decoder argument: jpeg readers only
        self.share = loader.device_share if self.decode == "device" else 0.0
        cpu_work = self.threads > 1 if self.decode == "cpu" else self.share < 1
        self.pool = ThreadPoolExecutor(self.threads) if cpu_work else None
        self.device_decode = _device_decoder(loader) if self.decode == "device" else None
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.slots: list[tuple[torch.Tensor, torch.cuda.Event | None]] = []
        self.turn = self.SLOTS - 1  # the first batch takes slot 0

    def __call__(self, chunk: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.cuda.Event | None]:
        labels = torch.from_numpy(np.asarray(self.reader.labels)[chunk].astype(np.int64))
        k = round(len(chunk) * self.share)  # images decoded on the device: chunk[:k]
        rest = chunk[k:]  # decoded on CPU threads, meanwhile
        buf = None if not len(rest) else self._staging(len(rest)) if self.cuda else self._buffer(len(rest))
        jobs = self._submit(rest, buf)
        with self._side():
            parts = [self._device_decode(chunk[:k])] if k else []
            _wait(jobs)  # re-raises a thread's decode error here
            if len(rest):
                parts.append(buf.to(self.device, non_blocking=True) if self.cuda else buf)  # async: buf is pinned
            images = parts[0] if len(parts) == 1 else torch.cat(parts)  # (B, 3, S, S) uint8, chunk order
            labels = labels.to(self.device, non_blocking=True)
            ready = self._record()
        if self.cuda and len(rest):
            self.slots[self.turn] = (self.slots[self.turn][0], ready)  # buf is busy until `ready`
        return images, labels, ready

    def _device_decode(self, chunk: np.ndarray) -> torch.Tensor:
        """(B, 3, S, S) uint8 on the device (nvJPEG on CUDA). A decode error is re-read on the CPU,
        whose decoder names a damaged image (StoreError); if the CPU decodes it, the error stands."""
        try:
            return self.device_decode(self.reader.read_encoded(chunk), self.device)
        except RuntimeError:
            self.reader.read(chunk, None, *self.decoder)
            raise

    def _submit(self, chunk: np.ndarray, out: torch.Tensor | None) -> list:
        """Start decoding `chunk` into `out` in `threads` slices (or decode it now, without a pool)."""
        if out is None:  # nothing for the CPU
            return []
        if self.pool is None:
            self.reader.read(chunk, out, *self.decoder)
            return []
        bounds = np.linspace(0, len(chunk), min(self.threads, len(chunk)) + 1).astype(int)
        return [self.pool.submit(self.reader.read, chunk[a:b], out[a:b], *self.decoder) for a, b in zip(bounds, bounds[1:])]

    def _staging(self, n: int) -> torch.Tensor:
        """The next pinned buffer, once the GPU has finished copying out of it."""
        self.turn = (self.turn + 1) % self.SLOTS
        if len(self.slots) == self.turn:  # first use: allocate
            self.slots.append((self._buffer(self.batch_size, pin=True), None))
        buf, busy = self.slots[self.turn]
        if busy is not None:
            busy.synchronize()  # blocks this read-ahead thread only
        return buf[:n]

    def _buffer(self, n: int, pin: bool = False) -> torch.Tensor:
        """(n, 3, S, S) uint8 for a batch: channels-last in memory for jpeg stores (decoded in place)."""
        size = self.reader.size
        if self.jpeg:
            return jpeg.batch_buffer(n, size, pin)
        return torch.empty((n, 3, size, size), dtype=torch.uint8, pin_memory=pin)

    def _side(self):
        return torch.cuda.stream(self.stream) if self.cuda else contextlib.nullcontext()

    def _record(self) -> torch.cuda.Event | None:
        if not self.cuda:
            return None
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _wait(jobs: list) -> None:
    """Wait for every job; the first error re-raises here (the others' are dropped)."""
    for job in jobs:
        job.result()


def _device_decoder(loader: BatchLoader):
    """(B encoded JPEGs, device) -> (B, 3, S, S) uint8 on the device, from the backend's library."""
    if loader.backend == "dali":
        from .dali_decode import DaliDecoder
        return DaliDecoder(loader.batch_size, loader.threads)
    from .gpu_decode import decode_batch
    return decode_batch


def _prefetched(items: Iterator, depth: int) -> Iterator:
    """Run the iterator `items` in a thread, `depth` items ahead. Errors re-raise in the caller."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue, then let it finish
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
