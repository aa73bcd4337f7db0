"""The resumable, parallel build of a store: chunks of files converted by worker processes
(convert.py), committed in order to append-only files, and finished into a complete store.

Resuming: the work is cut into fixed chunks of files, in sorted order. Worker processes convert
chunks; the main process appends each finished chunk, in order, to append-only files, fsyncs
them, then atomically replaces `progress.npz`, which records how many chunks are committed, the
committed length of every file and the running sums. A rerun truncates every file to its
committed length and continues with the next chunk, so the result is byte-identical to an
uninterrupted run. `store.json` with `"complete": true` is written last.
"""
from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alexnet.data import sources, tars
from alexnet.data.convert import ChunkResult, Job, convert_chunk, read_payload
from alexnet.data.options import Hook, PrepareArgs, RunOptions
from alexnet.data.plan import Plan, PrepareError
from alexnet.data.report import PrepareSummary, main_reasons, summary
from alexnet.data.store import (MANIFEST, MEAN, META, PCA, PROGRESS, STATE, VERSION, building_files,
                                check_files, escape_line, image_file, labels_file, names_file, offsets_file, part_file, shard_file)
from alexnet.fsutil import stale_temporaries, write_atomic

MANIFEST_HEADER = "split\tpath\treason\n"

# ---- files and commit state --------------------------------------------------------------


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@dataclass
class State:
    """What is committed; saved atomically as progress.npz after every chunk."""

    chunks: int  # chunks committed, in job order
    lengths: dict[str, int]  # committed byte length of every append-only file
    counts: dict[str, dict[str, int]]  # split -> {"read", "stored", "skipped"}
    listing_skipped: int
    stats_images: int
    pixel_sum: np.ndarray  # (3, S, S) int64
    rgb_outer: np.ndarray  # (3, 3) int64

    def save(self, out: Path) -> None:
        info = {k: getattr(self, k) for k in ("chunks", "lengths", "counts", "listing_skipped", "stats_images")}
        buf = io.BytesIO()
        np.savez(buf, info=np.frombuffer(json.dumps(info).encode(), np.uint8),
                 pixel_sum=self.pixel_sum, rgb_outer=self.rgb_outer)
        write_atomic(out / PROGRESS, buf.getvalue())

    @classmethod
    def load(cls, out: Path) -> State:
        with np.load(out / PROGRESS) as z:
            info = json.loads(z["info"].tobytes())
            return cls(**info, pixel_sum=z["pixel_sum"], rgb_outer=z["rgb_outer"])


