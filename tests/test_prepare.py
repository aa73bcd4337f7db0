"""prepare(): hostile inputs, unsafe archives, strict mode, resume after kill -9, argument checks."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image

from alexnet.data import build as build_module
from alexnet.data import prepare as prepare_module
from alexnet.data.prepare import PrepareError, prepare
from alexnet.data.store import StoreError, open_store
from conftest import CIFAR, IMAGENETTE, need
from prepare_hooks import KillAt

ROOT = Path(__file__).resolve().parents[1]


def reference(data: bytes, size: int) -> np.ndarray:
    """torchvision's Resize(size) + CenterCrop(size) on the RGB PIL image: (3, S, S) uint8."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return np.asarray(TF.center_crop(TF.resize(img, size), size)).transpose(2, 0, 1)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims to be width x height: a decompression bomb by its header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth random RGB image (JPEG-friendly) of size w x h."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


GOOD = {  # file name -> bytes; all must be stored
    "rgb.jpg": encoded(photo(48, 32, 1), "JPEG"),
    "grey.jpg": encoded(photo(30, 40, 2).convert("L"), "JPEG"),
    "cmyk.jpg": encoded(photo(40, 40, 3).convert("CMYK"), "JPEG"),
    "palette.png": encoded(photo(25, 50, 4).convert("P", palette=Image.ADAPTIVE), "PNG"),
    "rgba.png": encoded(photo(33, 21, 5).convert("RGBA"), "PNG"),
    "png_named.JPEG": encoded(photo(40, 60, 6), "PNG"),
    "one_pixel.png": encoded(Image.new("RGB", (1, 1), (9, 99, 199)), "PNG"),
    "strip.png": encoded(photo(3000, 2, 7), "PNG"),  # extreme aspect ratio
}
BAD = {  # file name -> (bytes, words expected in the reason)
    "truncated.jpg": (encoded(photo(64, 64, 8), "JPEG")[:400], "corrupt"),
    "zero.jpg": (b"", "empty"),
    ".DS_Store": (b"\0\0\0\1Bud1" + bytes(100), "not an image"),
    "notes.txt": (b"hello, not an image\n", "not an image"),
    "bomb.png": (png_header_only(30000, 30000), "decompression bomb"),
    "bomb_warning.png": (png_header_only(10000, 10000), "decompression bomb"),  # warning range
}


def hostile_tree(root: Path) -> Path:
    src = root / "src"
    (src / "train" / "cls_a").mkdir(parents=True)
    (src / "val" / "cls_a").mkdir(parents=True)
    for name, data in GOOD.items():
        (src / "train" / "cls_a" / name).write_bytes(data)
    for name, (data, _) in BAD.items():
        (src / "train" / "cls_a" / name).write_bytes(data)
    (src / "val" / "cls_a" / "v.jpg").write_bytes(GOOD["rgb.jpg"])
    (src / "val" / "cls_a" / "dangling.jpg").symlink_to(src / "does-not-exist")
    os.mkfifo(src / "val" / "cls_a" / "fifo.jpg")  # must be refused, never opened (it would block)
    (src / "val" / "cls_a" / "nested").mkdir()
    (src / "README.txt").write_text("stray file at the root\n")
    return src


def manifest_rows(out: Path) -> dict[str, str]:
    lines = (out / "skipped.tsv").read_text().splitlines()
    assert lines[0] == "split\tpath\treason"
    return {path: reason for _, path, reason in (line.split("\t") for line in lines[1:])}


