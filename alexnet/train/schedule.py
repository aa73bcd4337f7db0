"""§5 learning-rate schedule: start at 0.01, divide by 10 when the validation error stops
improving, three times, then stop. The schedule owns the learning rate: the loop reads
`schedule.lr` and applies it with optim.apply_lr, in one place. The state is a small dict saved
with every checkpoint."""
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
    def __init__(self, cfg: ScheduleConfig, base_lr: float):
        self.cfg = cfg
        self.state = PlateauState(lr=base_lr)

    @property
    def lr(self) -> float:
        return self.state.lr

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
