"""A run's folder and what is written into it:

    RUN/config.json     the resolved config (written once the run has started cleanly)
    RUN/metrics.jsonl   one JSON object per line: train (every log_every_steps), val (every epoch), events
    RUN/tb/             the same scalars for TensorBoard
    RUN/last.pt         the newest checkpoint (and last.prev.pt, the one before it)
    RUN/best.pt         the checkpoint with the lowest validation error so far
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .. import checkpoint as ckpt
from ..config import Config, save_config
from ..errors import UserError


class RunLog:
    """metrics.jsonl (one JSON object per line) and TensorBoard scalars in the run folder."""

    def __init__(self, folder: Path):
        self.file = open(folder / "metrics.jsonl", "a")
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(folder / "tb"))
        except ImportError:  # tensorboard is a dependency, but a broken install should not stop training
            self.tb = None

    def write(self, kind: str, step: int, **values) -> None:
        self.file.write(json.dumps({"kind": kind, "step": step, "time": time.time(), **values}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()

LAST = "last.pt"  # the newest checkpoint of a run


class NullLog:
    """The log of a process that does not write (ranks other than 0 under torchrun)."""

    def write(self, kind: str, step: int, **values) -> None:
        pass

    def close(self) -> None:
        pass


class RunFolder:
    """The folder of one run. Opening it checks that it can be written and that it matches the
    intent: a new run never overwrites a checkpoint, a resume needs one. With several processes
    every one opens it (and reads checkpoints from it); only the `writer` (rank 0) writes."""

    def __init__(self, path: str | Path, resume: bool, writer: bool = True):
        self.path, self.writer = Path(path), writer
        if writer:
            self._check_writable()
        has_ckpt = self.has_checkpoint(self.path)
        if has_ckpt and not resume:
            raise UserError(f"run folder {self.path} already holds a checkpoint: continue it with --resume {self.path}, "
                            "or choose another --out")
        if resume and not has_ckpt:
            raise UserError(f"nothing to resume in {self.path}: it has no last.pt")

    @staticmethod
    def has_checkpoint(path: str | Path) -> bool:
        last = Path(path) / LAST
        return last.exists() or ckpt.prev_path(last).exists()

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def _check_writable(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise UserError(f"cannot write to run folder {self.path}: {e.strerror}; choose another --out") from None

    def save_config(self, cfg: Config) -> None:
        if self.writer:
            save_config(cfg, self.path / "config.json")

    def open_log(self) -> RunLog | NullLog:
        return RunLog(self.path) if self.writer else NullLog()