def test_hostile_folder(tmp_path):
    src = hostile_tree(tmp_path)
    summary = prepare(src, tmp_path / "out", size=16, workers=1, progress=False)
    bad = {f"train/cls_a/{n}" for n in BAD} | {
        "val/cls_a/dangling.jpg", "val/cls_a/fifo.jpg", "val/cls_a/nested", "README.txt"}
    assert summary.stored == len(GOOD) + 1
    assert summary.skipped == len(bad)
    assert summary.read == summary.stored + summary.skipped
    assert summary.line().startswith(f"read {summary.read}, stored {summary.stored}, skipped {len(bad)} -> ")
    rows = manifest_rows(tmp_path / "out")
    assert set(rows) == bad and summary.manifest == tmp_path / "out" / "skipped.tsv"
    for name, (_, words) in BAD.items():
        assert words in rows[f"train/cls_a/{name}"], rows
    assert "not a regular file" in rows["val/cls_a/fifo.jpg"]

    store = open_store(tmp_path / "out")
    assert store.classes == ["cls_a"]  # (an empty class folder is an error: tests/test_input.py)
    train = store.split("train")
    names = (store.path / "train.files.txt").read_text().splitlines()
    assert sorted(names) == names == sorted(f"train/cls_a/{n}" for n in GOOD)
    images = train.read(np.arange(len(train))).numpy()
    for i, name in enumerate(names):
        base = name.split("/")[-1]
        if base == "strip.png":  # resampled from the central square directly: only the geometry is shared
            assert np.abs(images[i].astype(int) - reference(GOOD[base], 16)).mean() < 8
        else:
            assert np.array_equal(images[i], reference(GOOD[base], 16)), name
    assert images.shape == (len(GOOD), 3, 16, 16)
    grey = images[names.index("train/cls_a/grey.jpg")]
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])  # L -> equal RGB
    assert (images[names.index("train/cls_a/one_pixel.png")].reshape(3, -1).T == (9, 99, 199)).all()


def test_strict_raises_on_first_bad_file(tmp_path):
    src = hostile_tree(tmp_path)
    with pytest.raises(PrepareError, match="strict: README.txt"):
        prepare(src, tmp_path / "out", size=16, workers=1, progress=False, strict=True)
    src2 = tmp_path / "src2" / "train" / "c"
    src2.mkdir(parents=True)
    (src2 / "a.jpg").write_bytes(GOOD["rgb.jpg"])
    (src2 / "b.jpg").write_bytes(b"")
    with pytest.raises(PrepareError, match="strict: train/c/b.jpg .*empty file"):
        prepare(tmp_path / "src2", tmp_path / "out2", size=16, workers=1, progress=False, strict=True)


