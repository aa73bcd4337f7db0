"""Short binary codes (§6.1, the paper's proposal, never built by it): an auto-encoder
compresses the last hidden layer's vectors to 64/128/256 bits; images are retrieved by Hamming
distance between codes (faiss' binary index). Compared on precision@k of same-class
neighbours and query time with exact Euclidean search on the full vectors, and with the same
auto-encoder on raw pixels (which the paper expects to be much worse: it would match edge
patterns, not meaning).

The code layer is a sigmoid whose output is rounded to 0/1 in the forward pass, with the
sigmoid's gradient in the backward pass (a straight-through estimator), so the decoder learns
from the very bits that are stored."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .features import import_faiss
from .features import nearest as euclidean_search  # noqa: F401  exact search, the baseline


class BinaryAutoencoder(nn.Module):
    """D -> hidden -> bits (0/1) -> hidden -> D, on standardised inputs."""

    def __init__(self, dim: int, bits: int, hidden: int = 512):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, bits))
        self.decoder = nn.Sequential(nn.Linear(bits, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, bits) in {0, 1}, differentiable through the sigmoid (straight-through)."""
        soft = torch.sigmoid(self.encoder(x))
        return soft + ((soft > 0.5).float() - soft).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.code(x))


@dataclass
class Codec:
    """A trained auto-encoder and the standardisation of its inputs."""

    model: BinaryAutoencoder
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> np.ndarray:
        """(N, D) float -> (N, bits / 8) uint8 codes, packed as faiss' binary indexes want them."""
        z = torch.from_numpy(((x - self.mean) / self.std).astype(np.float32))
        bits = (torch.sigmoid(self.model.encoder(z)) > 0.5).numpy()
        return np.packbits(bits, axis=1)


def train_codec(x: np.ndarray, bits: int, steps: int = 2000, batch: int = 256, lr: float = 1e-3, seed: int = 0) -> Codec:
    """Fit a BinaryAutoencoder with `bits` code bits to the rows of x (N, D) by mean squared error."""
    if bits % 8:
        raise ValueError(f"bits must be a multiple of 8, got {bits}")
    mean, std = x.mean(0), x.std(0) + 1e-6
    data = torch.from_numpy(((x - mean) / std).astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BinaryAutoencoder(x.shape[1], bits)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        xb = data[torch.randint(0, len(data), (min(batch, len(data)),), generator=gen)]
        loss = F.mse_loss(model(xb), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return Codec(model.eval(), mean, std)


def hamming_search(db_codes: np.ndarray, query_codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest codes by Hamming distance (faiss IndexBinaryFlat): (indices, distances), (Q, k) each."""
    index = import_faiss().IndexBinaryFlat(db_codes.shape[1] * 8)
    index.add(np.ascontiguousarray(db_codes))
    dist, idx = index.search(np.ascontiguousarray(query_codes), k)
    return idx, dist


def precision_at_k(neighbours: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray, k: int) -> float:
    """Mean over queries of the share of the first k neighbours that have the query's class."""
    return float((db_labels[neighbours[:, :k]] == query_labels[:, None]).mean())


def timed(search, *args, repeats: int = 3) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """(result, best wall time over `repeats` runs, in seconds)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = search(*args)
        best = min(best, time.perf_counter() - t0)
    return out, best
