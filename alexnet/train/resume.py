"""Continuing a run: `alexnet train --resume RUN [--set KEY=VALUE ...]`.

The run's saved config comes back with the overrides a resume may apply. An override that would
make it another run (the net, the data, the optimiser's rule, the seed) is refused with one line;
one that changes its budget, learning rate, logging, or how it is computed is validated like a
fresh run's and applied for real. `optim.lr` on resume sets the learning rate from the next step
on; later plateau cuts divide it as usual (the loop compares it with the checkpoint's config).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import (Config, apply_dict, apply_overrides, current_key, from_dict, to_dict, validate,
                      with_saved_defaults)
from ..errors import ConfigError, UserError

RESUMABLE = (
    # the budget and the schedule from here on
    "schedule.epochs", "schedule.tail_epochs", "schedule.patience", "schedule.max_cuts", "schedule.threshold",
    "schedule.factor",
    # the learning rate from the next step on
    "optim.lr",
    # logging, checkpoints, what to do on divergence
    "train.log_every_steps", "train.ckpt_every_steps", "train.progress", "train.on_divergence",
    "train.val_every_epochs", "train.ckpt_every_epochs", "train.cudnn_benchmark",
    # when a run at chance stops (train/health.py)
    "health.dead_steps", "health.chance_steps",
    # how, not what: device, threads, kernels, precision, compilation, reading the store
    "train.device", "train.threads", "train.compile", "train.compile_mode", "train.precision", "train.channels_last",
    "train.deterministic", "model.lrn_impl", "model.grouped_impl", "loader.threads", "loader.prefetch", "loader.decode",
    "loader.cpu_decoder", "loader.device_share", "loader.backend",
    "eval.batch_size",
    # how it is spread over devices (checkpoints hold the whole net: train/distributed.py, train/columns.py)
    "train.model_parallel", "ddp.bucket_mb",
)
HOW_NOT_WHAT = ("lrn_impl", "grouped_impl")  # model fields that say how the net is computed, not which net


def resumed_config(run: Path, overrides: list[str]) -> Config:
    """The config saved in RUN with `overrides` applied (only RESUMABLE keys), validated."""
    path = run / "config.json"
    if not path.is_file():
        raise UserError(f"nothing to resume in {run}: it has no config.json (is it a run folder?)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}); restore it from last.pt's config") from None
    apply_overrides(Config(), overrides)  # syntax, keys and types, before anything else
    for item in overrides:
        key = current_key(item.split("=", 1)[0])
        if key not in RESUMABLE:
            raise ConfigError(f"--set {item}: {key} cannot change when a run resumes (it would be another run); "
                              "start a new run with --out, or change only the budget (schedule.*), optim.lr, "
                              "logging or how it runs (alexnet train --help lists them)")
    cfg = apply_dict(Config(), with_saved_defaults(data), str(path))  # not validated yet: an override may repair a bad value
    apply_overrides(cfg, overrides)
    cfg.train.out = str(run)
    return validate(cfg)


def same_net(saved: dict, cfg: Config) -> bool:
    """Whether a checkpoint's saved config describes the same function as `cfg`'s net (fields added
    since it was saved filled in as its code behaved, config.SAVED_BEFORE: a config without
    model.dropout_mode was inverted dropout; HOW_NOT_WHAT fields may differ)."""
    return _net(saved) == _net(to_dict(cfg))


def net_differences(saved: dict, cfg: Config) -> str:
    """The model.* fields in which a saved config's net differs from cfg's, as 'model.KEY: saved A, now B'."""
    old, new = _net(saved), _net(to_dict(cfg))
    return "; ".join(f"model.{k}: saved {old.get(k)!r}, now {new.get(k)!r}"
                     for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))


def _net(config: dict) -> dict:
    try:
        model = to_dict(from_dict({"model": config.get("model", {})}))["model"]
    except ConfigError:
        return {"unreadable": config.get("model")}
    return {k: v for k, v in model.items() if k not in HOW_NOT_WHAT}
