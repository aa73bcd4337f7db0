"""§6 ensembles: "Averaging the predictions of five similar CNNs gives an error rate of 16.4%".

`alexnet train --seeds 1 2 3 4 5 --out OUT` trains one run per seed into OUT/seed-S (the seed
sets the initial weights, the data order and every random draw), one after another; under
torchrun the processes share the members out, one per device and without communication (process
r trains seeds r, r + world, ...). Running the command again continues unfinished members and
leaves finished ones. `alexnet eval OUT/seed-*/best.pt` averages their softmax (evaluate.py).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from pathlib import Path

from ..config import Config
from ..errors import ConfigError
from .distributed import Layout, env_rank, env_world
from .loop import train
from .run import RunFolder


def member_config(cfg: Config, seed: int) -> Config:
    """The config of the ensemble member with `seed`: its own run folder under train.out."""
    out = str(Path(cfg.train.out) / f"seed-{seed}")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed, out=out))


def train_seeds(cfg: Config, seeds: list[int], given: Collection[str] | None = None) -> list[dict]:
    """Train (or continue) this process's members of the ensemble; their summaries (`given`: see train)."""
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))} repeats a seed: each member needs its own")
    if cfg.train.model_parallel:
        raise ConfigError("--seeds trains one member per process: it cannot be combined with train.model_parallel")
    layout = Layout(local_rank=int(os.environ.get("LOCAL_RANK", "0")))  # alone on this process's device
    results = []
    for seed in seeds[env_rank():: env_world()]:
        member = member_config(cfg, seed)
        results.append(train(member, resume=RunFolder.has_checkpoint(member.train.out), layout=layout,
                             given=given))
    return results
