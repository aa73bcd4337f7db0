"""A fixed part of a split, read through the same interface as the split (SplitReader): for
CPU-sized experiments that train or evaluate on a class-balanced subset of a store."""
from __future__ import annotations

import numpy as np
import torch


def balanced_indices(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """`per_class` indices of every class (all of a smaller class), drawn with `seed`, sorted."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def holdout_indices(labels: np.ndarray, share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held): `share` of every class held out (rounded, at least one image of a class with
    two or more), drawn with `seed`; two disjoint sorted index arrays that together cover `labels`."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(len(members) - 1, max(1, round(share * len(members))))
        held.append(rng.permutation(members)[:k])
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), held), held


class SubsetReader:
    """The images of `reader` at `indices`, renumbered 0..len-1."""

    def __init__(self, reader, indices: np.ndarray):
        self.reader = reader
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name, self.size, self.format = reader.name, reader.size, reader.format
        self.count = len(self.indices)
        self.labels: np.ndarray = np.asarray(reader.labels)[self.indices]  # (N,) int64

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"SubsetReader({self.count} of {self.reader!r})"

    def read(self, indices: np.ndarray, out: torch.Tensor | None = None, *decoder) -> torch.Tensor:
        return self.reader.read(self.indices[np.asarray(indices, dtype=np.int64)], out, *decoder)

    def read_encoded(self, indices: np.ndarray) -> list[torch.Tensor]:
        return self.reader.read_encoded(self.indices[np.asarray(indices, dtype=np.int64)])
