"""Weights that describe themselves, and `alexnet.load(path)`.

A trained net is usable only with what its training store knew: the class names, the stored side
S and crop (§2, §4.1), the mean image subtracted from every input (§2). The checkpoint record
(checkpoint.Record) holds that, plus the PCA of §4.1, the measured metrics with their command and
the recipe; `Weights` is its face for users (torchvision's `weights.meta` and `weights.transforms()`).
One reader per format, each returning a Record, beside each other (no reader imports another):

    alexnet checkpoint (.pt)    written by `alexnet train`: checkpoint.Record (evaluate.read_record)
    weights file (.safetensors) written by `alexnet export --weights`: tensors only, no pickle;
                                the description is JSON in the header, the mean image and PCA
                                are tensors named alexnet.* (this module)
    torchvision AlexNet (.pth)  a state dict of torchvision.models.alexnet: loads into the
                                `owt` net with torchvision's preprocessing folded in (torchvision_weights.py)
    ONNX (.onnx)                written by `alexnet export --onnx`, run by onnxruntime (onnx.py)

`load(path)` returns (model, weights) like torchvision; the net is built from the record in one
place (evaluate.load_net).
"""
from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..checkpoint import FORMAT as CKPT_FORMAT
from ..checkpoint import InputMeta, Record, load_checkpoint
from ..config import Config
from ..data.augment import eval_views
from ..data.convert import stored_image, to_chw
from ..errors import CheckpointError, UserError
from ..evaluate import complete, load_net
from ..fsutil import write_atomic
from . import onnx, torchvision_weights

TENSOR_PREFIX = "alexnet."  # the description's tensors in a .safetensors file, beside the net's own keys
FORMATS = "a checkpoint (.pt), weights (.safetensors), a torchvision AlexNet state dict (.pth), an ONNX file or a run folder"


class Weights:
    """Everything needed to run a trained net without its training store: a checkpoint record
    without its tensors of the net (those are in the net), and the net's parameter count."""

    def __init__(self, record: Record, num_params: int = 0, extra_metrics: list[dict] | None = None):
        self.record = replace(record, model={}, training=None)
        self.num_params = num_params
        self.extra_metrics = list(extra_metrics or [])  # evaluations found beside the file (results.json)

    config: Config = property(lambda self: self.record.config)
    classes: list[str] = property(lambda self: self.record.classes)  # the ids, the key of each class
    names: list[str] = property(lambda self: self.record.class_names)  # what people read, one per class
    input: InputMeta = property(lambda self: self.record.input)
    size: int = property(lambda self: self.record.input.size)  # §2 side S of the stored images
    mean: torch.Tensor = property(lambda self: self.record.input.mean)  # (3, S, S) float32 0..255 (§2)
    pca: dict = property(lambda self: self.record.input.pca)  # §4.1 eigvals (3,), eigvecs (3, 3); {} if unknown
    metrics: list[dict] = property(lambda self: self.record.metrics + self.extra_metrics)
    recipe: dict = property(lambda self: self.record.recipe)
    source: str = property(lambda self: self.record.source)  # the file it was loaded from
    crop: int = property(lambda self: self.record.config.data.crop)

    @property
    def input_mean(self) -> torch.Tensor | None:
        """What is subtracted from the input (None when the net was trained with data.mean_image=false)."""
        return self.mean if self.config.data.mean_image else None

    @property
    def meta(self) -> dict:
        """The JSON description (checkpoint.Record.description) with every measured metric."""
        return {**self.record.description(self.num_params), "metrics": self.metrics}

    def transforms(self, views: str = "center") -> ImageTransform:
        """The eval transform: a PIL image or an image tensor -> (3, crop, crop) float32 (views="center")
        or (10, 3, crop, crop) (views="10crop"), exactly what `alexnet eval` feeds the net."""
        return ImageTransform(self.size, self.crop, self.input_mean, views)

    def __repr__(self) -> str:
        return f"Weights({self.source!r}, {self.config.model.arch}, {len(self.classes)} classes, {self.size}px/{self.crop}px)"


