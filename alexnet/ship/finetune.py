"""§6 fine-tuning: start a run on another store from a trained net. Every layer but the last is
copied from the trained net; the last is a new classifier for the store's classes. Chosen layers
may stay frozen (finetune.freeze); the others learn at optim.lr x finetune.pretrained_lr_mult while
the new classifier learns at optim.lr (train/optim.py param_groups). Unless optim.lr is given, the
trained layers go on at the rate they were trained with and the new classifier learns
1 / pretrained_lr_mult (10) times faster, Caffe's fine-tuning recipe (docs/results.md: the best of three
settings measured). The run is an ordinary run folder: `alexnet train --resume RUN` continues it,
`alexnet eval` and `alexnet predict` read it."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..config import Config, FinetuneConfig, apply_overrides, validate
from ..data.store import open_store
from ..errors import ConfigError, UserError
from ..nets.layers import head
from ..train import train
from ..train.resume import HOW_NOT_WHAT
from .weights import Weights, load


def finetune(source: str | Path, store: str | Path, out: str | None = None, overrides: list[str] | None = None) -> dict:
    """Fine-tune the net in `source` on `store` into run folder `out`; returns the run's summary.
    `overrides` edit the trained net's recipe (finetune.freeze, finetune.pretrained_lr_mult, optim.lr, ...)."""
    if Path(source).suffix == ".onnx":
        raise UserError(f"{source}: fine-tune from the checkpoint or .safetensors file, not the ONNX export")
    model, weights = load(source)
    cfg = finetune_config(weights, store, out, overrides or [])
    return train(cfg, init=pretrained_init(model.state_dict()))


def finetune_config(weights: Weights, store: str | Path, out: str | None,
                    overrides: list[str]) -> Config:
    """The source net's config (its recipe) with the user's overrides, on `store`'s classes."""
    cfg = copy.deepcopy(weights.config)
    cfg.finetune = FinetuneConfig(source=str(weights.source))  # not the source's own fine-tuning settings
    for item in overrides:
        key = item.split("=", 1)[0]
        if key.startswith("model.") and key.split(".", 1)[1] not in HOW_NOT_WHAT or key.startswith("finetune.source"):
            raise ConfigError(f"--set {item}: fine-tuning keeps the trained net ({key} is fixed by {weights.source})")
    apply_overrides(cfg, overrides)
    if "optim.lr" not in {item.split("=", 1)[0] for item in overrides} and cfg.finetune.pretrained_lr_mult > 0:
        cfg.optim.lr = weights.config.optim.lr / cfg.finetune.pretrained_lr_mult  # trained layers at their own rate
    opened = open_store(store)
    if opened.size < cfg.data.crop:
        raise UserError(f"store {opened.path} holds {opened.size}px images but the net takes {cfg.data.crop}px crops: "
                        f"prepare it with `alexnet prepare SRC OUT --size {weights.size}`")
    cfg.data.store, cfg.model.num_classes = str(opened.path), opened.num_classes
    cfg.train.out = out or f"runs/finetune-{opened.path.name}"
    return validate(cfg)


def pretrained_init(state: dict[str, torch.Tensor]) -> Callable[[nn.Module], None]:
    """Copies every trained tensor but the last layer's into a freshly built net (train's `init`)."""
    def init(model: nn.Module) -> None:
        new = {id(p) for p in head(model).parameters()}
        fresh = {name for name, p in model.named_parameters() if id(p) in new}
        missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k not in fresh}, strict=False)
        if set(missing) != fresh or unexpected:
            raise ConfigError(f"the trained net does not fit the fine-tuned one (missing {missing}, extra {unexpected})")
    return init
