"""The predictions as the paper's Figure 4 (left): each image with its label under it and the five
most probable classes as horizontal bars of their probability; the bar of the true class (when
known) is red."""
from __future__ import annotations

from pathlib import Path

from ..data.convert import open_image
from .predict import Prediction
from .weights import stored_pixels

COLUMNS = 4
PANELS = 16  # at most, so that the labels stay readable
TRUE, OTHER = "#d62728", "#4c72b0"


def figure4(predictions: list[Prediction], path: str | Path, size: int = 256) -> tuple[Path, int]:
    """Draw the readable predictions (the first PANELS) into `path` (PNG, PDF or SVG by its suffix).
    Returns the path and how many were drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [p for p in predictions if not p.error][:PANELS]
    rows = max(1, -(-len(shown) // COLUMNS))
    cols = min(COLUMNS, max(1, len(shown)))
    fig = plt.figure(figsize=(2.6 * cols, 4.2 * rows))
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 2] * rows, hspace=0.15, wspace=0.3)
    for k, p in enumerate(shown):
        r, c = divmod(k, COLUMNS)
        ax = fig.add_subplot(grid[2 * r, c])
        with open_image(p.file) as img:
            ax.imshow(stored_pixels(img, size).permute(1, 2, 0).numpy())  # what the net saw, before the crop
        ax.set_axis_off()
        ax.set_title(p.truth or Path(p.file).name, fontsize=9)
        _bars(fig.add_subplot(grid[2 * r + 1, c]), p)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path), len(shown)


def _bars(ax, p: Prediction) -> None:
    draw_bars(ax, p.probs, p.names or p.classes, [c == p.truth for c in p.classes])


def draw_bars(ax, probs, names: list[str], true: list[bool]) -> None:
    """One panel's bars (Figure 4 left, §6.1): the k most probable classes, most probable on top,
    each named on its bar; the correct class red (`true`), the others blue. viz/predictions.py
    draws its panels with it too."""
    y = range(len(probs))
    ax.barh(y, probs, color=[TRUE if t else OTHER for t in true], height=0.8)
    for i, name in zip(y, names):
        ax.text(0.01, i, name[:28], va="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()  # most probable on top
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=6)
