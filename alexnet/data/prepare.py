"""Build an image store (see store.py) from an image-folder tree or a tar archive.

Every image is decoded with Pillow, converted to RGB, rescaled so its shorter side is S and
centre-cropped to S x S (§2: "rescale so the shorter side is 256, crop the central 256x256"),
the same arithmetic as torchvision's Resize(S) + CenterCrop(S). While storing we accumulate,
over the train split, the sums needed for the per-pixel mean image (§2) and for the PCA of RGB
pixel values (§4.1).

Resuming: the work is cut into fixed chunks of files, in sorted order. Worker processes convert
chunks; the main process appends each finished chunk, in order, to append-only files, fsyncs
them, then atomically replaces `progress.npz`, which records how many chunks are committed, the
committed length of every file and the running sums. A rerun truncates every file to its
committed length and continues with the next chunk, so the result is byte-identical to an
uninterrupted run. `store.json` with `"complete": true` is written last.

Before any image is converted (and again on a resume), one line says what the rest will cost,
from a sample converted here (estimate.py), and a disk that cannot hold it is refused. ImageNet's
own archives (data/imagenet.py) are found in SRC and read in place; their devkit gives the class
order and the names, which store.json keeps beside the ids (`class_names`, names.py).

Flat splits (`labels=`, ImageNet's validation folder): the images of SPLIT sit directly in
SRC/SPLIT/ and their classes come from a labels file (see `sources.read_labels`); class names
must be class folders of the other splits. Unknown classes, listed-but-missing files and files
without a label are skips in the manifest. The labels (and synsets) files' SHA-256 are part of
the arguments, so a changed labels file is never resumed into the same store.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing as mp
import os
import re
import sys
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from alexnet.data import imagenet, sources
from alexnet.data.convert import SUBSAMPLING, ChunkResult, Job, convert_chunk, read_payload
from alexnet.data.estimate import Estimate, FreeSpace, estimate, free_space
from alexnet.data.names import display_names, names_from_texts, read_names_file
from alexnet.data.plan import Plan, PrepareError, make_jobs, make_plan
from alexnet.data.sources import Labels, LabelsError, SourceError
from alexnet.data.store import (MANIFEST, MEAN, META, PCA, PROGRESS, SHARD_SUFFIX, STATE, VERSION, building_files,
                                check_files, image_file, labels_file, names_file, offsets_file, part_file, read_meta,
                                shard_file)
from alexnet.fsutil import write_atomic

CHUNK_FILES = 256  # files per unit of work and of commit; recorded in OUT so a resume reuses it
# Below this much work (seconds in one process, from the estimate's sample) the default runs in one
# process: starting a worker cost about 0.29 s of CPU each here (100 images: 0.57 s in one process,
# 1.15 s with 2 workers, on 2026-12-03), more than it saves.
POOL_MIN_SECONDS = 2.0
FORMATS = ("raw", "jpeg")


@dataclass
class PrepareSummary:
    read: int
    stored: int
    skipped: int  # read == stored + skipped
    manifest: Path  # lists every skipped source file with its reason
    out: Path = field(default=Path("."))
    reasons: tuple[tuple[str, int], ...] = ()  # the most common reasons for a skip, with their counts
    files: tuple[tuple[str, str], ...] = ()  # every skipped file and its reason, from the manifest

    def line(self) -> str:
        why = "; main reasons: " + ", ".join(f"{n} {reason}" for reason, n in self.reasons) if self.reasons else ""
        return (f"read {self.read}, stored {self.stored}, skipped {self.skipped} -> {self.out} "
                f"(manifest: {self.manifest}){why}")

    def lines(self, most: int = 100) -> list[str]:
        """The summary line, then each skipped file with its reason (the first `most`; all are in the manifest)."""
        shown = [f"  skipped {name}: {reason}" for name, reason in self.files[:most]]
        more = [f"  ... and {len(self.files) - most} more in {self.manifest}"] if len(self.files) > most else []
        return [self.line(), *shown, *more]


# ---- files and commit state --------------------------------------------------------------


def _tsv(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


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


def _truncate(out: Path, lengths: dict[str, int]) -> None:
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


def _commit(out: Path, state: State, res: ChunkResult, fmt: str, hook: Hook | None) -> None:
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
    names = "".join(_tsv(n) + "\n" for n in res.names)
    _append(out, state, names_file(split), names.encode("utf-8", "backslashreplace"))
    rows = "".join(f"{split}\t{_tsv(n)}\t{_tsv(r)}\n" for n, r in res.skips)
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


@dataclass(frozen=True)
class PrepareArgs:
    """What determines the bytes of a store. Recorded in OUT: a resume must match it exactly."""

    source: Path
    size: int = 256
    fmt: str = "raw"
    quality: int = 90  # jpeg only; 90, 4:2:0, baseline: docs/guide.md "Store format" (<= 50 GB for ImageNet)
    splits: tuple[str, ...] | None = None  # None: every split
    limit_per_class: int | None = None
    labels: dict[str, dict[str, str]] | None = None  # flat split -> {"file", "sha256"} of its labels file
    synsets: dict[str, str] | None = None  # {"file", "sha256"} of the devkit's synsets file
    full_decode: bool = False
    subsampling: str = "4:2:0"  # jpeg only: chroma subsampling
    progressive: bool = False  # jpeg only
    num_classes: int | None = None  # --classes N (plan.pick_classes); None: all
    imagenet: str | None = None  # ImageNet's files as distributed (imagenet.detect): "ILSVRC2012", ...

    def record(self) -> dict[str, Any]:
        """The JSON form saved in prepare.json and store.json (the keys of older stores unchanged)."""
        rec: dict[str, Any] = {"source": str(self.source), "size": self.size, "format": self.fmt,
                               "quality": self.quality if self.fmt == "jpeg" else None,
                               "splits": list(self.splits) if self.splits else None,
                               "limit_per_class": self.limit_per_class}
        if self.labels:  # only then: the arguments of stores without flat splits stay as they were
            rec["labels"], rec["synsets"] = self.labels, self.synsets
        if self.full_decode:  # likewise recorded only when set
            rec["full_decode"] = True
        if self.fmt == "jpeg":  # always: jpeg stores made before these options were 4:4:4, baseline
            rec["subsampling"], rec["progressive"] = self.subsampling, self.progressive
        if self.num_classes is not None:
            rec["classes"] = self.num_classes
        if self.imagenet:
            rec["imagenet"] = self.imagenet
        return rec


@dataclass(frozen=True)
class RunOptions:
    """How a prepare runs; nothing here changes the store's bytes."""

    workers: int = 1
    strict: bool = False
    progress: bool = True
    chunk_files: int | None = None  # for a new store (None: auto_chunk); a resume keeps the chunking it started with
    hook: Hook | None = None
    free_space: FreeSpace = free_space  # bytes free at OUT (tests stand in a full disk)
    names: tuple[Path, bytes] | None = None  # --class-names FILE (store.json's class_names, not its images)
    auto_workers: bool = False  # workers not given: one process for small jobs (POOL_MIN_SECONDS)


