"""Checkpoints that cannot be half-written and cannot run code.

- Format: an ordinary `torch.save` file (a zip archive). Every record in it carries a CRC32, so
  truncation or a flipped byte is detected before loading (torch.load alone accepts both).
- Writing: to a temporary file in the same folder, flush + fsync, then os.replace: a reader
  sees the old file or the new one, never a mix. The previous checkpoint is first renamed to
  `<name>.prev.pt`, so a good one exists at every instant, even if the disk fills mid-write.
- Loading: torch.load(weights_only=True): tensors and plain containers only; a pickle that
  would import or call anything is refused.
- Content: `Record` (below) owns what a checkpoint holds, with a version; every reader and writer
  of a net's file goes through it.
"""
from __future__ import annotations

import math
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .config import Config, from_dict, to_dict
from .errors import CheckpointError
from .fsutil import write_atomic

FORMAT = "alexnet-checkpoint"
DESCRIPTION = "alexnet-weights"  # the JSON description in exported files (.safetensors, .onnx)
VERSION = 2  # 2: best.pt carries `input`; every record carries `metrics` and `recipe` (1 still loads)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers, so saved keys never carry their prefixes."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def prev_path(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_checkpoint(state: dict, path: str | Path, keep_prev: bool = True,
                    hook: Callable[[str, Path], None] | None = None) -> Path:
    """Atomically write `state` to `path`. On any failure the last good checkpoint stays intact.
    `hook(point, path)` (tests) is called at "written": serialised into the temporary file, not
    yet made durable or renamed."""
    path = Path(path)

    def content(f) -> None:
        torch.save({"format": FORMAT, "version": VERSION, **state}, f)  # a Record's to_state() holds both
        if hook is not None:
            hook("written", path)
    try:
        write_atomic(path, content, keep=prev_path(path) if keep_prev else None)
    except OSError as e:
        raise CheckpointError(f"could not write checkpoint {path}: {e.strerror or e}; the previous one is intact") from None
    return path


def verify(path: str | Path) -> None:
    """Check the zip structure and every record's CRC32. Raise CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or not a checkpoint ({e})") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt (checksum mismatch in {bad})")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Verify, then load without executing anything from the file."""
    verify(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))  # torch names the refused global, e.g. posix.system
        what = f"a reference to {found.group(1)}" if found else "objects other than tensors and plain containers"
        raise CheckpointError(f"refusing to load {path}: it holds {what}, which could run code when loaded; "
                              "alexnet loads only files of tensors and plain containers, such as its own checkpoints") from None
    except (RuntimeError, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} could not be read: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict (got {type(state).__name__})")
    return state


def load_with_fallback(path: str | Path, map_location="cpu") -> tuple[dict, Path]:
    """Load `path`, or its `.prev` twin if `path` is missing or damaged (message names both)."""
    path = Path(path)
    try:
        return load_checkpoint(path, map_location), path
    except CheckpointError as first:
        prev = prev_path(path)
        if not prev.is_file():
            raise
        try:
            return load_checkpoint(prev, map_location), prev
        except CheckpointError:
            raise CheckpointError(f"{first}; the fallback {prev} is damaged too") from None


# ---- the record: what every file the project writes for a net holds -----------------------------

INPUT_TEXT = ("RGB pixels 0..255: shorter side rescaled to `size`, central size x size kept (§2), minus the mean "
              "image, then crop x crop views (§4.1: the centre, or four corners + centre and their reflections)")


