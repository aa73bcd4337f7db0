"""prepare on ImageNet as distributed (data/imagenet.py), built small from real Imagenette JPEGs in
the release's own structures (tests/imagenet_fakes.py): labels against the ground truth, the
devkit's class order and names, the odd images, subsets, the estimate and the refusal on a full
disk, and resume after kill -9 and after a full disk."""
from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image

import imagenet_fakes as fakes
from alexnet.cli import main
from alexnet.data import imagenet
from alexnet.data.names import IMAGENETTE as IMAGENETTE_NAMES
from alexnet.data.prepare import PrepareError, prepare
from alexnet.data.store import open_store
from conftest import IMAGENETTE

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64  # Imagenette is 224px: below 4 x 64, decoded in full (convert.set_draft), so pixels match torchvision


@pytest.fixture(scope="module")
def photos():
    if not IMAGENETTE.is_file():
        pytest.fail(f"{IMAGENETTE} is missing: the tests need ../shared/data (or set ALEXNET_DATA)")
    return fakes.read_photos(IMAGENETTE)


def reference(data: bytes) -> np.ndarray:
    """torchvision's Resize + CenterCrop of the RGB image (§2), (3, S, S) uint8."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(TF.center_crop(TF.resize(img, SIZE), SIZE)).transpose(2, 0, 1)


def check_store(out: Path, fake: fakes.Fake, order: list[str], splits=("train", "val")) -> None:
    """Every image stored, labelled as the source says, pixels as §2 makes them."""
    store = open_store(out)
    assert store.classes == order and store.splits == sorted(splits)
    for split in splits:
        reader = store.split(split)
        names = (out / f"{split}.files.txt").read_text().splitlines()
        pixels = reader.read(np.arange(len(reader))).numpy()
        for name, label, got in zip(names, reader.labels, pixels):
            _, *rest = name.split("/")
            if split == "train":
                wnid, file = rest
                assert store.classes[label] == wnid
                data = fake.train[wnid][file]
            else:
                (file,) = rest
                assert store.classes[label] == fake.truth[split][file], name
                data = fake.files[split][file]
            assert np.array_equal(got, reference(data)), name
        expected = sum(map(len, fake.train.values())) if split == "train" else len(fake.truth[split])
        assert len(names) == expected


@pytest.mark.parametrize("year", ["2012", "2010"])
def test_official_release_labels_order_and_names(tmp_path, photos, year):
    fake = fakes.official(tmp_path / "imagenet", photos, year)
    assert imagenet.detect(fake.src) == f"ILSVRC{year}"
    summary = prepare(fake.src, tmp_path / "out", size=SIZE, workers=2, progress=False)
    splits = ("train", "val", "test") if year == "2010" else ("train", "val")
    check_store(tmp_path / "out", fake, fake.ids, splits)  # class order = the devkit's ILSVRC ids, not sorted
    assert fake.ids != sorted(fake.ids)
    assert summary.skipped == 0 and summary.files == ()
    store = open_store(tmp_path / "out")
    assert store.class_names == [fakes.WORDS[w].split(",")[0] for w in fake.ids]
    assert store.meta["arguments"]["imagenet"] == f"ILSVRC{year}"


def test_kaggle_layout_and_the_same_labels_as_the_release(tmp_path, photos):
    fake = fakes.kaggle(tmp_path / "kaggle", photos)
    summary = prepare(fake.src, tmp_path / "out", size=SIZE, workers=1, progress=False)
    check_store(tmp_path / "out", fake, sorted(photos))  # LOC_synset_mapping.txt's order: sorted
    assert summary.skipped == 0  # the unlabelled test/ is not read
    assert open_store(tmp_path / "out").class_names[0] == "tench"


def test_subsets_are_the_same_classes_from_every_layout(tmp_path, photos):
    stores = {}
    for name, make in (("official", fakes.official), ("kaggle", fakes.kaggle)):
        fake = make(tmp_path / name, photos)
        summary = prepare(fake.src, tmp_path / f"{name}-out", size=SIZE, classes=3, limit_per_class=1,
                          workers=1, progress=False)
        assert summary.skipped == 0  # images of the other classes are left out, not skipped
        stores[name] = store = open_store(tmp_path / f"{name}-out")
        for split in ("train", "val"):
            labels = store.split(split).labels
            assert sorted(labels.tolist()) == [0, 1, 2]  # one image of each kept class
    ids = sorted(photos)
    assert sorted(stores["official"].classes) == sorted(stores["kaggle"].classes) == [ids[0], ids[1], ids[3]]
    with pytest.raises(PrepareError, match="has only 5 classes"):
        prepare(tmp_path / "kaggle", tmp_path / "x", size=SIZE, classes=6, progress=False)


def test_estimate_line_and_refusal_on_a_full_disk(tmp_path, photos, capsys):
    fake = fakes.official(tmp_path / "imagenet", photos)
    need = (5 * (fakes.TRAIN + fakes.VAL)) * 3 * SIZE * SIZE  # raw: the image bytes alone
    with pytest.raises(PrepareError) as e:
        prepare(fake.src, tmp_path / "out", size=SIZE, workers=1, space=lambda path: need // 2)
    message = str(e.value)
    assert "\n" not in message and "free" in message and "30 images" in message
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert main(["prepare", str(fake.src), str(tmp_path / "out"), "--size", str(SIZE), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("prepare: 30 images"))
    assert "raw 64px store of" in line and "free on" in line and " 1 s (" in line and "ms/img" in line


def test_odd_images_and_skips_named_in_the_summary(tmp_path, photos, capsys):
    fake = fakes.official(tmp_path / "imagenet", photos)
    val = fake.src / "ILSVRC2012_img_val.tar"
    data = val.read_bytes()
    first = sorted(fake.files["val"])[0]
    at = data.index(fake.files["val"][first])
    val.write_bytes(data[:at] + b"\0" * 600 + data[at + 600:])  # one val image corrupted in place
    assert main(["prepare", str(fake.src), str(tmp_path / "out"), "--size", str(SIZE), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("read 30, stored 29, skipped 1")
    assert out[1].startswith(f"  skipped val/{first}: ")  # every skipped file by name
    store = open_store(tmp_path / "out")
    first_class = sorted(photos)[0]  # its train images 1-3 are CMYK, PNG named .JPEG, greyscale
    names = (tmp_path / "out" / "train.files.txt").read_text().splitlines()
    pixels = store.split("train").read(np.arange(len(names))).numpy()
    for name, got in zip(names, pixels):
        if f"/{first_class}/" in name:
            assert np.array_equal(got, reference(fake.train[first_class][name.rsplit("/", 1)[1]]))
            assert got.shape == (3, SIZE, SIZE)


RUN = """
import sys
from alexnet.data.prepare import prepare
from prepare_hooks import KillAt
prepare(sys.argv[1], sys.argv[2], size=64, workers=2, chunk_files=4, progress=False, hook=KillAt("committed", 2))
"""


def test_resume_after_kill_and_after_a_full_disk(tmp_path, photos):
    fake = fakes.official(tmp_path / "imagenet", photos, "2010")
    ref = tmp_path / "ref"
    prepare(fake.src, ref, size=SIZE, workers=1, chunk_files=4, progress=False)
    store_files = lambda out: {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "store.json"}  # noqa: E731

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.run([sys.executable, "-c", RUN, str(fake.src), str(killed)], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    summary = prepare(fake.src, killed, size=SIZE, workers=2, progress=False)
    assert summary.stored == 40 and store_files(killed) == store_files(ref)

    class DiskFull:  # the disk fills after chunk 3's data is written, before its commit
        def __call__(self, point: str, index: int) -> None:
            if (point, index) == ("written", 3):
                raise OSError(errno.ENOSPC, "No space left on device")

    full = tmp_path / "full"
    with pytest.raises(PrepareError, match="No space left on device.*re-running continues"):
        prepare(fake.src, full, size=SIZE, workers=1, chunk_files=4, progress=False, hook=DiskFull())
    summary = prepare(fake.src, full, size=SIZE, workers=1, progress=False)
    assert summary.stored == 40 and store_files(full) == store_files(ref)


def test_missing_devkit_and_no_imagenet_are_one_line(tmp_path, photos):
    fake = fakes.official(tmp_path / "imagenet", photos)
    (fake.src / "ILSVRC2012_devkit_t12.tar.gz").unlink()
    with pytest.raises(PrepareError, match="need their labels from ILSVRC2012_devkit_t12.tar.gz"):
        prepare(fake.src, tmp_path / "out", size=SIZE, progress=False)
    summary = prepare(fake.src, tmp_path / "out", size=SIZE, splits=["train"], workers=1, progress=False)
    assert summary.stored == 20
    with pytest.raises(PrepareError, match="--imagenet: no ImageNet files"):
        prepare(tmp_path / "out", tmp_path / "o2", imagenet=True, progress=False)


def test_names_from_words_txt_classes_txt_and_the_command_line(tmp_path, photos):
    src = tmp_path / "tiny" / "tiny-imagenet-200"  # Tiny ImageNet: words.txt names every WordNet synset
    for w, images in photos.items():
        (src / "train" / w).mkdir(parents=True)
        (src / "train" / w / f"{w}_0.JPEG").write_bytes(images[0])
    other = "n00001740\tentity\n"
    (src / "words.txt").write_text(other + "".join(f"{w}\t{fakes.WORDS[w]}\n" for w in sorted(photos)))
    prepare(tmp_path / "tiny", tmp_path / "a", size=SIZE, workers=1, progress=False)
    assert open_store(tmp_path / "a").class_names == [fakes.WORDS[w].split(",")[0] for w in sorted(photos)]

    (src / "words.txt").unlink()
    (src / "classes.txt").write_text("".join(f"thing {i}\n" for i in range(5)))  # one name a line, class order
    prepare(src, tmp_path / "b", size=SIZE, workers=1, progress=False)
    assert open_store(tmp_path / "b").class_names == [f"thing {i}" for i in range(5)]

    names = tmp_path / "mine.txt"
    names.write_text(f"{sorted(photos)[1]} my dog\n")
    prepare(src, tmp_path / "c", size=SIZE, workers=1, progress=False, class_names=names)
    assert open_store(tmp_path / "c").class_names[:2] == ["thing 0", "my dog"]
    meta = json.loads((tmp_path / "c" / "store.json").read_text())
    del meta["class_names"]  # a store made before names: the ids, words for the known Imagenette ones
    meta["classes"][0] = "my_folder"
    (tmp_path / "c" / "store.json").write_text(json.dumps(meta))
    assert open_store(tmp_path / "c").class_names == ["my_folder"] + [IMAGENETTE_NAMES[w] for w in sorted(photos)[1:]]
    names.write_text("n99999999 nothing\n")
    with pytest.raises(PrepareError, match="names none of the 5 classes"):
        prepare(src, tmp_path / "d", size=SIZE, workers=1, progress=False, class_names=names)


def test_prepare_does_not_import_torch():
    """Start-up (issue: 100 images took 3.5 s, mostly importing torch): the command never needs it."""
    code = ("import sys; from alexnet.cli import build_parser; build_parser(); import alexnet.data.prepare, "
            "alexnet.data.imagenet; assert 'torch' not in sys.modules, 'torch imported'")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-1000:]


def test_one_of_the_release_files_as_src_names_its_folder(tmp_path, photos):
    fake = fakes.official(tmp_path / "imagenet", photos)
    with pytest.raises(PrepareError, match=f"give the folder holding them all \\({fake.src}\\)"):
        prepare(fake.src / "ILSVRC2012_img_train.tar", tmp_path / "out", size=SIZE, progress=False)
    fake = fakes.kaggle(tmp_path / "kaggle", photos)
    with pytest.raises(PrepareError, match=f"give the folder holding them all \\({fake.src}\\)"):
        prepare(fake.src / "ILSVRC" / "Data" / "CLS-LOC", tmp_path / "out", size=SIZE, progress=False)
