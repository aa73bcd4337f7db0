"""prepare(labels=...): a flat validation folder (ImageNet's val/ILSVRC2012_val_*.JPEG) labelled from
Kaggle's LOC_val_solution.csv or the devkit's ground truth + synsets, from a folder and a .tar.gz."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image

from alexnet.cli import main
from alexnet.data.convert import load_image, to_chw
from alexnet.data.prepare import PrepareError, prepare
from alexnet.data.store import open_store

from conftest import IMAGENETTE

SIZE = 32
UNKNOWN = "n99999999"  # a wnid that is no class folder


@pytest.fixture(scope="module")
def photos() -> dict[str, list[bytes]]:
    """5 real Imagenette JPEGs for each of 3 classes (wnid -> bytes), read from the archive."""
    if not IMAGENETTE.is_file():
        pytest.fail(f"{IMAGENETTE} is missing: the tests need ../shared/data (or set ALEXNET_DATA)")
    found: dict[str, list[bytes]] = {}
    with tarfile.open(IMAGENETTE, "r:gz") as tf:
        for m in tf:  # stop as soon as we have enough: no full pass over the archive
            parts = m.name.split("/")
            if not m.isreg() or len(parts) != 4 or parts[1] != "train":
                continue
            wnid = parts[2]
            if wnid not in found and len(found) == 3:
                break
            if len(found.setdefault(wnid, [])) < 5:
                found[wnid].append(tf.extractfile(m).read())
    assert len(found) == 3 and all(len(v) == 5 for v in found.values())
    return found


def make_tree(root: Path, photos: dict[str, list[bytes]]) -> tuple[Path, dict[str, str], dict[str, bytes]]:
    """SRC with train/<wnid>/ (3 images each) and a flat val/ of 6 labelled images + 1 stray one.

    Returns (src, intended class of each val file, bytes of each val file).
    """
    c0, c1, c2 = sorted(photos)
    src = root / "tree"
    for wnid, images in photos.items():
        (src / "train" / wnid).mkdir(parents=True)
        for i, data in enumerate(images[:3]):
            (src / "train" / wnid / f"{wnid}_{i}.JPEG").write_bytes(data)
    (src / "val").mkdir()
    intended = dict(zip([f"ILSVRC2012_val_{k:08d}.JPEG" for k in range(1, 7)], [c1, c0, c2, c2, c1, c0]))
    spare = {w: iter(photos[w][3:]) for w in photos}
    val = {name: next(spare[wnid]) for name, wnid in intended.items()}
    val["extra.JPEG"] = photos[c0][0]  # an image without a label
    for name, data in val.items():
        (src / "val" / name).write_bytes(data)
    return src, intended, val


def reference(data: bytes) -> np.ndarray:
    """torchvision Resize + CenterCrop of the RGB image: (3, S, S) uint8."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(TF.center_crop(TF.resize(img, SIZE), SIZE)).transpose(2, 0, 1)


def skipped(out: Path) -> dict[str, str]:
    lines = (out / "skipped.tsv").read_text().splitlines()
    assert lines[0] == "split\tpath\treason"
    return {path: reason for _, path, reason in (line.split("\t") for line in lines[1:])}


