"""Issue 31: `prepare` against damaged and hostile sources, built from real Imagenette JPEGs (plus
the damaged bytes). Each case checks that every intact image is stored with its right label, or
named in skipped.tsv with the reason, and that the exit code and the summary line say so."""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps

import imagenet_fakes as fakes
from alexnet.cli import main
from alexnet.data.prepare import prepare
from alexnet.data.report import manifest_rows
from alexnet.data.store import open_store, read_names
from conftest import IMAGENETTE, need

SIZE = 32


@pytest.fixture(scope="module")
def photos() -> dict[str, list[bytes]]:
    """8 real JPEGs of each of the first 5 Imagenette classes (the ImageNet fakes need 5)."""
    need(IMAGENETTE)
    return fakes.read_photos(IMAGENETTE)


def tree(photos: dict[str, list[bytes]], classes: int = 3, train: int = 4, val: int = 2) -> dict[str, bytes]:
    """<split>/<wnid>/<wnid>_<i>.JPEG -> bytes, in sorted order."""
    files = {}
    for wnid in sorted(photos)[:classes]:
        for i, data in enumerate(photos[wnid][:train + val]):
            files[f"{'train' if i < train else 'val'}/{wnid}/{wnid}_{i}.JPEG"] = data
    return dict(sorted(files.items()))


def tar_of(members: dict[str, bytes]) -> tuple[bytearray, dict[str, int]]:
    """A plain tar of `members` in order, and each member's header offset."""
    data = bytearray(fakes.tar_bytes(members))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
        offsets = {m.name: m.offset for m in tf}
    return data, offsets


def damage_header(data: bytearray, offset: int) -> bytearray:
    data[offset:offset + 512] = bytes((7 * i + 13) % 251 + 1 for i in range(512))  # no valid header, no zeros
    return data


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(["prepare", *argv, "--size", str(SIZE), "--workers", "1", "--quiet"])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err.strip()


def stored(out: Path) -> dict[str, str]:
    """Every stored file's name -> the class it is stored under."""
    store = open_store(out)
    found = {}
    for split in store.splits:
        names = read_names(out, split)
        labels = store.split(split).labels
        assert len(names) == len(labels)
        found.update({n: store.classes[label] for n, label in zip(names, labels)})
    return found


def skipped(out: Path) -> dict[str, str]:
    """skipped.tsv: path -> reason."""
    return {path: reason for _, path, reason in manifest_rows(out / "skipped.tsv")}


def folder_class(name: str) -> str:
    return name.split("/")[1]


# ---- 1. a damaged tar header is never the archive's end ------------------------------------


@pytest.mark.parametrize("kind", ["tar", "tar.gz"])
@pytest.mark.parametrize("which", [5, 0])  # a train image of the second class (12 members after it), the first
def test_a_damaged_header_mid_archive_is_named_and_the_rest_is_read(photos, tmp_path, capsys, kind, which):
    files = tree(photos)
    data, offsets = tar_of(files)
    lost = sorted(files)[which]
    damage_header(data, offsets[lost])
    src = tmp_path / f"src.{kind}"
    src.write_bytes(gzip.compress(bytes(data)) if kind == "tar.gz" else bytes(data))
    rc, out, err = cli(capsys, str(src), str(tmp_path / "out"))
    assert rc == 0, err
    got = stored(tmp_path / "out")
    assert got == {n: folder_class(n) for n in files if n != lost}  # every intact image, its own class
    where = f"src.{kind} at byte {offsets[lost]}"
    assert "damaged tar header" in skipped(tmp_path / "out")[where]
    assert out.splitlines()[0].startswith(f"read {len(files)}, stored {len(files) - 1}, skipped 1 -> ")
    assert "1 damaged tar header" in out.splitlines()[0] and where in out
    rc, _, err = cli(capsys, str(src), str(tmp_path / "strict"), "--strict")
    assert rc == 2 and "\n" not in err and where in err and "damaged tar header" in err


