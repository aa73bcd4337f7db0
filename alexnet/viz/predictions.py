"""Figure 4 left (§6.1): images with the net's five most probable labels as bars; the correct
label's bar in red (as in the paper), the others blue. Written so that `predict` (ship/) can
draw its panel with `figure4_left` from any probabilities."""
from __future__ import annotations

import numpy as np
import torch
from ..data.names import display_names
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
        colours = ["red" if labels is not None and j == labels[i] else "C0" for j in idx[i]]
        y = np.arange(len(idx[i]))
        bar_ax.barh(y, val[i], color=colours)
        bar_ax.set_yticks(y, [names[j][:18] for j in idx[i]], fontsize=7)
        bar_ax.invert_yaxis()
        bar_ax.set_xlim(0, 1)
        bar_ax.tick_params(axis="x", labelsize=6)
    fig.suptitle("Figure 4 left: five most probable labels (red: the correct one)", fontsize=9)
    fig.tight_layout()
    return fig