def check_store(out: Path, summary, intended: dict[str, str], val: dict[str, bytes], unknown: str) -> None:
    """val/ stored with the intended classes and train-style pixels; the rest in the manifest."""
    store = open_store(out)
    assert store.splits == ["train", "val"] and store.classes == sorted(set(intended.values()))
    assert store.stats_split == "train"
    names = (out / "val.files.txt").read_text().splitlines()
    labels = np.load(out / "val.labels.npy")
    expect = {f"val/{n}": c for n, c in intended.items() if n != unknown}
    assert names == sorted(expect)  # flat split: stored in file-name order
    assert [store.classes[i] for i in labels] == [expect[n] for n in names]
    images = store.split("val").read(np.arange(len(names))).numpy()
    for img, name in zip(images, names):
        data = val[name.split("/")[1]]
        assert np.array_equal(img, to_chw(load_image(data, SIZE)))  # the conversion train images get
        # 224px sources at SIZE 32 decode at half scale (convert.set_draft): near torchvision's pixels
        assert np.abs(img.astype(int) - reference(data).astype(int)).mean() < 1.5
    rows = skipped(out)
    assert set(rows) == {f"val/{unknown}", "val/ILSVRC2012_val_00000009", "val/extra.JPEG"}, rows
    assert UNKNOWN in rows[f"val/{unknown}"] and "not among the class folders of train" in rows[f"val/{unknown}"]
    assert "not found in val/" in rows["val/ILSVRC2012_val_00000009"]
    assert "no label" in rows["val/extra.JPEG"]
    assert store.meta["splits"]["train"]["count"] == 9 and store.meta["splits"]["val"]["count"] == len(expect)
    assert summary.stored == 9 + len(expect) and summary.skipped == len(rows)
    assert summary.read == summary.stored + summary.skipped == 9 + len(val) + 1  # + the missing file


def test_kaggle_csv_via_cli(tmp_path, photos, capsys):
    src, intended, val = make_tree(tmp_path, photos)
    unknown = "ILSVRC2012_val_00000006.JPEG"
    rows = ["ImageId,PredictionString"]  # Kaggle's header; names without extension, boxes after the wnid
    for name, wnid in intended.items():
        rows.append(f"{name.split('.')[0]},{UNKNOWN if name == unknown else wnid} 12 34 200 180 {wnid} 1 2 3 4 ")
    rows.insert(3, "ILSVRC2012_val_00000009,n01440764 1 2 3 4")  # listed, no such file
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    argv = ["prepare", str(src), str(out), "--size", str(SIZE), "--workers", "1", "--quiet", "--labels", f"val={csv}"]
    assert main(argv) == 0
    line = capsys.readouterr().out
    assert line.startswith("read 17, stored 14, skipped 3 -> ")
    summary = prepare(src, out, size=SIZE, workers=1, progress=False, labels={"val": csv})  # complete: same result
    check_store(out, summary, intended, val, unknown)

    # The labels file is part of the arguments: a changed one is never resumed into the same OUT.
    csv.write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(PrepareError, match="different arguments .*labels"):
        prepare(src, out, size=SIZE, workers=1, progress=False, labels={"val": csv})
    # --strict: the first skip is an error; a whitespace-separated mapping with extensions works too.
    tsv = tmp_path / "mapping.txt"
    tsv.write_text("".join(f"{n}  {c}\n" for n, c in intended.items()))
    with pytest.raises(PrepareError, match="strict: val/extra.JPEG .*no label"):
        prepare(src, tmp_path / "strict", size=SIZE, workers=1, progress=False, labels={"val": tsv}, strict=True)
    assert main(argv[:3] + ["--labels", "val"]) == 2
    assert "expected SPLIT=FILE" in capsys.readouterr().err