@dataclass
class InputMeta:
    """What the training store knew that using the net needs (§2, §4.1): the stored side S, the
    mean image subtracted from every input, the RGB PCA of the colour noise, and the store's path
    (for the record only: nothing reads the store back)."""

    size: int
    mean: torch.Tensor  # (3, S, S) float32, 0..255
    pca_eigvals: torch.Tensor | None = None  # (3,) descending; None: unknown (a torchvision file)
    pca_eigvecs: torch.Tensor | None = None  # (3, 3) columns
    store: str = ""

    def to_state(self) -> dict:
        return {"store": self.store, "size": self.size, "mean": self.mean, "pca_eigvals": self.pca_eigvals,
                "pca_eigvecs": self.pca_eigvecs}

    @classmethod
    def from_state(cls, d: dict) -> InputMeta:
        return cls(int(d["size"]), d["mean"].float(), d.get("pca_eigvals"), d.get("pca_eigvecs"), str(d.get("store") or ""))

    @property
    def pca(self) -> dict[str, torch.Tensor]:
        return {} if self.pca_eigvals is None else {"eigvals": self.pca_eigvals, "eigvecs": self.pca_eigvecs}


@dataclass
class TrainingState:
    """What only continuing a run needs (last.pt): optimiser, schedule and health state. The data
    order is a function of (seed, epoch) and the record's progress, so the loader needs none."""

    optimizer: dict
    schedule: dict
    health: dict | None = None

    def to_state(self) -> dict:
        return {"optimizer": self.optimizer, "schedule": self.schedule, "health": self.health}