def test_a_damaged_header_inside_a_class_tar_is_named(photos, tmp_path, capsys):
    fake = fakes.official(tmp_path / "in", photos)
    wnid = sorted(fake.train)[2]
    inner, offsets = tar_of(fake.train[wnid])
    lost = sorted(fake.train[wnid])[1]
    damage_header(inner, offsets[lost])
    outer, _ = tar_of({f"{w}.tar": bytes(inner) if w == wnid else bytes(tar_of(m)[0])
                       for w, m in sorted(fake.train.items())})
    (fake.src / "ILSVRC2012_img_train.tar").write_bytes(bytes(outer))
    rc, out, err = cli(capsys, str(fake.src), str(tmp_path / "out"), "--splits", "train")
    assert rc == 0, err
    want = {f"train/{w}/{f}": w for w, m in fake.train.items() for f in m if (w, f) != (wnid, lost)}
    assert stored(tmp_path / "out") == want
    where = f"train/{wnid}.tar at byte {offsets[lost]}"
    assert "damaged tar header" in skipped(tmp_path / "out")[where]
    assert out.splitlines()[0].startswith(f"read {len(want) + 1}, stored {len(want)}, skipped 1 -> ")
    rc, _, err = cli(capsys, str(fake.src), str(tmp_path / "strict"), "--splits", "train", "--strict")
    assert rc == 2 and "\n" not in err and where in err


def test_a_damaged_class_tar_header_in_the_train_tar_names_every_image_it_held(photos, tmp_path, capsys):
    fake = fakes.official(tmp_path / "in", photos)
    outer, offsets = tar_of({f"{w}.tar": bytes(tar_of(m)[0]) for w, m in sorted(fake.train.items())})
    lost = sorted(fake.train)[2]
    damage_header(outer, offsets[f"{lost}.tar"])
    (fake.src / "ILSVRC2012_img_train.tar").write_bytes(bytes(outer))
    rc, out, err = cli(capsys, str(fake.src), str(tmp_path / "out"))
    assert rc == 0, err
    want = {f"train/{w}/{f}": w for w, m in fake.train.items() for f in m if w != lost}
    want |= {f"val/{f}": w for f, w in fake.truth["val"].items() if w != lost}
    assert stored(tmp_path / "out") == want  # the other classes, every image with its label
    skips = skipped(tmp_path / "out")  # the damaged header by offset, then each image of the class it held by name
    assert "damaged tar header" in skips[f"ILSVRC2012_img_train.tar at byte {offsets[f'{lost}.tar']}"]
    assert {f"ILSVRC2012_img_train.tar/{f}" for f in fake.train[lost]} | {
        f"val/{f}" for f, w in fake.truth["val"].items() if w == lost} <= set(skips)
    assert out.startswith(f"read {len(want) + len(skips)}, stored {len(want)}, skipped {len(skips)} ")


def test_an_archive_cut_mid_member_keeps_the_whole_images_before_it(photos, tmp_path, capsys):
    files = tree(photos)
    data, offsets = tar_of(files)
    cut = sorted(files)[-3]  # cut 100 bytes into the data of the third-last member
    src = tmp_path / "src.tar"
    src.write_bytes(bytes(data[:offsets[cut] + 512 + 100]))
    rc, out, err = cli(capsys, str(src), str(tmp_path / "out"))
    assert rc == 0, err
    whole = [n for n in sorted(files) if offsets[n] < offsets[cut]]
    assert stored(tmp_path / "out") == {n: folder_class(n) for n in whole}
    skips = skipped(tmp_path / "out")
    assert "archive ends inside this member" in skips[cut]
    assert out.startswith(f"read {len(whole) + len(skips)}, stored {len(whole)}, skipped {len(skips)} ")
    assert any(k.startswith("src.tar at byte ") and "archive ends" in r for k, r in skips.items())


