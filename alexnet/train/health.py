"""Is the run alive? A net stuck at chance stops with one line that says so and what to try,
instead of spending the plateau schedule's cuts and ending "finished" (issue 10: the paper's
recipe at lr 0.01 on 10 classes sat at ln(10) for 30 epochs and reported "finished").

Two signals, each unambiguous on a healthy run and read only where the loop already syncs:

- dead layer, at log steps: in some weight layer at least 99% of the units (neurons, conv channels)
  get exactly zero gradient on the batch while the loss still sends gradient elsewhere. A unit
  whose ReLU is zero for every image of the batch passes no gradient, and the layer after a dead
  one sees only zeros: the output (almost) no longer depends on the image, and SGD cannot revive
  those units (weight decay only shrinks their weights towards zero). A few device-side
  reductions per log step, nothing per step.
  `health.dead_steps` (default 100: long enough for the velocity of the last live step to die out,
  0.9^100 = 3e-5).
- chance, at epoch ends: top-1 validation accuracy no better than always answering the most
  frequent class, with the training loss (the last log window's mean) pinned at what a net that
  ignores its input reaches (the entropy of the training labels: ln(C) for balanced classes), at
  every epoch end over `health.chance_steps` steps (default 5000). The paper's init can sit near
  chance for ~1500 steps before it learns (docs/paper.md "init"), so the default is more than
  three times that.

While validation is at chance the plateau schedule does not count the epoch (no cut is spent on
it): the paper cuts the lr when the error "stopped improving", and an error that never left chance
has not started to improve.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..config import HealthConfig
from ..errors import DeadRunError

DEAD_UNITS = 0.99  # share of a layer's units silent for the whole batch that counts as dead (fc7 reached 0.99 within
# 40 steps of the paper's recipe at lr 0.01 on Imagenette, benchmarks/explosion.md; at init it is 0)
LOSS_TOLERANCE = 0.02  # nats from the no-input loss that count as pinned (an output that ignores the image and matches the label frequencies gives it exactly)
ACCURACY_MARGIN = 0.01  # validation accuracy within this of the majority class's share counts as chance
ADVICE = ("try a lower optim.lr (e.g. {lr:g}), or model.init=kaiming model.input_scale=0.01724 "
          "(He init on scaled inputs, docs/paper.md \"init\")")


@dataclass
class HealthState:
    zero_since: int = -1  # first log step of the current run of log steps with a dead layer
    chance_since: int = -1  # step where the current run of epochs at chance began
    epoch_start: int = 0  # step at which the current epoch began


class Health:
    def __init__(self, cfg: HealthConfig, lr: float, train_labels: np.ndarray, val_labels: np.ndarray, where: str = "",
                 agree: Callable[[bool], bool] | None = None):
        self.cfg, self.lr, self.where = cfg, lr, where
        self.agree = agree  # several processes: whether any of them saw a dead layer (all stop together)
        self.state = HealthState()
        self.chance_loss = _entropy(train_labels)  # the best a net that ignores its input can do
        self.chance_accuracy = float(np.bincount(val_labels).max() / max(1, len(val_labels)))  # always the top class
        self.last_loss, self.last_error = math.inf, math.nan

    def check_step(self, model: nn.Module, step: int, mean_loss: float) -> None:
        """At a log step, after the loop's sync: raise DeadRunError when a weight layer has been dead
        (DEAD_UNITS of its units with exactly zero gradient) at every log step for health.dead_steps steps."""
        self.last_loss = mean_loss
        if not self.cfg.dead_steps:
            return
        dead = silent_layers(model)
        if self.agree is not None and self.agree(bool(dead)) and not dead:
            dead = ["another process's column"]  # model parallelism: the columns' layers differ
        s = self.state
        s.zero_since = (s.zero_since if s.zero_since >= 0 else step) if dead else -1
        if dead and step - s.zero_since >= self.cfg.dead_steps:
            raise DeadRunError(
                f"the net is dead at step {step}: in {_layers(dead)} at least {DEAD_UNITS:.0%} of the units got "
                f"exactly zero gradient at every log step since step {s.zero_since} (their ReLUs are zero for the "
                f"whole batch, so the output hardly depends on the image); stopped, the checkpoints{self._in()} "
                f"are kept: start again and "
                + ADVICE.format(lr=self.lr / 10))

    def at_chance(self, step: int, val_error: float) -> bool:
        """At an epoch end: whether validation is at chance (the schedule then does not count the
        epoch); the chance clock runs while the training loss is pinned as well."""
        s = self.state
        chance = (1.0 - val_error) <= self.chance_accuracy + ACCURACY_MARGIN
        stuck = chance and abs(self.last_loss - self.chance_loss) <= LOSS_TOLERANCE  # the loss pinned too
        s.chance_since = (s.chance_since if s.chance_since >= 0 else s.epoch_start) if stuck else -1
        s.epoch_start, self.last_error = step, val_error
        return chance

    def stop_if_stuck(self, step: int) -> None:
        """After the epoch's checkpoint: raise DeadRunError when the net has been at chance at every
        epoch end for health.chance_steps steps."""
        since = self.state.chance_since
        if since >= 0 and self.cfg.chance_steps and step - since >= self.cfg.chance_steps:
            raise DeadRunError(
                f"the net is stuck at chance at step {step}: validation top-1 error {self.last_error:.4f} (always "
                f"answering one class: {1 - self.chance_accuracy:.4f}) and training loss {self.last_loss:.4f} "
                f"(a net that ignores its input: {self.chance_loss:.4f}) at every epoch end since step {since}; "
                f"stopped, the checkpoints{self._in()} are kept: " + ADVICE.format(lr=self.lr / 10))

    def _in(self) -> str:
        return f" in {self.where}" if self.where else ""

    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, d: dict | None, step: int) -> None:
        """From a checkpoint; one saved before health checks existed starts counting at `step`."""
        self.state = HealthState(**d) if d else HealthState(epoch_start=step)


def silent_layers(model: nn.Module, fraction: float = DEAD_UNITS) -> list[str]:
    """Names of the weight layers in which at least `fraction` of the output units (rows of the weight:
    a neuron, or a conv channel) got exactly zero gradient, if some parameter still has a nonzero one
    (all zero is a perfectly fitted batch, not a dead net). A unit's row is zero when its ReLU was
    zero for every image (and position) of the batch, or when it sees only zeros. Device-side
    reductions, one host read."""
    named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    weights = [(n, g) for n, g in named if g.dim() > 1]
    if not weights:
        return []
    silent = [(g.flatten(1).abs().amax(dim=1) == 0).float().mean() for _, g in weights]  # share of silent rows
    alive = torch.stack([g.abs().amax() for _, g in named]).amax() > 0
    values = torch.stack([*silent, alive.float()]).tolist()
    if not values[-1]:
        return []
    return [_layer(n) for (n, _), v in zip(weights, values[:-1]) if v >= fraction]


def _layer(param_name: str) -> str:
    """'classifier.fc7.weight' -> 'fc7'; 'features.0.weight' -> 'features.0'."""
    parts = param_name.split(".")[:-1] or [param_name]
    return parts[-1] if not parts[-1].isdigit() else ".".join(parts)


def _layers(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{len(names)} weight layers ({names[0]} to {names[-1]})"


def _entropy(labels: np.ndarray) -> float:
    counts = np.bincount(np.asarray(labels))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