def auto_chunk(files: int, workers: int) -> int:
    """Files per chunk: CHUNK_FILES, or fewer when that would leave workers idle (small sets), so
    that every worker gets about four chunks; at least 16 so per-chunk commits stay cheap."""
    return max(16, min(CHUNK_FILES, -(-files // (4 * workers))))


def _check_arguments(size: int, fmt: str, quality: int, workers: int | None, limit_per_class: int | None,
                     chunk_files: int | None, subsampling: str, classes: int | None) -> None:
    checks = [(classes is None or classes >= 1, f"--classes {classes}: must be >= 1"),
              (size >= 1, f"--size {size}: the stored side must be >= 1 pixel (§2: 256)"),
              (fmt in FORMATS, f"--format {fmt!r}: use one of {', '.join(FORMATS)}"),
              (1 <= quality <= 100, f"--quality {quality}: JPEG quality must be in 1..100"),
              (workers is None or workers >= 1, f"--workers {workers}: must be >= 1 (default: all cores)"),
              (limit_per_class is None or limit_per_class >= 1, f"--limit-per-class {limit_per_class}: must be >= 1"),
              (subsampling in SUBSAMPLING, f"--subsampling {subsampling!r}: use one of {', '.join(SUBSAMPLING)}"),
              (chunk_files is None or chunk_files >= 1, f"chunk_files={chunk_files}: must be >= 1")]
    for ok, message in checks:
        if not ok:
            raise PrepareError(message)


# ---- the run -----------------------------------------------------------------------------


def prepare(src: str | Path, out: str | Path, *, size: int = 256, fmt: str = "raw", quality: int = 90,
            workers: int | None = None, strict: bool = False, splits: list[str] | None = None,
            limit_per_class: int | None = None, progress: bool = True,
            labels: dict[str, str | Path] | None = None, synsets: str | Path | None = None,
            full_decode: bool = False, chunk_files: int | None = None, hook: Hook | None = None,
            subsampling: str = "4:2:0", progressive: bool = False, imagenet: bool | None = None,
            classes: int | None = None, class_names: str | Path | None = None,
            space: FreeSpace | None = None) -> PrepareSummary:
    """Convert SRC (folder or .tar/.tar.gz/.tgz of <split>/<class>/<image>) into a store at OUT.

    `labels` maps a flat split (its images directly in SRC/<split>/, e.g. ImageNet's val) to its
    labels file: ``file,class`` lines (LOC_val_solution.csv or any mapping) or the devkit's
    ILSVRC2012_validation_ground_truth.txt, which also needs `synsets` (one wnid per line in
    ILSVRC2012_ID order).

    `full_decode` turns off the reduced-scale decoding of large JPEGs (convert.draft), for pixels
    identical to torchvision's Resize + CenterCrop of the full image. `subsampling` ("4:4:4",
    "4:2:2", "4:2:0") and `progressive` choose the stored JPEG files (fmt="jpeg"). `chunk_files`
    (default: auto_chunk), `hook` and `space` (a stand-in for the free space at OUT) are for tests.

    `imagenet`: SRC is a folder of ImageNet's files as distributed (see data/imagenet.py); None:
    detected. `classes`: keep N classes spread over the set (plan.pick_classes). `class_names`: a
    file of ``ID NAME`` lines; by default the names come from the set's own files when it has them.
    Before converting, one line (on stderr, with `progress`) gives the images, the store's size, the
    free space and the time, from a measured sample; a disk too small for it is refused.
    """
    _check_arguments(size, fmt, quality, workers, limit_per_class, chunk_files, subsampling, classes)
    src, out = Path(src).expanduser().resolve(), Path(out).expanduser().resolve()
    label_files, synsets_file = _label_inputs(labels, synsets)
    layout = _imagenet_layout(src, imagenet, label_files)
    args = PrepareArgs(src, size, fmt, quality, tuple(sorted(set(splits))) if splits else None, limit_per_class,
                       {s: _file_arg(p, d) for s, (p, d) in sorted(label_files.items())} or None,
                       _file_arg(*synsets_file) if synsets_file else None, full_decode, subsampling, progressive,
                       classes, layout)
    names = _read_small(class_names, "class names file") if class_names is not None else None
    opts = RunOptions(workers or os.cpu_count() or 1, strict, progress, chunk_files, hook, space or free_space, names,
                      workers is None)
    try:
        return _build(args, opts, out, _parse_labels(label_files, synsets_file))
    except OSError as e:  # source files are read with their own handling (skips): this is OUT or its disk
        where = f" ({e.filename})" if e.filename else ""
        raise PrepareError(f"cannot build the store {out}: {e.strerror or e}{where}; check that it can be written "
                           "and has free space (re-running continues from the last committed chunk)") from None


def _build(args: PrepareArgs, opts: RunOptions, out: Path, labels: dict[str, Labels]) -> PrepareSummary:
    """Start the store at OUT (or continue it), convert what is left, then finish it."""
    done = _finished(out, args.record())
    if done is not None:
        return done
    plan, chunk, cost = _begin(args, out, opts, labels)
    if opts.auto_workers:
        opts = replace(opts, workers=cost.workers)
    state = State.load(out)
    _truncate(out, state.lengths)
    for stale in out.glob(f"*{SHARD_SUFFIX}"):  # shards of chunks a killed run had not committed
        stale.unlink()
    jobs = make_jobs(plan, chunk)
    todo = range(state.chunks, len(jobs))
    total = sum(len(plan.entries[s]) for s in plan.splits)
    done_files = sum(len(jobs[i][1]) for i in range(state.chunks))
    with tqdm(total=total, initial=done_files, unit="img", disable=not opts.progress, desc="prepare") as bar:
        for res in _run(args, opts, plan, jobs, todo, out):
            if opts.strict and res.skips:
                name, reason = res.skips[0]
                raise PrepareError(f"strict: {name} in {args.source}: {reason}")
            _commit(out, state, res, args.fmt, opts.hook)
            bar.update(len(res.names) + len(res.skips))
    return _finish(out, plan, state, args.record(), chunk)


def _label_inputs(labels: dict[str, str | Path] | None, synsets: str | Path | None
                  ) -> tuple[dict[str, tuple[Path, bytes]], tuple[Path, bytes] | None]:
    """Read the labels files (split -> (path, bytes)) and the synsets file."""
    files = {}
    for split, path in (labels or {}).items():
        if not split or split in (".", "..") or "/" in split or "\\" in split:
            raise PrepareError(f"--labels {split!r}=FILE: SPLIT must be the name of a split folder, e.g. val=FILE")
        files[split] = _read_small(path, f"labels file of split {split}")
    syn = _read_small(synsets, "synsets file") if synsets is not None else None
    if syn and not files:
        raise PrepareError(f"--synsets {syn[0]} is only used with --labels SPLIT=FILE (the devkit's ground truth)")
    return files, syn


def _read_small(path: str | Path, what: str) -> tuple[Path, bytes]:
    path = Path(path).expanduser().resolve()
    try:
        data = sources.read_file(str(path))
    except OSError as e:
        raise PrepareError(f"cannot read {what} {path}: {e.strerror or e}") from None
    return path, data


def _file_arg(path: Path, data: bytes) -> dict[str, str]:
    return {"file": str(path), "sha256": hashlib.sha256(data).hexdigest()}


def _parse_labels(files: dict[str, tuple[Path, bytes]], synsets: tuple[Path, bytes] | None) -> dict[str, Labels]:
    try:
        wnids = sources.read_synsets(*synsets) if synsets else None
        return {s: sources.read_labels(p, d, wnids, synsets[0] if synsets else None) for s, (p, d) in files.items()}
    except LabelsError as e:
        raise PrepareError(str(e)) from None


def _begin(args: PrepareArgs, out: Path, opts: RunOptions, labels: dict[str, Labels]) -> tuple[Plan, int, Estimate]:
    """List SRC and start OUT, or check that OUT was started from the same SRC and arguments."""
    src, record = args.source, args.record()
    state_file = out / STATE
    saved = json.loads(state_file.read_text()) if state_file.is_file() else None
    if saved is not None and saved["arguments"] != record:
        raise PrepareError(_different(out, saved["arguments"], record))
    if saved is None and out.exists() and not _only_ours(out):
        raise PrepareError(f"{out} exists and is not a store in progress: choose a new OUT or delete it")
    if src.is_dir() and out.is_relative_to(src):
        raise PrepareError(f"OUT {out} is inside SRC {src}: choose an OUT outside the source tree")
    plan = _plan(args, labels, opts.names)
    if opts.strict and plan.skips:
        s = plan.skips[0]
        raise PrepareError(f"strict: {s.name} in {src}: {s.reason}")
    if saved is None:
        chunk = opts.chunk_files or auto_chunk(sum(len(plan.entries[s]) for s in plan.splits), opts.workers)
        cost = _check_space(args, opts, plan, chunk, 0, out)
        _start(out, plan, record, chunk)
        return plan, chunk, cost
    if saved["fingerprint"] != plan.fingerprint():
        raise PrepareError(f"{src} changed since {out} was started: delete {out} or choose a new OUT")
    chunk = saved["chunk_files"]  # the chunking of the interrupted run
    return plan, chunk, _check_space(args, opts, plan, chunk, State.load(out).chunks, out)


def _imagenet_layout(src: Path, wanted: bool | None, labels: dict) -> str | None:
    folder = imagenet.holder(src)
    if folder is not None:
        raise PrepareError(f"{src} is a part of ImageNet's files: give the folder holding them all ({folder}), where "
                           "the labels and class names are found too (--splits train for the training set alone)")
    layout = imagenet.detect(src) if wanted is not False else None
    if wanted and layout is None:
        raise PrepareError(f"--imagenet: no ImageNet files in {src}: expected ILSVRC2012_img_train.tar / "
                           "ILSVRC2012_img_val.tar + ILSVRC2012_devkit_t12.tar.gz, the ILSVRC2010_* files, or Kaggle's "
                           f"{imagenet.KAGGLE_ROOT}/ with {imagenet.KAGGLE_SYNSETS} (see alexnet prepare --help)")
    if layout and labels:
        raise PrepareError(f"--labels: {src} holds ImageNet's files ({layout}), whose labels come from its own files: "
                           "drop --labels and --synsets")
    return layout


def _plan(args: PrepareArgs, labels: dict[str, Labels], names_file: tuple[Path, bytes] | None) -> Plan:
    """List the source and decide what to store, in what class order, under which names."""
    src = args.source
    try:
        if args.imagenet:
            found = imagenet.read_imagenet(src, args.imagenet, list(args.splits) if args.splits else None)
            listing, labels, order, names = found.listing, found.labels, found.order, found.names
        else:
            listing, order = sources.list_source(src, flat=frozenset(labels)), None
            names = {}
        plan = make_plan(listing, src, list(args.splits) if args.splits else None, args.limit_per_class, labels,
                         order, args.num_classes)
        if not names:
            names = names_from_texts(listing.texts, plan.classes)
        if names_file is not None:
            names = {**names, **read_names_file(*names_file, plan.classes)}
    except (SourceError, LabelsError, imagenet.ImageNetError) as e:
        raise PrepareError(str(e)) from None
    plan.names = display_names(plan.classes, names)
    return plan


def _check_space(args: PrepareArgs, opts: RunOptions, plan: Plan, chunk: int, committed: int, out: Path) -> Estimate:
    """Say what the rest of the work costs (one line), and refuse it when OUT's disk cannot hold it."""
    jobs = make_jobs(plan, chunk)
    todo = [e for _, entries in jobs[committed:] for _, e in entries]
    src = args.source
    stream = src.is_file() and not sources.is_plain_tar(src)
    reader = sources.TarReader(src) if stream and todo else None
    try:
        est = estimate(todo, sum(len(plan.entries[s]) for s in plan.splits), _reading(src, reader), size=args.size,
                       fmt=args.fmt, quality=args.quality, subsampling=args.subsampling, progressive=args.progressive,
                       draft=not args.full_decode, workers=opts.workers, out=out, space=opts.free_space, stream=stream)
    finally:
        if reader is not None:
            reader.close()
    if opts.auto_workers and est.images * est.per_image < POOL_MIN_SECONDS:
        est = replace(est, workers=1, seconds=est.images * est.per_image)
    if not est.fits():
        raise PrepareError(est.refusal())
    if opts.progress:
        print(est.line(), file=sys.stderr, flush=True)
    return est


def _reading(src: Path, reader: sources.TarReader | None) -> Callable[[sources.Entry], bytes]:
    """How one entry's bytes are read in this process (for the estimate's sample)."""
    plain_tar = src.is_file() and reader is None

    def read(e: sources.Entry) -> bytes:
        if reader is not None:
            return reader.read(e)
        return read_payload(_payload(e, src, plain_tar))
    return read


def _payload(e: sources.Entry, src: Path, plain_tar: bool) -> str | tuple[str, int, int]:
    """What a worker is given to read an entry: a plain tar, offset and size, or a file's path."""
    if e.archive:
        return (e.archive, e.offset, e.size)
    return (str(src), e.offset, e.size) if plain_tar else e.key


def _run(args: PrepareArgs, opts: RunOptions, plan: Plan, jobs: list, todo: range, out: Path) -> Iterator[ChunkResult]:
    """Convert chunks `todo` in parallel, yielding results in job order. Worker processes read
    their own files (folders, and plain .tar archives at the members' offsets) and write their
    images to a shard file in OUT; only names, labels and sums come back through the pipe. A
    compressed archive is one stream: the main process reads it and sends the bytes."""
    src, workers = args.source, max(1, min(opts.workers, len(todo)))
    plain_tar = not src.is_dir() and sources.is_plain_tar(src)
    reader = sources.TarReader(src) if not src.is_dir() and not plain_tar and todo else None

    def job(i: int) -> Job:
        split, entries = jobs[i]
        items = []
        for label, e in entries:
            if reader is None:  # the worker reads the file itself
                items.append((label, e.name, _payload(e, src, plain_tar), ""))
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


def _only_ours(out: Path) -> bool:
    """OUT is empty, or holds only files a start that was killed before prepare.json could leave."""
    ours = (".u8", ".jpg.bin", ".part", ".files.txt", ".tmp", MANIFEST, PROGRESS)
    return out.is_dir() and all(p.name.endswith(ours) for p in out.iterdir())


def _watch_parent(parent: int) -> None:
    """Pool initializer: exit when the main process dies (kill -9), instead of lingering forever."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _start(out: Path, plan: Plan, args: dict[str, Any], chunk: int) -> None:
    """Create OUT with its arguments, the listing's skips and an empty commit state."""
    out.mkdir(parents=True, exist_ok=True)
    files = [f for s in plan.splits for f in building_files(s, args["format"])]
    for name in files:
        (out / name).write_bytes(b"")
    rows = "split\tpath\treason\n" + "".join(f"{s.split}\t{_tsv(s.name)}\t{_tsv(s.reason)}\n" for s in plan.skips)
    write_atomic(out / MANIFEST, rows.encode("utf-8", "backslashreplace"))
    size = args["size"]
    state = State(0, {**{f: 0 for f in files}, MANIFEST: (out / MANIFEST).stat().st_size},
                  {s: {"read": 0, "stored": 0, "skipped": 0} for s in plan.splits}, len(plan.skips), 0,
                  np.zeros((3, size, size), np.int64), np.zeros((3, 3), np.int64))
    state.save(out)
    info = {"arguments": args, "fingerprint": plan.fingerprint(), "chunk_files": chunk}
    write_atomic(out / STATE, json.dumps(info, indent=1).encode())  # last: OUT is now resumable


def _finish(out: Path, plan: Plan, state: State, args: dict[str, Any], chunk: int) -> PrepareSummary:
    """Write labels, offsets, mean and PCA, verify, then mark the store complete."""
    fmt, size = args["format"], args["size"]
    _check_stored(out, plan, state)
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
        "source": args["source"], "arguments": args, "fingerprint": plan.fingerprint(), "chunk_files": chunk,
        "layout": "raw: <split>.u8 (N, 3, S, S) uint8; jpeg: <split>.jpg.bin + <split>.offsets.npy (N+1,)",
        "complete": True,
    }
    problem = check_files(out, meta)
    if problem:
        raise PrepareError(f"verification of {out} failed: {problem}; delete it and run prepare again")
    write_atomic(out / META, json.dumps(meta, indent=1).encode())  # the store is complete from here
    for name in [PROGRESS, STATE] + [part_file(f(s)) for s in plan.splits for f in (labels_file, offsets_file)]:
        (out / name).unlink(missing_ok=True)
    return _summary(out, meta)


def _check_stored(out: Path, plan: Plan, state: State) -> None:
    """After converting: every split kept some images, and every class some in the stats split."""
    redo = f"see {out / MANIFEST}; fix or remove those files, delete {out} and run prepare again"
    for s in plan.splits:
        if state.counts[s]["stored"] == 0:
            why = ", ".join(reason for reason, _ in _main_reasons(out / MANIFEST, s, 1))
            raise PrepareError(f"none of the {state.counts[s]['read']} files of split {s} could be stored ({why}): {redo}")
    labels = np.fromfile(out / part_file(labels_file(plan.stats_split)), np.int64)  # (N,)
    empty = [plan.classes[i] for i in np.flatnonzero(np.bincount(labels, minlength=len(plan.classes)) == 0)]
    if empty:
        raise PrepareError(f"no image of class {', '.join(empty[:3])}{' ...' if len(empty) > 3 else ''} in split "
                           f"{plan.stats_split} could be stored: {redo}")


def _manifest_rows(manifest: Path) -> list[list[str]]:
    """(split, path, reason) of every skipped file."""
    rows = [line.split("\t") for line in manifest.read_text(errors="replace").splitlines()[1:]]
    return [r for r in rows if len(r) == 3]


def _main_reasons(manifest: Path, split: str | None = None, n: int = 3) -> tuple[tuple[str, int], ...]:
    """The n most common kinds of reason in the manifest (of one split, or all), with their counts."""
    kinds = Counter(_reason_kind(r[2]) for r in _manifest_rows(manifest) if split in (None, r[0]))
    return tuple(kinds.most_common(n))


def _reason_kind(reason: str) -> str:
    """A reason without the details of one file: 'corrupt image: OSError: ...' -> 'corrupt image'."""
    reason = re.sub(r"'[^']*'", "'...'", reason)
    reason = re.sub(r" \([^)]*\)", "", reason)
    reason = re.sub(r"line \d+", "line N", reason)
    return reason.split(": ", 1)[0]


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


def _finished(out: Path, args: dict[str, Any]) -> PrepareSummary | None:
    try:
        meta = read_meta(out) if out.is_dir() else None
    except (OSError, ValueError):
        raise PrepareError(f"{out} has an unreadable {META}: delete it and run prepare again") from None
    if meta is None:
        return None
    if meta.get("arguments") != args:
        raise PrepareError(_different(out, meta.get("arguments") or {}, args))
    if not meta.get("complete"):
        return None
    problem = check_files(out, meta)  # cheap: sizes and shapes only
    if problem:
        raise PrepareError(f"damaged store at {out}: {problem}; delete it and run prepare again")
    return _summary(out, meta)


def _summary(out: Path, meta: dict[str, Any]) -> PrepareSummary:
    s = meta["summary"]
    reasons = _main_reasons(out / MANIFEST) if s["skipped"] else ()
    files = tuple((r[1], r[2]) for r in _manifest_rows(out / MANIFEST))
    return PrepareSummary(s["read"], s["stored"], s["skipped"], out / MANIFEST, out, reasons, files)


def _different(out: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    diff = ", ".join(f"{k} {old.get(k)!r} -> {new[k]!r}" for k in new if old.get(k) != new[k])
    return f"{out} was prepared with different arguments ({diff}): choose a new OUT or delete it"
