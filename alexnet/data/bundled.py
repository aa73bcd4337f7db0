"""Finding the real datasets that ship beside a checkout (`../shared/data`): the quickstart,
the benchmarks and the GPU suite read their archives from there."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

IMAGENETTE = "imagenette-224.tar.gz"  # 10 ImageNet classes, 9,469 train / 3,925 val, 224x224 JPEGs
CIFAR10 = "cifar10-jpeg.tar.gz"  # CIFAR-10 as JPEG files, 50,000 train / 10,000 test


def find_data_dir(explicit: str | None, archive: str = IMAGENETTE) -> Path:
    """The folder holding `archive`: `explicit`, else $ALEXNET_DATA, else shared/data beside or
    above the current folder."""
    candidates = [Path(explicit)] if explicit else []
    if not explicit:
        if os.environ.get("ALEXNET_DATA"):
            candidates.append(Path(os.environ["ALEXNET_DATA"]))
        cwd = Path.cwd()
        candidates += [cwd / "shared" / "data", cwd.parent / "shared" / "data"]
    for c in candidates:
        if (c / archive).is_file():
            return c
    looked = ", ".join(str(c) for c in candidates)
    raise UserError(f"no {archive} found (looked in {looked}): pass --data-dir DIR or set ALEXNET_DATA to the folder "
                    "holding it (Imagenette: fastai's imagenette2, 10 ImageNet classes; see docs/guide.md, 'Data')")


def bundled_archive(data_dir: str | Path | None, archive: str = IMAGENETTE) -> Path:
    """The archive itself: `data_dir` may be the archive's path or its folder (None: searched)."""
    if data_dir is not None and Path(data_dir).is_file():
        return Path(data_dir)
    return find_data_dir(None if data_dir is None else str(data_dir), archive) / archive
