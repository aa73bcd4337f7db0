"""Predict the classes of image files with a trained net: `alexnet predict MODEL IMAGE...`.

Each image goes through the model's own preprocessing (ship/weights.py stored_pixels: EXIF
orientation, RGB, shorter side to S, centre S x S) and then exactly the code `alexnet eval` runs
(evaluate.predict: the mean image, the centre patch or the ten patches of §4.1, softmax averaged
over views), so the store's validation images get the same predictions as `alexnet eval`. A file
that cannot be read is reported and skipped; the others are still predicted.
"""
from __future__ import annotations

import glob
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from ..data.convert import IMAGE_FORMATS, open_image
from ..evaluate import PredictOptions, predict
from .weights import Weights, stored_pixels


@dataclass
class Prediction:
    file: str
    classes: list[str] = field(default_factory=list)  # the top-k classes (ids), most probable first
    names: list[str] = field(default_factory=list)  # their names, for people
    indices: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)  # softmax probability of each, averaged over views
    truth: str | None = None  # the class its folder names, when the model knows that class
    error: str | None = None  # why the file was skipped

    def to_json(self) -> dict:
        if self.error:
            return {"file": self.file, "error": self.error}
        top = [{"class": c, "name": n, "index": i, "prob": round(p, 6)}
               for c, n, i, p in zip(self.classes, self.names, self.indices, self.probs)]
        return {"file": self.file, "top": top, **({"truth": self.truth} if self.truth else {})}


def image_files(items: list[str]) -> tuple[list[Path], list[Prediction]]:
    """Files named by `items` (files, folders searched recursively for image extensions, globs),
    in order, each file once however often and however it is named, and a Prediction with an
    error for each item that names nothing."""
    exts = {e.lower() for e, f in Image.registered_extensions().items() if f in IMAGE_FORMATS}
    files, missing, seen = [], [], set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        elif path.exists():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        if not found:
            what = "no image files in this folder" if path.is_dir() else "no such file"
            missing.append(Prediction(item, error=what))
        for f in found:
            if f.resolve() not in seen:  # photo.jpg, ./photo.jpg and DIR/../photo.jpg are one file
                seen.add(f.resolve())
                files.append(f)
    return files, missing


def read_image(path: Path, size: int) -> torch.Tensor:
    """(3, S, S) uint8 as the store would hold the image; ValueError with the reason if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_image(path) as img:  # only the formats a dataset holds (data/convert.py)
                return stored_pixels(img, size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError("too many pixels (decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can read") from None
    except OSError as e:
        raise ValueError(f"cannot read: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure of a hostile file
        raise ValueError(f"corrupt image: {type(e).__name__}: {e}") from None


class ImagesReader:
    """Images already in memory, behind the interface evaluate.predict reads a store split through."""

    format = "raw"

    def __init__(self, images: torch.Tensor):
        self.images = images  # (N, 3, S, S) uint8
        self.size = images.shape[-1]
        self.labels = np.zeros(len(images), np.int64)  # unknown; evaluate.predict does not use them

    def __len__(self) -> int:
        return len(self.images)

    def read(self, indices: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        batch = self.images[torch.as_tensor(np.asarray(indices, dtype=np.int64))]
        return batch if out is None else out.copy_(batch)


def predict_images(model: nn.Module, weights: Weights, images: torch.Tensor, views: str = "center",
                   batch_size: int = 64, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, 3, S, S) uint8 stored-size images -> (N, num_classes) softmax averaged over views."""
    how = PredictOptions(weights.crop, views, batch_size, torch.device(device), threads=1)
    return predict([model], ImagesReader(images), weights.input_mean, how)


def predict_files(model: nn.Module, weights: Weights, files: list[Path], topk: int = 5, views: str = "center",
                  batch_size: int = 64, device: torch.device | str = "cpu") -> Iterator[Prediction]:
    """A Prediction per file, in order, `batch_size` images at a time."""
    for start in range(0, len(files), batch_size):
        chunk, images, results = files[start : start + batch_size], [], []
        for path in chunk:
            try:
                images.append(read_image(path, weights.size))
                results.append(Prediction(str(path), truth=_truth(path, weights.classes)))
            except ValueError as e:
                results.append(Prediction(str(path), error=str(e)))
        if images:
            probs = predict_images(model, weights, torch.stack(images), views, batch_size, device)
            top = probs.topk(min(topk, probs.shape[1]), dim=1)
            for r, p, i in zip([r for r in results if not r.error], top.values.tolist(), top.indices.tolist()):
                r.classes, r.indices, r.probs = [weights.classes[k] for k in i], i, p
                r.names = [weights.names[k] for k in i]
        yield from results


def _truth(path: Path, classes: list[str]) -> str | None:
    """The class a file's folder names (SRC/<class>/<image>, as in a store's sources), if the model has it."""
    return path.parent.name if path.parent.name in classes else None
