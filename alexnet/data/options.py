"""What `alexnet prepare` is asked (`PrepareOptions`: one object, built once, by the CLI or a
caller), and the two parts derived from it: `PrepareArgs`, what determines the bytes of a store
(recorded in OUT, so a resume must match it), and `RunOptions`, how the run goes (nothing there
changes the bytes)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alexnet.data.convert import SUBSAMPLING
from alexnet.data.estimate import FreeSpace, free_space
from alexnet.data.plan import PrepareError

CHUNK_FILES = 256  # files per unit of work and of commit; recorded in OUT so a resume reuses it
FORMATS = ("raw", "jpeg")

Hook = Callable[[str, int], None]
"""Called with (point, chunk index) at "worker" (in the worker process, before converting the
chunk), "written" (the chunk's data appended, not yet committed) and "committed". Tests inject
one to kill a run at a chosen point; it travels to the worker processes, so it must pickle."""


@dataclass(frozen=True)
class PrepareOptions:
    """Every choice of `alexnet prepare SRC OUT` (its flags), checked when built.

    `labels` maps a flat split (its images directly in SRC/<split>/, e.g. ImageNet's val) to its
    labels file: ``file,class`` lines (LOC_val_solution.csv or any mapping) or the devkit's
    ILSVRC2012_validation_ground_truth.txt, which also needs `synsets` (one wnid per line in
    ILSVRC2012_ID order). `imagenet`: SRC is a folder of ImageNet's files as distributed (see
    data/imagenet.py); None: detected. `classes`: keep N classes spread over the set
    (plan.pick_classes). `class_names`: a file of ``ID NAME`` lines; by default the names come from
    the set's own files when it has them.
    """

    size: int = 256  # §2: the stored side S
    fmt: str = "raw"  # "raw" uint8 or "jpeg"
    quality: int = 90  # jpeg only; 90, 4:2:0, baseline: docs/guide.md "Store format" (<= 50 GB for ImageNet)
    subsampling: str = "4:2:0"  # jpeg only: chroma subsampling ("4:4:4", "4:2:2", "4:2:0")
    progressive: bool = False  # jpeg only
    full_decode: bool = False  # no reduced-scale decoding of large JPEGs (convert.set_draft): torchvision's pixels
    splits: Sequence[str] | None = None  # None: every split
    limit_per_class: int | None = None
    classes: int | None = None  # --classes N; None: all
    labels: Mapping[str, str | Path] | None = None  # flat split -> its labels file
    synsets: str | Path | None = None  # the devkit's ILSVRC2012_ID -> wnid file, for its ground truth
    imagenet: bool | None = None  # True: SRC must hold ImageNet's files; None: detected; False: never
    class_names: str | Path | None = None  # --class-names FILE
    workers: int | None = None  # None: all cores, one process for small jobs
    strict: bool = False  # any file not stored is an error
    progress: bool = True  # the estimate line and the progress bar
    chunk_files: int | None = None  # tests: files per chunk of a new store (None: auto_chunk)
    hook: Hook | None = None  # tests: see Hook
    space: FreeSpace | None = None  # tests: a stand-in for the free space at OUT

    def __post_init__(self) -> None:
        checks = [(self.classes is None or self.classes >= 1, f"--classes {self.classes}: must be >= 1"),
                  (self.size >= 1, f"--size {self.size}: the stored side must be >= 1 pixel (§2: 256)"),
                  (self.fmt in FORMATS, f"--format {self.fmt!r}: use one of {', '.join(FORMATS)}"),
                  (1 <= self.quality <= 100, f"--quality {self.quality}: JPEG quality must be in 1..100"),
                  (self.workers is None or self.workers >= 1, f"--workers {self.workers}: must be >= 1 (default: all cores)"),
                  (self.limit_per_class is None or self.limit_per_class >= 1,
                   f"--limit-per-class {self.limit_per_class}: must be >= 1"),
                  (self.subsampling in SUBSAMPLING,
                   f"--subsampling {self.subsampling!r}: use one of {', '.join(SUBSAMPLING)}"),
                  (self.chunk_files is None or self.chunk_files >= 1, f"chunk_files={self.chunk_files}: must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise PrepareError(message)


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

    @classmethod
    def of(cls, src: Path, o: PrepareOptions, labels: dict[str, dict[str, str]] | None,
           synsets: dict[str, str] | None, imagenet: str | None) -> PrepareArgs:
        """The options that shape the bytes, with the source and its labels files resolved."""
        return cls(src, o.size, o.fmt, o.quality, tuple(sorted(set(o.splits))) if o.splits else None,
                   o.limit_per_class, labels, synsets, o.full_decode, o.subsampling, o.progressive, o.classes, imagenet)

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

    @classmethod
    def of(cls, cpus: int, o: PrepareOptions, names: tuple[Path, bytes] | None) -> RunOptions:
        return cls(o.workers or cpus, o.strict, o.progress, o.chunk_files, o.hook, o.space or free_space, names,
                   o.workers is None)


def auto_chunk(files: int, workers: int) -> int:
    """Files per chunk: CHUNK_FILES, or fewer when that would leave workers idle (small sets), so
    that every worker gets about four chunks; at least 16 so per-chunk commits stay cheap."""
    return max(16, min(CHUNK_FILES, -(-files // (4 * workers))))
