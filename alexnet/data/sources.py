"""List and read the image files of a source tree, from a folder or a tar archive.

A source has the layout ``SRC/<split>/<class>/<file>``, possibly under one top-level
folder (``imagenette/train/n01440764/x.JPEG``). Archives are read member by member,
never extracted; members that could escape a folder or are not plain files are
refused and reported, like every other file that is not read.

A class folder may keep its images one level down, in ``<class>/images/`` (Tiny ImageNet:
``train/n01443537/images/n01443537_0.JPEG``), and a flat split in ``<split>/images/``; that
level is read as part of the class or split (`placed`).

A split can also be declared *flat* (ImageNet's validation set: ``val/ILSVRC2012_val_*.JPEG``
with no class folders); its images sit directly in ``SRC/<split>/`` and their classes come
from a labels file, parsed here by `read_labels` (and `read_synsets` for the devkit's
ground-truth format).
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from alexnet.data.tars import MAX_FILE_BYTES, Damage, open_tar, tar_members

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
FLAT_SUBFOLDER = "inside a folder in a flat split (declared by --labels), not read"
NESTED = "inside a folder in a class folder, not read"
IMAGES = "images"  # the folder name of a class's (or flat split's) images one level down
# Files that name the classes, read while listing when they sit at the top (or one folder down):
# Tiny ImageNet's words.txt, ImageNet's synset_words.txt and Kaggle's LOC_synset_mapping.txt, a plain classes.txt.
NAME_FILES = ("LOC_synset_mapping.txt", "synset_words.txt", "words.txt", "classes.txt")
MAX_TEXT_BYTES = 64 * 2**20


class SourceError(Exception):
    """The source as a whole cannot be listed (missing, not a folder or archive, corrupt)."""


@dataclass(frozen=True, slots=True)  # slots: 1.3 million of them for ImageNet
class Entry:
    """One candidate image file, in layout coordinates."""

    split: str
    cls: str  # "" in a flat split: the class comes from its labels file
    name: str  # path shown to the user: "<split>/<class>/<file>" relative to the layout root
    key: str  # how to read it: member name (archive) or absolute path (folder)
    size: int
    offset: int = -1  # archives: where the member's data starts in the (decompressed) tar stream
    archive: str = ""  # a plain tar holding the member at `offset` (ImageNet's tars, inner tars included)


@dataclass(frozen=True)
class Skip:
    """A file or folder found while listing that is not read, with the reason."""

    split: str
    name: str
    reason: str


@dataclass
class Listing:
    splits: dict[str, dict[str, list[Entry]]]  # split -> class -> entries, sorted by name
    skips: list[Skip]
    flat: dict[str, list[Entry]] = field(default_factory=dict)  # flat split -> entries, sorted by name
    texts: dict[str, bytes] = field(default_factory=dict)  # class-names files near the top (NAME_FILES), by path


@dataclass(frozen=True)
class _Item:
    parts: tuple[str, ...]  # path components, relative to the source root
    kind: str  # "file", "dir", or the reason it is refused
    key: str
    size: int = 0
    offset: int = -1


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def list_source(src: Path, flat: frozenset[str] | set[str] = frozenset()) -> Listing:
    """Walk a folder or an archive and sort what is found into splits and classes.

    Splits named in `flat` hold their files directly (``<split>/<file>``), without class folders.
    """
    texts: dict[str, bytes] = {}
    if src.is_dir():
        items = _walk_dir(src)
        for it in items:
            if _names_file(it):
                try:
                    texts["/".join(it.parts)] = read_file(it.key)
                except OSError:
                    pass  # reported as a skip like any other file that is not an image
    elif src.is_file() and is_archive(src):
        items = _walk_tar(src, texts)
    elif src.exists():
        raise SourceError(f"{src} is neither a folder nor a .tar/.tar.gz/.tgz archive")
    else:
        raise SourceError(f"source {src} does not exist")
    listing = _layout(items, frozenset(flat))
    listing.texts = texts
    return listing


def _names_file(it: _Item) -> bool:
    return it.kind == "file" and len(it.parts) <= 2 and it.parts[-1] in NAME_FILES and it.size <= MAX_TEXT_BYTES


# ---- folders ---------------------------------------------------------------------------


def _walk_dir(root: Path, max_depth: int = 6) -> list[_Item]:
    # Fixed depth (optional top folder / split / class / images/ / file, +1 to report nested folders)
    # so that a wrong SRC or a symlink loop cannot make us crawl a whole disk.
    items: list[_Item] = []

    def walk(path: str, parts: tuple[str, ...]) -> None:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            items.append(_Item(parts, f"cannot list folder: {e.strerror or e}", path))
            return
        for e in entries:
            sub = parts + (e.name,)
            try:
                # Symlinks are followed: reading through them cannot write anywhere.
                if e.is_dir():
                    items.append(_Item(sub, "dir", e.path))
                    if len(sub) < max_depth - 1:
                        walk(e.path, sub)
                elif e.is_file():
                    items.append(_Item(sub, "file", e.path, e.stat().st_size))
                else:
                    items.append(_Item(sub, "not a regular file (broken link, device or fifo)", e.path))
            except OSError as err:
                items.append(_Item(sub, f"cannot stat: {err.strerror or err}", e.path))

    walk(str(root), ())
    return items


# ---- archives --------------------------------------------------------------------------


def _walk_tar(path: Path, texts: dict[str, bytes] | None = None) -> list[_Item]:
    items = []
    damage: list[Damage] = []
    try:
        with open_tar(path) as tf:
            for m in tar_members(tf, damage):  # streams through the archive once
                items.append(tar_item(m))
                if texts is not None and _names_file(items[-1]):
                    f = tf.extractfile(m)  # the member just listed: read in passing, no second pass
                    if f is not None:
                        texts["/".join(items[-1].parts)] = f.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise SourceError(f"cannot read archive {path}: {e}") from e
    if not items and damage:
        raise SourceError(f"cannot read archive {path}: no valid tar header in it (not a tar archive?)")
    return items + [_Item((d.where(path.name),), d.reason, "") for d in damage]


def tar_item(m: tarfile.TarInfo) -> _Item:
    raw = m.name  # "\\" is a character of the name, never a separator (tar's separator is "/")
    parts = tuple(p for p in raw.split("/") if p not in ("", "."))
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        return _Item(parts or (raw,), "unsafe member: absolute path", m.name)
    if ".." in parts:
        return _Item(parts, "unsafe member: '..' in path", m.name)
    if m.issym() or m.islnk():
        return _Item(parts, "unsafe member: symbolic or hard link", m.name)
    if m.isdir():
        return _Item(parts, "dir", m.name)
    if not m.isreg() or m.issparse():
        return _Item(parts, "not a regular file (device, fifo, sparse or other special member)", m.name)
    return _Item(parts, "file", m.name, m.size, m.offset_data)


def read_file(path: str) -> bytes:
    """Read a folder source's file; OSError (permission, vanished, too large) means skip it."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"file too large (> {MAX_FILE_BYTES} bytes)")
    return data