class ImageTransform:
    """An image -> the net's input, with the model's own preprocessing (see Weights.transforms)."""

    def __init__(self, size: int, crop: int, mean: torch.Tensor | None, views: str = "center"):
        self.size, self.crop, self.mean, self.views = size, crop, mean, views

    def __call__(self, img: Image.Image | torch.Tensor) -> torch.Tensor:
        x = stored_pixels(_pil(img), self.size)[None]  # (1, 3, S, S) uint8
        v = eval_views(x, self.crop, self.mean, self.views)[:, 0]  # (V, 3, crop, crop)
        return v[0] if self.views == "center" else v

    def __repr__(self) -> str:
        return f"ImageTransform(size={self.size}, crop={self.crop}, views={self.views!r}, mean_image={self.mean is not None})"


def _pil(img: Image.Image | torch.Tensor) -> Image.Image:
    """A PIL image, or an image tensor as torchvision takes it: (3, H, W) uint8 0..255 or float 0..1."""
    if isinstance(img, Image.Image):
        return img
    if not (isinstance(img, torch.Tensor) and img.ndim == 3 and img.shape[0] in (1, 3)):
        raise UserError(f"transforms() takes a PIL image or a (3, H, W) image tensor, not {type(img).__name__}"
                        f"{tuple(img.shape) if isinstance(img, torch.Tensor) else ''}")
    x = img if img.dtype == torch.uint8 else (img.float() * 255).round().clamp(0, 255).to(torch.uint8)
    return Image.fromarray(x.expand(3, -1, -1).permute(1, 2, 0).contiguous().numpy())


def stored_pixels(img: Image.Image, size: int) -> torch.Tensor:
    """A PIL image as the store would hold it: EXIF orientation applied, RGB, shorter side to
    `size` and centre-cropped (§2, data/convert.py): (3, S, S) uint8."""
    return torch.from_numpy(np.ascontiguousarray(to_chw(stored_image(img, size))))


# ---- reading ---------------------------------------------------------------------------------


def net_file(path: str | Path) -> Path:
    """A net's file; a run folder stands for its best.pt."""
    path = Path(path)
    if path.is_dir():
        if (path / "best.pt").is_file():
            return path / "best.pt"
        last = " (its last.pt is there: give that file)" if (path / "last.pt").is_file() else ""
        raise UserError(f"{path} is a folder without best.pt, written when a run finishes an epoch{last}")
    if not path.is_file():
        raise UserError(f"no model file {path}: give {FORMATS}")
    return path


def read(path: str | Path) -> Record:
    """The record of a net's file in any format the project reads (an ONNX file: its description
    and input, no tensors of the net; run it with `load`)."""
    path = net_file(path)
    if path.suffix == ".onnx":
        return onnx.read_onnx(path)[1]
    if is_safetensors(path):
        return read_safetensors(path)
    state = load_checkpoint(path)
    if state.get("format") == CKPT_FORMAT:
        return complete(Record.from_state(state, path))
    return torchvision_weights.from_torchvision(state, path)


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Weights]:
    """A ready net (eval mode, on `device`) and its Weights, from a checkpoint, a run folder (its
    best.pt), a .safetensors file, a torchvision AlexNet state dict or an ONNX file (onnxruntime, CPU)."""
    path = net_file(path)
    if path.suffix == ".onnx":
        net, record, num_params = onnx.read_onnx(path)
        return net.eval(), Weights(record, num_params)
    record = read(path)
    model = load_net(record, device)
    return model, Weights(record, sum(p.numel() for p in model.parameters()), _results_beside(path))


def is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header's length (u64 little-endian) and the JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < path.stat().st_size


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


def read_safetensors(path: Path) -> Record:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        meta = json.loads(header.get("__metadata__", {}).get("alexnet", "null"))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    state = {k: v for k, v in tensors.items() if not k.startswith(TENSOR_PREFIX)}
    extra = {k[len(TENSOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(TENSOR_PREFIX)}
    return Record.from_description(meta, state, extra, path)


# ---- writing ---------------------------------------------------------------------------------


def save_safetensors(model: nn.Module, weights: Weights, path: str | Path) -> Path:
    """The net's state dict and its description in one safetensors file (no pickle), atomically."""
    from safetensors.torch import save
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors[TENSOR_PREFIX + "mean"] = weights.mean.cpu().contiguous()
    tensors.update({f"{TENSOR_PREFIX}pca_{k}": v.cpu().contiguous() for k, v in weights.pca.items()})
    data = save(tensors, metadata={"format": "alexnet-weights", "alexnet": json.dumps({**weights.meta, "source": str(path)})})
    try:
        write_atomic(path, lambda f: f.write(data))
    except OSError as e:
        raise UserError(f"could not write {path}: {e.strerror or e}") from None
    return path
