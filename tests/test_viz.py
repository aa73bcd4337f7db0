"""Looking inside (§6.1) on a small trained net and real images: Figure 3's grid and chroma,
Figure 4's panels, cached features, binary codes and retrieval metrics against brute force,
TensorBoard images written during training, and the HTML report in a real headless Chromium."""
import json
import re

import numpy as np
import pytest
import torch

from alexnet.cli import main
from alexnet.config import ModelConfig
from alexnet.nets.model import AlexNet
from alexnet.viz import codes, features, kernels
from alexnet.viz.browser import check_page
from conftest import tiny_overrides


@pytest.fixture(scope="module")
def tiny_run(tiny_store, tmp_path_factory):
    """`alexnet train` for 1 epoch of 2 steps on real Imagenette images: a run folder with best.pt."""
    out = tmp_path_factory.mktemp("viz") / "run"
    assert main(["train", "--set", *tiny_overrides(tiny_store, out, "schedule.epochs=1",
                                                   "train.max_steps_per_epoch=2")]) == 0
    return out


def test_chroma_of_known_kernels():
    w = torch.zeros(4, 3, 5, 5)
    w[0] = torch.randn(5, 5)  # the same in R, G, B: grey
    w[1, 0] = (u := torch.randn(5, 5)) - u.mean()  # red only (mean-free): 2/3 of it is colour
    w[2, 0], w[2, 1] = (v := torch.randn(5, 5)), -v  # red minus green: all colour
    w[3] = torch.randn(3, 5, 5)
    c = kernels.chroma(w)
    assert c[0] == pytest.approx(0, abs=1e-12) and c[1] == pytest.approx(2 / 3, rel=1e-5) and c[2] == pytest.approx(1)
    rand = kernels.chroma(torch.randn(4000, 3, 11, 11))
    assert rand.mean() == pytest.approx(kernels.RANDOM_CHROMA, abs=0.01)


def test_low_frequency_share_of_known_kernels():
    x = torch.arange(10.0)
    flat = torch.ones(1, 3, 10, 10)  # all its energy at frequency 0
    nyquist = torch.cos(torch.pi * x)[:, None].expand(10, 10).expand(1, 3, 10, 10)  # 0.5 cycles/pixel
    slow = torch.cos(2 * torch.pi * 0.1 * x)[None, :].expand(10, 10).expand(1, 3, 10, 10)  # 0.1 cycles/pixel
    share = kernels.low_frequency_share(torch.cat([flat, nyquist, slow]))
    assert share == pytest.approx([1.0, 0.0, 1.0], abs=1e-9)
    rand = kernels.low_frequency_share(torch.randn(4000, 3, 11, 11))
    assert rand.mean() == pytest.approx(kernels.random_low_share(11), abs=0.005)
    assert kernels.random_low_share(11) == pytest.approx(21 / 121)  # bins within 0.25 cycles/pixel of 0


def test_kernel_grid_shows_the_columns_apart():
    net = AlexNet(ModelConfig(num_classes=10, width=0.125))  # conv1: 12 kernels, 6 per column
    with torch.no_grad():
        net.features.conv1.weight[:6] = net.features.conv1.weight[:6].mean(1, keepdim=True)  # column 1 grey
    grid = kernels.kernel_grid(net, per_row=3, gap=1, column_gap=5)
    block = 2 * (11 + 1) + 1  # two rows of 3 kernels per column
    assert grid.shape == (2 * block + 5, 3 * 12 + 1, 3) and grid.dtype == np.uint8
    assert (grid[block:block + 5] == 255).all()  # the white band between the columns
    top = grid[1:12, 1:12].astype(int)
    assert (top[..., 0] == top[..., 1]).all() and (top[..., 1] == top[..., 2]).all()  # a grey kernel stays grey
    stats = kernels.column_chroma(net)
    assert [s["kernels"] for s in stats] == [6, 6]
    assert stats[0]["mean_chroma"] < 1e-6 < stats[1]["mean_chroma"]


def _tb_images(run) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run / "tb"), size_guidance={"images": 0})
    acc.Reload()
    return {tag: acc.Images(tag) for tag in acc.Tags()["images"]}


def test_training_writes_the_images_to_tensorboard(tiny_run):
    images = _tb_images(tiny_run)
    assert {"figure3/conv1_kernels", "figure4/top5"} <= set(images)
    img = images["figure3/conv1_kernels"][-1]
    assert img.width > 0 and img.height > 0


