"""Checkpoints off the training step's path.

`CheckpointWriter.save({path: state, ...})` takes a snapshot of every tensor in the states and
returns; a background thread writes the files one after the other with
checkpoint.save_checkpoint (atomic: temporary file, fsync, rename; CRC-checked; the previous
file kept as `.prev`), so a kill -9 at any moment leaves the previous checkpoint intact.

- The snapshot is a copy in CPU memory taken at the step boundary, so training continues while
  the thread writes, and the file holds exactly the state of that step (bitwise resume). On CUDA
  the copies go into reused pinned buffers with non-blocking copies on the current stream: they
  run before the next step's updates in stream order, the host does not wait, and the thread
  waits on an event before writing. On the CPU they are plain copies.
- At most one write is in flight: a new save first waits for the previous one (which also makes
  the reused buffers free again).
- `wait()` blocks until the write in flight is done and raises its error (a CheckpointError: one
  line naming the file). The loop calls it before returning, and before anything reads the files.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from ..checkpoint import save_checkpoint
from ..errors import CheckpointError

Hook = Callable[[str, Path], None]  # (point, path), called in the writer thread (tests)


class CheckpointWriter:
    def __init__(self, background: bool = True, hook: Hook | None = None):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-writer") if background else None
        self._pending: Future | None = None
        self._buffers: dict[tuple, torch.Tensor] = {}  # reused snapshot memory, by (file, key path)
        self._hook = hook

    def save(self, files: dict[Path, dict]) -> None:
        """Snapshot `files` ({path: state}) and write them in the background (in order)."""
        self.wait()
        ready, snapshot = self._snapshot(files)
        if self._pool is None:
            self._write(snapshot, ready)
        else:
            self._pending = self._pool.submit(self._write, snapshot, ready)

    def wait(self) -> None:
        """Block until the write in flight (if any) is done; raise its error here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the write in flight, then stop the thread."""
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    # -- in the caller's thread ---------------------------------------------------------------
    def _snapshot(self, files: dict[Path, dict]) -> tuple[torch.cuda.Event | None, dict[Path, dict]]:
        copies: dict[int, torch.Tensor] = {}  # a tensor in several files (best.pt's weights) is copied once
        cuda = []

        def snap(value, key: tuple):
            if isinstance(value, torch.Tensor):
                if id(value) not in copies:
                    copies[id(value)] = self._copy(value.detach(), key)
                    cuda.append(value.is_cuda)
                return copies[id(value)]
            if isinstance(value, dict):
                return {k: snap(v, key + (k,)) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(snap(v, key + (i,)) for i, v in enumerate(value))
            return copy.deepcopy(value)

        snapshot = {path: snap(state, (path.name,)) for path, state in files.items()}
        ready = None
        if any(cuda):
            ready = torch.cuda.Event()
            ready.record()  # after the copies on the current stream
        return ready, snapshot

    def _copy(self, t: torch.Tensor, key: tuple) -> torch.Tensor:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
            buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=t.is_cuda)  # (a CPU tensor: where it is written from)
            self._buffers[key] = buf
        return buf.copy_(t, non_blocking=t.is_cuda)

    # -- in the writer thread -----------------------------------------------------------------
    def _write(self, snapshot: dict[Path, dict], ready: torch.cuda.Event | None) -> None:
        if ready is not None:
            ready.synchronize()  # the copies have landed (blocks this thread only)
        for path, state in snapshot.items():
            try:
                save_checkpoint(state, path, hook=self._hook)
            except CheckpointError:
                raise
            except Exception as e:  # anything else the thread hits: one line, not a traceback from another thread
                raise CheckpointError(f"could not write checkpoint {path}: {type(e).__name__}: {e}") from None