def _append(out: Path, state: State, name: str, data: bytes | np.ndarray) -> None:
    """Write `data` at the committed end of OUT/name and make it durable."""
    fd = os.open(out / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        end = state.lengths[name]
        os.lseek(fd, end, os.SEEK_SET)
        view = memoryview(data).cast("B")  # flat bytes, whatever the array shape
        n = len(view)
        while view:
            view = view[os.write(fd, view):]
        os.ftruncate(fd, end + n)
        os.fsync(fd)
    finally:
        os.close(fd)
    state.lengths[name] = end + n


def truncate(out: Path, lengths: dict[str, int]) -> None:
    """Drop anything written after the last commit (a run killed mid-chunk)."""
    for name, length in lengths.items():
        with open(out / name, "ab") as f:
            f.truncate(length)


def _append_shard(out: Path, state: State, name: str, shard: Path) -> None:
    """Like _append, with the data in a worker's shard file: copied inside the kernel."""
    fd, src = os.open(out / name, os.O_RDWR | os.O_CREAT, 0o644), os.open(shard, os.O_RDONLY)
    try:
        end, n = state.lengths[name], os.fstat(src).st_size
        done = 0
        while done < n:
            if hasattr(os, "copy_file_range"):
                step = os.copy_file_range(src, fd, n - done, done, end + done)
            else:  # no copy_file_range on this OS
                step = os.pwrite(fd, os.pread(src, min(n - done, 2**24), done), end + done)
            if step == 0:
                raise OSError(f"{shard} ended early")
            done += step
        os.ftruncate(fd, end + n)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.close(src)
    state.lengths[name] = end + n


def commit(out: Path, state: State, res: ChunkResult, fmt: str, hook: Hook | None) -> None:
    split = res.split
    start = state.lengths[image_file(split, fmt)]
    if res.shard is not None:
        _append_shard(out, state, image_file(split, fmt), Path(res.shard))
    elif fmt == "raw":
        _append(out, state, image_file(split, fmt), np.ascontiguousarray(res.images).reshape(-1))  # flat: a view
    else:
        _append(out, state, image_file(split, fmt), b"".join(res.images))
    if fmt == "jpeg":
        ends = start + np.cumsum(res.lengths, dtype=np.int64)
        _append(out, state, part_file(offsets_file(split)), ends.tobytes())
    _append(out, state, part_file(labels_file(split)), np.asarray(res.labels, np.int64).tobytes())
    names = "".join(escape_line(n) + "\n" for n in res.names)
    _append(out, state, names_file(split), names.encode("utf-8", "backslashreplace"))
    rows = "".join(f"{split}\t{escape_line(n)}\t{escape_line(r)}\n" for n, r in res.skips)
    _append(out, state, MANIFEST, rows.encode("utf-8", "backslashreplace"))
    if hook:
        hook("written", res.index)  # data written, not committed
    c = state.counts[split]
    c["read"] += len(res.names) + len(res.skips)
    c["stored"] += len(res.names)
    c["skipped"] += len(res.skips)
    if res.pixel_sum is not None:
        state.pixel_sum += res.pixel_sum
        state.rgb_outer += res.rgb_outer
        state.stats_images += len(res.names)
    state.chunks += 1
    state.save(out)  # the commit point
    if res.shard is not None:
        os.unlink(res.shard)
    if hook:
        hook("committed", res.index)


# ---- the arguments -----------------------------------------------------------------------

Hook = Callable[[str, int], None]
"""Called with (point, chunk index) at "worker" (in the worker process, before converting the
chunk), "written" (the chunk's data appended, not yet committed) and "committed". Tests inject
one to kill a run at a chosen point; it travels to the worker processes, so it must pickle."""


# ---- converting chunks ---------------------------------------------------------------


def start(out: Path, plan: Plan, args: dict[str, Any], chunk: int) -> None:
    """Create OUT with its arguments, the listing's skips and an empty commit state. The manifest
    comes first: it marks OUT as ours for a start killed before prepare.json exists (only_ours)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = MANIFEST_HEADER + "".join(f"{s.split}\t{escape_line(s.name)}\t{escape_line(s.reason)}\n" for s in plan.skips)
    write_atomic(out / MANIFEST, rows.encode("utf-8", "backslashreplace"))
    files = [f for s in plan.splits for f in building_files(s, args["format"])]
    for name in files:
        (out / name).write_bytes(b"")
    size = args["size"]
    state = State(0, {**{f: 0 for f in files}, MANIFEST: (out / MANIFEST).stat().st_size},
                  {s: {"read": 0, "stored": 0, "skipped": 0} for s in plan.splits}, len(plan.skips), 0,
                  np.zeros((3, size, size), np.int64), np.zeros((3, 3), np.int64))
    state.save(out)
    info = {"arguments": args, "fingerprint": plan.fingerprint(), "chunk_files": chunk}
    write_atomic(out / STATE, json.dumps(info, indent=1).encode())  # last: OUT is now resumable


def reading(src: Path, reader: tars.TarReader | None) -> Callable[[sources.Entry], bytes]:
    """How one entry's bytes are read in this process (for the estimate's sample)."""
    plain_tar = src.is_file() and reader is None

    def read(e: sources.Entry) -> bytes:
        if reader is not None:
            return reader.read(e)
        return read_payload(payload(e, src, plain_tar))
    return read


def payload(e: sources.Entry, src: Path, plain_tar: bool) -> str | tuple[str, int, int]:
    """What a worker is given to read an entry: a plain tar, offset and size, or a file's path."""
    if e.archive:
        return (e.archive, e.offset, e.size)
    return (str(src), e.offset, e.size) if plain_tar else e.key


