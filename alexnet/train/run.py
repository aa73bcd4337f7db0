"""A run's folder and what is written into it:

    RUN/config.json     the resolved config (written once the run has started cleanly)
    RUN/run.json        how it ran: one entry per start (fresh, resumed, restarted) with the command
                        line, world size, device and its name, precision, versions, the package's
                        commit and what the config took from the store
    RUN/metrics.jsonl   one JSON object per line: train (every log_every_steps), val (every epoch), events
    RUN/tb/             the same scalars for TensorBoard
    RUN/last.pt         the newest checkpoint (and last.prev.pt, the one before it)
    RUN/best.pt         the checkpoint with the lowest validation error so far
"""
from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path

from .. import checkpoint as ckpt
from ..config import Config, save_config
from ..errors import UserError
from ..fsutil import stale_temporaries, write_atomic


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

    def image(self, tag: str, step: int, image) -> None:
        """An RGB image, (H, W, 3) uint8, for TensorBoard's Images tab."""
        if self.tb is not None:
            self.tb.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


LAST = "last.pt"  # the newest checkpoint of a run


class NullLog:
    """The log of a process that does not write (ranks other than 0 under torchrun)."""

    def write(self, kind: str, step: int, **values) -> None:
        pass

    def image(self, tag: str, step: int, image) -> None:
        pass

    def close(self) -> None:
        pass


class RunFolder:
    """The folder of one run. Opening it checks that it matches the intent (a new run never
    overwrites a checkpoint, a resume needs one) without writing anything; `create` makes it
    once the run's parts are built, and `discard` takes back what a run that failed before its
    first checkpoint wrote, so the same --out starts clean. With several processes every one opens
    it (and reads checkpoints from it); only the `writer` (rank 0) writes."""

    NAMES = ("config.json", "run.json", "metrics.jsonl", "tb")  # what a run writes before its first checkpoint

    def __init__(self, path: str | Path, resume: bool, writer: bool = True):
        self.path, self.writer = Path(path), writer
        self._made: list[Path] = []  # what create() found missing, so discard() may remove it
        if not resume and self.has_checkpoint(self.path):
            raise UserError(f"run folder {self.path} already holds a checkpoint: continue it with --resume {self.path}, "
                            "or choose another --out")
        if resume and not self.has_checkpoint(self.path):
            raise UserError(f"nothing to resume in {self.path}: it has no last.pt")
        if resume and writer:
            self._remove_stale_temporaries()

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

    def create(self) -> None:
        """Make the folder and check that it can be written (the writer only)."""
        if not self.writer:
            return
        self._made = [p for p in [self.path] + [self.path / n for n in self.NAMES] if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise UserError(f"cannot write to run folder {self.path}: {e.strerror}; choose another --out") from None

    def _remove_stale_temporaries(self) -> None:
        """Half-written checkpoints of a killed run (never read; only disk space)."""
        for path in (self.last, self.best):
            for tmp in stale_temporaries(path):
                tmp.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove what this run made, if it wrote no checkpoint (nothing to resume, nothing to keep)."""
        if not self.writer or self.has_checkpoint(self.path) or self.best.exists():
            return
        for p in reversed(self._made):  # the folder itself last
            if p.is_dir() and p != self.path:
                shutil.rmtree(p, ignore_errors=True)
            elif p.is_file():
                p.unlink()
        if self.path in self._made and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def save_config(self, cfg: Config) -> None:
        if self.writer:
            save_config(cfg, self.path / "config.json")

    def record_start(self, facts: dict) -> None:
        """Append one start of the run (how it runs, facts: runtime.run_facts and more) to run.json."""
        if not self.writer:
            return
        path = self.path / "run.json"
        try:
            starts = json.loads(path.read_text())["starts"] if path.exists() else []
        except (OSError, ValueError, KeyError, TypeError):
            starts = []  # an unreadable record is replaced, never a reason to stop a run
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        starts.append({"started": started, **facts})
        write_atomic(path, (json.dumps({"starts": starts}, indent=1) + "\n").encode())

    def open_log(self) -> RunLog | NullLog:
        return RunLog(self.path) if self.writer else NullLog()