def stamp(src: Path) -> str:
    """A cheap fingerprint of what SRC holds now, recorded in the store so that a rerun notices a
    changed source: an archive's size and modification time; for a folder, the modification time
    of every folder down to the images (a file added, removed or renamed changes its folder's) and
    the size and time of the files at its top two levels (ImageNet's release files, labels files).
    An image rewritten in place under the same name in a folder is not seen: that needs a full read."""
    rows: list[str] = []

    def walk(path: str, rel: str, depth: int) -> None:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            try:
                if e.is_dir():
                    rows.append(f"d {rel}{e.name} {e.stat().st_mtime_ns}")
                    if depth < 6:
                        walk(e.path, f"{rel}{e.name}/", depth + 1)
                elif depth < 2:
                    st = e.stat()
                    rows.append(f"f {rel}{e.name} {st.st_size} {st.st_mtime_ns}")
            except OSError:
                rows.append(f"? {rel}{e.name}")

    if src.is_dir():
        walk(str(src), "", 0)
    elif src.exists():  # a missing source is named by the listing
        st = src.stat()
        rows.append(f"f {src.name} {st.st_size} {st.st_mtime_ns}")
    return hashlib.sha256("\n".join(rows).encode("utf-8", "surrogateescape")).hexdigest()


# ---- layout ----------------------------------------------------------------------------


