"""The last hidden layer (§6.1: 4096-d, fc7 after its ReLU) of every image of a split, computed
once and cached in a folder the user names and can clear (`alexnet viz ... -o OUT`: OUT/features;
`alexnet report`: default_cache()), never beside the checkpoint, and Figure 4 right: the training
images nearest to each query in that space (Euclidean).

Cache file: CACHE/<net file name>-<split>-<n>-<digest>.npy, where the digest covers the net
file's path and bytes (size and mtime), the store and the image indices, so a changed net or
subset is never served stale features."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.augment import eval_views
from ..data.loader import BatchLoader
from ..errors import UserError
from .results import pyplot


@torch.no_grad()
def hidden_features(model: nn.Module, reader, mean: torch.Tensor | None, crop: int, device: torch.device,
                    batch_size: int = 128) -> np.ndarray:
    """(N, D) float32: model.hidden() of the centre patch of every image of `reader`, in order."""
    if not hasattr(model, "hidden"):
        raise UserError("nearest neighbours need the paper net's last hidden layer (model.arch=paper)")
    model.eval()
    mean = None if mean is None else mean.to(device)
    out = []
    for x, _ in BatchLoader(reader, batch_size, shuffle=False, drop_last=False, device=device, threads=1).batches(0):
        out.append(model.hidden(eval_views(x, crop, mean, "center")[0]).float().cpu())  # (B, D)
    return torch.cat(out).numpy()


def default_cache() -> Path:
    """The features cache of commands without an output folder: $XDG_CACHE_HOME/alexnet/features
    (~/.cache/alexnet/features); delete it at any time."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alexnet" / "features"


def cache_path(cache: Path, checkpoint: Path, reader, store_path: Path) -> Path:
    st = checkpoint.stat()
    indices = getattr(reader, "indices", np.arange(len(reader)))
    key = f"{checkpoint.resolve()}|{st.st_size}|{st.st_mtime_ns}|{store_path}|{reader.name}|{len(reader)}"
    digest = hashlib.sha256(key.encode() + np.asarray(indices, np.int64).tobytes()).hexdigest()[:16]
    return Path(cache) / f"{checkpoint.name}-{reader.name}-{len(reader)}-{digest}.npy"


def cached_features(cache: Path, checkpoint: Path, model: nn.Module, reader, mean, crop: int, device: torch.device,
                    store_path: Path) -> np.ndarray:
    """hidden_features, read from the folder `cache` when this net and these images were seen before."""
    path = cache_path(cache, checkpoint, reader, store_path)
    if path.is_file():
        return np.load(path)
    feats = hidden_features(model, reader, mean, crop, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(path)
    return feats


def nearest(database: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k nearest rows of `database` to each query: (indices (Q, k), squared distances
    (Q, k)), nearest first."""
    faiss = import_faiss()
    index = faiss.IndexFlatL2(database.shape[1])
    index.add(np.ascontiguousarray(database, dtype=np.float32))
    dist, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return idx, dist


def neighbour_agreement(database: np.ndarray, database_labels, queries: np.ndarray, query_labels, k: int = 5) -> float:
    """§6.1 by a number: the share of each query's k nearest database images (Euclidean) that share
    its class, averaged over the queries (chance: about 1 / classes for balanced classes)."""
    idx, _ = nearest(database, queries, k)
    return float((np.asarray(database_labels)[idx] == np.asarray(query_labels)[:, None]).mean())


def import_faiss():
    """faiss (the optional `retrieval` extra), or a clear error saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise UserError("nearest-neighbour search needs faiss: pip install 'alexnet[retrieval]' (faiss-cpu)") from None
    return faiss


def figure4_right(queries: np.ndarray, neighbours: np.ndarray, query_labels, neighbour_labels, classes: list[str]):
    """Each row: a query image (uint8 (3, H, W)) and its neighbours (training images); the
    neighbour's class in green when it is the query's, red when not."""
    plt = pyplot()
    q, k = neighbours.shape[:2]
    fig, axes = plt.subplots(q, k + 1, figsize=(1.25 * (k + 1), 1.35 * q), squeeze=False)
    for r in range(q):
        _show(axes[r, 0], queries[r], classes[query_labels[r]], "black")
        for c in range(k):
            same = neighbour_labels[r, c] == query_labels[r]
            _show(axes[r, c + 1], neighbours[r, c], classes[neighbour_labels[r, c]], "green" if same else "red")
    axes[0, 0].set_title("query", fontsize=8, loc="left", pad=12)
    fig.suptitle("Figure 4 right: nearest training images in fc7 space (Euclidean)", fontsize=9)
    fig.tight_layout()
    return fig


def _show(ax, image: np.ndarray, label: str, colour: str) -> None:
    ax.imshow(image.transpose(1, 2, 0))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(label[:16], fontsize=6, color=colour, labelpad=1)
