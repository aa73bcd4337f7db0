"""ImageNet's distributed layouts, built small from real Imagenette JPEGs (tests/test_imagenet.py):
the 2012 release (a train tar of class tars, the flat val tar, the devkit tar.gz with a meta.mat
written by scipy.io.savemat and the ground-truth file), the 2010 release (with a test set and its
ground truth), and Kaggle's folders (LOC_val_solution.csv, LOC_synset_mapping.txt)."""
from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

TRAIN, VAL = 4, 2  # images per class
WORDS = {"n01440764": "tench, Tinca tinca", "n02102040": "English springer, English springer spaniel",
         "n02979186": "cassette player", "n03000684": "chain saw, chainsaw", "n03028079": "church, church building"}


def read_photos(archive: Path, classes: int = 5, per_class: int = TRAIN + VAL + VAL) -> dict[str, list[bytes]]:
    """The first `per_class` train JPEGs of the first `classes` classes of the Imagenette archive."""
    found: dict[str, list[bytes]] = {}
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf:  # stops as soon as it has enough
            parts = m.name.split("/")
            if not m.isreg() or len(parts) != 4 or parts[1] != "train":
                continue
            if parts[2] not in found and len(found) == classes:
                break
            if len(found.setdefault(parts[2], [])) < per_class:
                found[parts[2]].append(tf.extractfile(m).read())
    assert len(found) == classes and all(len(v) == per_class for v in found.values())
    return found


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def odd_images(data: bytes) -> dict[str, bytes]:
    """ImageNet's own oddities, made from one photo: a CMYK JPEG, a PNG named .JPEG, a greyscale JPEG."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return {"cmyk": _encoded(img.convert("CMYK"), "JPEG"), "png": _encoded(img, "PNG"),
            "grey": _encoded(img.convert("L"), "JPEG")}


@dataclass
class Fake:
    src: Path
    train: dict[str, dict[str, bytes]]  # wnid -> file name -> bytes
    truth: dict[str, dict[str, str]]  # flat split -> file name -> wnid
    files: dict[str, dict[str, bytes]]  # flat split -> file name -> bytes
    ids: list[str]  # the classes in ILSVRC id order (id 1 first)


def split_photos(photos: dict[str, list[bytes]], year: str, test: bool, n_train: int = TRAIN, n_val: int = VAL):
    """Train files per class (three of class 0 made odd), and flat val (and test) files with their truth."""
    train = {w: {f"{w}_{100 + i}.JPEG": d for i, d in enumerate(images[:n_train])} for w, images in photos.items()}
    first = sorted(photos)[0]
    odd = odd_images(photos[first][0])
    for (name, _), kind in zip(sorted(train[first].items())[1:], ("cmyk", "png", "grey")):
        train[first][name] = odd[kind]
    truth: dict[str, dict[str, str]] = {}
    files: dict[str, dict[str, bytes]] = {}
    for split, start in [("val", n_train)] + ([("test", n_train + n_val)] if test else []):
        pairs = [(w, d) for k in range(n_val) for w, d in ((w, photos[w][start + k]) for w in photos)]
        pairs = pairs[1::2] + pairs[::2]  # classes interleaved, not in blocks
        names = [f"ILSVRC{year}_{split}_{n:08d}.JPEG" for n in range(1, len(pairs) + 1)]
        truth[split] = {n: w for n, (w, _) in zip(names, pairs)}
        files[split] = {n: d for n, (_, d) in zip(names, pairs)}
    return train, truth, files


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """A plain tar of `members`, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def meta_mat(ids: list[str], year: str, numbers: dict[str, int] | None = None) -> bytes:
    """The devkit's meta.mat: the leaves with ILSVRC ids 1..n in `ids` order (or the `numbers` given
    for some wnids: damaged files), then two synsets above them."""
    rows = [((numbers or {}).get(w, i + 1), w, WORDS.get(w, w), 0) for i, w in enumerate(ids)]
    rows += [(len(ids) + 1, "n00015388", "animal, animate being, beast", 2), (len(ids) + 2, "n00001740", "entity", 1)]
    dtype = [(f"ILSVRC{year}_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O"),
             ("children", "O"), ("wordnet_height", "O"), ("num_train_images", "O")]
    synsets = np.zeros((len(rows), 1), dtype=dtype)
    for k, (i, w, words, children) in enumerate(rows):
        synsets[k, 0] = (np.array([[i]], np.uint16 if i < 2**16 else np.uint64), np.array([w]), np.array([words]), np.array(["a gloss"]),
                         np.array([[children]], np.uint8), np.zeros((1, children), np.uint16),
                         np.array([[0]], np.uint8), np.array([[TRAIN]], np.uint16))
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": synsets})
    return buf.getvalue()


