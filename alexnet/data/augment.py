"""§4.1 data augmentation and §4.1/§6 evaluation views, as batched tensor ops that run on
whatever device trains (the same code on CPU and GPU).

Training: per image a random crop, a random horizontal reflection, PCA colour noise, and the
mean image subtracted (§2). Pixels stay on the 0..255 scale, as the paper's raw RGB values.

PCA colour noise (§4.1): to every pixel of an image add P (a * lam), a_i ~ N(0, pca_std), drawn
once per image per use. The paper does not fix the scale of lam. We take the covariance of
0..255 RGB values over the training set and
  - "std" (default): lam_i = sqrt(eigenvalue_i), the standard deviation along each principal
    axis, so the noise is a fraction (0.1) of the natural colour spread: about 5 levels of 255
    along the first axis on ImageNet-like data. This is also what common ImageNet
    reimplementations use (their eigval ~ [0.2175, 0.0188, 0.0045] on a 0..1 scale).
  - "variance": the formula read literally on a 0..1 pixel scale (lam_i = eigenvalue of the
    0..1 covariance), converted back to 0..255 units; its noise is 50-250x weaker.
The noise covariance is P diag(pca_std^2 lam^2) P^T either way (tests check it).

Random numbers come from a CPU torch.Generator the caller seeds, so the draws are identical
on every device and a run can be replayed from (seed, step).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import DataConfig
from ..runtime import to_device


@dataclass
class Draws:
    """One batch's random choices; everything else in augmentation is deterministic."""

    ys: torch.Tensor  # (B,) int64 top rows
    xs: torch.Tensor  # (B,) int64 left columns
    flip: torch.Tensor  # (B,) bool
    alpha: torch.Tensor  # (B, 3) float32 PCA coefficients a_i

    def to(self, device: torch.device) -> Draws:
        """The draws on `device`, copied without a host sync (runtime.to_device)."""
        return Draws(*(to_device(t, device) for t in (self.ys, self.xs, self.flip, self.alpha)))


