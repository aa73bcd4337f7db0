"""The README as a new user meets it: every command and snippet of its "Command line", "Use a
trained net", "Presets and configuration" and "Several GPUs" sections, run from a folder outside
the checkout on a tiny store and a tiny net, each result checked (not only the exit code); and a
run's best.pt and last.pt used with their store moved away (predict, export, eval on another store
of the same classes). Left to their own tests: `alexnet quickstart` (test_quickstart.py), `bench
model` / `bench data` (test_fastpath.py, test_bench_data.py), `experiment` (test_experiments.py)."""
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet.checkpoint import read_record
from alexnet.cli import main
from alexnet.data.store import open_store
from conftest import IMAGENETTE, REPO, need, tiny_overrides

README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def blocks(title: str, lang: str) -> list[str]:
    """The ```lang blocks of a README section."""
    return re.findall(rf"```{lang}\n(.*?)```", section(title), re.S)


def tiny(*extra: str) -> list[str]:
    """The tiny net's --set values (tests/conftest.py) without the store and run folder, which the commands name."""
    return [s for s in tiny_overrides(Path("."), Path("."), *extra)
            if not s.startswith(("data.store=", "train.out=", "model.num_classes=", "data.size=", "data.crop="))]


def cli(home: Path, capsys, line: str | list[str]) -> tuple[int, str, str]:
    """`alexnet ARGS` run in the folder `home` (in this process: the package under test)."""
    args = shlex.split(line) if isinstance(line, str) else line
    if args[0] == "alexnet":
        args = args[1:]
    here = os.getcwd()
    os.chdir(home)
    try:
        capsys.readouterr()
        code = main(args)
    finally:
        os.chdir(here)
    out, err = capsys.readouterr()
    return code, out, err


def torchrun(home: Path, args: list[str]) -> str:
    cmd = [sys.executable, "-m", "torch.distributed.run", *args]
    done = subprocess.run(cmd, cwd=home, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _extract(dest: Path, per_class: int, classes: int = 10) -> None:
    """SRC/<split>/<class>/<file>: the first `per_class` images of each class and split of the archive."""
    count = {}
    with tarfile.open(IMAGENETTE) as tar:
        for m in tar:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) < 4 or parts[-3] not in ("train", "val"):
                continue
            split, cls = parts[-3], parts[-2]
            key = (split, cls)
            if count.get(key, 0) >= per_class or (len({c for _, c in count}) >= classes and cls not in
                                                  {c for _, c in count}):
                continue
            count[key] = count.get(key, 0) + 1
            (dest / split / cls).mkdir(parents=True, exist_ok=True)
            (dest / split / cls / parts[-1]).write_bytes(tar.extractfile(m).read())


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A user's folder outside the checkout, with image folders made from the bundled archive."""
    need(IMAGENETTE)
    home = tmp_path_factory.mktemp("user")
    assert REPO not in home.parents
    _extract(home / "src", 4)  # 10 classes x 4 images per split
    _extract(home / "src3", 4, classes=3)
    photos = sorted((home / "src" / "val").rglob("*.JPEG"))
    shutil.copy(photos[0], home / "photo.jpg")
    (home / "holiday").mkdir(), (home / "more").mkdir()
    for i, p in enumerate(photos[1:4]):
        shutil.copy(p, home / "holiday" / f"{i}.jpg")
    from PIL import Image
    for i, p in enumerate(photos[4:6]):
        Image.open(p).save(home / "more" / f"{i}.png")
    return home


@pytest.fixture(scope="module")
def trained(home, tiny_store):
    """`alexnet prepare` then `alexnet train` as the README's table writes them, in the user's folder."""
    assert main(["prepare", str(home / "src"), str(home / "stores/mine"), "--size", "72", "--workers", "2"]) == 0
    assert main(["prepare", str(home / "src3"), str(home / "stores/my-classes"), "--size", "72", "--format", "jpeg",
                 "--workers", "2"]) == 0
    here = os.getcwd()
    os.chdir(home)
    try:
        assert main(["train", "--preset", "quick", "--data", "stores/mine", "--out", "runs/r", "--epochs", "2",
                     "--set", *tiny()]) == 0
    finally:
        os.chdir(here)
    return home / "runs/r"


# ---- Command line --------------------------------------------------------------------------------


