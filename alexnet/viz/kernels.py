"""Figure 3 (§6.1): the first convolutional layer's kernels as an image grid, the two columns
(GPUs) apart, and a measure of the paper's observation that one column learns mostly
colour-agnostic kernels and the other mostly colour-specific ones.

Chroma of a kernel w (3, k, k): take away its mean (a flat grey offset), then the share of what
is left that is not grey: ||w0 - grey(w0)||^2 / ||w0||^2, where grey(w0) repeats the mean over
the three colour channels. 0 = a pure luminance kernel; random kernels average 2/3.

Low-frequency share of a kernel: the share of its energy (the squared 2-D DFT over the k x k
taps, summed over R, G, B) at spatial frequencies within LOW_CUTOFF cycles per pixel of zero
(Nyquist: 0.5). Smooth blobs, edges and low-frequency gratings score high; a kernel of i.i.d.
weights has a flat expected spectrum, so its share is the share of frequency bins inside the
cutoff (random_low_share). Together with the chroma split between the columns, these judge
Figure 3 by numbers beside the same numbers of the net at its initialisation."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from .results import pyplot

RANDOM_CHROMA = 2 / 3  # expected chroma of a kernel with i.i.d. weights: 2 of 3 colour directions are not grey
LOW_CUTOFF = 0.25  # cycles per pixel: the lower half of the band up to Nyquist


def first_conv(model: nn.Module) -> nn.Conv2d:
    """conv1 of any of the package's nets: the first Conv2d that reads 3 channels."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3:
            return m
    raise ValueError("the model has no convolution over an RGB image")


def columns_of(model: nn.Module) -> int:
    """How many columns conv1's kernels are split into (§3.2): 2 for the paper net, else 1."""
    cfg = getattr(model, "cfg", None)
    return cfg.columns if cfg is not None and cfg.arch == "paper" else 1


def chroma(weight: torch.Tensor) -> np.ndarray:
    """(K, 3, k, k) kernels -> (K,) chroma in [0, 1] (module docstring)."""
    w = weight.detach().double().cpu().flatten(2)  # (K, 3, k*k)
    w0 = w - w.mean(dim=(1, 2), keepdim=True)
    colour = w0 - w0.mean(dim=1, keepdim=True)
    return (colour.pow(2).sum(dim=(1, 2)) / w0.pow(2).sum(dim=(1, 2)).clamp_min(1e-30)).numpy()


def column_chroma(model: nn.Module) -> list[dict]:
    """Per column: its kernels' mean and median chroma, and how many are mostly colour (chroma > 0.5)."""
    c = chroma(first_conv(model).weight)
    out = []
    for i, part in enumerate(np.array_split(c, columns_of(model))):
        out.append({"column": i + 1, "kernels": int(part.size), "mean_chroma": float(part.mean()),
                    "median_chroma": float(np.median(part)), "colour_kernels": int((part > 0.5).sum())})
    return out


def _low_mask(k: int) -> torch.Tensor:
    f = torch.fft.fftfreq(k, dtype=torch.float64)  # cycles per pixel
    return (f[:, None] ** 2 + f[None, :] ** 2).sqrt() <= LOW_CUTOFF  # (k, k)


def low_frequency_share(weight: torch.Tensor) -> np.ndarray:
    """(K, 3, k, k) kernels -> (K,) share of each kernel's energy at low spatial frequency (module docstring)."""
    w = weight.detach().double().cpu()
    power = torch.fft.fft2(w).abs().pow(2).sum(dim=1)  # (K, k, k)
    low = power[:, _low_mask(w.shape[-1])].sum(dim=1)
    return (low / power.flatten(1).sum(dim=1).clamp_min(1e-30)).numpy()


def random_low_share(k: int) -> float:
    """The expected low-frequency share of a k x k kernel of i.i.d. weights: the share of bins inside the cutoff."""
    return float(_low_mask(k).double().mean())


def kernel_stats(model: nn.Module) -> dict:
    """conv1 by numbers: the mean low-frequency share of its kernels, the columns' mean chroma and
    how far apart they are (0 with one column), and the values i.i.d. random kernels would have."""
    conv = first_conv(model)
    cols = column_chroma(model)
    return {"low_frequency_share": float(low_frequency_share(conv.weight).mean()),
            "chroma_split": abs(cols[0]["mean_chroma"] - cols[-1]["mean_chroma"]),
            "columns": cols, "random_low_frequency_share": random_low_share(conv.kernel_size[0]),
            "random_chroma": RANDOM_CHROMA}


def kernel_grid(model: nn.Module, per_row: int = 8, gap: int = 1, column_gap: int = 6) -> np.ndarray:
    """conv1's kernels as one RGB image (H, W, 3) uint8: each column's kernels in a block of rows,
    blocks one above the other (the paper's layout: GPU 1 on top) with a white band between them.
    Each kernel is scaled to its own largest absolute weight (grey = 0)."""
    w = first_conv(model).weight.detach().float().cpu()  # (K, 3, k, k)
    w = 0.5 + w / (2 * w.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12))
    tiles = (w.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (K, k, k, 3)
    blocks = [_tile(part, per_row, gap) for part in np.array_split(tiles, columns_of(model))]
    band = np.full((column_gap, blocks[0].shape[1], 3), 255, np.uint8)
    out = [blocks[0]]
    for b in blocks[1:]:
        out += [band, b]
    return np.concatenate(out)


def _tile(tiles: np.ndarray, per_row: int, gap: int) -> np.ndarray:
    n, k = tiles.shape[0], tiles.shape[1]
    rows = -(-n // per_row)
    grid = np.full((rows * (k + gap) + gap, per_row * (k + gap) + gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, per_row)
        grid[gap + r * (k + gap): gap + r * (k + gap) + k, gap + c * (k + gap): gap + c * (k + gap) + k] = tiles[i]
    return grid


def figure3(model: nn.Module, title: str = ""):
    """The kernel grid with each column's mean chroma, as a matplotlib figure."""
    plt = pyplot()
    grid = kernel_grid(model, per_row=16 if first_conv(model).out_channels >= 64 else 8)
    stats = column_chroma(model)
    fig, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1] + 0.8))
    ax.imshow(grid, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title or "Figure 3: conv1 kernels" + (", column 1 above column 2" if len(stats) == 2 else ""))
    fig.text(0.5, 0.01, "; ".join(f"column {s['column']}: mean chroma {s['mean_chroma']:.2f}, "
                                  f"{s['colour_kernels']}/{s['kernels']} colour" for s in stats)
             + f" (random: {RANDOM_CHROMA:.2f})", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
