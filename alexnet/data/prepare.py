"""`alexnet prepare`: build an image store (see store.py) from an image-folder tree, a tar
archive or ImageNet's files as distributed. This module decides what to do (the source listed and
planned, OUT started, resumed or found complete) and hands the work to build.py.

Every image is decoded with Pillow, converted to RGB, rescaled so its shorter side is S and
centre-cropped to S x S (§2: "rescale so the shorter side is 256, crop the central 256x256"),
the same arithmetic as torchvision's Resize(S) + CenterCrop(S) (convert.py). While storing we
accumulate, over the train split, the sums needed for the per-pixel mean image (§2) and for the
PCA of RGB pixel values (§4.1). The work is committed in chunks, so a rerun continues a killed
run to a byte-identical store (build.py).

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
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from alexnet.data import imagenet, sources, tars
from alexnet.data.build import (State, commit, finish, only_ours, reading, run_chunks, start, statistics,
                                truncate)
from alexnet.data.estimate import Estimate, estimate
from alexnet.data.names import display_names, names_from_texts, read_names_file
from alexnet.data.options import CHUNK_FILES, FORMATS, Hook, PrepareArgs, PrepareOptions, RunOptions, auto_chunk
from alexnet.data.plan import Plan, PrepareError, make_jobs, make_plan
from alexnet.data.report import PrepareSummary, different, summary
from alexnet.data.sources import Labels, LabelsError, SourceError
from alexnet.data.store import META, SHARD_SUFFIX, STATE, check_files, escape_line, read_meta

__all__ = ["CHUNK_FILES", "FORMATS", "Hook", "PrepareArgs", "PrepareError", "PrepareOptions", "PrepareSummary",
           "RunOptions", "auto_chunk", "prepare", "statistics"]

# Below this much work (seconds in one process, from the estimate's sample) the default runs in one
# process: starting a worker cost about 0.29 s of CPU each here (100 images: 0.57 s in one process,
# 1.15 s with 2 workers, on 2026-12-03), more than it saves.
POOL_MIN_SECONDS = 2.0


def prepare(src: str | Path, out: str | Path, options: PrepareOptions | None = None, **changes: Any) -> PrepareSummary:
    """Convert SRC (folder or .tar/.tar.gz/.tgz of <split>/<class>/<image>) into a store at OUT.

    `options` says how (PrepareOptions, the flags of `alexnet prepare`); `changes` are fields of it
    (``prepare(src, out, size=64)``). Before converting, one line (on stderr, with `progress`) gives
    the images, the store's size, the free space and the time, from a measured sample; a disk too
    small for it is refused.
    """
    o = replace(options or PrepareOptions(), **changes)  # checked when built (PrepareOptions.__post_init__)
    src, out = Path(src).expanduser().resolve(), Path(out).expanduser().resolve()
    label_files, synsets_file = _label_inputs(o.labels, o.synsets)
    layout = _imagenet_layout(src, o.imagenet, label_files)
    args = PrepareArgs.of(src, o, {s: _file_arg(p, d) for s, (p, d) in sorted(label_files.items())} or None,
                          _file_arg(*synsets_file) if synsets_file else None, layout)
    names = _read_small(o.class_names, "class names file") if o.class_names is not None else None
    opts = RunOptions.of(os.cpu_count() or 1, o, names)
    try:
        return _build(args, opts, out, _parse_labels(label_files, synsets_file))
    except OSError as e:  # source files are read with their own handling (skips): this is OUT or its disk
        named = Path(e.filename) if isinstance(e.filename, str) else out
        if not (named.is_relative_to(out) or out.is_relative_to(named)):  # ... unless it names a file elsewhere
            raise PrepareError(f"cannot read {e.filename}: {e.strerror or e}") from None
        where = f" ({e.filename})" if e.filename else ""
        raise PrepareError(f"cannot build the store {out}: {e.strerror or e}{where}; check that it can be written "
                           "and has free space (re-running continues from the last committed chunk)") from None


def _build(args: PrepareArgs, opts: RunOptions, out: Path, labels: dict[str, Labels]) -> PrepareSummary:
    """Start the store at OUT (or continue it), convert what is left, then finish it."""
    source = sources.stamp(args.source)  # before listing: a change from here on is seen on the next run
    done = _finished(out, args.record(), source)
    if done is not None:
        return done
    plan, chunk, cost = _begin(args, out, opts, labels)
    if opts.auto_workers:
        opts = replace(opts, workers=cost.workers)
    state = State.load(out)
    truncate(out, state.lengths)
    for stale in out.glob(f"*{SHARD_SUFFIX}"):  # shards of chunks a killed run had not committed
        stale.unlink()
    jobs = make_jobs(plan, chunk)
    todo = range(state.chunks, len(jobs))
    total = sum(len(plan.entries[s]) for s in plan.splits)
    done_files = sum(len(jobs[i][1]) for i in range(state.chunks))
    with tqdm(total=total, initial=done_files, unit="img", disable=not opts.progress, desc="prepare") as bar:
        for res in run_chunks(args, opts, plan, jobs, todo, out):
            if opts.strict and res.skips:
                name, reason = res.skips[0]
                raise PrepareError(f"strict: {escape_line(name)} in {args.source}: {escape_line(reason)}")
            commit(out, state, res, args.fmt, opts.hook)
            bar.update(len(res.names) + len(res.skips))
    return finish(out, plan, state, args.record(), chunk, source)


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
        raise PrepareError(different(out, saved["arguments"], record))
    if saved is None and out.exists() and not only_ours(out):
        raise PrepareError(f"{out} exists and is not a store in progress: choose a new OUT or delete it")
    if src.is_dir() and out.is_relative_to(src):
        raise PrepareError(f"OUT {out} is inside SRC {src}: choose an OUT outside the source tree")
    plan = _plan(args, labels, opts.names)
    if opts.strict and plan.skips:
        s = plan.skips[0]
        raise PrepareError(f"strict: {escape_line(s.name)} in {src}: {escape_line(s.reason)}")
    if saved is None:
        chunk = opts.chunk_files or auto_chunk(sum(len(plan.entries[s]) for s in plan.splits), opts.workers)
        cost = _check_space(args, opts, plan, chunk, 0, out)
        start(out, plan, record, chunk)
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
            listing, labels, notes = _labels_beside_images(args, listing, labels)
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
    plan.notes = [] if args.imagenet else notes
    return plan


def _labels_beside_images(args: PrepareArgs, listing: sources.Listing, labels: dict[str, Labels]
                          ) -> tuple[sources.Listing, dict[str, Labels], list[str]]:
    """Splits with only an images/ folder and no --labels (Tiny ImageNet's val/ and test/): one with
    a single text file beside images/ (val/val_annotations.txt) takes its labels from it, and says
    so; one with none is left out, and says so, unless --splits asks for it (then plan refuses,
    naming what to give). --labels SPLIT=FILE overrides both."""
    wanted = set(args.splits or listing.splits)
    found: dict[str, str] = {}  # split -> its labels file, by its name in the layout
    left_out: list[str] = []
    for s, classes in listing.splits.items():
        if s in labels or set(classes) != {sources.IMAGES} or s not in wanted:
            continue
        texts = [k.name for k in listing.skips if k.split == s and k.name.count("/") == 1
                 and k.name.lower().endswith((".txt", ".csv", ".tsv"))]
        if len(texts) == 1:
            found[s] = texts[0]
        elif not args.splits and len(listing.splits) > 1:
            left_out.append(s)
    if found:
        listing = sources.list_source(args.source, flat=frozenset(labels) | set(found))  # those splits read flat
    for s in left_out:
        listing.splits.pop(s)
    listing.skips = [k for k in listing.skips if k.split not in left_out]
    notes = [f"{s}/ holds only {sources.IMAGES}/ and no labels file: left out (give --labels {s}=FILE to store it)"
             for s in left_out]
    labels = dict(labels)
    for s, name in found.items():
        entry = next(e for e in listing.flat[s] if e.name == name)
        labels[s] = _read_found_labels(args.source, entry)
        notes.append(f"labels of {s}/ from {name}, found beside its images (--labels {s}=FILE to use another)")
    return listing, labels, sorted(notes)


def _read_found_labels(src: Path, entry: sources.Entry) -> Labels:
    stream = src.is_file() and not tars.is_plain_tar(src)
    reader = tars.TarReader(src) if stream else None
    try:
        data = reading(src, reader)(entry)
        return sources.read_labels(Path(entry.name), data, None)
    except (OSError, EOFError, LabelsError) as e:
        raise PrepareError(f"{entry.name} in {src} looks like the labels of its split but cannot be read ({e}): "
                           f"give --labels {entry.split}=FILE") from None
    finally:
        if reader is not None:
            reader.close()


def _check_space(args: PrepareArgs, opts: RunOptions, plan: Plan, chunk: int, committed: int, out: Path) -> Estimate:
    """Say what the rest of the work costs (one line), and refuse it when OUT's disk cannot hold it."""
    jobs = make_jobs(plan, chunk)
    todo = [e for _, entries in jobs[committed:] for _, e in entries]
    src = args.source
    stream = src.is_file() and not tars.is_plain_tar(src)
    reader = tars.TarReader(src) if stream and todo else None
    try:
        est = estimate(todo, sum(len(plan.entries[s]) for s in plan.splits), reading(src, reader), size=args.size,
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


def _finished(out: Path, args: dict[str, Any], source: str) -> PrepareSummary | None:
    try:
        meta = read_meta(out) if out.is_dir() else None
    except (OSError, ValueError):
        raise PrepareError(f"{out} has an unreadable {META}: delete it and run prepare again") from None
    if meta is None:
        return None
    if meta.get("arguments") != args:
        raise PrepareError(different(out, meta.get("arguments") or {}, args))
    if not meta.get("complete"):
        return None
    if meta.get("source_stamp", source) != source:  # stores made before the stamp existed are trusted, as before
        raise PrepareError(f"{args['source']} changed since the store {out} was made from it (an archive's size or "
                           "time, or a folder's files): delete the store and run prepare again, or choose a new OUT")
    problem = check_files(out, meta)  # cheap: sizes and shapes only
    if problem:
        raise PrepareError(f"damaged store at {out}: {problem}; delete it and run prepare again")
    return summary(out, meta)
