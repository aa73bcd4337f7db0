"""Checkpoints that cannot be half-written and cannot run code.

- Format: an ordinary `torch.save` file (a zip archive). Every record in it carries a CRC32, so
  truncation or a flipped byte is detected before loading (torch.load alone accepts both).
- Writing: to a temporary file in the same folder, flush + fsync, then os.replace: a reader
  sees the old file or the new one, never a mix. The previous checkpoint is first renamed to
  `<name>.prev.pt`, so a good one exists at every instant, even if the disk fills mid-write.
- Loading: torch.load(weights_only=True): tensors and plain containers only; a pickle that
  would import or call anything is refused.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .fsutil import write_atomic

FORMAT = "alexnet-checkpoint"
VERSION = 1


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
        torch.save({"format": FORMAT, "version": VERSION, **state}, f)
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


def model_weights(state: dict, path: Path | str = "checkpoint") -> dict:
    """The model's state dict from an alexnet checkpoint, or the file itself if it is a plain state dict."""
    if state.get("format") == FORMAT:
        return state["model"]
    if all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    raise CheckpointError(f"{path} is neither an alexnet checkpoint nor a state dict")
