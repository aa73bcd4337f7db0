"""§5 learning-rate schedule: start at 0.01, divide by 10 when the validation error stops
improving, three times, then stop. The schedule owns the learning rate: the loop reads
`schedule.lr_at(step)` and applies it with optim.apply_lr, in one place. The state is a small dict saved
with every checkpoint.

Warm-up (not in the paper; for large batches, Goyal et al. 2017 "Accurate, Large Minibatch SGD",
used with LARS by You et al. 2017): with schedule.warmup_epochs > 0 the lr grows linearly from
lr / W to lr over the first W steps; it is a function of the step, so nothing more is saved."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..config import ScheduleConfig


@dataclass
class PlateauState:
    lr: float
    best_error: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0  # epochs since the last new best (or the last cut)
    cuts: int = 0
    epochs_since_cut: int = 0


class PlateauSchedule:
    def __init__(self, cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int = 1):
        self.cfg = cfg
        self.state = PlateauState(lr=base_lr)
        self.warmup_steps = math.ceil(cfg.warmup_epochs * steps_per_epoch)

    @property
    def lr(self) -> float:
        return self.state.lr

    def lr_at(self, step: int) -> float:
        """The lr of training step `step` (0-based): `lr`, scaled down during the warm-up."""
        if step >= self.warmup_steps:
            return self.state.lr
        return self.state.lr * (step + 1) / self.warmup_steps

    def observe(self, epoch: int, val_error: float) -> bool:
        """Record one epoch's validation error; return True if the lr was cut."""
        s, cfg = self.state, self.cfg
        s.epochs_since_cut += 1
        if val_error < s.best_error - cfg.threshold:
            s.best_error, s.best_epoch, s.bad_epochs = val_error, epoch, 0
            return False
        s.bad_epochs += 1
        if s.bad_epochs >= cfg.patience and s.cuts < cfg.max_cuts:
            s.lr *= cfg.factor
            s.cuts += 1
            s.bad_epochs = 0
            s.epochs_since_cut = 0
            return True
        return False

    def reduce(self) -> None:
        """Divide the lr by `factor` without spending one of the cuts (divergence rollback)."""
        self.state.lr *= self.cfg.factor

    def restart_at(self, lr: float) -> None:
        """Continue from `lr` (a resume that sets optim.lr); later cuts divide it as usual."""
        self.state.lr = lr

    def finished(self, epochs_done: int) -> bool:
        """Stop at the epoch budget, or `tail_epochs` after the last allowed cut."""
        s, cfg = self.state, self.cfg
        if epochs_done >= cfg.epochs:
            return True
        return cfg.max_cuts > 0 and s.cuts >= cfg.max_cuts and s.epochs_since_cut >= cfg.tail_epochs

    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, d: dict) -> None:
        self.state = PlateauState(**d)
