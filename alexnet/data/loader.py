"""Batches of stored uint8 images, in an order that is a pure function of (seed, epoch), so a
run resumes mid-epoch exactly. A background thread reads ahead while the model computes
(numpy copies and JPEG decoding release the GIL)."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch


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


class BatchLoader:
    def __init__(self, reader, batch_size: int, *, shuffle: bool, seed: int = 0, drop_last: bool = True,
                 rank: int = 0, world: int = 1, prefetch: int = 2, max_batches: int = 0):
        self.reader, self.batch_size, self.shuffle, self.seed = reader, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world, self.prefetch = drop_last, rank, world, prefetch
        self.max_batches = max_batches  # 0: all; >0 truncates each epoch (smoke tests)

    def indices(self, epoch: int) -> np.ndarray:
        order = epoch_order(len(self.reader), epoch, self.seed, self.shuffle)
        return shard(order, self.rank, self.world, even=self.drop_last)

    def __len__(self) -> int:
        n = len(self.reader) // self.world if self.drop_last else len(self.indices(0))
        batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images (B, 3, S, S) uint8, labels (B,) int64) from batch `start` of `epoch`."""
        idx = self.indices(epoch)
        plan = [idx[b * self.batch_size : (b + 1) * self.batch_size] for b in range(start, len(self))]
        if self.prefetch == 0:
            for chunk in plan:
                yield self._read(chunk)
            return
        yield from _prefetched((self._read(chunk) for chunk in plan), self.prefetch)

    def _read(self, chunk: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.reader.read(chunk)
        labels = torch.from_numpy(np.asarray(self.reader.labels)[chunk].astype(np.int64))
        if torch.cuda.is_available():
            images, labels = images.pin_memory(), labels.pin_memory()  # async host-to-device copies
        return images, labels


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
        while not q.empty():  # unblock a producer waiting on a full queue
            q.get_nowait()
