"""Learning-rate schedules. The schedule owns the learning rate: before every step the loop calls
`schedule.advance(step)` and applies what it returns with optim.apply_lr, in one place; `lr` is
the rate of the current step. The state is a small dict saved with every checkpoint.

- plateau (§5, the default): start at 0.01, divide by 10 when the validation error stops
  improving, three times, then stop.
- linear / cosine (not the paper's; for a fixed budget such as the imagenette-fast preset):
  decay to 0 at the end of schedule.epochs, linearly or along half a cosine. The rate is a
  function of the step alone.
- step (§5's divisions by 10, placed by the budget instead of by the validation error): the rate is
  divided by schedule.factor schedule.max_cuts times, at i / (max_cuts + 1) of schedule.epochs
  (i = 1..max_cuts; 90 epochs: 22.5, 45, 67.5, near run 145's cuts at 25, 51 and ~75). A
  function of the step alone, like linear and cosine.
- cuts (§5's divisions by 10 at steps planned in advance; the experiments' fixed budgets): the rate
  is divided by schedule.factor at each step of schedule.cut_steps. A function of the step alone.
- warm-up (not the paper's; any kind): with schedule.warmup_epochs = W > 0 the rate grows linearly
  to its value over the first W epochs (Goyal et al. 2017 "Accurate, Large Minibatch SGD", used with
  LARS by You et al. 2017 for large batches); a function of the step, so nothing more is saved.
"""
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
        self.warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)

    @property
    def lr(self) -> float:
        return self.state.lr

    def lr_at(self, step: int) -> float:
        """The lr of training step `step` (0-based): `lr`, scaled down during the warm-up."""
        if step >= self.warmup_steps:
            return self.state.lr
        return self.state.lr * (step + 1) / self.warmup_steps

    def advance(self, step: int) -> float:
        """The lr of training step `step` (the loop's one call before each step)."""
        return self.lr_at(step)

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


@dataclass
class DecayState:
    base_lr: float  # the peak, reached at the end of the warm-up
    step: int = 0  # the step whose lr `lr` reports


class DecaySchedule:
    """schedule.kind=linear|cosine|step|cuts: warm-up, then decay over schedule.epochs or cuts at
    schedule.cut_steps (module docstring). Sized from the loader it trains on (steps_per_epoch)."""

    def __init__(self, cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int):
        self.cfg = cfg
        self.total = cfg.epochs * steps_per_epoch
        self.warmup = round(cfg.warmup_epochs * steps_per_epoch)
        self.state = DecayState(base_lr=base_lr)

    def lr_at(self, step: int) -> float:
        base = self.state.base_lr
        if step < self.warmup:
            return base * (step + 1) / self.warmup
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))  # 0 -> 1 over the decay
        if self.cfg.kind == "cuts":
            return _cut(base, self.cfg.factor, sum(step >= at for at in self.cfg.cut_steps))
        if self.cfg.kind == "step":
            cuts = min(self.cfg.max_cuts, math.floor(t * (self.cfg.max_cuts + 1)))
            return base * self.cfg.factor ** cuts
        return base * (1.0 - t) if self.cfg.kind == "linear" else base * 0.5 * (1.0 + math.cos(math.pi * t))

    @property
    def lr(self) -> float:
        return self.lr_at(self.state.step)

    def advance(self, step: int) -> float:
        self.state.step = step
        return self.lr

    def observe(self, epoch: int, val_error: float) -> bool:
        """Validation does not move this schedule (never a cut)."""
        return False

    def reduce(self) -> None:
        """Divergence rollback: the whole remaining curve times `factor`."""
        self.state.base_lr *= self.cfg.factor

    def restart_at(self, lr: float) -> None:
        """A resume with optim.lr: the curve's peak becomes `lr` (the rate from here on scales with it)."""
        self.state.base_lr = lr

    def finished(self, epochs_done: int) -> bool:
        return epochs_done >= self.cfg.epochs

    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, d: dict) -> None:
        self.state = DecayState(**d)


def _cut(lr: float, factor: float, cuts: int) -> float:
    """`lr` divided `cuts` times, one multiplication at a time: the same floats as a plateau's cuts."""
    for _ in range(cuts):
        lr *= factor
    return lr


Schedule = PlateauSchedule | DecaySchedule


def build_schedule(cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int) -> Schedule:
    if cfg.kind == "plateau":
        return PlateauSchedule(cfg, base_lr, steps_per_epoch)
    return DecaySchedule(cfg, base_lr, steps_per_epoch)
