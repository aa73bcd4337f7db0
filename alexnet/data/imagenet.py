"""ImageNet as it is distributed, read in place: nothing is extracted to disk.

Layouts found in a folder SRC (by `detect`):

    ILSVRC2012   ILSVRC2012_img_train.tar      a tar of 1,000 class tars (n01440764.tar, ...)
                 ILSVRC2012_img_val.tar        50,000 flat JPEGs, ILSVRC2012_val_<n>.JPEG
                 ILSVRC2012_devkit_t12.tar.gz  data/meta.mat (synsets, ILSVRC2012_ID order, names)
                                               data/ILSVRC2012_validation_ground_truth.txt
    ILSVRC2010   ILSVRC2010_images_{train,val,test}.tar, ILSVRC2010_devkit-1.0.tar.gz (its meta.mat
                 numbers the synsets by ILSVRC2010_ID), ILSVRC2010_test_ground_truth.txt beside
    Kaggle       ILSVRC/Data/CLS-LOC/{train/<wnid>/,val/}, LOC_val_solution.csv,
                 LOC_synset_mapping.txt (wnid and names, sorted order)

A class tar inside the train tar is read through a window onto the outer file, so every image is
a member of a plain tar at an absolute offset (`Entry.archive`): worker processes read it with one
seek, and `prepare`'s chunked commits make the work resumable. The devkit's classes keep their
ILSVRC ids' order (label i = ILSVRC2012_ID i + 1), as its ground truth and its evaluation do.
"""
from __future__ import annotations

import io
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import sources, tars
from .names import first_synonym, parse_names
from .sources import Entry, Labels, LabelsError, Listing, Skip

OFFICIAL = {  # year -> the file names of its release
    "2012": {"train": "ILSVRC2012_img_train.tar", "val": "ILSVRC2012_img_val.tar",
             "devkit": "ILSVRC2012_devkit_t12.tar.gz"},
    "2010": {"train": "ILSVRC2010_images_train.tar", "val": "ILSVRC2010_images_val.tar",
             "test": "ILSVRC2010_images_test.tar", "devkit": "ILSVRC2010_devkit-1.0.tar.gz",
             "test_truth": "ILSVRC2010_test_ground_truth.txt"},
}
KAGGLE_ROOT = Path("ILSVRC", "Data", "CLS-LOC")
KAGGLE_LABELS, KAGGLE_SYNSETS = "LOC_val_solution.csv", "LOC_synset_mapping.txt"
WNID = re.compile(r"n\d{8}")


class ImageNetError(Exception):
    """The files are ImageNet's but cannot be used as they are; the message says what to do."""


@dataclass
class ImageNet:
    layout: str  # "ILSVRC2012", "ILSVRC2010" or "Kaggle"
    listing: Listing
    labels: dict[str, Labels]  # flat split -> its ground truth
    order: list[str]  # the class order: ILSVRC ids (devkit) or the synset mapping's
    names: dict[str, str]  # wnid -> name people read


def detect(src: Path) -> str | None:
    """The layout of ImageNet's files in folder `src`, or None."""
    if not src.is_dir():
        return None
    for year, files in OFFICIAL.items():
        if (src / files["train"]).is_file() or (src / files["val"]).is_file():
            return f"ILSVRC{year}"
    if (src / KAGGLE_ROOT).is_dir() and (src / KAGGLE_SYNSETS).is_file():
        return "Kaggle"
    return None


def released_files() -> set[str]:
    return {name for files in OFFICIAL.values() for name in files.values()}


def holder(src: Path) -> Path | None:
    """The folder to give instead of `src` when `src` is a part of a layout (one of the release's
    files, or Kaggle's ILSVRC/Data/CLS-LOC), or None."""
    if src.is_file() and src.name in released_files() and detect(src.parent):
        return src.parent
    if len(src.parts) > 3 and Path(*src.parts[-3:]) == KAGGLE_ROOT and detect(src.parents[2]) == "Kaggle":
        return src.parents[2]
    return None


def read_imagenet(src: Path, layout: str, splits: list[str] | None = None) -> ImageNet:
    """The listing of the files of `layout` in `src` (only those of `splits`, when given)."""
    return read_kaggle(src) if layout == "Kaggle" else read_official(src, layout.removeprefix("ILSVRC"), splits)


# ---- the official release ------------------------------------------------------------------