def test_prepare_train_resume_eval_summary_config(home, trained, capsys):
    store = open_store(home / "stores/mine")
    assert (store.num_classes, store.size, len(store.split("train")), len(store.split("val"))) == (10, 72, 40, 40)
    assert store.mean.shape == (3, 72, 72) and open_store(home / "stores/my-classes").format == "jpeg"
    assert {"config.json", "run.json", "metrics.jsonl", "tb", "last.pt", "best.pt"} <= {p.name for p in trained.iterdir()}
    code, out, _ = cli(home, capsys, "alexnet train --resume runs/r --epochs 3")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["status"] == "finished" and (summary["epoch"], summary["step"]) == (3, 3 * 2)
    code, out, _ = cli(home, capsys, "alexnet eval runs/r --data stores/mine --views center --json")
    one = json.loads(out)
    assert code == 0 and one["images"] == 40 and one["checkpoints"] == ["runs/r/best.pt"] and 0 <= one["top1_error"] <= 1
    code, out, _ = cli(home, capsys, "alexnet eval runs/r/best.pt runs/r/last.pt --data stores/mine --json")
    two = json.loads(out)
    assert code == 0 and len(two["checkpoints"]) == 2 and two["views"] == "10crop"  # the recipe's eval.views
    code, out, _ = cli(home, capsys, "alexnet summary --json")
    assert code == 0 and json.loads(out)["total_params"] == 60_965_224
    code, out, _ = cli(home, capsys, "alexnet config --list")
    assert code == 0 and {"paper", "quick", "imagenette", "imagenette-fast", "cifar10"} <= set(out.split())
    code, out, _ = cli(home, capsys, "alexnet config --preset quick --set optim.lr=0.02")
    assert code == 0 and json.loads(out)["optim"]["lr"] == 0.02


def test_bench_curve_and_train_adapt_to_a_small_store(home, trained, capsys):
    """bench curve / bench train take the store's side and classes, as train does (the quick preset's are 144px, 10)."""
    code, out, _ = cli(home, capsys, ["bench", "curve", "--data", "stores/mine", "--preset", "quick", "--steps", "3",
                                      "--window", "2", "--json", "--set", *tiny()])
    result = json.loads(out)
    assert code == 0 and result["steps"] == 3 and result["crop"] == 64 and all(result["finite"].values())
    code, out, _ = cli(home, capsys, ["bench", "train", "--data", "stores/mine", "--preset", "quick", "--epochs", "1",
                                      "--json", "--set", *tiny()])
    assert code == 0 and json.loads(out)["store"].endswith("mine")


def test_predict_export_finetune_viz_report(home, trained, capsys):
    use = blocks("Use a trained net", "bash")[0].replace("runs/quickstart-quick", "runs/r").splitlines()
    code, out, err = cli(home, capsys, use[0])  # predict runs/r/best.pt photo.jpg holiday/ 'more/*.png' --figure fig4.png
    assert code == 0 and len(out.splitlines()) == 1 + 3 + 2 and (home / "fig4.png").stat().st_size > 1000
    names = open_store(home / "stores/mine").class_names
    assert all(any(f"{n} (" in line for n in names) for line in out.splitlines())
    code, out, _ = cli(home, capsys, use[1])  # export runs/r/best.pt --weights quick.safetensors --onnx quick.onnx
    assert code == 0 and (home / "quick.safetensors").is_file() and (home / "quick.onnx").is_file()
    code, out, _ = cli(home, capsys, use[2] + " -b 4")  # finetune quick.safetensors --data stores/my-classes ...
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["status"] == "finished" and summary["epoch"] == 10
    ft = read_record(home / summary["run"] / "last.pt")  # an absolute path stays itself
    assert len(ft.classes) == 3 and ft.config.finetune.freeze == "conv1..conv3"
    for what in ("kernels", "predictions", "neighbours"):
        code, out, _ = cli(home, capsys, f"alexnet viz {what} runs/r/best.pt --data stores/mine -o viz-{what}"
                           if what != "kernels" else f"alexnet viz kernels runs/r/best.pt -o viz-{what}")
        assert code == 0 and json.loads((home / f"viz-{what}" / "result.json").read_text())["checkpoint"]
    assert not list(trained.glob("*.features"))  # caches under -o, not in the run folder
    code, out, _ = cli(home, capsys, "alexnet report runs/r -o report.html")
    assert code == 0 and (home / "report.html").read_text().count("data:image/png;base64,") >= 3