def test_unsafe_archive_members(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        def add(name: str, data: bytes = b"", **kw) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in kw.items():
                setattr(info, k, v)
            tf.addfile(info, io.BytesIO(data) if data else None)
        add("top/train/cls/", type=tarfile.DIRTYPE)
        add("top/train/cls/good.jpg", GOOD["rgb.jpg"])
        add("top/train/cls/grey.jpg", GOOD["grey.jpg"])
        add("top/train/cls/../../../evil.jpg", GOOD["rgb.jpg"])
        add("../evil2.jpg", GOOD["rgb.jpg"])
        add("/tmp/abs_evil.jpg", GOOD["rgb.jpg"])
        add("top/train/cls/link.jpg", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add("top/train/cls/hard.jpg", type=tarfile.LNKTYPE, linkname="top/train/cls/good.jpg")
        add("top/train/cls/dev.jpg", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("top/val/cls/v.jpg", GOOD["cmyk.jpg"])
    before = set(tmp_path.parent.rglob("*evil*")) | set(Path("/tmp").glob("*evil*"))
    summary = prepare(archive, tmp_path / "out", size=12, workers=1, progress=False)
    after = set(tmp_path.parent.rglob("*evil*")) | set(Path("/tmp").glob("*evil*"))
    assert after == before | {archive}  # nothing written outside OUT
    assert summary.stored == 3 and summary.skipped == 6
    rows = manifest_rows(tmp_path / "out")
    assert all("unsafe" in r or "not a regular file" in r for r in rows.values()), rows
    assert any("link" in r for r in rows.values()) and any("'..'" in r for r in rows.values())
    store = open_store(tmp_path / "out")
    assert store.splits == ["train", "val"] and store.classes == ["cls"]  # top folder stripped
    assert (store.path / "train.files.txt").read_text().splitlines() == ["train/cls/good.jpg", "train/cls/grey.jpg"]
    assert np.array_equal(store.split("val").read(np.array([0]))[0].numpy(), reference(GOOD["cmyk.jpg"], 12))


def test_no_train_split_uses_first_and_missing_split(tmp_path):
    src = hostile_tree(tmp_path)
    summary = prepare(src, tmp_path / "out", size=8, splits=["val"], workers=1, progress=False)
    store = open_store(tmp_path / "out")
    assert store.splits == ["val"] and store.meta["stats_split"] == "val"
    assert "first split" in store.meta["stats_note"]
    v = store.split("val").read(np.arange(1)).double()
    assert np.allclose(store.mean.numpy(), v.mean(0).numpy(), atol=1e-4)
    assert summary.read == summary.stored + summary.skipped
    with pytest.raises(PrepareError, match="test.*available: train, val"):
        prepare(src, tmp_path / "out2", size=8, splits=["test"], workers=1, progress=False)


def test_rerun_complete_and_argument_checks(tmp_path, monkeypatch):
    src = hostile_tree(tmp_path)
    first = prepare(src, tmp_path / "out", size=8, workers=1, progress=False)

    def no_listing(*a, **k):
        raise AssertionError("a complete store must not be re-listed")
    monkeypatch.setattr(prepare_module.sources, "list_source", no_listing)
    t = time.perf_counter()
    again = prepare(src, tmp_path / "out", size=8, workers=4, progress=False)
    assert again == first and time.perf_counter() - t < 1
    with pytest.raises(PrepareError, match="different arguments .*size 8 -> 16.*new OUT or delete"):
        prepare(src, tmp_path / "out", size=16, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    with pytest.raises(PrepareError, match="not a store"):
        prepare(src, tmp_path / "junk", size=8, progress=False)
    with pytest.raises(PrepareError, match="does not exist"):
        monkeypatch.undo()
        prepare(tmp_path / "nope", tmp_path / "out3", progress=False)


# ---- resume after kill -9 ------------------------------------------------------------------

RUN = """
import sys
from alexnet.data.prepare import prepare
from conftest import CIFAR, IMAGENETTE, need
from prepare_hooks import KillAt
if __name__ == "__main__":
    point, index = sys.argv[5].split(":")
    prepare(sys.argv[1], sys.argv[2], size=24, fmt=sys.argv[3], limit_per_class=4, workers=int(sys.argv[4]),
            progress=False, chunk_files=12, hook=KillAt(point, int(index)))
"""


def run_killed(tmp_path: Path, out: Path, fmt: str, workers: int, kill: str) -> None:
    script = tmp_path / "run.py"
    script.write_text(RUN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.run([sys.executable, str(script), str(CIFAR), str(out), fmt, str(workers), kill],
                          env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


def store_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "store.json"}


@pytest.mark.parametrize("fmt,workers,kill", [("raw", 2, "committed:1"), ("jpeg", 1, "written:2")])
def test_resume_after_kill_is_identical(tmp_path, monkeypatch, fmt, workers, kill):
    need(CIFAR)
    ref = tmp_path / "ref"
    prepare(CIFAR, ref, size=24, fmt=fmt, limit_per_class=4, workers=1, progress=False)

    out = tmp_path / "out"
    run_killed(tmp_path, out, fmt, workers, kill)
    with pytest.raises(StoreError, match="incomplete store"):
        open_store(out)
    with pytest.raises(PrepareError, match="different arguments"):
        prepare(CIFAR, out, size=32, fmt=fmt, limit_per_class=4, progress=False)

    # The resumed run must reuse the chunking recorded in OUT (12) and skip committed chunks.
    converted = []
    real = build_module.convert_chunk
    monkeypatch.setattr(build_module, "convert_chunk", lambda job: converted.append(job.index) or real(job))
    summary = prepare(CIFAR, out, size=24, fmt=fmt, limit_per_class=4, workers=1, progress=False)
    committed = int(kill.split(":")[1]) + (kill.startswith("committed"))
    assert converted == list(range(committed, 8))  # 40 train + 40 test files in chunks of 12
    assert summary.read == summary.stored == 80
    assert store_bytes(out) == store_bytes(ref)
    assert not (out / "progress.npz").exists()
    a, b = open_store(out), open_store(ref)
    assert a.splits == ["test", "train"] and a.meta["stats_split"] == "train"
    for s in a.splits:
        assert np.array_equal(a.split(s).labels, b.split(s).labels)


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    # chmod 000 does not stop root, so simulate the OS refusing to read one file.
    src = tmp_path / "src" / "train" / "c"
    src.mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        (src / name).write_bytes(GOOD["rgb.jpg"])
    real = prepare_module.sources.read_file

    def read_file(path: str) -> bytes:
        if path.endswith("b.jpg"):
            raise PermissionError(13, "Permission denied")
        return real(path)
    monkeypatch.setattr(prepare_module.sources, "read_file", read_file)
    summary = prepare(tmp_path / "src", tmp_path / "out", size=8, workers=1, progress=False)
    assert (summary.stored, summary.skipped) == (1, 1)
    assert manifest_rows(tmp_path / "out") == {"train/c/b.jpg": "cannot read: Permission denied"}


def test_start_killed_before_state_file_restarts(tmp_path):
    src = hostile_tree(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.u8").write_bytes(b"junk")  # left by a start killed before prepare.json existed
    (out / "skipped.tsv").write_text("split\tpath\treason\n")
    ref = prepare(src, tmp_path / "ref", size=8, workers=1, progress=False)
    assert prepare(src, out, size=8, workers=1, progress=False).stored == ref.stored
    assert (out / "train.u8").read_bytes() == (tmp_path / "ref" / "train.u8").read_bytes()


def test_dead_worker_is_an_error_then_resumes(tmp_path):
    src = hostile_tree(tmp_path)
    ref = prepare(src, tmp_path / "ref", size=8, workers=1, progress=False)
    with pytest.raises(PrepareError, match="worker process died.*run again"):  # KillAt runs in the spawned worker
        prepare(src, tmp_path / "out", size=8, workers=2, progress=False, chunk_files=3, hook=KillAt("worker", 2))
    assert prepare(src, tmp_path / "out", size=8, workers=2, progress=False) == \
        prepare_module.PrepareSummary(ref.read, ref.stored, ref.skipped, tmp_path / "out" / "skipped.tsv", tmp_path / "out",
                                      ref.reasons, ref.files)
    assert store_bytes(tmp_path / "out") == store_bytes(tmp_path / "ref")


def real_photo(w: int, h: int) -> bytes:
    """A real Imagenette photo upscaled to w x h with fine noise (photo-like detail), as JPEG q90."""
    need(IMAGENETTE)
    with tarfile.open(IMAGENETTE) as tf:
        member = next(m for m in tf if m.isfile() and m.name.endswith(".JPEG"))
        img = Image.open(io.BytesIO(tf.extractfile(member).read())).convert("RGB").resize((w, h), Image.BICUBIC)
    noise = np.random.default_rng(0).integers(-12, 13, (h, w, 3))
    return encoded(Image.fromarray((np.asarray(img) + noise).clip(0, 255).astype(np.uint8)), "JPEG", quality=90)


def test_large_jpegs_decode_at_reduced_scale_within_a_level():
    """§2 rescaling of a 2048x1536 JPEG: DCT-scaled decode (draft) vs a full decode, both then
    resized to 256 by the same bilinear filter."""
    from alexnet.data import convert
    big, normal = real_photo(2048, 1536), real_photo(500, 375)
    fast = {name: np.asarray(convert.load_image(d, 256)).astype(int) for name, d in (("big", big), ("normal", normal))}
    full = {name: np.asarray(convert.load_image(d, 256, draft=False)).astype(int)
            for name, d in (("big", big), ("normal", normal))}
    diff = np.abs(fast["big"] - full["big"])
    assert 0 < diff.mean() < 1.0 and diff.max() <= 8  # measured: mean 0.37, max 4 levels
    assert np.array_equal(fast["normal"], full["normal"])  # shorter side < 4 x 256: decoded in full
    assert np.array_equal(full["normal"], reference(normal, 256).transpose(1, 2, 0))


def test_full_decode_gives_torchvision_pixels_and_is_an_argument(tmp_path):
    big = real_photo(1024, 768)
    for split in ("train", "val"):
        (tmp_path / "src" / split / "c0").mkdir(parents=True)
        (tmp_path / "src" / split / "c0" / "a.jpg").write_bytes(big)
    kw = dict(size=64, workers=1, progress=False)
    full = open_store(prepare(tmp_path / "src", tmp_path / "full", full_decode=True, **kw).out)
    fast = open_store(prepare(tmp_path / "src", tmp_path / "fast", **kw).out)
    expected = reference(big, 64)
    assert np.array_equal(full.split("val").read(np.array([0]))[0].numpy(), expected)
    got = fast.split("val").read(np.array([0]))[0].numpy().astype(int)
    assert 0 < np.abs(got - expected).mean() < 1.0
    with pytest.raises(PrepareError, match="different arguments"):  # never resumed into the other kind
        prepare(tmp_path / "src", tmp_path / "fast", full_decode=True, **kw)
