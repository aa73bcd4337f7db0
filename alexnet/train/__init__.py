"""Training (§5): the loop, the optimiser, the schedule, the run folder and resuming."""
from .loop import Trainer, open_trainer, train
from .parts import Parts, build_parts

__all__ = ["Parts", "Trainer", "build_parts", "open_trainer", "train"]
