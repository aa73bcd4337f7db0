"""The on-disk image store made by `alexnet prepare`, and its reader.

Layout of a store folder OUT (all images already rescaled and centre-cropped to S x S, §2):

    store.json              metadata; `"complete": true` is written last, atomically; `classes` are
                            the ids (folder names, wnids), `class_names` what people read (older
                            stores have none: Store.class_names falls back to the ids)
    mean.npy                (3, S, S) float32 per-pixel mean of the train split, 0..255 (§2)
    pca.json                eigenvalues/vectors of the RGB covariance of train pixels (§4.1)
    skipped.tsv             every source file not stored, with the reason
    <split>.labels.npy      (N,) int64 class indices into `classes`
    <split>.files.txt       source path of each stored image, one per line, in store order
    raw:  <split>.u8        (N, 3, S, S) uint8, C order, no header (shape is in store.json)
    jpeg: <split>.jpg.bin   concatenated JPEG files; <split>.offsets.npy (N+1,) int64 byte offsets

While `alexnet prepare` builds it, the folder also holds prepare.json (its arguments),
progress.npz (the commit marker), <split>.labels.part / <split>.offsets.part (append-only
files that become the .npy files at the end) and <split>.<chunk>.shard.tmp (a worker's
converted chunk, appended to the split's image file when it is committed). This module owns every one of these names.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alexnet.data import jpeg
from alexnet.data.names import display_names
from alexnet.errors import UserError

if TYPE_CHECKING:  # torch is imported where it is used: prepare's processes never need it
    import torch

VERSION = 1
META = "store.json"
MEAN = "mean.npy"
PCA = "pca.json"
MANIFEST = "skipped.tsv"
STATE = "prepare.json"  # arguments and source fingerprint of a store being built
PROGRESS = "progress.npz"  # prepare's commit marker


class StoreError(UserError):
    """A store is missing, incomplete or damaged; the message names it and says what to do."""


def image_file(split: str, fmt: str) -> str:
    return f"{split}.u8" if fmt == "raw" else f"{split}.jpg.bin"


def labels_file(split: str) -> str:
    return f"{split}.labels.npy"


def offsets_file(split: str) -> str:
    return f"{split}.offsets.npy"


def names_file(split: str) -> str:
    return f"{split}.files.txt"


# One line per name in files.txt and skipped.tsv: the backslash, tabs and every control or
# line-breaking character (all that str.splitlines() breaks on, and terminal escape sequences) are
# escaped, so a name reads back as it was written and prints as what it is.
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_line(text: str) -> str:
    """A name or reason as one printable, tab-free line (unescape_line reads it back)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


_UNESCAPE = re.compile(r"\\(\\|t|n|r|x[0-9a-f]{2}|u[0-9a-f]{4})")


def unescape_line(text: str) -> str:
    def one(m: re.Match) -> str:
        code = m.group(1)
        return {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}.get(code) or chr(int(code[1:], 16))
    return _UNESCAPE.sub(one, text)


def read_names(root: str | Path, split: str) -> list[str]:
    """The source path of each stored image of `split`, in store order (<split>.files.txt)."""
    text = (Path(root) / names_file(split)).read_text(encoding="utf-8", errors="surrogateescape")
    return [unescape_line(line) for line in text.split("\n")[:-1]]


def part_file(final: str) -> str:
    """The append-only file prepare grows while building `final` (a .npy written at the end)."""
    return final.removesuffix(".npy") + ".part"


SHARD_SUFFIX = ".shard.tmp"


def shard_file(split: str, chunk: int) -> str:
    """A prepare worker's images of one chunk, until the main process appends them to the split."""
    return f"{split}.{chunk:06d}{SHARD_SUFFIX}"


def split_files(split: str, fmt: str) -> list[str]:
    files = [image_file(split, fmt), labels_file(split), names_file(split)]
    return files + ([offsets_file(split)] if fmt == "jpeg" else [])


def building_files(split: str, fmt: str) -> list[str]:
    """The append-only files of one split while prepare builds it."""
    files = [image_file(split, fmt), part_file(labels_file(split)), names_file(split)]
    return files + ([part_file(offsets_file(split))] if fmt == "jpeg" else [])