def draw(batch: int, size: int, crop: int, generator: torch.Generator, flip: bool = True,
         pca_std: float = 0.1, random_crop: bool = True) -> Draws:
    hi = size - crop + 1  # §4.1 any of the (S-224+1)^2 positions
    ys = torch.randint(0, hi, (batch,), generator=generator)
    xs = torch.randint(0, hi, (batch,), generator=generator)
    if not random_crop:  # the centre patch only (the same draws are made, so the other choices do not change)
        ys, xs = torch.full_like(ys, (size - crop) // 2), torch.full_like(xs, (size - crop) // 2)
    flips = torch.rand(batch, generator=generator) < 0.5 if flip else torch.zeros(batch, dtype=torch.bool)
    alpha = torch.randn(batch, 3, generator=generator) * pca_std
    return Draws(ys, xs, flips, alpha)


def pca_lambda(eigvals: torch.Tensor, scale: str = "std") -> torch.Tensor:
    """The lam_i that multiply a_i, in 0..255 units (see module docstring)."""
    if scale == "std":
        return eigvals.clamp_min(0).sqrt()
    return eigvals / 255.0  # eigenvalue of the 0..1 covariance (= e/255^2), times 255 back to 0..255 units


def pca_shift(alpha: torch.Tensor, eigvecs: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Per-image RGB offsets P (a * lam): (B, 3) from alpha (B, 3), eigvecs (3, 3) columns, lam (3,)."""
    return (alpha * lam) @ eigvecs.T


def crop_flip(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, flip: torch.Tensor, crop: int) -> torch.Tensor:
    """Per-image crops (and reflections) in one gather. x: (B, C, S, S) -> (B, C, crop, crop)."""
    ar = torch.arange(crop, device=x.device)
    rows = ys.to(x.device)[:, None] + ar  # (B, crop)
    cols = xs.to(x.device)[:, None] + ar
    cols = torch.where(flip.to(x.device)[:, None], cols.flip(1), cols)  # reflection = reversed column order
    b = torch.arange(x.shape[0], device=x.device)[:, None, None]
    out = x[b, :, rows[:, :, None], cols[:, None, :]]  # (B, crop, crop, C): advanced dims come first
    return out.permute(0, 3, 1, 2)


def train_batch(x: torch.Tensor, d: Draws, crop: int, mean: torch.Tensor | None,
                eigvecs: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """x: (B, 3, S, S) uint8 on the training device -> (B, 3, crop, crop) float32 network input."""
    d = d.to(x.device)
    xf = crop_flip(x, d.ys, d.xs, d.flip, crop).float()  # crop first: a quarter less float work
    if mean is not None:  # §2 subtract the mean image at the same positions (and reflection)
        xf -= crop_flip(mean.expand(x.shape[0], -1, -1, -1), d.ys, d.xs, d.flip, crop)
    shift = pca_shift(d.alpha.to(x.device), eigvecs, lam)  # (B, 3)
    return xf.add_(shift[:, :, None, None]).contiguous()


@dataclass
class Augmenter:
    """§4.1 training augmentation as a config's data section says, with a store's mean image (§2)
    and PCA on one device: the one place it is assembled (the training step, the benchmarks)."""

    crop: int
    flip: bool
    pca_std: float
    random_crop: bool
    mean: torch.Tensor | None  # (3, S, S) on the device, or None (data.mean_image=false)
    eigvecs: torch.Tensor  # (3, 3) §4.1 PCA of RGB values, columns
    lam: torch.Tensor  # (3,) scales of the PCA noise (pca_lambda of data.pca_scale)

    @classmethod
    def of(cls, data: DataConfig, store, device: torch.device) -> Augmenter:
        return cls(data.crop, data.flip, data.pca_std, data.random_crop,
                   store.mean.to(device) if data.mean_image else None,
                   store.pca_eigvecs.to(device), pca_lambda(store.pca_eigvals, data.pca_scale).to(device))

    def draw(self, batch: int, size: int, generator: torch.Generator) -> Draws:
        """The random choices for `batch` images of side `size` (on the CPU, from `generator`)."""
        return draw(batch, size, self.crop, generator, self.flip, self.pca_std, self.random_crop)

    def __call__(self, images: torch.Tensor, d: Draws) -> torch.Tensor:
        """(B, 3, S, S) uint8 on the device -> (B, 3, crop, crop) float32 network input."""
        return train_batch(images, d, self.crop, self.mean, self.eigvecs, self.lam)


def store_augmenter(store, device: torch.device, crop: int, generator: torch.Generator):
    """The paper's augmentation (data defaults, §2, §4.1) on `store`, drawing from `generator`:
    images (B, 3, S, S) uint8 on `device` -> (B, 3, crop, crop) float32 (benchmarks)."""
    augment = Augmenter.of(DataConfig(crop=crop), store, device)
    return lambda images: augment(images, augment.draw(images.shape[0], store.size, generator))


def view_offsets(size: int, crop: int, views: str) -> list[tuple[int, int, bool]]:
    """(top, left, flip) of each evaluation view. 10crop: four corners, centre, and reflections (§4.1)."""
    c, e = (size - crop) // 2, size - crop
    if views == "center":
        return [(c, c, False)]
    corners = [(0, 0), (0, e), (e, 0), (e, e), (c, c)]
    return [(y, x, f) for f in (False, True) for (y, x) in corners]


def eval_views(x: torch.Tensor, crop: int, mean: torch.Tensor | None, views: str) -> torch.Tensor:
    """x: (B, 3, S, S) uint8 -> (V, B, 3, crop, crop) float32, mean-subtracted, no colour noise."""
    xf = x.float()
    if mean is not None:
        xf = xf - mean
    out = []
    for y, x0, f in view_offsets(x.shape[-1], crop, views):
        v = xf[:, :, y : y + crop, x0 : x0 + crop]
        out.append(v.flip(-1) if f else v)
    return torch.stack(out)
