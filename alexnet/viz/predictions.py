"""Figure 4 left (§6.1): images with the net's five most probable labels as bars; the correct
label's bar in red (as in the paper), the others blue. The bars are ship/figure.py's
`draw_bars`, the same as `alexnet predict --figure` draws."""
from __future__ import annotations

import numpy as np
import torch

from ..data.names import display_names
from ..ship.figure import draw_bars
from .results import pyplot


def readable(classes: list[str]) -> list[str]:
    """Class names for display: known Imagenette wnids become words; other names stay (a store's
    own names come from `Store.class_names`)."""
    return display_names(classes)


def top5(probs: torch.Tensor | np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities -> the k most probable classes and their probabilities, (N, k) each."""
    p = torch.as_tensor(probs, dtype=torch.float32)
    values, indices = p.topk(min(k, p.shape[1]), dim=1)
    return indices.numpy(), values.numpy()


def figure4_left(images: np.ndarray, probs, classes: list[str], labels=None, per_row: int = 4):
    """images: (N, 3, H, W) uint8; probs: (N, C); labels: (N,) true classes or None."""
    plt = pyplot()
    names = readable(classes)
    idx, val = top5(probs)
    n = len(images)
    rows = -(-n // per_row)
    fig, axes = plt.subplots(2 * rows, per_row, figsize=(2.3 * per_row, 3.3 * rows),
                             gridspec_kw={"height_ratios": [1.6, 1] * rows}, squeeze=False)
    for i in range(rows * per_row):
        r, c = divmod(i, per_row)
        img_ax, bar_ax = axes[2 * r, c], axes[2 * r + 1, c]
        img_ax.axis("off")
        if i >= n:
            bar_ax.axis("off")
            continue
        img_ax.imshow(images[i].transpose(1, 2, 0))
        if labels is not None:
            img_ax.set_title(names[labels[i]], fontsize=8)
        draw_bars(bar_ax, val[i], [names[j] for j in idx[i]], [labels is not None and j == labels[i] for j in idx[i]])
    fig.suptitle("Figure 4 left: five most probable labels (red: the correct one)", fontsize=9)
    fig.tight_layout()
    return fig