def run_chunks(args: PrepareArgs, opts: RunOptions, plan: Plan, jobs: list, todo: range, out: Path) -> Iterator[ChunkResult]:
    """Convert chunks `todo` in parallel, yielding results in job order. Worker processes read
    their own files (folders, and plain .tar archives at the members' offsets) and write their
    images to a shard file in OUT; only names, labels and sums come back through the pipe. A
    compressed archive is one stream: the main process reads it and sends the bytes."""
    src, workers = args.source, max(1, min(opts.workers, len(todo)))
    plain_tar = not src.is_dir() and tars.is_plain_tar(src)
    reader = tars.TarReader(src) if not src.is_dir() and not plain_tar and todo else None

    def job(i: int) -> Job:
        split, entries = jobs[i]
        items = []
        for label, e in entries:
            if reader is None:  # the worker reads the file itself
                items.append((label, e.name, payload(e, src, plain_tar), ""))
                continue
            try:  # a compressed archive is read here, sequentially: workers only decode
                items.append((label, e.name, reader.read(e), ""))
            except (OSError, EOFError, zlib.error) as err:  # e.g. an archive truncated mid-member
                items.append((label, e.name, None, f"cannot read: {err}"))
        shard = str(out / shard_file(split, i)) if workers > 1 else None
        return Job(i, split, args.size, args.fmt, args.quality, split == plan.stats_split, items,
                   not args.full_decode, opts.hook, args.subsampling, args.progressive, shard)

    try:
        if workers == 1:
            for i in todo:
                yield convert_chunk(job(i))
            return
        # spawn: safe next to threads (torch) and the same on every OS.
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(workers, ctx, _watch_parent, (os.getpid(),)) as pool:
            pending: deque = deque()
            try:
                for i in todo:  # keep a few chunks in flight, bounded so memory stays flat
                    pending.append(pool.submit(convert_chunk, job(i)))
                    if len(pending) >= workers + 2:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            except BrokenProcessPool:
                raise PrepareError(f"a worker process died (out of memory?) while converting {src}: "
                                   "run again to continue from the last committed chunk, or use fewer workers") from None
            finally:
                for f in pending:
                    f.cancel()
    finally:
        if reader is not None:
            reader.close()


def only_ours(out: Path) -> bool:
    """OUT is empty, or holds only files a start that was killed before prepare.json could leave,
    beginning with our manifest (a user's own train.u8 alone is not a store in progress)."""
    ours = (".u8", ".jpg.bin", ".part", ".files.txt", ".tmp", MANIFEST, PROGRESS)
    found = list(out.iterdir()) if out.is_dir() else []
    if not found:
        return out.is_dir()
    try:
        with open(out / MANIFEST, "rb") as f:
            marked = f.read(len(MANIFEST_HEADER)) == MANIFEST_HEADER.encode()
    except OSError:
        return False
    return marked and all(p.name.endswith(ours) for p in found)


