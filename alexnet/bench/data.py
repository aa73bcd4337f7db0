"""`alexnet bench data`: images per second DELIVERED TO THE MODEL (an augmented float batch on
the training device, synchronized), for the usual torchvision input pipeline and for ours,
side by side in one process on the same images.

Rows:
  torchvision     the pytorch/examples ImageNet loader: ImageFolder over the JPEG files,
                  RandomResizedCrop(crop) + RandomHorizontalFlip + ToTensor + Normalize, in a
                  DataLoader(num_workers=workers, pin_memory on CUDA), then .to(device).
                  Sampled like shuffle=True, but with the epochs chained in one RandomSampler
                  (persistent workers), so small benchmark datasets pay no worker restarts.
  store-raw       our raw uint8 store (already S x S) through the training loader
                  (alexnet.data.loader.BatchLoader: `workers` threads read each batch; on CUDA
                  into reused pinned buffers, copied on a side stream), then train_batch
                  (random crop, flip, PCA colour noise, mean image) on the device.
  store-jpeg-cpu  our jpeg store, the same loader: `workers` threads decode slices of each
                  batch with simplejpeg (no GIL, straight into the pinned batch buffer); then
                  as store-raw.
  store-jpeg-pillow  the same with data.cpu_decoder=pillow (the decoder before issue 13).
  store-jpeg-gpu  (CUDA only) our jpeg store with data.decode=device: the loader fetches the
                  JPEG bytes and nvJPEG decodes the batch on a side stream; then train_batch.
  store-jpeg-mixed  (CUDA only) decode=device with data.device_share=SHARE: nvJPEG decodes the
                  first SHARE of each batch while `workers` CPU threads decode the rest.
  store-jpeg-dali (CUDA and alexnet[dali] only) decode=device with data.backend=dali: DALI's
                  decoder (the card's hardware JPEG engine where it has one) instead of
                  torchvision's nvJPEG.

Sources:
  imagenette  the bundled imagenette-224.tar.gz (train split, 224x224 JPEGs of ~13 KB: much
              cheaper to decode than real ImageNet files), extracted to WORK/jpeg/.
  synthetic   ImageNet-like JPEGs generated into WORK/synthetic-N/: mostly 500x375 and 375x500
              (some other sizes), quality 90, real Imagenette photos upscaled with real
              high-frequency detail and sensor-like noise added so the files have photo-like
              entropy (~100 KB; the measured mean is in the result).
Stores are prepared into WORK/stores/ and reused on later runs (prepare is resumable).
Files are read from the page cache after the first pass (warm), as in training with enough RAM.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torchvision

from ..data.augment import store_augmenter
from ..data.bundled import bundled_archive
from ..data.loader import BatchLoader
from ..errors import UserError
from ..runtime import run_facts
from .sources import extract_imagenette, make_synthetic, read_done
from .timing import timed

ROWS = ("torchvision", "store-raw", "store-jpeg-cpu", "store-jpeg-pillow", "store-jpeg-gpu", "store-jpeg-mixed",
        "store-jpeg-dali")
DEFAULT_ROWS = ("torchvision", "store-raw", "store-jpeg-cpu", "store-jpeg-gpu")
# Loader settings of each store row (BatchLoader keywords).
STORE_ROWS = {"store-raw": {}, "store-jpeg-cpu": {}, "store-jpeg-pillow": {"cpu_decoder": "pillow"},
              "store-jpeg-gpu": {"decode": "device"}, "store-jpeg-mixed": {"decode": "device"},
              "store-jpeg-dali": {"decode": "device", "backend": "dali"}}

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # pytorch/examples


def _prepare_stores(src: Path, work: Path, tag: str, size: int, fmts: list[str], splits: list[str] | None,
                    fresh: bool, progress: bool) -> dict[str, Path]:
    from ..data.prepare import prepare
    stores = {}
    for fmt in fmts:
        path = work / "stores" / f"{tag}-{fmt}-{size}"
        if fresh:
            shutil.rmtree(path, ignore_errors=True)
        prepare(src, path, size=size, fmt=fmt, splits=splits, progress=progress)
        stores[fmt] = path
    return stores


# ---- measuring ---------------------------------------------------------------------------


def _measure(items: Iterator, step: Callable, batch: int, warmup: int, batches: int, device: torch.device) -> dict:
    """Deliver warmup + batches batches; img/s over the timed `batches` (wall time, one sync per batch)."""
    t = timed(lambda: step(next(items)), batches, warmup, device)
    return {"img_s": t.rate(batch), "ms_batch_median": 1000 * t.median, "seconds": t.seconds}


def _torchvision_row(root: Path, device: torch.device, batch: int, n_batches: int, workers: int, crop: int) -> Iterator:
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, RandomSampler
    tf = T.Compose([T.RandomResizedCrop(crop), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    ds = torchvision.datasets.ImageFolder(str(root), tf)
    sampler = RandomSampler(ds, num_samples=n_batches * batch, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(ds, batch, sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                        drop_last=True, persistent_workers=workers > 0)
    return iter(loader)


def _dir_mean_bytes(root: Path) -> tuple[float, int]:
    sizes = [p.stat().st_size for p in root.rglob("*") if p.is_file()]
    return (sum(sizes) / len(sizes) if sizes else 0.0), len(sizes)


def bench_data(source: str, work: Path, device: torch.device, batch: int, batches: int, workers: int,
               crop: int = 224, size: int = 256, *, warmup: int | None = None, data_dir: str | Path | None = None,
               synthetic_images: int = 2000, synthetic_sizes: list[tuple[tuple[int, int], float]] | None = None,
               rows: list[str] | None = None, progress: bool = False, device_share: float = 0.7) -> dict:
    """Run the rows (default: all) on SOURCE ("imagenette" or "synthetic"); data under WORK.
    warmup: batches per row delivered before timing (default workers + 2: one full round of
    DataLoader workers and the read-ahead queue). data_dir: folder holding (or path of)
    imagenette-224.tar.gz, found like quickstart when None. device_share: the store-jpeg-mixed row's."""
    if source not in ("imagenette", "synthetic"):
        raise UserError(f"unknown source {source!r}: use imagenette or synthetic")
    wanted = list(rows or DEFAULT_ROWS)
    if unknown := [r for r in wanted if r not in ROWS]:
        raise UserError(f"unknown row(s) {', '.join(unknown)}; rows are {', '.join(ROWS)}")
    if crop > size or batch < 1 or batches < 1 or workers < 0:
        raise UserError("need crop <= size, batch >= 1, batches >= 1, workers >= 0")
    warmup = workers + 2 if warmup is None else warmup
    work = Path(work)
    archive = bundled_archive(data_dir)
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--work {work}: {e.strerror or e}; choose a folder that can be written") from None
    if source == "imagenette":
        root = extract_imagenette(archive, work / "jpeg")
        tag, splits, fresh = "imagenette", ["train"], False
    else:
        folder = work / f"synthetic-{synthetic_images}"
        before = read_done(folder)
        root = make_synthetic(folder, synthetic_images, archive=archive, sizes=synthetic_sizes, threads=max(1, workers))
        tag, splits, fresh = folder.name, None, read_done(folder) != before  # regenerated: old stores are stale
    jpeg_mean, n_files = _dir_mean_bytes(root)
    fmts = ["raw" if r == "store-raw" else "jpeg" for r in wanted if r in STORE_ROWS]
    stores = _prepare_stores(root.parent if source == "synthetic" else archive, work, tag, size,
                             sorted(set(fmts)), splits, fresh, progress)

    from ..data.store import image_file, open_store
    out_rows = []
    n_batches = warmup + batches
    for name in wanted:
        row: dict = {"name": name, "img_s": None, "ms_batch_median": None, "bytes_per_image": None, "skipped": None}
        row["skipped"] = _why_skipped(name, device)
        if row["skipped"]:
            out_rows.append(row)
            continue
        torch.manual_seed(0)
        if name == "torchvision":
            items = _torchvision_row(root, device, batch, n_batches, workers, crop)

            def step(item):
                images, labels = item
                labels.to(device, non_blocking=True)
                return images.to(device, non_blocking=True)
            row["bytes_per_image"] = jpeg_mean
            row.update(_measure(items, step, batch, warmup, batches, device))
            del items  # shuts the workers down
        else:
            store = open_store(stores["raw" if name == "store-raw" else "jpeg"])
            reader = store.split("train")
            row["bytes_per_image"] = (store.path / image_file("train", store.format)).stat().st_size / len(reader)
            extra = dict(STORE_ROWS[name], **({"device_share": device_share} if name == "store-jpeg-mixed" else {}))
            row["loader"] = extra
            loader = BatchLoader(reader, batch, shuffle=True, seed=0, device=device, threads=max(1, workers), **extra)
            if len(loader) == 0:
                raise UserError(f"{len(reader)} images in {store.path}: fewer than one batch of {batch}")
            items = loader.forever()
            augment = store_augmenter(store, device, crop, torch.Generator().manual_seed(0))
            try:
                row.update(_measure(items, lambda item: augment(item[0]), batch, warmup, batches, device))
            finally:
                items.close()
        out_rows.append(row)

    by = {r["name"]: r for r in out_rows if r["img_s"]}
    stored = [r for r in by.values() if r["name"] != "torchvision"]
    ratios = {}
    if stored:
        best = max(stored, key=lambda r: r["img_s"])
        ratios["best_store"] = best["name"]
        if "torchvision" in by:
            ratios["best_store_vs_torchvision"] = best["img_s"] / by["torchvision"]["img_s"]
            for r in stored:
                r["vs_torchvision"] = r["img_s"] / by["torchvision"]["img_s"]
    return {**run_facts(device), "torch_threads": torch.get_num_threads(), "torchvision": torchvision.__version__, "source": source, "images": n_files,
            "jpeg_mean_bytes": jpeg_mean, "batch": batch, "batches": batches, "warmup": warmup,
            "workers": workers, "crop": crop, "size": size, "device_share": device_share, "rows": out_rows,
            "ratios": ratios}