def test_model_parallel_run_writes_its_images_too(tiny_store, tmp_path):
    """§3.2 under torchrun (gloo, 2 processes, one column each) with a run folder: rank 0 draws the
    figures of a whole-net copy after each epoch (no collective that rank 1 would not join)."""
    import os
    import subprocess
    import sys

    from conftest import REPO
    from alexnet.checkpoint import read_record
    from alexnet.viz.kernels import kernel_grid
    from alexnet.evaluate import load_net
    out = tmp_path / "run"
    sets = tiny_overrides(tiny_store, out, "schedule.epochs=2", "train.max_steps_per_epoch=2", "data.threads=1",
                          "train.threads=1", "train.model_parallel=true")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "alexnet",
           "train", "--set", *sets]
    done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    images = _tb_images(out)
    assert [i.step for i in images["figure3/conv1_kernels"]] == [i.step for i in images["figure4/top5"]] == [2, 4]
    whole = load_net(read_record(out / "last.pt"))  # the net after the last epoch, both columns
    grid = kernel_grid(whole)
    assert (images["figure3/conv1_kernels"][-1].height, images["figure3/conv1_kernels"][-1].width) == grid.shape[:2]


def test_viz_commands_write_their_results(tiny_run, tmp_path, capsys):
    ckpt = str(tiny_run / "best.pt")
    run_files = sorted(p.name for p in tiny_run.rglob("*"))
    for args, name in ((["kernels"], "figure3"), (["predictions", "-n", "4"], "figure4-left"),
                       (["neighbours", "--queries", "2", "-k", "3"], "figure4-right")):
        out = tmp_path / name
        assert main(["viz", *args, ckpt, "-o", str(out)]) == 0
        result = json.loads((out / "result.json").read_text())
        assert result["figure"] == name and result["date"] and result["device"].startswith("cpu")
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / "table.md").read_text()
    assert [c["kernels"] for c in json.loads((tmp_path / "figure3" / "result.json").read_text())["columns"]] == [6, 6]
    assert sorted(p.name for p in tiny_run.rglob("*")) == run_files  # nothing written into the run folder
    assert len(list((tmp_path / "figure4-right" / "features").glob("*.npy"))) == 2  # the caches: under -o