def test_the_python_snippet(home, trained, capsys):
    """The README's Python block, verbatim but for the checkout's path, in a fresh interpreter in the user's folder."""
    if not (home / "quick.safetensors").is_file():
        assert cli(home, capsys, "alexnet export runs/r/best.pt --weights quick.safetensors --onnx quick.onnx")[0] == 0
    code = blocks("Use a trained net", "python")[0].replace("path/to/this/checkout", str(REPO))
    code += ("\nprint(type(net).__name__, len(net.weights.classes), net.training)"
             "\nprint(type(owt).__name__, owt.classifier[-1].out_features)")
    done = subprocess.run([sys.executable, "-c", code], cwd=home, env={**os.environ, "PYTHONPATH": str(REPO),
                          "TORCH_HOME": str(home / "torch-home")}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    printed, hub_net, owt = done.stdout.strip().splitlines()
    assert printed in open_store(home / "stores/mine").class_names  # a name people read, not a wnid
    assert hub_net == "AlexNet 10 False" and owt == "AlexNetOWT 1000"
    assert "without `weights`, a fresh net of the paper's size (1,000 classes" in section("Use a trained net").replace("\n", " ")


# ---- Presets and configuration -------------------------------------------------------------------


def test_presets_and_switches(home, capsys):
    rows = re.findall(r"^\| `([\w-]+)` \|", section("Presets and configuration"), re.M)
    assert rows == ["paper", "imagenette", "imagenette-fast", "cifar10", "quick"]
    for preset in rows:
        code, out, _ = cli(home, capsys, f"alexnet config --preset {preset}")
        assert code == 0 and json.loads(out)["model"]
    assert json.loads(cli(home, capsys, "alexnet config --preset cifar10")[1])["model"]["arch"] != "paper"
    switches = re.findall(r"`((?:model|data|train)\.\w+=\w+)`", section("Presets and configuration"))
    assert len(switches) >= 10
    code, out, _ = cli(home, capsys, ["config", "--set", *switches])
    cfg = json.loads(out)
    assert code == 0
    for item in switches:
        key, value = item.split("=")
        section_, name = key.split(".")
        got = cfg[section_][name]
        assert (str(got).lower() == value if isinstance(got, (bool, str)) else got == float(value)), (item, got)


# ---- Several GPUs: torchrun on CPU (gloo) ----------------------------------------------------------


def test_torchrun_lines(home, trained, capsys):
    lines = blocks("Several GPUs (torchrun)", "bash")[0].splitlines()
    assert "--nproc-per-node 8 -m alexnet train --preset imagenette --data STORE --out RUN" in lines[0]
    sets = ["--set", *tiny("data.threads=1", "train.threads=1", "train.max_steps_per_epoch=2")]
    out = torchrun(home, ["--standalone", "--nproc-per-node", "2", "-m", "alexnet", "train", "--preset", "quick",
                          "--data", "stores/mine", "--out", "runs/dp", "--epochs", "1", *sets])
    assert json.loads(out.strip().splitlines()[-1])["status"] == "finished"
    assert "--nproc-per-node 4 -m alexnet train --resume RUN" in lines[1]
    out = torchrun(home, ["--standalone", "--nproc-per-node", "1", "-m", "alexnet", "train", "--resume", "runs/dp",
                          "--epochs", "2"])
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["epoch"] == 2 and read_record(home / "runs/dp/last.pt").progress["world"] == 1
    assert "--set train.model_parallel=true" in lines[2]
    torchrun(home, ["--standalone", "--nproc-per-node", "2", "-m", "alexnet", "train", "--preset", "quick", "--data",
                    "stores/mine", "--out", "runs/mp", "--epochs", "1", *sets, "train.model_parallel=true"])
    assert read_record(home / "runs/mp/best.pt").input.size == 72
    assert list((home / "runs/mp/tb").glob("events.out.tfevents.*"))  # the epoch's figures, drawn by rank 0
    assert "alexnet train --seeds 1 2 3 4 5 ... --out ENS && alexnet eval ENS/seed-*/best.pt --data STORE" in lines[3]
    code, _, _ = cli(home, capsys, ["train", "--seeds", "1", "2", "--preset", "quick", "--data", "stores/mine", "--out",
                                    "ens", "--epochs", "1", *sets])
    assert code == 0
    members = sorted(glob.glob(str(home / "ens/seed-*/best.pt")))
    code, out, _ = cli(home, capsys, ["eval", *members, "--data", "stores/mine", "--json"])
    assert code == 0 and len(json.loads(out)["checkpoints"]) == 2


# ---- best.pt and last.pt away from their store (issue 27) --------------------------------------------


def test_best_and_last_without_their_store(home, trained, tiny_store, capsys):
    """The store moved away: predict, export and eval on a store of the same classes (the tiny store,
    another set of images) work on best.pt and last.pt, from the user's folder."""
    away = home / "moved-store"
    shutil.move(home / "stores/mine", away)
    try:
        for name in ("best.pt", "last.pt"):
            net = f"runs/r/{name}"
            code, out, _ = cli(home, capsys, f"alexnet predict {net} photo.jpg --json")
            assert code == 0 and json.loads(out)["top"][0]["class"] in open_store(tiny_store).classes
            code, out, _ = cli(home, capsys, f"alexnet export {net} --weights {name}.safetensors --onnx {name}.onnx")
            assert code == 0 and (home / f"{name}.onnx").is_file()
            import alexnet
            _, w = alexnet.load(home / f"{name}.safetensors")
            assert w.meta["metrics"] == read_record(home / net).metrics  # its own, not best.pt's
            code, out, _ = cli(home, capsys, f"alexnet eval {net} --data {tiny_store} --views center --json")
            result = json.loads(out)
            assert code == 0 and result["images"] == len(open_store(tiny_store).split("val"))
            code, out2, _ = cli(home, capsys, f"alexnet eval {name}.onnx --data {tiny_store} --views center --json")
            assert json.loads(out2)["top1_error"] == pytest.approx(result["top1_error"], abs=1 / result["images"])
    finally:
        shutil.move(away, home / "stores/mine")
    assert np.isfinite(torch.load(home / "runs/r/best.pt", weights_only=True)["input"]["mean"].sum().item())
