"""What `alexnet prepare` will store: the classes, each split's files in sorted order with their
labels (from class folders, or from a labels file for flat splits such as ImageNet's validation
folder), the files skipped while listing, and the cut into fixed chunks of work."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet.data import sources
from alexnet.data.sources import Entry, LabelRow, Labels
from alexnet.errors import UserError


class PrepareError(UserError):
    """A prepare run cannot go on; the message (one line) names the path and what to do."""


@dataclass
class Plan:
    splits: list[str]
    classes: list[str]
    entries: dict[str, list[tuple[int, Entry]]]  # split -> (label, entry), sorted
    skips: list[sources.Skip]  # found while listing (and labelling flat splits)
    stats_split: str
    label_hashes: dict[str, str] = field(default_factory=dict)  # flat split -> SHA-256 of its labels file
    names: list[str] = field(default_factory=list)  # what people read, one per class (set by prepare; not fingerprinted)
    notes: list[str] = field(default_factory=list)  # what prepare decided on its own, said in the summary (not fingerprinted)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for split in self.splits:
            for label, e in self.entries[split]:
                h.update(f"{label}\t{e.name}\t{e.size}\n".encode("utf-8", "backslashreplace"))
        for s in self.skips:
            h.update(f"{s.split}\t{s.name}\t{s.reason}\n".encode("utf-8", "backslashreplace"))
        h.update(json.dumps([self.splits, self.classes]).encode())
        if self.label_hashes:  # only with flat splits: fingerprints of foldered sources are unchanged
            h.update(json.dumps(self.label_hashes, sort_keys=True).encode())
        return h.hexdigest()


def pick_classes(classes: list[str], n: int) -> list[str]:
    """`--classes N`: N classes spread evenly over the sorted ids (ImageNet-100 style), the same
    ones from any layout of the same set; kept in the set's own class order."""
    ids = sorted(classes)
    chosen = {ids[i * len(ids) // n] for i in range(n)}
    return [c for c in classes if c in chosen]


def make_plan(listing: sources.Listing, src: Path, splits: list[str] | None, limit: int | None,
              labels: dict[str, Labels] | None = None, order: list[str] | None = None,
              num_classes: int | None = None) -> Plan:
    """`order`: the class order when the set defines one (ImageNet's devkit: ILSVRC ids); default sorted.
    `num_classes`: keep only that many classes (pick_classes); the others' images are not read."""
    labels = labels or {}
    available = sorted(set(listing.splits) | set(listing.flat))
    for s in labels:
        if s not in listing.flat:
            raise PrepareError(f"split {s} of --labels {s}=FILE is not a folder in {src}; "
                               f"available: {', '.join(available) or 'none'}")
    found = available
    if not found:
        raise PrepareError(f"no <split>/<class>/<image> folders found in {src}")
    if splits:
        missing = [s for s in splits if s not in available]
        if missing:
            raise PrepareError(f"split(s) {', '.join(missing)} not in {src}; available: {', '.join(found)}")
        found = [s for s in found if s in splits]
    flat = [s for s in found if s in listing.flat]
    images_only = [s for s in found if set(listing.splits.get(s, {})) == {sources.IMAGES}]
    if images_only:
        raise PrepareError(_images_only(images_only, found, src, listing.skips))
    for s in flat:
        if not listing.flat[s] and any(k.split == s and k.reason == sources.FLAT_SUBFOLDER for k in listing.skips):
            raise PrepareError(f"{s}/ in {src} holds folders, not images: --labels {s}=FILE is for a flat {s}/ "
                               f"(images directly in it); drop it if {s}/ has class folders")
    # A flat split's classes are the class folders of the other splits (all of them if none is selected).
    class_splits = [s for s in found if s in listing.splits] or ([s for s in listing.splits] if flat else [])
    classes = sorted({c for s in class_splits for c in listing.splits[s]})
    if order is not None:
        classes = _in_order(classes, order, src) if classes else list(order)
    if not classes:
        if flat:
            raise PrepareError(f"no class folders in {src}: flat split {flat[0]} takes its class names from the "
                               "class folders of the other splits (<split>/<class>/<image>)")
        raise PrepareError(f"no class folders found in {src} (expected {src}/<split>/<class>/<image>)")
    dropped: set[str] = set()
    if num_classes is not None:
        if num_classes > len(classes):
            raise PrepareError(f"--classes {num_classes}: {src} has only {len(classes)} classes")
        kept = pick_classes(classes, num_classes)
        dropped, classes = set(classes) - set(kept), kept
    index = {c: i for i, c in enumerate(classes)}
    entries = {}
    skips = [k for k in listing.skips if k.split not in available or k.split in found]  # drop unselected splits
    for s in found:
        if s in listing.flat:
            entries[s], more = _label_flat(s, listing.flat[s], labels[s], index, class_splits, limit, dropped)
            skips += more
        else:
            entries[s] = [(index[c], e) for c, es in listing.splits[s].items() if c in index for e in es[:limit]]
            entries[s].sort(key=lambda item: item[0])  # class order (sorted ids unless the set has its own)
    skips.sort(key=lambda k: (k.split, k.name))
    # §2: the mean image (and §4.1 PCA) come from the training set; without one, the first split.
    stats_split = "train" if "train" in found else found[0]
    _check_not_empty(entries, classes, stats_split, skips, src)
    return Plan(found, classes, entries, skips, stats_split, {s: labels[s].sha256 for s in flat})


def _in_order(classes: list[str], order: list[str], src: Path) -> list[str]:
    rank = {c: i for i, c in enumerate(order)}
    unknown = [c for c in classes if c not in rank]
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise PrepareError(f"class folder(s) {', '.join(unknown[:3])}{more} in {src} are not among the {len(order)} "
                           "classes of its devkit or synset mapping: remove them or check the files")
    return sorted(classes, key=rank.__getitem__)


def _images_only(splits: list[str], found: list[str], src: Path, skips: list[sources.Skip]) -> str:
    """The message for splits that hold only an images/ folder (Tiny ImageNet's val/ and test/)."""
    texts = [k.name for k in skips if k.split in splits and k.name.count("/") == 1
             and k.name.lower().endswith((".txt", ".csv", ".tsv"))]
    found_text = f" (found: {', '.join(texts)})" if texts else ""
    others = [s for s in found if s not in splits]
    one = len(splits) == 1
    leave = f", or leave {'it' if one else 'them'} out with --splits {' '.join(others)}" if others else ""
    return (f"{', '.join(f'{s}/' for s in splits)} in {src} {'has' if one else 'have'} no class folders, only an "
            f"{sources.IMAGES}/ folder: {'its' if one else 'their'} classes come from a labels file, give "
            f"--labels {splits[0] if one else 'SPLIT'}=FILE{'' if one else ' for each'}{found_text}{leave}")


def _check_not_empty(entries: dict[str, list[tuple[int, Entry]]], classes: list[str], stats_split: str,
                     skips: list[sources.Skip], src: Path) -> None:
    """Every split has images, and every class has images in the split the statistics come from."""
    for split, items in entries.items():
        if not items:
            raise PrepareError(f"split {split} in {src} has no images to store{_top_reason(skips, split)}; "
                               "see `alexnet prepare --help` for the layouts it reads")
    counts = np.bincount([label for label, _ in entries[stats_split]], minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        more = f" and {len(empty) - 3} more" if len(empty) > 3 else ""
        raise PrepareError(f"class{'es' if len(empty) > 1 else ''} {', '.join(empty[:3])}{more} "
                           f"{'have' if len(empty) > 1 else 'has'} no images in split {stats_split} of {src} "
                           "(a net cannot learn a class it never sees): add images or remove the folder")


def _top_reason(skips: list[sources.Skip], split: str) -> str:
    reasons = Counter(k.reason for k in skips if k.split == split)
    if not reasons:
        return ""
    reason, n = reasons.most_common(1)[0]
    return f" ({n} file(s) skipped: {reason})"


def _label_flat(split: str, files: list[Entry], labels: Labels, index: dict[str, int], class_splits: list[str],
                limit: int | None, dropped: set[str] = frozenset()) -> tuple[list[tuple[int, Entry]], list[sources.Skip]]:
    """Label the files of a flat split from its labels file; everything not labelled is a skip."""
    where = labels.path.name
    base = {e.name: e.name.rsplit("/", 1)[-1] for e in files}
    assigned: dict[str, LabelRow] = {}
    conflicts: dict[str, str] = {}
    missing: list[sources.Skip] = []
    unlabelled = f"no label in {where}"

    def assign(e: Entry, row: LabelRow) -> None:
        prev = assigned.setdefault(e.name, row)
        if prev.cls != row.cls:
            conflicts[e.name] = f"conflicting labels in {where}: line {prev.line} says {prev.cls}, line {row.line} says {row.cls}"

    def not_found(name: str, row: LabelRow) -> None:
        missing.append(sources.Skip(split, f"{split}/{name}", f"listed in {where} line {row.line} but not found in {split}/"))

    if labels.by_position:
        numbered: dict[int, list[Entry]] = {}
        prefix = ""
        for e in files:
            num = sources.ilsvrc_number(base[e.name])
            if num:
                prefix = prefix or num[0]
                numbered.setdefault(num[1], []).append(e)
        if numbered:  # ILSVRC2012_val_<n>: line n, whatever else is (or is not) in the folder
            for row in labels.rows:
                for e in numbered.get(row.line, []):
                    assign(e, row)
                if row.line not in numbered:
                    not_found(f"{prefix}{row.line:08d}", row)
            unlabelled = f"no label: {where} labels the files {prefix}<line number>"
        elif len(files) != len(labels.rows):
            raise PrepareError(f"{labels.path} has {len(labels.rows)} class IDs but {split}/ has {len(files)} files: "
                               "line i labels the i-th file in sorted order, so the counts must agree")
        else:
            for e, row in zip(files, labels.rows):
                assign(e, row)
    else:
        by_name: dict[str, list[Entry]] = {}
        for e in files:  # a file is named with or without its extension
            by_name.setdefault(base[e.name], []).append(e)
        for e in files:
            stem = base[e.name].rsplit(".", 1)[0]
            if stem != base[e.name]:
                by_name.setdefault(stem, []).append(e)
        rows = labels.rows
        if rows and rows[0].cls not in index and rows[0].file not in by_name:
            rows = rows[1:]  # a header line ("ImageId,PredictionString")
        seen: set[str] = set()
        for row in rows:
            targets = by_name.get(row.file, [])
            for e in targets:
                assign(e, row)
            if not targets and row.file not in seen:
                not_found(row.file, row)
            seen.add(row.file)
    known = "the class folders of " + ", ".join(class_splits)
    labelled: list[tuple[int, Entry]] = []
    skips: list[sources.Skip] = []
    per_class: dict[int, int] = {}
    for e in files:
        row = assigned.get(e.name)
        if base[e.name] == labels.path.name and row is None:
            skips.append(sources.Skip(split, e.name, "the labels file of this split, not an image"))
        elif e.name in conflicts:
            skips.append(sources.Skip(split, e.name, conflicts[e.name]))
        elif row is None:
            skips.append(sources.Skip(split, e.name, unlabelled))
        elif row.cls in dropped:
            continue  # a class left out by --classes: not read, like files past --limit-per-class
        elif row.cls not in index:
            note = f", {row.note}" if row.note else ""
            skips.append(sources.Skip(split, e.name, f"class {row.cls!r} ({where} line {row.line}{note}) is not among {known}"))
        else:
            c = index[row.cls]
            if limit is None or per_class.get(c, 0) < limit:
                per_class[c] = per_class.get(c, 0) + 1
                labelled.append((c, e))
    return labelled, skips + missing


def make_jobs(plan: Plan, chunk: int) -> list[tuple[str, list[tuple[int, Entry]]]]:
    """The fixed cut of the work into chunks (never across splits)."""
    return [(s, plan.entries[s][i : i + chunk]) for s in plan.splits for i in range(0, len(plan.entries[s]), chunk)]