def test_a_truncated_class_tar_is_never_read_into_the_next_member(photos, tmp_path, capsys):
    fake = fakes.official(tmp_path / "in", photos)
    wnid = sorted(fake.train)[1]
    inner, offsets = tar_of(fake.train[wnid])
    last = sorted(fake.train[wnid])[-1]
    truncated = bytes(inner[:offsets[last] + 512 + 700])  # the last image cut 700 bytes in
    outer, _ = tar_of({f"{w}.tar": truncated if w == wnid else bytes(tar_of(m)[0]) for w, m in sorted(fake.train.items())})
    (fake.src / "ILSVRC2012_img_train.tar").write_bytes(bytes(outer))
    rc, out, err = cli(capsys, str(fake.src), str(tmp_path / "out"), "--splits", "train")
    assert rc == 0, err
    want = {f"train/{w}/{f}": w for w, m in fake.train.items() for f in m if (w, f) != (wnid, last)}
    assert stored(tmp_path / "out") == want
    skips = skipped(tmp_path / "out")
    assert "truncated class tar" in skips[f"train/{wnid}/{last}"]
    assert out.startswith(f"read {len(want) + len(skips)}, stored {len(want)}, skipped {len(skips)} ")


# ---- 2. a store is not reused when its source changed -----------------------------------------


def test_a_changed_source_is_refused_and_an_unchanged_one_reused(photos, tmp_path, capsys):
    files = tree(photos)
    good, offsets = tar_of(files)
    src, out = tmp_path / "src.tar", tmp_path / "out"
    src.write_bytes(bytes(damage_header(bytearray(good), offsets[sorted(files)[5]])))
    assert cli(capsys, str(src), str(out))[0] == 0
    rc, again, _ = cli(capsys, str(src), str(out))  # unchanged: the finished store is the answer
    assert rc == 0 and again.startswith(f"read {len(files)}, stored {len(files) - 1}, skipped 1 ")
    before = src.stat().st_mtime_ns
    src.write_bytes(bytes(good))  # the damaged archive replaced by a good one, of the same size
    os.utime(src, ns=(before + 10**9, before + 10**9))  # a second later, whatever the file system's clock step
    rc, _, err = cli(capsys, str(src), str(out))
    assert rc == 2 and "\n" not in err and f"{src} changed since the store {out}" in err
    assert len(stored(out)) == len(files) - 1  # the store was left as it was

    folder = tmp_path / "folder"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert cli(capsys, str(folder), str(tmp_path / "out2"))[0] == 0
    (folder / "train" / sorted(photos)[0] / "new.JPEG").write_bytes(photos[sorted(photos)[0]][7])
    rc, _, err = cli(capsys, str(folder), str(tmp_path / "out2"))
    assert rc == 2 and "changed since the store" in err

    meta = json.loads((out / "store.json").read_text())  # a store made before the stamp existed: trusted
    del meta["source_stamp"]
    (out / "store.json").write_text(json.dumps(meta))
    assert cli(capsys, str(src), str(out))[0] == 0


# ---- 3. duplicate classes, nested images, backslashes ----------------------------------------


def test_two_class_tars_of_one_wnid_are_refused_not_replaced(photos, tmp_path, capsys):
    fake = fakes.official(tmp_path / "in", photos)
    wnid = sorted(fake.train)[0]
    members = {f"{w}.tar": bytes(tar_of(m)[0]) for w, m in sorted(fake.train.items())}
    members[f"sub/{wnid}.tar"] = bytes(tar_of({f"{wnid}_9.JPEG": photos[wnid][7]})[0])
    (fake.src / "ILSVRC2012_img_train.tar").write_bytes(bytes(tar_of(members)[0]))
    rc, _, err = cli(capsys, str(fake.src), str(tmp_path / "out"), "--splits", "train")
    assert rc == 2 and "\n" not in err and f"two class tars for {wnid}" in err and f"sub/{wnid}.tar" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folder_entries", [True, False])
