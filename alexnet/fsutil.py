"""Durable file writes: one way to replace a file atomically, used by checkpoints and stores."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX: fsync the directory). Best effort: a folder that
    cannot be opened for reading (some platforms, some file systems) is left as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, content: bytes | Callable[[BinaryIO], None], keep: Path | None = None) -> Path:
    """Replace `path` with `content` (bytes, or a function writing into the open file) so that a
    reader sees the old file or the new one, never a mix: write a temporary file in the same
    folder, flush + fsync, rename over `path`, fsync the folder. With `keep`, the old file is first
    renamed to `keep`, so a complete file exists at every instant. On any error the temporary file
    is removed and the error re-raised; `path` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one name per process (stale_temporaries)
    try:
        with open(tmp, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content)
            f.flush()
            os.fsync(f.fileno())
        if keep is not None and path.exists():
            os.replace(path, keep)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary files that write_atomic left next to `path` when its process was killed mid-write
    (never read: the old file or the new one is always complete). Delete them only when no other
    process can be writing `path`."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))