def test_viz_takes_every_format_that_has_layers(tiny_run, tmp_path, capsys):
    """A run folder, .safetensors and torchvision-style files give the same kernels; ONNX is refused in one line."""
    weights, graph = tmp_path / "net.safetensors", tmp_path / "net.onnx"
    assert main(["export", str(tiny_run / "best.pt"), "--weights", str(weights), "--onnx", str(graph)]) == 0
    found = []
    for net in (tiny_run, tiny_run / "best.pt", weights):
        assert main(["viz", "kernels", str(net), "-o", str(tmp_path / "k")]) == 0
        found.append(json.loads((tmp_path / "k" / "result.json").read_text())["columns"])
    assert found[0] == found[1] == found[2]
    capsys.readouterr()
    assert main(["viz", "kernels", str(graph), "-o", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ONNX graph" in err and ".safetensors" in err


def test_features_are_cached(tiny_run, tiny_store, monkeypatch, tmp_path):
    from alexnet.data.store import open_store
    from alexnet.evaluate import load_model
    ckpt = tiny_run / "best.pt"
    model, cfg, _ = load_model(ckpt, torch.device("cpu"))
    store = open_store(tiny_store)
    reader = store.split("val")
    cache = tmp_path / "cache"
    first = features.cached_features(cache, ckpt, model, reader, store.mean, cfg.data.crop, torch.device("cpu"), store.path)
    assert first.shape == (len(reader), 512) and (first >= 0).all()  # fc7 after ReLU, 4096 * 0.125
    assert [p.parent for p in cache.iterdir()] == [cache]  # the one file, in the folder named
    monkeypatch.setattr(features, "hidden_features", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    again = features.cached_features(cache, ckpt, model, reader, store.mean, cfg.data.crop, torch.device("cpu"), store.path)
    np.testing.assert_array_equal(first, again)


def test_retrieval_against_brute_force():
    rng = np.random.default_rng(0)
    db, q = rng.normal(size=(300, 24)).astype(np.float32), rng.normal(size=(20, 24)).astype(np.float32)
    idx, dist = codes.euclidean_search(db, q, 5)
    ref = ((q[:, None] - db[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, np.argsort(ref, axis=1)[:, :5])
    np.testing.assert_allclose(dist, np.sort(ref, axis=1)[:, :5], rtol=1e-4)
    db_codes, q_codes = rng.integers(0, 256, (300, 8), dtype=np.uint8), rng.integers(0, 256, (20, 8), dtype=np.uint8)
    hidx, hdist = codes.hamming_search(db_codes, q_codes, 7)
    popcount = np.unpackbits(q_codes[:, None] ^ db_codes[None], axis=-1).sum(-1)  # (20, 300)
    np.testing.assert_array_equal(hdist, np.sort(popcount, axis=1)[:, :7])
    np.testing.assert_array_equal(np.take_along_axis(popcount, hidx, 1), hdist)  # the indices have those distances
    labels_db, labels_q = rng.integers(0, 3, 300), rng.integers(0, 3, 20)
    manual = np.mean([[labels_db[j] == labels_q[i] for j in hidx[i, :4]] for i in range(20)])
    assert codes.precision_at_k(hidx, labels_q, labels_db, 4) == pytest.approx(manual)


def test_binary_codes_keep_what_separates_classes():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 64)) * 3
    y = rng.integers(0, 4, 400)
    x = (centres[y] + rng.normal(size=(400, 64))).astype(np.float32)
    codec = codes.train_codec(x, 16, steps=300)
    packed = codec.encode(x)
    assert packed.shape == (400, 2) and packed.dtype == np.uint8
    idx, _ = codes.hamming_search(packed[100:], packed[:100], 10)
    assert codes.precision_at_k(idx, y[:100], y[100:], 10) > 0.8  # chance is 0.25


def test_viz_codes_command(tiny_run, tmp_path):
    out = tmp_path / "codes"
    assert main(["viz", "codes", str(tiny_run / "best.pt"), "--bits", "8", "16", "--steps", "20", "-o", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    methods = {(r["method"], r["representation"].split(" (")[0]) for r in result["rows"]}
    assert ("exact Euclidean", "fc7") in methods and ("8-bit codes, Hamming", "auto-encoder on pixels") in methods
    assert all(0 <= r["p@10"] <= 1 and r["query_ms"] > 0 for r in result["rows"])
    assert result["query_images"] == 120 and result["database_images"] == 120


def test_bad_bits_is_a_clear_error(tiny_run, capsys):
    assert main(["viz", "codes", str(tiny_run / "best.pt"), "--bits", "12"]) == 2
    assert "multiple of 8" in capsys.readouterr().err


def test_report_renders_in_chromium(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the report's features cache: the user's cache folder
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    assert main(["report", str(tiny_run), "-o", str(page), "--screenshot", str(shot)]) == 0
    html = page.read_text()
    sources = re.findall(r'src="([^"]*)"', html)  # self-contained: every image inline, no script, no stylesheet link
    assert len(sources) == 4 and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "<script" not in html and "<link" not in html
    result = check_page(page)
    assert result["ok"], result
    assert len(result["images"]) == 4 and all(i["width"] > 100 for i in result["images"])
    assert shot.stat().st_size > 10_000
    assert list((tmp_path / "cache" / "alexnet" / "features").glob("best.pt-*.npy"))


def test_the_browser_check_sees_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><p>x</p><img alt="gone" src="missing.png">'
                    '<script>console.error("boom"); nosuchfunction();</script></body></html>')
    result = check_page(page)
    assert not result["ok"]
    assert result["console_errors"] == ["boom"] and "nosuchfunction" in result["exceptions"][0]
    assert [i["alt"] for i in result["broken_images"]] == ["gone"] and "missing.png" in result["failed_loads"][0]


def test_report_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "metrics.jsonl" in capsys.readouterr().err


def test_neighbour_agreement_counts_neighbours_of_the_query_class():
    from alexnet.viz.features import neighbour_agreement
    rng = np.random.default_rng(0)
    db = np.concatenate([rng.normal(0, 0.1, (20, 8)), rng.normal(5, 0.1, (20, 8))])  # class 0 near 0, class 1 near 5
    labels = np.repeat([0, 1], 20)
    queries = np.array([[0.0] * 8, [5.0] * 8, [5.0] * 8])
    assert neighbour_agreement(db, labels, queries, [0, 1, 1], k=5) == 1.0
    assert neighbour_agreement(db, labels, queries, [1, 1, 0], k=5) == pytest.approx(1 / 3)