def _layout(items: list[_Item], flat: frozenset[str] = frozenset()) -> Listing:
    """Map raw items onto <split>/<class>/<file> (<split>/<file> for flat splits), stripping a
    single top-level folder. A file below that (in a folder inside a class folder) is named in the
    skips, whether or not the archive has entries for its folders; a nested folder is named only
    when nothing under it is (an empty one, or one too deep to walk)."""
    splits: dict[str, dict[str, list[Entry]]] = {}
    flats: dict[str, list[Entry]] = {}
    skips: list[Skip] = []
    nested: dict[str, Skip] = {}  # nested folders, by path
    for it in _strip_top(items, flat):
        p, kind = placed(it.parts, flat), it.kind
        name = "/".join(it.parts)
        split = p[0] if len(p) > 1 or kind == "dir" else ""
        depth = 2 if p[0] in flat else 3  # of a file in the layout
        if kind not in ("file", "dir"):
            skips.append(Skip(split, name, kind))  # refused members are always reported
        elif any(q.startswith(".") for q in p[:-1]):
            continue  # inside a hidden folder, which is reported once below
        elif kind == "dir" and p[-1].startswith(".") and len(p) <= 2:
            skips.append(Skip(split, name, "hidden folder, not read"))
        elif len(p) > depth or (kind == "dir" and len(p) == depth):
            skip = Skip(split, name, FLAT_SUBFOLDER if depth == 2 else NESTED)
            if kind == "dir":
                nested[name] = skip
            else:
                skips.append(skip)
        elif p[0] in flat and (len(p) > 1 or kind == "dir"):
            if kind == "dir":
                flats.setdefault(p[0], [])
            else:
                flats.setdefault(p[0], []).append(Entry(p[0], "", name, it.key, it.size, it.offset))
        elif kind == "dir":
            classes = splits.setdefault(p[0], {})
            if len(p) == 2:
                classes.setdefault(p[1], [])  # empty class folders still count as classes
        elif len(p) == 3:
            entry = Entry(p[0], p[1], name, it.key, it.size, it.offset)
            splits.setdefault(p[0], {}).setdefault(p[1], []).append(entry)
        else:
            skips.append(Skip(split, name, "not in a <split>/<class>/ folder"))
    reported = {k.name for k in skips}
    holders = {n.rsplit("/", i)[0] for n in reported for i in range(1, n.count("/") + 1)}
    skips += [k for name, k in nested.items() if name not in holders]
    for classes in splits.values():
        for entries in classes.values():
            entries.sort(key=lambda e: e.name)
    for entries in flats.values():
        entries.sort(key=lambda e: e.name)
    skips.sort(key=lambda s: (s.split, s.name))
    return Listing({s: dict(sorted(c.items())) for s, c in sorted(splits.items())}, skips, dict(sorted(flats.items())))


