"""torchvision's AlexNet weight files in the `owt` net (torchvision's "one weird trick" layout, same
state-dict keys), predicting what torchvision predicts.

torchvision feeds ((x / 255) - m_c) / s_c per channel c (ImageNet's mean m and std s); this
package feeds x - mean image. With the mean image = 255 m_c everywhere and conv1's weights for input
channel c divided by 255 s_c the two are the same function: conv1(W, (x - 255 m) / (255 s)) =
conv1(W / (255 s), x - 255 m), and conv1's zero padding is zero in both input spaces. torchvision's
Resize(256) + CenterCrop(224) is the store's shorter side 256, centre 256x256, centre 224 crop.

Classes: torchvision ships ImageNet's names but not its ids (wnids), so the record's ids are the
class indices ("0" .. "999") and its class names torchvision's (meta["categories"] holds ids and
meta["class_names"] names in every format).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import InputMeta, Record
from ..config import Config
from ..errors import CheckpointError

MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet normalisation (AlexNet_Weights.IMAGENET1K_V1.transforms())
STD = (0.229, 0.224, 0.225)
SIZE, CROP = 256, 224
KEYS = {f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")} | \
       {f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")}


def from_torchvision(state: dict, path: Path) -> Record:
    """A torchvision AlexNet state dict -> the record of the owt net (weights with conv1 rescaled)."""
    if not isinstance(state, dict) or set(state) != KEYS or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is a state dict but not torchvision's AlexNet (keys {sorted(map(str, state))[:3]}...): "
                              "give an alexnet checkpoint, weights file or torchvision.models.alexnet state dict")
    num_classes = state["classifier.6.weight"].shape[0]
    cfg = Config()
    cfg.model.arch, cfg.model.num_classes = "owt", num_classes
    cfg.data.size, cfg.data.crop = SIZE, CROP
    state = dict(state)
    scale = 255.0 * torch.tensor(STD)  # (3,)
    state["features.0.weight"] = state["features.0.weight"] / scale[None, :, None, None]  # fold the std into conv1
    mean = (255.0 * torch.tensor(MEAN))[:, None, None].expand(3, SIZE, SIZE).contiguous()  # (3, 256, 256)
    recipe = {"command": "torchvision.models.alexnet", "note": "torchvision's normalisation folded into conv1 and "
              "the mean image (ship/torchvision_weights.py)"}
    ids = [str(i) for i in range(num_classes)]
    return Record(cfg, state, ids, _names(num_classes) or ids, InputMeta(SIZE, mean), recipe=recipe, source=str(path))


def _names(num_classes: int) -> list[str]:
    """ImageNet's class names as torchvision ships them (no download); [] for another class count."""
    if num_classes == 1000:
        from torchvision.models import AlexNet_Weights
        return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])
    return []