def _why_skipped(row: str, device: torch.device) -> str | None:
    if row in ("store-jpeg-gpu", "store-jpeg-mixed", "store-jpeg-dali") and device.type != "cuda":
        return "needs a CUDA device (GPU decode)"
    if row == "store-jpeg-dali":
        try:
            import nvidia.dali  # noqa: F401
        except ImportError:
            return "needs NVIDIA DALI: pip install 'alexnet[dali]'"
    return None


def format_data(result: dict) -> str:
    r = result
    lines = [f"bench data on {r['device']}, {r['host_cores']} CPUs, torch {r['torch']}, torchvision {r['torchvision']}, "
             f"{r['date']}",
             f"source {r['source']}: {r['images']} JPEGs, mean {r['jpeg_mean_bytes'] / 1e3:.1f} KB; batch {r['batch']}, "
             f"{r['batches']} timed batches after {r['warmup']} warm-up, {r['workers']} workers, "
             f"store {r['size']}px -> crop {r['crop']}px",
             f"{'row':<18} {'img/s':>9} {'ms/batch':>9} {'KB/image':>9} {'vs tv':>6}"]
    for row in r["rows"]:
        kb = f"{row['bytes_per_image'] / 1e3:.1f}" if row["bytes_per_image"] is not None else "-"
        if row["skipped"]:
            lines.append(f"{row['name']:<18} {'skipped':>9} {'':>9} {kb:>9} {'':>6}  ({row['skipped']})")
            continue
        vs = f"{row['vs_torchvision']:.2f}x" if "vs_torchvision" in row else "-"
        lines.append(f"{row['name']:<18} {row['img_s']:>9.1f} {row['ms_batch_median']:>9.1f} {kb:>9} {vs:>6}")
    if "best_store_vs_torchvision" in r["ratios"]:
        lines.append(f"best store row ({r['ratios']['best_store']}) vs torchvision: "
                     f"{r['ratios']['best_store_vs_torchvision']:.2f}x")
    return "\n".join(lines)