def read_official(src: Path, year: str, splits: list[str] | None = None) -> ImageNet:
    files = OFFICIAL[year]
    present = {k: src / f for k, f in files.items() if (src / f).is_file()}
    present = {k: p for k, p in present.items() if k not in ("train", "val", "test") or not splits or k in splits}
    listing = Listing({}, [], {})
    if "train" in present:
        listing.splits["train"] = _class_tars(present["train"], "train", listing.skips)
    for split in ("val", "test"):
        if split in present:
            listing.flat[split] = _flat_tar(present[split], split, listing.skips)
    if listing.flat and "devkit" not in present:
        raise ImageNetError(f"{', '.join(files[s] for s in listing.flat)} in {src} need their labels from "
                            f"{files['devkit']}: put it beside them, or store only the training set with --splits train")
    labels: dict[str, Labels] = {}
    order: list[str] = []
    names: dict[str, str] = {}
    if "devkit" in present:
        meta, truth = _devkit(present["devkit"], year)
        by_id, order, names = read_meta_mat(meta[1], year, meta[0])
        if "val" in listing.flat:
            labels["val"] = _ground_truth(truth, by_id, meta[0])
        if "test" in listing.flat:
            if "test_truth" not in present:
                raise ImageNetError(f"{files['test']} in {src} needs {files['test_truth']} beside it (the test set's "
                                    "ground truth), or leave the test set out with --splits train val")
            labels["test"] = _ground_truth((present["test_truth"], present["test_truth"].read_bytes()), by_id, meta[0])
    if not order:  # no devkit: sorted wnids, no names
        order = sorted(listing.splits.get("train", {}))
    return ImageNet(f"ILSVRC{year}", listing, labels, order, names)


class _Window(io.RawIOBase):
    """Bytes [start, start + size) of an open file, as a file of their own (a class tar in the train tar)."""

    def __init__(self, f, start: int, size: int):
        self.f, self.start, self.size, self.pos = f, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buf) -> int:
        n = max(0, min(len(buf), self.size - self.pos))
        self.f.seek(self.start + self.pos)
        got = self.f.readinto(memoryview(buf)[:n])
        self.pos += got
        return got


def _class_tars(path: Path, split: str, skips: list[Skip]) -> dict[str, list[Entry]]:
    """The train tar of class tars: class -> its images, each at its offset in the outer file."""
    classes: dict[str, list[Entry]] = {}
    where: dict[str, str] = {}  # wnid -> the class tar it came from
    damage: list[tars.Damage] = []
    try:
        with open(path, "rb") as inner_file, tars.open_tar(path) as tf:
            for m in tars.tar_members(tf, damage):
                it = sources.tar_item(m)
                name = "/".join(it.parts)
                if it.kind != "file":
                    if it.kind != "dir":
                        skips.append(Skip(split, f"{path.name}/{name}", it.kind))
                    continue
                wnid = it.parts[-1].removesuffix(".tar")
                if not it.parts[-1].endswith(".tar"):
                    skips.append(Skip(split, f"{path.name}/{name}", "not a class tar (<wnid>.tar)"))
                    continue
                if wnid in classes:  # never replace one class's images by another tar's, silently
                    raise ImageNetError(f"{path} holds two class tars for {wnid} ({where[wnid]}, {name}): "
                                        "remove one (or merge them into one tar)")
                where[wnid] = name
                classes[wnid] = _inner_members(inner_file, path, m, split, wnid, skips)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ImageNetError(f"cannot read {path}: {e}") from None
    skips += [Skip(split, d.where(path.name), d.reason) for d in damage]
    for entries in classes.values():
        entries.sort(key=lambda e: e.name)
    return dict(sorted(classes.items()))


def _inner_members(f, path: Path, m: tarfile.TarInfo, split: str, wnid: str, skips: list[Skip]) -> list[Entry]:
    """The images of one class tar, read through a window onto the outer file: a member that runs
    past the class tar's end (a truncated class tar) is a skip, never read into the next member."""
    entries: list[Entry] = []
    archive = str(path)  # one string shared by the class's entries (1.3 million of them in all)
    damage: list[tars.Damage] = []
    try:
        with tars.open_tar(fileobj=_Window(f, m.offset_data, m.size)) as inner:
            for im in tars.tar_members(inner, damage):
                it = sources.tar_item(im)
                shown = f"{split}/{wnid}/{'/'.join(it.parts)}"
                if it.kind == "file" and it.offset + it.size > m.size:
                    skips.append(Skip(split, shown, f"{wnid}.tar ends inside this member (a truncated class tar)"))
                elif it.kind == "file":
                    entries.append(Entry(split, wnid, f"{split}/{wnid}/{it.parts[-1]}", im.name, it.size,
                                         m.offset_data + it.offset, archive))
                elif it.kind != "dir":
                    skips.append(Skip(split, shown, it.kind))
    except (tarfile.TarError, EOFError) as e:
        skips.append(Skip(split, f"{split}/{wnid}.tar", f"cannot read this class tar ({e}); its images are left out"))
    skips += [Skip(split, d.where(f"{split}/{wnid}.tar"), d.reason) for d in damage]
    return entries


def _flat_tar(path: Path, split: str, skips: list[Skip]) -> list[Entry]:
    """A flat split's tar (val, test): its files, whatever folder they sit in, as <split>/<file>."""
    entries = []
    damage: list[tars.Damage] = []
    size = path.stat().st_size
    try:
        with tars.open_tar(path) as tf:
            for m in tars.tar_members(tf, damage):
                it = sources.tar_item(m)
                if it.kind == "file" and it.offset + it.size > size:
                    skips.append(Skip(split, f"{split}/{it.parts[-1]}", "the archive ends inside this member"))
                elif it.kind == "file":
                    entries.append(Entry(split, "", f"{split}/{it.parts[-1]}", m.name, it.size, it.offset, str(path)))
                elif it.kind != "dir":
                    skips.append(Skip(split, f"{path.name}/{'/'.join(it.parts)}", it.kind))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ImageNetError(f"cannot read {path}: {e}") from None
    skips += [Skip(split, d.where(path.name), d.reason) for d in damage]
    return sorted(entries, key=lambda e: e.name)