def test_nested_images_are_named_with_or_without_folder_entries(photos, tmp_path, capsys, folder_entries):
    files = tree(photos)
    wnid = sorted(photos)[0]
    nested = {f"train/{wnid}/sub/x{i}.JPEG": photos[wnid][6 + i] for i in range(2)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        if folder_entries:
            for d in sorted({n.rsplit("/", k)[0] for n in [*files, *nested] for k in range(1, n.count("/") + 1)}):
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
        for name, data in {**files, **nested}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    src = tmp_path / "src.tar"
    src.write_bytes(buf.getvalue())
    rc, out, err = cli(capsys, str(src), str(tmp_path / "out"))
    assert rc == 0, err
    assert stored(tmp_path / "out") == {n: folder_class(n) for n in files}
    skips = skipped(tmp_path / "out")
    assert skips == {n: "inside a folder in a class folder, not read" for n in nested}  # each by name, either way
    assert out.startswith(f"read {len(files) + 2}, stored {len(files)}, skipped 2 ")


def test_a_backslash_is_part_of_a_name_never_a_separator(photos, tmp_path, capsys):
    files = tree(photos, classes=2)
    a, b = sorted(photos)[:2]
    odd = {f"train/back\\slash/{a}_x{i}.JPEG": photos[a][6 + i] for i in range(2)}  # a class named back\slash
    odd |= {f"val/back\\slash/{a}_y.JPEG": photos[a][7]}
    loose = {f"train/{b}\\win0.JPEG": photos[b][7]}  # not train/<b>/win0.JPEG
    src = tmp_path / "src.tar"
    src.write_bytes(bytes(tar_of({**files, **odd, **loose})[0]))
    rc, out, err = cli(capsys, str(src), str(tmp_path / "out"))
    assert rc == 0, err
    assert open_store(tmp_path / "out").classes == sorted([a, b, "back\\slash"])
    assert stored(tmp_path / "out") == {**{n: folder_class(n) for n in files}, **{n: "back\\slash" for n in odd}}
    assert skipped(tmp_path / "out") == {f"train/{b}\\win0.JPEG": "not in a <split>/<class>/ folder"}
    assert out.startswith(f"read {len(files) + 4}, stored {len(files) + 3}, skipped 1 ")


# ---- 4, 6, 7. one way a file becomes pixels, for prepare and predict ---------------------------


def with_orientation(data: bytes, orientation: int) -> bytes:
    """The same photo (re-encoded once, losslessly the same for every tag) with an EXIF orientation tag."""
    img = Image.open(io.BytesIO(data))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def torchvision_reference(path: Path, size: int) -> np.ndarray:
    """Independent: Pillow's exif_transpose, then torchvision's Resize + CenterCrop (§2), (3, S, S)."""
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return np.asarray(TF.center_crop(TF.resize(img, size), size)).transpose(2, 0, 1)


def test_prepare_and_predict_give_the_same_pixels_for_every_exif_orientation(photos, tmp_path):
    from alexnet.ship.predict import read_image
    size = 64  # below a quarter of Imagenette's 224 px: decoded in full, so torchvision is a reference
    wnid = sorted(photos)[0]
    src = tmp_path / "src" / "train" / wnid
    src.mkdir(parents=True)
    for k in range(1, 9):
        (src / f"o{k}.jpg").write_bytes(with_orientation(photos[wnid][0], k))
    prepare(tmp_path / "src", tmp_path / "out", size=size, workers=1, progress=False)
    store = open_store(tmp_path / "out")
    names = read_names(tmp_path / "out", "train")
    pixels = store.split("train").read(np.arange(8)).numpy()  # (8, 3, S, S)
    assert names == [f"train/{wnid}/o{k}.jpg" for k in range(1, 9)]
    for k, got in zip(range(1, 9), pixels):
        path = src / f"o{k}.jpg"
        assert np.array_equal(got, read_image(path, size).numpy()), f"orientation {k}: prepare != predict"
        assert np.array_equal(got, torchvision_reference(path, size)), f"orientation {k}"
    assert len({p.tobytes() for p in pixels}) == 8  # each orientation is another picture of the photo


def test_16_bit_greyscale_is_scaled_to_8_bits(photos, tmp_path):
    grey = np.asarray(Image.open(io.BytesIO(photos[sorted(photos)[0]][0])).convert("L"))
    src = tmp_path / "src" / "train" / "c"
    src.mkdir(parents=True)
    Image.fromarray(grey.astype(np.uint16) * 257).save(src / "a16.png")  # 16-bit: v * 257 is v / 255 of 65535
    Image.fromarray(grey).save(src / "b8.png")
    assert Image.open(src / "a16.png").mode.startswith("I")
    prepare(tmp_path / "src", tmp_path / "out", size=SIZE, workers=1, progress=False)
    a16, b8 = open_store(tmp_path / "out").split("train").read(np.arange(2)).numpy()
    assert np.array_equal(a16, b8) and a16.max() < 255 and a16.std() > 10  # the photo, not a white square


def test_only_the_formats_of_datasets_are_opened(photos, tmp_path, capsys, monkeypatch):
    from alexnet.ship.predict import read_image
    gs = tmp_path / "bin" / "gs"  # were Pillow's EPS reader tried, it would run this
    gs.parent.mkdir()
    gs.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{gs.parent}{os.pathsep}{os.environ['PATH']}")
    files = tree(photos, classes=2)
    src = tmp_path / "src"
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    eps = src / "train" / sorted(photos)[0] / "x.JPEG"
    Image.open(io.BytesIO(photos[sorted(photos)[0]][7])).convert("RGB").save(eps, "EPS")
    rc, out, err = cli(capsys, str(src), str(tmp_path / "out"))
    assert rc == 0, err
    assert stored(tmp_path / "out") == {n: folder_class(n) for n in files}
    name = f"train/{sorted(photos)[0]}/x.JPEG"
    assert skipped(tmp_path / "out")[name].startswith("not an image Pillow can read (read: JPEG, PNG, WebP")
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        read_image(eps, SIZE)
    assert not (tmp_path / "ran").exists()


# ---- 5. meta.mat ------------------------------------------------------------------------------


def write_devkit(fake: fakes.Fake, meta: bytes, truth: bytes | None = None) -> None:
    truth = truth or fakes.ground_truth(fake.truth["val"], fake.ids)
    with tarfile.open(fake.src / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as tf:
        for name, data in {"ILSVRC2012_devkit_t12/data/meta.mat": meta,
                           "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt": truth}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_a_damaged_meta_mat_is_one_line_naming_it(photos, tmp_path, capsys):
    fake = fakes.official(tmp_path / "in", photos)
    first, second = fake.ids[:2]
    cases = {"share ILSVRC2012_ID 1": fakes.meta_mat(fake.ids, "2012", {second: 1}),  # two leaves, one id
             f"ILSVRC2012_ID {2**40}, outside": fakes.meta_mat(fake.ids, "2012", {second: 2**40}),
             "is damaged": fakes.meta_mat(fake.ids, "2012")[:300]}  # truncated
    for i, (says, meta) in enumerate(cases.items()):
        write_devkit(fake, meta)
        rc, _, err = cli(capsys, str(fake.src), str(tmp_path / f"out{i}"))
        assert rc == 2 and "\n" not in err and "Traceback" not in err and "MemoryError" not in err, err
        assert "meta.mat" in err and says in err and "can be written" not in err, err
        assert not (tmp_path / f"out{i}").exists()
    truth = fakes.ground_truth(fake.truth["val"], fake.ids).replace(b"1\n", b"6\n", 1)  # a class id past the 5
    write_devkit(fake, fakes.meta_mat(fake.ids, "2012"), truth)
    rc, _, err = cli(capsys, str(fake.src), str(tmp_path / "range"))
    assert rc == 2 and "class ID 6 is not in 1..5 (the class IDs of " in err and err.endswith("meta.mat)"), err
    write_devkit(fake, fakes.meta_mat(fake.ids, "2012"))  # and the good file is read, every label right
    assert cli(capsys, str(fake.src), str(tmp_path / "good"))[0] == 0
    want = {f"train/{w}/{f}": w for w, m in fake.train.items() for f in m}
    want |= {f"val/{f}": w for f, w in fake.truth["val"].items()}
    assert stored(tmp_path / "good") == want


# ---- the smaller ones -------------------------------------------------------------------------


def test_a_byte_order_mark_in_the_synset_mapping_is_read(photos, tmp_path, capsys):
    fake = fakes.kaggle(tmp_path / "kaggle", photos)
    mapping = fake.src / "LOC_synset_mapping.txt"
    mapping.write_bytes(b"\xef\xbb\xbf" + mapping.read_bytes())
    rc, _, err = cli(capsys, str(fake.src), str(tmp_path / "out"))
    assert rc == 0, err
    store = open_store(tmp_path / "out")
    assert store.classes == sorted(photos) and store.class_names[0] == fakes.WORDS[sorted(photos)[0]].split(",")[0]


def test_names_with_line_breaks_and_escapes_are_escaped_in_files_and_on_the_terminal(photos, tmp_path, capsys):
    wnid = sorted(photos)[0]
    odd = ["a\u2028b.JPEG", "c\x0cd.JPEG", "e\x1b[31mred.JPEG", "f\\g.JPEG"]
    files = {f"train/{wnid}/{n}": photos[wnid][i] for i, n in enumerate(odd)}
    files[f"train/{wnid}/\x1b]0;title\x07.txt"] = b"not an image"
    src = tmp_path / "src.tar"
    src.write_bytes(bytes(tar_of(files)[0]))
    rc, out, err = cli(capsys, str(src), str(tmp_path / "out"))
    assert rc == 0, err
    assert read_names(tmp_path / "out", "train") == sorted(f"train/{wnid}/{n}" for n in odd)  # read back as written
    text = (tmp_path / "out" / "train.files.txt").read_text()
    assert len(text.splitlines()) == 4 and "\x1b" not in text and "\u2028" not in text and "\x0c" not in text
    assert "\x1b" not in out and "\x07" not in out and "skipped train/" + wnid + "/\\x1b]0;title\\x07.txt" in out
    assert list(skipped(tmp_path / "out")) == [f"train/{wnid}/\x1b]0;title\x07.txt"]  # its name as it was


def test_an_out_holding_a_users_file_is_not_a_store_in_progress(photos, tmp_path, capsys):
    files = tree(photos, classes=2)
    src = tmp_path / "src.tar"
    src.write_bytes(bytes(tar_of(files)[0]))
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.u8").write_bytes(b"the user's own file")
    rc, _, err = cli(capsys, str(src), str(out))
    assert rc == 2 and "is not a store in progress" in err
    assert (out / "train.u8").read_bytes() == b"the user's own file"


class Stop(Exception):
    pass


def stop_after_first_commit(point: str, index: int) -> None:
    if (point, index) == ("committed", 0):
        raise Stop


def test_stale_temporaries_are_removed_from_a_finished_store(photos, tmp_path, capsys):
    files = tree(photos, classes=2)
    src = tmp_path / "src.tar"
    src.write_bytes(bytes(tar_of(files)[0]))
    out = tmp_path / "out"
    with pytest.raises(Stop):  # a run stopped after its first chunk
        prepare(src, out, size=SIZE, workers=1, progress=False, chunk_files=4, hook=stop_after_first_commit)
    (out / ".progress.npz.999999.tmp").write_bytes(b"half a write of a killed run")
    assert cli(capsys, str(src), str(out))[0] == 0
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert stored(out) == {n: folder_class(n) for n in files}


def test_the_disk_estimate_keeps_a_margin(photos, tmp_path):
    from alexnet.data.prepare import PrepareError
    files = tree(photos, classes=2)
    src = tmp_path / "src.tar"
    src.write_bytes(bytes(tar_of(files)[0]))
    image_bytes = len(files) * 3 * SIZE * SIZE  # what a raw store of them holds, exactly
    with pytest.raises(PrepareError, match="with a margin"):
        prepare(src, tmp_path / "out", size=SIZE, workers=1, progress=False, space=lambda path: image_bytes + 1024)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_extended_headers_are_not_damage(photos, tmp_path, fmt):
    """pax headers (a non-ASCII name, a global header) and GNU long names sit between members: not damage."""
    from alexnet.data import sources
    wnid = sorted(photos)[0]
    files = {f"train/{wnid}/{'é' * i}{'x' * 120 * (i % 2)}_{i}.JPEG": photos[wnid][i] for i in range(4)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt,
                      pax_headers={"comment": "a global header"} if fmt == tarfile.PAX_FORMAT else None) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    for suffix, data in (("tar", buf.getvalue()), ("tar.gz", gzip.compress(buf.getvalue()))):
        (tmp_path / f"src.{suffix}").write_bytes(data)
        listing = sources.list_source(tmp_path / f"src.{suffix}")
        assert listing.skips == [] and [e.name for e in listing.splits["train"][wnid]] == sorted(files)