def check_files(root: Path, meta: dict[str, Any]) -> str | None:
    """Cheap consistency checks of the files against the metadata; a problem, or None."""
    size, fmt = meta["size"], meta["format"]
    for name in [MEAN, PCA] + [f for s in meta["splits"] for f in split_files(s, fmt)]:
        if not (root / name).is_file():
            return f"{name} is missing"
    for split, info in meta["splits"].items():
        n = info["count"]
        data = (root / image_file(split, fmt)).stat().st_size
        if fmt == "raw" and data != n * 3 * size * size:
            return f"{image_file(split, fmt)} has {data} bytes, expected {n} images of 3x{size}x{size}"
        labels = np.load(root / labels_file(split), mmap_mode="r")
        if labels.shape != (n,):
            return f"{labels_file(split)} has shape {labels.shape}, expected ({n},)"
        if n and not 0 <= labels.min() <= labels.max() < len(meta["classes"]):
            return f"{labels_file(split)} has labels outside 0..{len(meta['classes']) - 1}"
        if fmt == "jpeg":
            offsets = np.load(root / offsets_file(split), mmap_mode="r")
            if offsets.shape != (n + 1,) or offsets[0] != 0 or offsets[-1] != data:
                return f"{offsets_file(split)} does not match {image_file(split, fmt)}"
    mean = np.load(root / MEAN, mmap_mode="r")
    if mean.shape != (3, size, size):
        return f"{MEAN} has shape {mean.shape}, expected (3, {size}, {size})"
    return None