def test_devkit_ground_truth_from_archive(tmp_path, photos):
    src, intended, val = make_tree(tmp_path, photos)
    c0, c1, c2 = sorted(photos)
    synsets = tmp_path / "synsets.txt"  # ILSVRC2012_ID order, deliberately not sorted order
    synsets.write_text(f"{c2}\n{c0}\n{UNKNOWN}\n{c1}\n")
    ids = {c2: 1, c0: 2, c1: 4}
    unknown = "ILSVRC2012_val_00000005.JPEG"
    truth = [3 if name == unknown else ids[w] for name, w in intended.items()] + [2, 4, 1]  # lines 7..9
    gt = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("".join(f"{i}\n" for i in truth))
    for k in (7, 8):  # 7 and 8 exist in the archive, 9 is missing
        (src / "val" / f"ILSVRC2012_val_{k:08d}.JPEG").write_bytes(photos[c0][4])
    intended.update({"ILSVRC2012_val_00000007.JPEG": c0, "ILSVRC2012_val_00000008.JPEG": c1})
    val.update({"ILSVRC2012_val_00000007.JPEG": photos[c0][4], "ILSVRC2012_val_00000008.JPEG": photos[c0][4]})
    archive = tmp_path / "imagenet.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname="imagenet")  # under one top folder, as ImageNet tars often are
    summary = prepare(archive, tmp_path / "out", size=SIZE, workers=1, progress=False,
                      labels={"val": gt}, synsets=synsets)
    check_store(tmp_path / "out", summary, intended, val, unknown)
    assert "ID 3" in skipped(tmp_path / "out")[f"val/{unknown}"]

    # Without --synsets the IDs mean nothing: refused, as is a sorted (LOC_synset_mapping-like) list.
    with pytest.raises(PrepareError, match="one class ID per line.*--synsets"):
        prepare(archive, tmp_path / "o2", size=SIZE, progress=False, labels={"val": gt})
    wnids = tmp_path / "sorted.txt"
    wnids.write_text("".join(f"n{i:08d} words\n" for i in range(1000)))
    with pytest.raises(PrepareError, match="sorted order, not in ILSVRC2012_ID order"):
        prepare(archive, tmp_path / "o3", size=SIZE, progress=False, labels={"val": gt}, synsets=wnids)


def test_malformed_labels_name_the_line(tmp_path, photos):
    src, intended, _ = make_tree(tmp_path, photos)
    synsets = tmp_path / "synsets.txt"
    synsets.write_text("".join(f"{w}\n" for w in sorted(photos)))
    cases = {
        "bad.csv": ("ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764\nILSVRC2012_val_00000002\n",
                    r"bad.csv line 3: expected a file name and a class separated by a comma"),
        "empty_class.csv": ("a.JPEG,\n", r"empty_class.csv line 1: expected"),
        "gt.txt": ("1\n2\nthree\n", r"gt.txt line 3: expected one class ID"),
        "range.txt": ("1\n\n2\n", r"range.txt line 2: expected one class ID"),
        "big.txt": ("1\n4\n", r"big.txt line 2: class ID 4 is not in 1..3"),
        "binary.csv": (b"\xff\xfe\x00a", r"binary.csv: not a UTF-8 text file"),
        "blank.csv": ("\n \n", r"blank.csv is empty"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(PrepareError, match=message):
            prepare(src, tmp_path / "out", size=SIZE, progress=False, labels={"val": path}, synsets=synsets)
        assert not (tmp_path / "out").exists()  # refused before anything is written
    gt = tmp_path / "gt_ok.txt"
    gt.write_text("1\n")
    with pytest.raises(PrepareError, match="split test of --labels test=FILE is not a folder .*available: train, val"):
        prepare(src, tmp_path / "out", size=SIZE, progress=False, labels={"test": gt}, synsets=synsets)
    with pytest.raises(PrepareError, match="cannot read labels file of split val"):
        prepare(src, tmp_path / "out", size=SIZE, progress=False, labels={"val": tmp_path / "nope.csv"})
    # Positional ground truth (files not named ILSVRC2012_val_N) must have one line per file.
    for name in list((src / "val").iterdir()):
        name.rename(name.with_name("img_" + name.name))
    with pytest.raises(PrepareError, match="has 1 class IDs but val/ has 7 files"):
        prepare(src, tmp_path / "out", size=SIZE, progress=False, labels={"val": gt}, synsets=synsets)
    gt.write_text("3\n1\n2\n2\n3\n1\n1\n")  # one ID per file, in sorted file-name order
    summary = prepare(src, tmp_path / "out", size=SIZE, workers=1, progress=False, labels={"val": gt}, synsets=synsets)
    assert summary.stored == 9 + 7 and summary.skipped == 0
    assert (tmp_path / "out" / "val.files.txt").read_text().splitlines()[-1] == "val/img_extra.JPEG"
    assert np.load(tmp_path / "out" / "val.labels.npy").tolist() == [2, 0, 1, 1, 2, 0, 0]
