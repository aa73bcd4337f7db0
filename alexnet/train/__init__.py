"""Training (§5): the loop, the optimiser, the schedule, the run folder and resuming."""
from .loop import Drive, Trainer, open_trainer, train
from .parts import Parts, build_parts

__all__ = ["Drive", "Parts", "Trainer", "build_parts", "open_trainer", "train"]
