"""The figures of one trained net, drawn from its checkpoint and store: Figure 3 (kernels),
Figure 4 left (top-5 bars) and right (nearest training images). Shared by `alexnet viz`, the
HTML report and the TensorBoard images written during training."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ..data.subset import SubsetReader, balanced_indices
from ..evaluate import PredictOptions, predict
from .features import cached_features, figure4_right, nearest
from .predictions import figure4_left
from .results import pyplot


def spread(n_total: int, n: int) -> np.ndarray:
    """n indices spread evenly over 0..n_total-1 (so a class-sorted split shows several classes)."""
    return np.unique(np.linspace(0, n_total - 1, num=min(n, n_total)).round().astype(np.int64))


def centre(images: torch.Tensor, crop: int) -> np.ndarray:
    """(N, 3, S, S) uint8 -> the centre crop x crop patch the net sees, as numpy."""
    o = (images.shape[-1] - crop) // 2
    return images[:, :, o:o + crop, o:o + crop].numpy()


def predictions_figure(model, cfg, store, split: str, n: int, device: torch.device):
    """Figure 4 left for n validation images spread over the split."""
    reader = SubsetReader(store.split(split), spread(len(store.split(split)), n))
    mean = store.mean if cfg.data.mean_image else None
    probs = predict([model], reader, mean, PredictOptions(cfg.data.crop, "center", 64, device, threads=1))
    images = centre(reader.read(np.arange(len(reader))), cfg.data.crop)
    return figure4_left(images, probs, store.class_names, reader.labels)


def neighbours_figure(checkpoint: Path, model, cfg, store, db_split: str, query_split: str, queries: int, k: int,
                      db_per_class: int, device: torch.device, cache: Path):
    """Figure 4 right: `queries` validation images and their k nearest training images in fc7 space
    (features cached in the folder `cache`)."""
    mean = store.mean if cfg.data.mean_image else None
    db_full = store.split(db_split)
    db = SubsetReader(db_full, balanced_indices(db_full.labels, db_per_class)) if db_per_class else db_full
    q = SubsetReader(store.split(query_split), spread(len(store.split(query_split)), queries))
    db_feats = cached_features(cache, checkpoint, model, db, mean, cfg.data.crop, device, store.path)
    q_feats = cached_features(cache, checkpoint, model, q, mean, cfg.data.crop, device, store.path)
    idx, _ = nearest(db_feats, q_feats, k)  # (Q, k)
    neighbour_images = centre(db.read(idx.reshape(-1)), cfg.data.crop).reshape(*idx.shape, 3, cfg.data.crop, cfg.data.crop)
    return figure4_right(centre(q.read(np.arange(len(q))), cfg.data.crop), neighbour_images, q.labels,
                         np.asarray(db.labels)[idx], store.class_names)


def png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    pyplot().close(fig)
    return buf.getvalue()


def png_array(fig) -> np.ndarray:
    """A matplotlib figure as an (H, W, 3) uint8 array (for TensorBoard)."""
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(png(fig))).convert("RGB"))
