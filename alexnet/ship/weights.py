"""Weights that describe themselves, and `alexnet.load(path)`.

A trained net is usable only with what its training store knew: the class names, the stored side
S and crop (§2, §4.1), the mean image subtracted from every input (§2). `Weights` holds that, plus
the PCA of §4.1, the measured metrics with their command and the recipe, for any of:

    alexnet checkpoint (.pt)    written by `alexnet train`; carries the store's input statistics
    weights file (.safetensors) written by `alexnet export --weights`: tensors only, no pickle;
                                the description is JSON in the header, the mean image and PCA
                                are tensors named alexnet.*
    torchvision AlexNet (.pth)  a state dict of torchvision.models.alexnet: loads into the
                                `owt` net with torchvision's preprocessing folded in (see below)
    ONNX (.onnx)                written by `alexnet export --onnx`, run by onnxruntime (ship/onnx.py)

`load(path)` returns (model, weights) like torchvision: `weights.transforms()` is the eval
transform of a PIL image, `weights.meta` the description.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

from ..checkpoint import FORMAT as CKPT_FORMAT
from ..checkpoint import load_checkpoint, model_weights
from ..config import Config, from_dict, to_dict
from ..data.augment import eval_views
from ..data.convert import resize_crop, set_draft, to_chw
from ..data.names import display_names
from ..data.store import open_store
from ..errors import CheckpointError, UserError
from ..fsutil import write_atomic
from ..nets.model import build_model

FORMAT = "alexnet-weights"
VERSION = 1
TENSOR_PREFIX = "alexnet."  # the description's tensors in a .safetensors file, beside the net's own keys
INPUT = ("RGB pixels 0..255: shorter side rescaled to `size`, central size x size kept (§2), minus the mean "
         "image, then crop x crop views (§4.1: the centre, or four corners + centre and their reflections)")


@dataclass
class Weights:
    """Everything needed to run a trained net without its training store."""

    config: Config
    classes: list[str]
    size: int  # §2 side S of the stored images
    mean: torch.Tensor  # (3, S, S) float32, 0..255: the training set's per-pixel mean (§2)
    pca: dict[str, torch.Tensor] = field(default_factory=dict)  # §4.1 eigvals (3,), eigvecs (3, 3); {} if unknown
    metrics: list[dict] = field(default_factory=list)  # measured results, each with the command that measured it
    recipe: dict = field(default_factory=dict)  # how it was trained: steps, epochs, source of a fine-tune
    source: str = ""  # the file it was loaded from
    num_params: int = 0  # the net's parameter count (set by load)
    names: list[str] = field(default_factory=list)  # what people read, one per class ([]: the ids)

    def __post_init__(self) -> None:
        self.names = list(self.names) or display_names(self.classes)

    @property
    def crop(self) -> int:
        return self.config.data.crop

    @property
    def input_mean(self) -> torch.Tensor | None:
        """What is subtracted from the input (None when the net was trained with data.mean_image=false)."""
        return self.mean if self.config.data.mean_image else None

    @property
    def meta(self) -> dict:
        """The JSON description (torchvision's `weights.meta`, with `categories` for the class names)."""
        cfg = self.config
        return {"format": FORMAT, "version": VERSION, "arch": cfg.model.arch, "categories": list(self.classes),
                "class_names": list(self.names),
                "num_classes": len(self.classes), "num_params": self.num_params,
                "size": self.size, "crop": self.crop, "views": ["center", "10crop"], "input": INPUT,
                "mean_image": cfg.data.mean_image, "metrics": self.metrics, "recipe": self.recipe,
                "config": to_dict(cfg), "source": self.source}

    def transforms(self, views: str = "center") -> ImageTransform:
        """The eval transform: PIL image -> (3, crop, crop) float32 (views="center") or
        (10, 3, crop, crop) (views="10crop"), exactly what `alexnet eval` feeds the net."""
        return ImageTransform(self.size, self.crop, self.input_mean, views)


class ImageTransform:
    """PIL image -> the net's input, with the model's own preprocessing (see Weights.transforms)."""

    def __init__(self, size: int, crop: int, mean: torch.Tensor | None, views: str = "center"):
        self.size, self.crop, self.mean, self.views = size, crop, mean, views

    def __call__(self, img: Image.Image) -> torch.Tensor:
        x = stored_pixels(img, self.size)[None]  # (1, 3, S, S) uint8
        v = eval_views(x, self.crop, self.mean, self.views)[:, 0]  # (V, 3, crop, crop)
        return v[0] if self.views == "center" else v

    def __repr__(self) -> str:
        return f"ImageTransform(size={self.size}, crop={self.crop}, views={self.views!r}, mean_image={self.mean is not None})"


def stored_pixels(img: Image.Image, size: int) -> torch.Tensor:
    """A PIL image as the store would hold it: EXIF orientation applied, RGB, shorter side to
    `size` and centre-cropped (§2, data/convert.py): (3, S, S) uint8."""
    from ..data.convert import stored_image  # the one owner of "a file becomes pixels", shared with prepare
    return torch.from_numpy(np.ascontiguousarray(to_chw(stored_image(img, size))))


# ---- reading ---------------------------------------------------------------------------------


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Weights]:
    """A ready net (eval mode, on `device`) and its Weights, from a checkpoint, a .safetensors file,
    a torchvision AlexNet state dict or an ONNX file (run by onnxruntime, CPU)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no model file {path}: give a checkpoint (.pt), weights (.safetensors) or ONNX (.onnx) file")
    if path.suffix == ".onnx":
        from .onnx import load_onnx
        return load_onnx(path)
    if is_safetensors(path):
        state, weights = read_safetensors(path)
    else:
        state, weights = read_torch_file(path)
    model = build_model(weights.config.model)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the saved config ({str(e).splitlines()[0]})") from None
    weights.num_params = sum(p.numel() for p in model.parameters())
    return model.to(device).eval(), weights


def is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header's length (u64 little-endian) and the JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < path.stat().st_size


def read_torch_file(path: Path) -> tuple[dict, Weights]:
    state = load_checkpoint(path)
    if state.get("format") == CKPT_FORMAT:
        return model_weights(state, path), from_checkpoint(state, path)
    from .torchvision_weights import from_torchvision
    return from_torchvision(model_weights(state, path), path)


def from_checkpoint(state: dict, path: Path) -> Weights:
    """The description of an alexnet checkpoint: its config, classes and the store's statistics
    it carries (older checkpoints: read from the store named in its config, if it is still there)."""
    if "config" not in state:
        raise CheckpointError(f"{path} has no saved config: it was not written by `alexnet train`")
    cfg = from_dict(state["config"])
    stats = state.get("input") or _stats_from_store(cfg, path)
    progress = state.get("progress", {})
    split = f"holdout ({100 * cfg.data.holdout:g}% of {cfg.data.train_split})" if cfg.data.holdout else cfg.data.val_split
    metrics = [{"split": split, "views": "center", "top1_error": progress["best_error"],
                "command": "alexnet train: validation after each epoch (the run's best so far, the one in best.pt)"}] \
        if np.isfinite(progress.get("best_error", np.inf)) else []
    recipe = {"command": "alexnet finetune" if cfg.finetune.source else "alexnet train", "epochs": progress.get("epoch"),
              "steps": progress.get("step"), "finetuned_from": cfg.finetune.source or None, "store": stats.get("store")}
    classes = list(state.get("classes") or [str(i) for i in range(cfg.model.num_classes)])
    return Weights(cfg, classes, int(stats["size"]), stats["mean"].float(),
                   {"eigvals": stats["pca_eigvals"], "eigvecs": stats["pca_eigvecs"]},
                   metrics + _results_beside(path), recipe, str(path), names=state.get("class_names") or [])


def _stats_from_store(cfg: Config, path: Path) -> dict:
    try:
        return open_store(cfg.data.store).input_meta()
    except UserError:
        raise CheckpointError(f"{path} does not carry its mean image (written before checkpoints held it) and its "
                              f"store {cfg.data.store or '(none)'} cannot be opened: train it again, or run from "
                              "where the store is") from None


def _results_beside(path: Path) -> list[dict]:
    """Evaluations `alexnet quickstart` wrote beside best.pt (results.json), with their command."""
    results = path.parent / "results.json"
    if path.name != "best.pt" or not results.is_file():
        return []
    try:
        found = json.loads(results.read_text())
    except (OSError, ValueError):
        return []
    return [{**r, "command": f"alexnet eval {path} --data {r.get('store')} --views {views}"}
            for views, r in found.items() if isinstance(r, dict)]


def read_safetensors(path: Path) -> tuple[dict, Weights]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        meta = json.loads(header.get("__metadata__", {}).get("alexnet", "null"))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file without alexnet's description: "
                              "write one with `alexnet export CKPT --weights OUT.safetensors`")
    state = {k: v for k, v in tensors.items() if not k.startswith(TENSOR_PREFIX)}
    extra = {k[len(TENSOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(TENSOR_PREFIX)}
    pca = {k: extra[f"pca_{k}"] for k in ("eigvals", "eigvecs") if f"pca_{k}" in extra}
    weights = Weights(from_dict(meta["config"]), meta["categories"], meta["size"], extra["mean"], pca,
                      meta.get("metrics", []), meta.get("recipe", {}), str(path), names=meta.get("class_names") or [])
    return state, weights


# ---- writing ---------------------------------------------------------------------------------


def save_safetensors(model: nn.Module, weights: Weights, path: str | Path) -> Path:
    """The net's state dict and its description in one safetensors file (no pickle), atomically."""
    from safetensors.torch import save
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors[TENSOR_PREFIX + "mean"] = weights.mean.cpu().contiguous()
    tensors.update({f"{TENSOR_PREFIX}pca_{k}": v.cpu().contiguous() for k, v in weights.pca.items()})
    data = save(tensors, metadata={"format": FORMAT, "alexnet": json.dumps({**weights.meta, "source": str(path)})})
    try:
        write_atomic(path, lambda f: f.write(data))
    except OSError as e:
        raise UserError(f"could not write {path}: {e.strerror or e}") from None
    return path