def placed(parts: tuple[str, ...], flat: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Layout coordinates of a path: an `images/` folder right inside a class folder, or right
    inside a flat split, is part of it (train/c/images/x.JPEG -> train/c/x.JPEG; flat
    val/images/x.JPEG -> val/x.JPEG)."""
    at = 1 if parts and parts[0] in flat else 2
    if len(parts) > at and parts[at] == IMAGES:
        return parts[:at] + parts[at + 1:]
    return parts


def _strip_top(items: list[_Item], flat: frozenset[str] = frozenset()) -> list[_Item]:
    """Strip one top-level folder if that makes the layout <split>/<class>/<file>."""
    visible = [it for it in items if it.kind in ("file", "dir") and it.parts and not it.parts[0].startswith(".")]
    if len({it.parts[0] for it in visible}) != 1:
        return items
    top = visible[0].parts[0]
    files = [it for it in visible if it.kind == "file"]

    def fits(parts: tuple[str, ...]) -> bool:  # an image file's place in the layout
        return len(placed(parts, flat)) == (2 if parts[0] in flat else 3)

    at3 = sum(fits(it.parts) for it in files)
    at4 = sum(len(it.parts) > 2 and fits(it.parts[1:]) for it in files)
    deep_dirs = any(it.kind == "dir" and len(it.parts) >= 3 for it in visible)
    if at4 > at3 or (at4 == at3 == 0 and deep_dirs):
        # Hidden junk next to the top folder (.DS_Store) has no place in the layout: dropped.
        # Refused members keep their full name in the manifest.
        inside = [_Item(it.parts[1:], it.kind, it.key, it.size, it.offset) for it in visible if len(it.parts) > 1]
        refused = [it for it in items if it.kind not in ("file", "dir")]
        return inside + [_Item(it.parts[1:], it.kind, it.key) if it.parts[0] == top else it for it in refused]
    return items


# ---- labels of flat splits ---------------------------------------------------------------


class LabelsError(Exception):
    """A labels or synsets file cannot be parsed; the message (one line) names the file and line."""


@dataclass(frozen=True)
class LabelRow:
    line: int  # 1-based line number in the labels file
    file: str  # file name as written, without folders ("" in the ID format: matched by position)
    cls: str  # class name (a wnid for ImageNet)
    note: str = ""  # where the class came from, for messages (e.g. "ID 65")


@dataclass
class Labels:
    """A parsed labels file of one flat split."""

    path: Path
    by_position: bool  # ID format: row i labels the i-th file (ILSVRC2012_val_<i>); else by name
    rows: list[LabelRow]
    sha256: str = ""  # of the file's bytes


def _is_int(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _text_lines(path: Path, data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelsError(f"{path}: not a UTF-8 text file (byte {e.start})") from None
    return text.splitlines()


def read_synsets(path: Path, data: bytes) -> list[str]:
    """One wnid per line in ILSVRC2012_ID order (line 1 = ID 1); later words on a line are ignored."""
    lines = _text_lines(path, data)
    while lines and not lines[-1].strip():
        lines.pop()
    wnids: list[str] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        words = line.split()
        if not words:
            raise LabelsError(f"{path} line {n} is empty: expected one wnid per line, line i = ILSVRC2012_ID i")
        if _is_int(words[0]):
            raise LabelsError(f"{path} line {n}: expected a wnid (e.g. n01440764), got {words[0]!r}")
        if words[0] in seen:
            raise LabelsError(f"{path} line {n}: {words[0]} is already on line {seen[words[0]]}")
        seen[words[0]] = n
        wnids.append(words[0])
    if not wnids:
        raise LabelsError(f"{path} is empty: expected one wnid per line in ILSVRC2012_ID order")
    if len(wnids) == 1000 and wnids == sorted(wnids):
        # ILSVRC2012_ID order is not sorted (ID 1 is n02119789): this is LOC_synset_mapping.txt
        # or a sorted class list, which would label every image wrongly.
        raise LabelsError(f"{path} lists the 1000 wnids in sorted order, not in ILSVRC2012_ID order: "
                          "make it from the devkit's meta.mat (see alexnet prepare --help, --synsets)")
    return wnids


def read_labels(path: Path, data: bytes, synsets: list[str] | None, synsets_path: Path | None = None) -> Labels:
    """Parse a labels file, its format detected from content.

    * ``file<sep>class`` per line, sep a comma, tab or whitespace (from the first line); the
      class is the first word of the second field (Kaggle's LOC_val_solution.csv:
      ``ImageId,PredictionString`` with ``wnid x0 y0 x1 y1 ...``). A header line is kept as a row
      here; the caller drops it if its class is not a known class.
    * one integer per line (the devkit's ILSVRC2012_validation_ground_truth.txt): line i is
      the ILSVRC2012_ID of the i-th file, mapped to a wnid through `synsets`.
    """
    lines = _text_lines(path, data)
    while lines and not lines[-1].strip():
        lines.pop()
    first = next((line.strip() for line in lines if line.strip()), None)
    if first is None:
        raise LabelsError(f"{path} is empty: expected 'file,class' lines or one class ID per line")
    rows: list[LabelRow] = []
    if _is_int(first):
        if synsets is None:
            raise LabelsError(f"{path} holds one class ID per line (devkit ground truth): give --synsets FILE too, "
                              "one wnid per line in ILSVRC2012_ID order (see alexnet prepare --help)")
        for n, line in enumerate(lines, 1):
            text = line.strip()
            if not _is_int(text):
                raise LabelsError(f"{path} line {n}: expected one class ID (an integer), got {text[:60]!r}")
            i = int(text)
            if not 1 <= i <= len(synsets):
                raise LabelsError(f"{path} line {n}: class ID {i} is not in 1..{len(synsets)} "
                                  f"(the class IDs of {synsets_path or 'the synsets file'})")
            rows.append(LabelRow(n, "", synsets[i - 1], f"ID {i}"))
        return Labels(path, True, rows, hashlib.sha256(data).hexdigest())
    sep = "," if "," in first else "\t" if "\t" in first else None
    shown = {",": "a comma", "\t": "a tab", None: "a space"}[sep]
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        fields = text.split(sep, 1)
        name = fields[0].strip().strip("\"'").replace("\\", "/").rsplit("/", 1)[-1]
        words = fields[1].strip().strip("\"'").split() if len(fields) == 2 else []
        if not name or not words:
            raise LabelsError(f"{path} line {n}: expected a file name and a class separated by {shown} (the "
                              f"separator of its first line: a comma, a tab or spaces), got {text[:60]!r}")
        rows.append(LabelRow(n, name, words[0].strip("\"'")))
    return Labels(path, False, rows, hashlib.sha256(data).hexdigest())


_ILSVRC_NUMBER = re.compile(r"(ILSVRC\d{4}_\w+?_)(\d+)", re.IGNORECASE)


def ilsvrc_number(file_name: str) -> tuple[str, int] | None:
    """("ILSVRC2012_val_", 7) for "ILSVRC2012_val_00000007.JPEG"; None for other names."""
    m = _ILSVRC_NUMBER.fullmatch(file_name.split(".", 1)[0])
    return (m.group(1), int(m.group(2))) if m else None