def _devkit(path: Path, year: str) -> tuple[tuple[Path, bytes], tuple[Path, bytes]]:
    """meta.mat and the validation ground truth, read from the devkit archive."""
    found: dict[str, tuple[Path, bytes]] = {}
    truth = f"ILSVRC{year}_validation_ground_truth.txt"
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                base = m.name.rsplit("/", 1)[-1]
                if m.isreg() and base in ("meta.mat", truth) and m.size < sources.MAX_FILE_BYTES:
                    f = tf.extractfile(m)
                    if f is not None:
                        found[base] = (path / m.name, f.read())
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ImageNetError(f"cannot read the devkit {path}: {e}") from None
    missing = [n for n in ("meta.mat", truth) if n not in found]
    if missing:
        raise ImageNetError(f"the devkit {path} has no {' or '.join(missing)} (expected under data/): is it the "
                            f"ILSVRC{year} devkit?")
    return found["meta.mat"], found[truth]


def read_meta_mat(data: bytes, year: str, where: Path | str = "meta.mat") -> tuple[list[str], list[str], dict[str, str]]:
    """The devkit's synsets: (wnid of ILSVRC id i at i - 1, for the classes; the classes in id
    order; wnid -> name). The classes are the leaves (num_children 0: the 1,000 of the challenge),
    numbered 1..1000; other synsets are the hierarchy above them. Each id names one synset: two
    synsets with one id would label one class's images as another's."""
    import scipy.io  # only here: prepare's start-up does not pay for it
    try:
        synsets = scipy.io.loadmat(io.BytesIO(data), squeeze_me=True)["synsets"]
        ids = [int(i) for i in synsets[f"ILSVRC{year}_ID"]]
        wnids = [str(w) for w in synsets["WNID"]]
        words = [str(w) for w in synsets["words"]]
        leaf = [int(n) == 0 for n in synsets["num_children"]] if "num_children" in synsets.dtype.names else [True] * len(ids)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file fails in many ways, all of them this file's
        raise ImageNetError(f"{where} is not the ILSVRC{year} devkit's meta.mat, or is damaged "
                            f"({type(e).__name__}: {e}): download the devkit again") from None
    seen: dict[int, str] = {}
    for i, w in zip(ids, wnids):
        if not 1 <= i <= len(ids):
            raise ImageNetError(f"{where}: synset {w} has ILSVRC{year}_ID {i}, outside 1..{len(ids)} (one id per "
                                "synset): the file is damaged, download the devkit again")
        if i in seen:
            raise ImageNetError(f"{where}: synsets {seen[i]} and {w} share ILSVRC{year}_ID {i}, so the ground truth "
                                "cannot tell them apart: the file is damaged, download the devkit again")
        seen[i] = w
    order = [w for _, w, is_leaf in sorted(zip(ids, wnids, leaf)) if is_leaf]
    if sorted(i for i, is_leaf in zip(ids, leaf) if is_leaf) != list(range(1, len(order) + 1)):
        raise ImageNetError(f"{where}: the {len(order)} classes (synsets without children) are not numbered "
                            f"1..{len(order)} by ILSVRC{year}_ID, as the ground truth expects: is it the devkit's meta.mat?")
    return order, order, {w: first_synonym(t) for w, t in zip(wnids, words)}


def _ground_truth(file: tuple[Path, bytes], by_id: list[str], meta: Path) -> Labels:
    path, data = file
    try:
        return sources.read_labels(path, data, by_id, meta)
    except LabelsError as e:
        raise ImageNetError(str(e)) from None


# ---- Kaggle ----------------------------------------------------------------------------------


def read_kaggle(src: Path) -> ImageNet:
    """Kaggle's ImageNet (imagenet-object-localization-challenge): class folders for train, a flat
    val with LOC_val_solution.csv; its test set has no labels and is not read."""
    root = src / KAGGLE_ROOT
    listing = sources.list_source(root, flat=frozenset({"val", "test"}))
    listing.flat.pop("test", None)
    listing.skips = [k for k in listing.skips if k.split != "test"]
    mapping = src / KAGGLE_SYNSETS
    data = mapping.read_bytes()
    text = data.decode("utf-8-sig", "replace")  # a byte-order mark is not part of the first wnid
    order = [line.split()[0] for line in text.splitlines() if line.strip()]
    if not order or not all(WNID.fullmatch(w) for w in order):
        raise ImageNetError(f"{mapping}: expected 'wnid name' lines (n01440764 tench, Tinca tinca)")
    labels = {}
    if "val" in listing.flat:
        path = src / KAGGLE_LABELS
        if not path.is_file():
            raise ImageNetError(f"{root / 'val'} needs {path} (its labels), or store only the training set with "
                                "--splits train")
        labels["val"] = sources.read_labels(path, path.read_bytes(), None)
    return ImageNet("Kaggle", listing, labels, order, parse_names(mapping, data, order))