@dataclass
class Record:
    """One checkpoint, the one format of a trained net (nanoGPT's one checkpoint dict, built in
    one place; torchvision's weights record, free of file readers). last.pt is the whole record;
    best.pt, ensemble members and exported weights are the record without `training`. Everything
    needed to use the net is here, never in its store.

    Version 2 (this one) added `input` to best.pt, `metrics` and `recipe`; version 1 files load
    (`from_state`), their best.pt without `input` (`input` None: see evaluate.read_record)."""

    config: Config
    model: dict[str, torch.Tensor]  # the plain net's state dict (no DDP / compile prefixes)
    classes: list[str]  # the ids (wnids, folder names), the key of every class
    class_names: list[str] = field(default_factory=list)  # what people read, one per class
    input: InputMeta | None = None
    progress: dict = field(default_factory=dict)  # epoch, batch, step, best_error, world when written
    metrics: list[dict] = field(default_factory=list)  # measured on these weights, each with its command
    recipe: dict = field(default_factory=dict)  # how it was made: command, epochs, steps, source of a fine-tune
    training: TrainingState | None = None
    source: str = ""  # the file it was read from (not written)

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.classes):
            self.class_names = list(self.classes)

    def without_training(self) -> Record:
        """best.pt, an ensemble member, an exported net: all of it but what only resuming needs."""
        return replace(self, training=None)

    def to_state(self) -> dict:
        """The dict torch.save writes (tensors and plain containers only)."""
        state = {"format": FORMAT, "version": VERSION, "config": to_dict(self.config), "model": self.model,
                 "classes": list(self.classes), "class_names": list(self.class_names),
                 "input": None if self.input is None else self.input.to_state(), "progress": dict(self.progress),
                 "metrics": list(self.metrics), "recipe": dict(self.recipe)}
        return state | (self.training.to_state() if self.training is not None else {})

    @classmethod
    def from_state(cls, state: dict, path: str | Path = "checkpoint") -> Record:
        """The record of a loaded alexnet checkpoint, version 1 or 2."""
        if state.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not an alexnet checkpoint")
        version = state.get("version", 1)
        if version > VERSION:
            raise CheckpointError(f"{path} is a version {version} checkpoint, newer than this alexnet reads "
                                  f"({VERSION}): upgrade alexnet (pip install -U alexnet)")
        if "config" not in state or "model" not in state:
            raise CheckpointError(f"{path} has no saved config or weights: it was not written by `alexnet train`")
        cfg = from_dict(state["config"])
        classes = list(state.get("classes") or [str(i) for i in range(cfg.model.num_classes)])  # v1 may lack them
        training = TrainingState(state["optimizer"], state["schedule"], state.get("health")) \
            if "optimizer" in state and "schedule" in state else None
        record = cls(cfg, state["model"], classes, list(state.get("class_names") or []),
                     InputMeta.from_state(state["input"]) if state.get("input") else None,
                     {"world": 1, **(state.get("progress") or {})},  # version 1 before torchrun: one process
                     list(state.get("metrics") or []), dict(state.get("recipe") or {}), training, str(path))
        return record if version >= 2 else record.upgraded()

    def upgraded(self) -> Record:
        """A version 1 record with what version 2 writes: the metrics and recipe it implies."""
        cfg, p = self.config, self.progress
        best = p.get("best_error", math.inf)  # measured on best.pt's weights: last.pt's (with training state) are others
        metrics = [validation_metric(cfg, best, "the run's best so far, the one in best.pt")] \
            if math.isfinite(best) and self.training is None else []
        return replace(self, metrics=self.metrics or metrics, recipe=self.recipe or recipe_of(cfg, p, self.input))

    def description(self, num_params: int) -> dict:
        """The JSON description (torchvision's `weights.meta`): what a .safetensors or .onnx file
        carries beside the tensors. `categories` are the class ids, `class_names` what people read."""
        cfg = self.config
        size = self.input.size if self.input is not None else cfg.data.size
        return {"format": DESCRIPTION, "version": VERSION, "arch": cfg.model.arch, "categories": list(self.classes),
                "class_names": list(self.class_names), "num_classes": len(self.classes),
                "num_params": num_params,
                "size": size, "crop": cfg.data.crop, "views": ["center", "10crop"], "input": INPUT_TEXT,
                "mean_image": cfg.data.mean_image, "metrics": self.metrics, "recipe": self.recipe,
                "progress": {k: v for k, v in self.progress.items() if k != "best_error" or math.isfinite(v)},
                "config": to_dict(cfg), "source": self.source}

    @classmethod
    def from_description(cls, meta: dict, model: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor],
                         path: str | Path) -> Record:
        """The record of an exported file: its JSON description, the net's tensors and the input's
        tensors (`mean`, `pca_eigvals`, `pca_eigvecs`)."""
        if not isinstance(meta, dict) or meta.get("format") != DESCRIPTION:
            raise CheckpointError(f"{path} has no alexnet description: write one with "
                                  "`alexnet export CKPT --weights OUT.safetensors` (or --onnx OUT.onnx)")
        cfg = from_dict(meta["config"])
        inp = InputMeta(int(meta["size"]), tensors["mean"].float(), tensors.get("pca_eigvals"), tensors.get("pca_eigvecs"),
                        str(meta.get("recipe", {}).get("store") or ""))
        return cls(cfg, model, list(meta["categories"]), list(meta.get("class_names") or []), inp,
                   dict(meta.get("progress") or {}), list(meta.get("metrics") or []), dict(meta.get("recipe") or {}),
                   None, str(path))


def validation_metric(cfg: Config, top1_error: float, which: str, **more) -> dict:
    """The validation error training measured on a checkpoint's weights, with its command."""
    d = cfg.data
    split = f"holdout ({100 * d.holdout:g}% of {d.train_split})" if d.holdout else d.val_split
    return {"split": split, "views": cfg.eval.val_views, "top1_error": top1_error, **more,
            "command": f"alexnet train: validation after each epoch ({which})"}


def recipe_of(cfg: Config, progress: dict, inp: InputMeta | None) -> dict:
    """How a checkpoint's net was made (from its config and progress)."""
    return {"command": "alexnet finetune" if cfg.finetune.source else "alexnet train", "epochs": progress.get("epoch"),
            "steps": progress.get("step"), "finetuned_from": cfg.finetune.source or None,
            "store": inp.store if inp is not None else cfg.data.store}


def read_record(path: str | Path, map_location: str | torch.device = "cpu") -> Record:
    """The record in an alexnet checkpoint file (verified, nothing executed)."""
    return Record.from_state(load_checkpoint(path, map_location), path)


def write_record(record: Record, path: str | Path, keep_prev: bool = True) -> Path:
    return save_checkpoint(record.to_state(), path, keep_prev)
