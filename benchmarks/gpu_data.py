"""The GPU suite's data, small enough to travel with one command (the device tool sends at most
64 MiB a call, the checkout included), and its SHA-256 check on the GPU host.

    python benchmarks/gpu_data.py pack ../shared/data .devdata      # here, once: ~2 min on 2 cores
    python benchmarks/gpu_data.py verify .devdata/imagenette          # on the GPU host, before use

`pack` writes two folders, each one part's DATA, each with a SHA256SUMS manifest:

  imagenette/  imagenette-224-webp30.tar.gz: the bundled Imagenette (9,469 train / 3,925 val,
               224x224, the same layout and file names with .webp), re-encoded as WebP at
               quality 30. The bundled JPEGs (~10 KB each, 126 MiB) do not fit; JPEG at quality 25
               would still be 58 MiB with a mean |diff| of 6.6 levels, WebP q30 is about 53 MiB
               with 5.1 levels (measured on 120 images; §4.1's PCA colour noise moves pixels by
               about 5). `alexnet prepare` reads it as it reads the JPEGs (Pillow decodes WebP).
               Accuracies measured on it are on these re-encoded pixels, not the bundled ones.
  cifar/       cifar10-jpeg.tar.gz as bundled (19 MiB: already 32x32 JPEGs, nothing to gain).

The archives are reproducible (sorted members, zero times and owners, gzip mtime 0), so the
manifest of a rebuild matches. --limit-per-class N keeps N images per class and split (tests).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

MANIFEST = "SHA256SUMS"
WEBP_QUALITY = 30
IMAGENETTE = "imagenette-224.tar.gz"
IMAGENETTE_PACK = f"imagenette-224-webp{WEBP_QUALITY}.tar.gz"
CIFAR = "cifar10-jpeg.tar.gz"


class DataError(Exception):
    """The data folder is not what the suite needs: the message says what and what to do."""


def _members(archive: Path, per_class: int) -> list[tuple[str, bytes]]:
    """(name, bytes) of the archive's files in name order, at most per_class per split/class folder."""
    kept: dict[str, int] = {}
    out = []
    with tarfile.open(archive, "r:*") as tar:
        for m in tar:
            if not m.isreg():
                continue
            folder = m.name.rsplit("/", 1)[0]
            if per_class and kept.get(folder, 0) >= per_class:
                continue
            kept[folder] = kept.get(folder, 0) + 1
            out.append((m.name, tar.extractfile(m).read()))
    return sorted(out)


def _to_webp(item: tuple[str, bytes]) -> tuple[str, bytes]:
    from PIL import Image
    name, data = item
    buf = io.BytesIO()
    with Image.open(io.BytesIO(data)) as img:
        img.convert("RGB").save(buf, "WEBP", quality=WEBP_QUALITY, method=6)
    return name.rsplit(".", 1)[0] + ".webp", buf.getvalue()


def write_tar_gz(path: Path, files: list[tuple[str, bytes]]) -> None:
    """A reproducible .tar.gz of (name, bytes): sorted, zero times and owners."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    lines = [f"{sha256(p)}  {p.name}" for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST]
    (folder / MANIFEST).write_text("\n".join(lines) + "\n")


def pack(src: Path, out: Path, per_class: int = 0, workers: int | None = None) -> dict:
    """The compact data of every part from the bundled archives in `src`; returns sizes in bytes."""
    for name in (IMAGENETTE, CIFAR):
        if not (src / name).is_file():
            raise DataError(f"{src / name} does not exist: give the folder of the bundled data (../shared/data)")
    images = _members(src / IMAGENETTE, per_class)
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        webp = list(pool.map(_to_webp, images, chunksize=64))
    write_tar_gz(out / "imagenette" / IMAGENETTE_PACK, webp)
    cifar = out / "cifar" / CIFAR
    if per_class:
        write_tar_gz(cifar, _members(src / CIFAR, per_class))
    else:
        cifar.parent.mkdir(parents=True, exist_ok=True)
        cifar.write_bytes((src / CIFAR).read_bytes())
    sizes = {}
    for part in ("imagenette", "cifar"):
        write_manifest(out / part)
        sizes[part] = sum(p.stat().st_size for p in (out / part).iterdir())
    return {"images": len(webp), "bytes": sizes, "webp_quality": WEBP_QUALITY, "per_class": per_class}


def verify(folder: Path) -> dict:
    """Every file of folder's SHA256SUMS is there with its checksum, and Pillow can read what it holds."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise DataError(f"{manifest} does not exist: DATA must be a folder made by `gpu_data.py pack` (.devdata/PART)")
    files = []
    for line in manifest.read_text().splitlines():
        digest, name = line.split(None, 1)
        path = folder / name.strip()
        if not path.is_file():
            raise DataError(f"{path} is missing: carry the whole folder made by `gpu_data.py pack`")
        if sha256(path) != digest:
            raise DataError(f"{path}: SHA-256 differs from {manifest}: the copy is damaged; make and carry it again")
        files.append({"name": path.name, "bytes": path.stat().st_size, "sha256": digest})
    if any(f["name"] == IMAGENETTE_PACK for f in files):
        from PIL import features
        if not features.check("webp"):
            raise DataError("this Pillow cannot decode WebP: install a Pillow wheel built with libwebp")
    return {"folder": str(folder), "files": files, "ok": True}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="make the compact data of every part")
    pk.add_argument("src", type=Path, help="folder of the bundled archives (../shared/data)")
    pk.add_argument("out", type=Path, help="output folder (.devdata: ignored by git, carried by the device tool)")
    pk.add_argument("--limit-per-class", type=int, default=0, help="N images per class and split (tests)")
    pk.add_argument("--workers", type=int, default=None, help="encoding processes (default: one per core)")
    vf = sub.add_parser("verify", help="check a data folder against its SHA256SUMS")
    vf.add_argument("folder", type=Path)
    a = p.parse_args(argv)
    try:
        result = pack(a.src, a.out, a.limit_per_class, a.workers) if a.cmd == "pack" else verify(a.folder)
    except DataError as e:
        print(f"gpu_data: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