def _watch_parent(parent: int) -> None:
    """Pool initializer: exit when the main process dies (kill -9), instead of lingering forever."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


# ---- finishing ------------------------------------------------------------------------


def finish(out: Path, plan: Plan, state: State, args: dict[str, Any], chunk: int, source: str) -> PrepareSummary:
    """Write labels, offsets, mean and PCA, verify, then mark the store complete."""
    fmt, size = args["format"], args["size"]
    empty = _check_stored(out, plan, state)
    for s in plan.splits:
        labels = np.fromfile(out / part_file(labels_file(s)), np.int64)  # (N,)
        write_atomic(out / labels_file(s), _npy_bytes(labels))
        if fmt == "jpeg":
            ends = np.fromfile(out / part_file(offsets_file(s)), np.int64)
            write_atomic(out / offsets_file(s), _npy_bytes(np.concatenate([[0], ends]).astype(np.int64)))
    mean, pca = statistics(state.pixel_sum, state.rgb_outer, state.stats_images)
    write_atomic(out / MEAN, _npy_bytes(mean))
    write_atomic(out / PCA, json.dumps(pca, indent=1).encode())
    read = sum(c["read"] for c in state.counts.values()) + state.listing_skipped
    stored = sum(c["stored"] for c in state.counts.values())
    meta = {
        "version": VERSION, "size": size, "format": fmt, "quality": args["quality"],
        "jpeg_subsampling": args.get("subsampling", "4:4:4") if fmt == "jpeg" else None,
        "jpeg_progressive": args.get("progressive", False) if fmt == "jpeg" else None,
        "classes": plan.classes, "class_names": plan.names,
        "splits": {s: {"count": state.counts[s]["stored"], **state.counts[s]} for s in plan.splits},
        "stats_split": plan.stats_split, "stats_images": state.stats_images,
        "stats_note": "mean and PCA over the stored pixels of the stats split"
                      + ("" if plan.stats_split == "train" else " (no 'train' split: first split used)"),
        "mean_file": MEAN, "pca_file": PCA, "manifest": MANIFEST,
        "summary": {"read": read, "stored": stored, "skipped": read - stored},
        "empty_classes": empty,
        "notes": plan.notes,  # what prepare decided on its own (a labels file it found, a split left out)  # no image of these could be stored in the stats split (see the manifest)
        "source": args["source"], "arguments": args, "fingerprint": plan.fingerprint(), "chunk_files": chunk,
        "source_stamp": source,  # sources.stamp: a rerun on a changed source is refused
        "layout": "raw: <split>.u8 (N, 3, S, S) uint8; jpeg: <split>.jpg.bin + <split>.offsets.npy (N+1,)",
        "complete": True,
    }
    problem = check_files(out, meta)
    if problem:
        raise PrepareError(f"verification of {out} failed: {problem}; delete it and run prepare again")
    write_atomic(out / META, json.dumps(meta, indent=1).encode())  # the store is complete from here
    for name in [PROGRESS, STATE] + [part_file(f(s)) for s in plan.splits for f in (labels_file, offsets_file)]:
        (out / name).unlink(missing_ok=True)
    for name in [PROGRESS, STATE, MANIFEST, MEAN, PCA, META, *(f(s) for s in plan.splits for f in (labels_file, offsets_file))]:
        for tmp in stale_temporaries(out / name):  # write_atomic's, left by a run killed mid-write
            tmp.unlink(missing_ok=True)
    return summary(out, meta)


def _check_stored(out: Path, plan: Plan, state: State) -> list[str]:
    """After converting: every split kept some images (else an error); the classes of which no image
    of the stats split could be stored are returned, to be named in the summary: one class folder
    of unreadable files does not throw away the rest of the run."""
    redo = f"see {out / MANIFEST}; fix or remove those files, delete {out} and run prepare again"
    for s in plan.splits:
        if state.counts[s]["stored"] == 0:
            why = ", ".join(reason for reason, _ in main_reasons(out / MANIFEST, s, 1))
            raise PrepareError(f"none of the {state.counts[s]['read']} files of split {s} could be stored ({why}): {redo}")
    labels = np.fromfile(out / part_file(labels_file(plan.stats_split)), np.int64)  # (N,)
    return [plan.classes[i] for i in np.flatnonzero(np.bincount(labels, minlength=len(plan.classes)) == 0)]


def statistics(pixel_sum: np.ndarray, rgb_outer: np.ndarray, n: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Mean image (§2) and PCA of RGB values (§4.1) from exact integer sums over n images."""
    s = pixel_sum.shape[-1]
    if n == 0:
        raise PrepareError("no image of the statistics split was stored: a mean image and PCA need at least one")
    mean = (pixel_sum / n).astype(np.float32)  # (3, S, S)
    pixels = n * s * s
    mu = pixel_sum.sum(axis=(1, 2)) / pixels  # (3,) float64
    cov = rgb_outer / pixels - np.outer(mu, mu)  # (3, 3) covariance of RGB over all pixels
    vals, vecs = np.linalg.eigh(cov)  # ascending
    vals, vecs = vals[::-1].clip(min=0), vecs[:, ::-1]
    vecs = vecs * np.where(vecs.sum(axis=0) < 0, -1.0, 1.0)  # fix the arbitrary sign of each axis
    pca = {"eigvals": vals.tolist(), "eigvecs": vecs.tolist(), "rgb_mean": mu.tolist(),
           "covariance": cov.tolist(), "pixels": pixels}
    return mean, pca