def ground_truth(truth: dict[str, str], ids: list[str]) -> bytes:
    return "".join(f"{ids.index(truth[n]) + 1}\n" for n in sorted(truth)).encode()


def official(root: Path, photos: dict[str, list[bytes]], year: str = "2012", n_train: int = TRAIN,
             n_val: int = VAL) -> Fake:
    """ILSVRC2012 (or 2010, with a test set) as distributed: nothing but the release's files in root."""
    test = year == "2010"
    train, truth, files = split_photos(photos, year, test, n_train, n_val)
    ids = sorted(photos)
    ids = ids[3:4] + ids[0:1] + ids[4:5] + ids[1:2] + ids[2:3] + ids[5:]  # ILSVRC ids are not in sorted order
    root.mkdir(parents=True)
    names = {"2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12"),
             "2010": ("ILSVRC2010_images_train.tar", "ILSVRC2010_images_val.tar", "devkit-1.0")}[year]
    (root / names[0]).write_bytes(tar_bytes({f"{w}.tar": tar_bytes(m) for w, m in sorted(train.items())}))
    (root / names[1]).write_bytes(tar_bytes(files["val"]))
    devkit = {f"{names[2]}/data/meta.mat": meta_mat(ids, year),
              f"{names[2]}/data/ILSVRC{year}_validation_ground_truth.txt": ground_truth(truth["val"], ids),
              f"{names[2]}/readme.txt": b"the devkit's readme\n"}
    with tarfile.open(root / ("ILSVRC2012_devkit_t12.tar.gz" if year == "2012" else "ILSVRC2010_devkit-1.0.tar.gz"),
                      "w:gz") as tf:
        for name, data in devkit.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    if test:
        (root / "ILSVRC2010_images_test.tar").write_bytes(tar_bytes(files["test"]))
        (root / "ILSVRC2010_test_ground_truth.txt").write_bytes(ground_truth(truth["test"], ids))
    return Fake(root, train, truth, files, ids)


def kaggle(root: Path, photos: dict[str, list[bytes]]) -> Fake:
    """Kaggle's imagenet-object-localization-challenge folder (its unlabelled test set included)."""
    train, truth, files = split_photos(photos, "2012", False)
    data = root / "ILSVRC" / "Data" / "CLS-LOC"
    for w, members in train.items():
        (data / "train" / w).mkdir(parents=True)
        for name, b in members.items():
            (data / "train" / w / name).write_bytes(b)
    (data / "val").mkdir()
    for name, b in files["val"].items():
        (data / "val" / name).write_bytes(b)
    (data / "test").mkdir()
    (data / "test" / "ILSVRC2012_test_00000001.JPEG").write_bytes(files["val"][sorted(files["val"])[0]])
    rows = [f"{n.removesuffix('.JPEG')},{w} 10 20 100 200 {w} 5 5 50 50" for n, w in sorted(truth["val"].items())[::-1]]
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {WORDS[w]}\n" for w in sorted(photos)))
    return Fake(root, train, truth, files, sorted(photos))