class SplitReader:
    """Random access to one split's images: read(indices) -> (B, 3, S, S) uint8."""

    def __init__(self, root: Path, name: str, count: int, size: int, fmt: str):
        self.root, self.name, self.size, self.format = root, name, size, fmt
        self.count = count
        self.labels: np.ndarray = np.load(root / labels_file(name))  # (N,) int64
        self._data: np.ndarray | None = None  # opened lazily, per process (see __getstate__)
        self._offsets: np.ndarray | None = None
        self._lock = threading.Lock()  # loader threads may open it at once

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"SplitReader({self.name!r}, {self.count} images, {self.format} {self.size}x{self.size})"

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap copies the whole array; let each process map the file itself.
        return {**self.__dict__, "_data": None, "_offsets": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def _open(self) -> np.ndarray:
        with self._lock:
            if self._data is None:
                self._map()
        assert self._data is not None
        return self._data

    def _map(self) -> None:
        path = self.root / image_file(self.name, self.format)
        if self.count == 0:  # np.memmap refuses empty files
            self._data = np.zeros((0, 3, self.size, self.size) if self.format == "raw" else 0, np.uint8)
        elif self.format == "raw":
            self._data = np.memmap(path, np.uint8, "r", shape=(self.count, 3, self.size, self.size))
        else:
            self._offsets = np.load(self.root / offsets_file(self.name))  # (N+1,) int64
            self._data = np.memmap(path, np.uint8, "r")

    def read(self, indices: np.ndarray, out: torch.Tensor | None = None, decoder: str = "auto") -> torch.Tensor:
        """Images at `indices`, in that order, as a (B, 3, S, S) uint8 CPU tensor; written into
        `out` (e.g. a slice of a reused pinned buffer) when given. jpeg stores decode with
        `decoder` (see data/jpeg.py), straight into `out` when it is channels-last in memory
        (jpeg.batch_buffer, what a new `out` is for a jpeg store)."""
        import torch
        data = self._open()
        indices = self._check(indices)
        shape = (len(indices), 3, self.size, self.size)
        if out is None:
            out = jpeg.batch_buffer(len(indices), self.size) if self.format == "jpeg" else torch.empty(shape, dtype=torch.uint8)
        elif out.shape != shape or out.dtype != torch.uint8:
            raise ValueError(f"out has shape {tuple(out.shape)} {out.dtype}, expected {shape} uint8")
        if self.format == "raw":
            np.take(data, indices, axis=0, out=out.numpy())  # one copy, from the page cache
            return out
        assert self._offsets is not None
        name = jpeg.resolve(decoder)
        slots = jpeg.image_slots(out)  # (B, S, S, 3) view of out, or None: decode, then transpose
        scratch = np.empty((self.size, self.size, 3), np.uint8) if slots is None else None
        for k, i in enumerate(indices):
            dst = slots[k] if slots is not None else scratch
            try:
                jpeg.decode_into(data[self._offsets[i] : self._offsets[i + 1]], dst, name)
            except jpeg.DecodeError as e:
                raise StoreError(self._damaged(int(i), e)) from None
            if slots is None:
                out[k] = torch.from_numpy(scratch).permute(2, 0, 1)
        return out

    def _damaged(self, i: int, error: Exception) -> str:
        names = (self.root / names_file(self.name)).read_text(errors="replace").splitlines()
        source = f" (from {names[i]})" if i < len(names) else ""
        return (f"damaged store {self.root}: image {i} of {image_file(self.name, self.format)}{source} cannot be "
                f"decoded ({type(error).__name__}); delete the store and run the same `alexnet prepare` again "
                "(its arguments are in store.json)")

    def _check(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.count):
            raise IndexError(f"index out of range for split {self.name!r} of {self.count} images")
        return indices

    def read_encoded(self, indices: np.ndarray) -> list[torch.Tensor]:
        """jpeg stores only: the stored JPEG file of each index, in that order, undecoded, as a
        1-D uint8 CPU tensor (for decoding elsewhere, e.g. on the GPU: alexnet.data.gpu_decode)."""
        import torch
        if self.format != "jpeg":
            raise StoreError(f"read_encoded needs a jpeg store; {self.root} is {self.format} "
                             "(make one with `alexnet prepare --format jpeg`)")
        data = self._open()
        indices = self._check(indices)
        assert self._offsets is not None
        # np.array copies out of the read-only memmap: the tensors own writable memory.
        return [torch.from_numpy(np.array(data[self._offsets[i] : self._offsets[i + 1]])) for i in indices]


class Store:
    """An opened, complete store. See the module docstring for the files."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        import torch
        self.path = path
        self.meta = meta
        self.size: int = meta["size"]
        self.format: str = meta["format"]
        self.classes: list[str] = list(meta["classes"])
        self.num_classes = len(self.classes)
        self.class_names: list[str] = list(meta.get("class_names") or display_names(self.classes))  # for people
        self.splits: list[str] = list(meta["splits"])
        self.stats_split: str = meta["stats_split"]
        self.mean = torch.from_numpy(np.load(path / MEAN).astype(np.float32))  # (3, S, S) float32
        pca = json.loads((path / PCA).read_text())
        self.pca_eigvals = torch.tensor(pca["eigvals"], dtype=torch.float32)  # (3,) descending
        self.pca_eigvecs = torch.tensor(pca["eigvecs"], dtype=torch.float32)  # (3, 3) columns
        self._readers: dict[str, SplitReader] = {}

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.meta['splits'][s]['count']}" for s in self.splits)
        return f"Store({str(self.path)!r}, {self.format} {self.size}x{self.size}, {self.num_classes} classes, {counts})"

    def input_meta(self) -> dict[str, Any]:
        """What a net trained on this store needs from it to run without it (checkpoints carry it):
        the stored side S (§2), the mean image (§2), the RGB PCA (§4.1) and the store's path."""
        return {"store": str(self.path), "size": self.size, "mean": self.mean,
                "pca_eigvals": self.pca_eigvals, "pca_eigvecs": self.pca_eigvecs}

    def split(self, name: str) -> SplitReader:
        if name not in self.meta["splits"]:
            raise StoreError(f"store {self.path} has no split {name!r}; available: {', '.join(self.splits) or 'none'}")
        if name not in self._readers:
            count = self.meta["splits"][name]["count"]
            self._readers[name] = SplitReader(self.path, name, count, self.size, self.format)
        return self._readers[name]


def read_meta(path: Path) -> dict[str, Any] | None:
    """The parsed store.json, or None when there is none."""
    try:
        return json.loads((path / META).read_text())
    except FileNotFoundError:
        return None


def open_store(path: str | Path) -> Store:
    """Open a complete store; StoreError if it is missing, unfinished or damaged."""
    path = Path(path).expanduser().resolve()
    redo = "delete it and run `alexnet prepare` again"
    if not path.is_dir():
        raise StoreError(f"no store at {path}: run `alexnet prepare SRC {path}` first")
    try:
        meta = read_meta(path)
    except (OSError, ValueError) as e:
        raise StoreError(f"unreadable {META} in {path} ({e}): {redo}") from e
    if meta is None:
        if any(path.glob("*.part")) or (path / STATE).exists():
            raise StoreError(f"incomplete store at {path}: run `alexnet prepare` again with the same arguments to finish it")
        raise StoreError(f"no store at {path} ({META} missing): run `alexnet prepare SRC {path}` first")
    if not meta.get("complete"):
        raise StoreError(f"incomplete store at {path}: run `alexnet prepare` again with the same arguments to finish it")
    if meta.get("version") != VERSION:
        raise StoreError(f"store at {path} has version {meta.get('version')}, this code reads {VERSION}: {redo}")
    try:
        problem = check_files(path, meta)
        store = None if problem else Store(path, meta)
    except (OSError, ValueError, KeyError) as e:
        problem = f"{type(e).__name__}: {e}"
    if problem:
        raise StoreError(f"damaged store at {path}: {problem}; {redo}")
    assert store is not None
    return store
