"""Using a trained net (alexnet/ship/): predict on image files, self-describing weights, torchvision
weight files, ONNX export checked in onnxruntime, fine-tuning (§6), and the CLI that infers."""
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

import alexnet
from alexnet.checkpoint import load_checkpoint
from alexnet.cli import main
from alexnet.data.store import open_store
from alexnet.evaluate import PredictOptions, evaluate_checkpoints, predict
from alexnet.ship.onnx import fold_dropout, inference_net

from conftest import IMAGENETTE, tiny_overrides


def _tiny_sets(store, run, *extra):
    """tiny_overrides without model.num_classes: the class count comes from the store."""
    return [s for s in tiny_overrides(store, run, *extra) if not s.startswith("model.num_classes")]


@pytest.fixture(scope="module")
def trained(tiny_store, tmp_path_factory):
    """A tiny paper net trained one epoch on the tiny store, through the CLI; its run folder."""
    run = tmp_path_factory.mktemp("ship") / "run"
    assert main(["train", "--preset", "quick", "--set", *_tiny_sets(tiny_store, run, "schedule.epochs=1")]) == 0
    return run


@pytest.fixture(scope="module")
def val_images(tiny_store, tmp_path_factory):
    """The source files of the tiny store's val split, extracted from the archive as
    FOLDER/<class>/<file> (their order in the store: the store's val.files.txt)."""
    names = (Path(tiny_store) / "val.files.txt").read_text().splitlines()
    out = tmp_path_factory.mktemp("val")
    wanted = {n: out / n.split("/", 1)[1] for n in names}  # val/<class>/<file> -> OUT/<class>/<file>
    with tarfile.open(IMAGENETTE) as tar:
        for member in tar:
            key = member.name.split("/", 1)[-1]
            if key in wanted:
                wanted[key].parent.mkdir(parents=True, exist_ok=True)
                wanted[key].write_bytes(tar.extractfile(member).read())
    return out, [wanted[n] for n in names]


def _predict_json(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["predict", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return code, [json.loads(l) for l in out.splitlines()], err


# ---- the CLI infers what it can ----------------------------------------------------------------


def test_num_classes_comes_from_the_store(trained):
    saved = json.loads((trained / "config.json").read_text())
    assert saved["model"]["num_classes"] == 10  # never given: 0 means "the store's"
    assert load_checkpoint(trained / "last.pt")["config"]["model"]["num_classes"] == 10


def test_summary_keeps_the_papers_1000_classes(capsys):
    assert main(["summary", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == 60_965_224


def test_shortcut_flags_equal_their_set_forms():
    from alexnet.cli import build_parser
    from alexnet.cli.args import config_from_args
    from alexnet.cli.train import shortcut_overrides
    from alexnet.config import to_dict

    parser = build_parser()
    flags = parser.parse_args(["train", "--epochs", "3", "--lr", "0.02", "--batch-size", "16", "--workers", "1",
                               "--wd", "0.001", "--momentum", "0.8"])
    sets = parser.parse_args(["train", "--set", "schedule.epochs=3", "optim.lr=0.02", "optim.batch_size=16",
                              "data.threads=1", "optim.weight_decay=0.001", "optim.momentum=0.8"])
    by_flags = to_dict(config_from_args(flags, shortcut_overrides(flags)))
    assert by_flags == to_dict(config_from_args(sets, shortcut_overrides(sets)))
    assert by_flags != to_dict(config_from_args(parser.parse_args(["train"])))
    clash = parser.parse_args(["train", "--lr", "0.02", "--set", "optim.lr=0.1"])
    with pytest.raises(alexnet.errors.UserError, match="contradicts"):
        shortcut_overrides(clash)


def test_every_option_has_help_and_no_arguments_says_what_to_run(capsys):
    import argparse

    from alexnet.cli import build_parser

    def silent(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from silent(sub, f"{path} {name}")
            elif not action.help:
                yield f"{path} {'/'.join(action.option_strings) or action.dest}"

    assert list(silent(build_parser(), "alexnet")) == []
    assert main([]) == 0
    assert "alexnet quickstart" in capsys.readouterr().out


def test_resume_takes_a_checkpoint_path(tiny_store, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "quick", "--set", *_tiny_sets(tiny_store, run, "schedule.epochs=1",
                                                                    "train.max_steps_per_epoch=2")]) == 0
    assert main(["train", "--resume", str(run / "last.pt"), "--epochs", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["epoch"] == 2 and summary["step"] == 4
    assert main(["train", "--resume", str(tmp_path / "nothing.pt")]) == 2
    assert "nothing to resume" in capsys.readouterr().err


# ---- predict ---------------------------------------------------------------------------------


def test_predict_gives_evals_top1_on_the_stores_val_images(trained, tiny_store, val_images, capsys):
    folder, files = val_images
    code, rows, _ = _predict_json(capsys, trained / "best.pt", folder, "--views", "10crop", "--topk", "3")
    assert code == 0
    got = {r["file"]: r for r in rows}
    store = open_store(tiny_store)
    reader = store.split("val")
    model, weights = alexnet.load(trained / "best.pt")
    probs = predict([model], reader, store.mean, PredictOptions(weights.crop, "10crop", 64))
    assert [got[str(f)]["top"][0]["index"] for f in files] == probs.argmax(1).tolist()  # image by image
    for f, p in zip(files, probs):
        assert got[str(f)]["top"][0]["prob"] == pytest.approx(p.max().item(), abs=1e-5)
    top1_error = np.mean([got[str(f)]["top"][0]["class"] != got[str(f)]["truth"] for f in files])
    result = evaluate_checkpoints([str(trained / "best.pt")], store, "val", "10crop")
    assert top1_error == pytest.approx(result["top1_error"])
    assert {r["truth"] for r in rows} == set(store.classes)  # the folder names the class


def test_predict_prints_class_names_and_checkpoints_carry_them(trained, tiny_store, val_images, capsys):
    from alexnet.data.names import IMAGENETTE
    store = open_store(tiny_store)
    assert store.class_names == [IMAGENETTE[c] for c in store.classes]  # the bundled set gets its ten names
    assert load_checkpoint(trained / "best.pt")["class_names"] == store.class_names
    _, weights = alexnet.load(trained / "best.pt")
    assert weights.meta["class_names"] == store.class_names and weights.meta["categories"] == store.classes
    assert main(["predict", str(trained / "best.pt"), str(val_images[1][0]), "--topk", "2"]) == 0
    line = capsys.readouterr().out.strip().rsplit(": ", 1)[1]  # after the file's path (its folder is a wnid)
    assert not any(c in line for c in store.classes)  # no wnid: names people read
    assert any(f"{n} (" in line for n in store.class_names), line
    # eval names the classes it gets most wrong; their errors, from predict's probabilities
    result = evaluate_checkpoints([str(trained / "best.pt")], store, "val", "center")
    model, weights = alexnet.load(trained / "best.pt")
    reader = store.split("val")
    wrong = predict([model], reader, store.mean, PredictOptions(weights.crop, "center", 64)).argmax(1).numpy() != reader.labels
    errors = {store.class_names[c]: wrong[reader.labels == c].mean() for c in range(store.num_classes)}
    assert [h["top1_error"] for h in result["hardest"]] == pytest.approx(sorted(errors.values(), reverse=True)[:3])
    assert all(errors[h["class"]] == pytest.approx(h["top1_error"]) for h in result["hardest"])
    assert main(["eval", str(trained / "best.pt"), "--data", str(tiny_store), "--views", "center"]) == 0
    assert f"hardest classes: {result['hardest'][0]['class']} " in capsys.readouterr().out


def test_predict_odd_files_and_globs(trained, val_images, tmp_path, capsys):
    src = Image.open(val_images[1][0]).convert("RGB")
    src.convert("L").save(tmp_path / "grey.jpg")
    src.convert("CMYK").save(tmp_path / "cmyk.jpg")
    src.convert("P").save(tmp_path / "palette.png")
    rgba = src.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(tmp_path / "alpha.png")
    src.resize((37, 500)).save(tmp_path / "thin.bmp")
    rotated = src.transpose(Image.Transpose.ROTATE_90)  # stored sideways; EXIF says: rotate back
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned, rotate 270 to view
    rotated.save(tmp_path / "exif.jpg", exif=exif, quality=95)
    rotated.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "upright.jpg", quality=95)
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "grey.jpg").read_bytes()[:300])

    code, rows, err = _predict_json(capsys, trained / "last.pt", tmp_path, tmp_path / "missing.jpg",
                                    str(tmp_path / "up*.jpg"))
    assert code == 2  # some files were bad, the others still predicted
    done = {Path(r["file"]).name for r in rows}
    assert {"grey.jpg", "cmyk.jpg", "palette.png", "alpha.png", "thin.bmp", "exif.jpg", "upright.jpg"} <= done
    assert not done & {"text.jpg", "empty.png", "cut.jpg"}
    for name in ("text.jpg", "empty.png", "cut.jpg", "missing.jpg"):
        assert sum(name in line for line in err.splitlines()) == 1, name
    probs = {Path(r["file"]).name: [t["prob"] for t in r["top"]] for r in rows}
    assert probs["exif.jpg"] == pytest.approx(probs["upright.jpg"], abs=0.02)  # EXIF orientation applied


def test_predict_figure(trained, val_images, tmp_path, capsys):
    out = tmp_path / "fig4.png"
    assert main(["predict", str(trained / "best.pt"), *map(str, val_images[1][:5]), "--figure", str(out)]) == 0
    assert Image.open(out).size[0] > 400
    assert len(capsys.readouterr().out.splitlines()) == 5


# ---- weights that describe themselves ---------------------------------------------------------


def test_safetensors_round_trip_is_bitwise_and_holds_no_pickle(trained, tiny_store, tmp_path, capsys):
    out = tmp_path / "tiny.safetensors"
    assert main(["export", str(trained / "best.pt"), "--weights", str(out)]) == 0
    raw = out.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])  # JSON header, then raw tensor bytes: nothing to unpickle
    assert all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")
    assert b"\x80\x02" not in raw[: 8 + header_len] and not raw.startswith(b"PK")

    model, weights = alexnet.load(out)
    state = load_checkpoint(trained / "best.pt")
    assert state["model"].keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state["model"].items())
    store = open_store(tiny_store)
    assert torch.equal(weights.mean, store.mean) and torch.equal(weights.pca["eigvecs"], store.pca_eigvecs)
    meta = weights.meta
    assert meta["categories"] == store.classes and (meta["size"], meta["crop"]) == (72, 64)
    assert meta["config"]["model"]["width"] == 0.125 and meta["num_params"] > 0
    assert meta["metrics"][0]["command"].startswith("alexnet train")
    x = weights.transforms()(Image.new("RGB", (90, 70), (200, 30, 30)))
    assert x.shape == (3, 64, 64)
    assert weights.transforms("10crop")(Image.new("RGB", (90, 70))).shape == (10, 3, 64, 64)
    model2, _ = alexnet.load(trained / "best.pt")
    with torch.no_grad():
        torch.testing.assert_close(model(x[None]), model2(x[None]), rtol=0, atol=0)


def test_checkpoints_work_without_their_store(tiny_store, tmp_path, capsys):
    import shutil
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    run = tmp_path / "run"
    assert main(["train", "--preset", "quick", "--set", *_tiny_sets(store, run, "schedule.epochs=1",
                                                                    "train.max_steps_per_epoch=1")]) == 0
    mean = open_store(store).mean
    shutil.rmtree(store)
    _, weights = alexnet.load(run / "last.pt")
    assert torch.equal(weights.mean, mean) and weights.size == 72 and len(weights.classes) == 10


def test_torchvision_weight_file_predicts_what_torchvision_predicts(val_images, tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.alexnet(weights=None).eval()
    with torch.no_grad():
        tv.classifier[6].weight.mul_(20)  # spread the random net's outputs so top-5 is well defined
    torch.save(tv.state_dict(), tmp_path / "alexnet-owt.pth")
    model, weights = alexnet.load(tmp_path / "alexnet-owt.pth")
    assert weights.config.model.arch == "owt" and weights.meta["class_names"][0] == "tench"
    assert weights.meta["categories"][:2] == ["0", "1"]  # ids (torchvision ships no wnids), names beside them
    tv_transform = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.transforms()
    for f in val_images[1][:4]:
        img = Image.open(f)
        with torch.no_grad():
            ours, theirs = model(weights.transforms()(img)[None]), tv(tv_transform(img)[None])
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        assert ours.topk(5).indices.tolist() == theirs.topk(5).indices.tolist()


# ---- ONNX ------------------------------------------------------------------------------------


def test_onnx_export_parity_lrn_and_dynamic_batch(trained, val_images, tmp_path, capsys):
    import onnx
    out = tmp_path / "tiny.onnx"
    assert main(["export", str(trained / "best.pt"), "--onnx", str(out)]) == 0
    line = capsys.readouterr().out
    diff = float(line.split("max |logit difference| ")[1].split()[0])
    assert diff <= 1e-4
    graph = onnx.load(str(out)).graph
    lrn = [n for n in graph.node if n.op_type == "LRN"]
    assert len(lrn) == 2
    attrs = {a.name: (a.f if a.type == onnx.AttributeProto.FLOAT else a.i) for a in lrn[0].attribute}
    assert attrs["size"] == 5 and attrs["alpha"] == pytest.approx(5e-4) and attrs["bias"] == 2.0  # paper 1e-4 x n
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    onnx_net, weights = alexnet.load(out)
    torch_net, _ = alexnet.load(trained / "best.pt")
    for batch in (1, 5):
        x = torch.randn(batch, 3, 64, 64) * 58
        with torch.no_grad():
            assert (onnx_net(x) - torch_net(x)).abs().max() <= 1e-4
    code, rows, _ = _predict_json(capsys, out, *val_images[1][:6])
    _, ref, _ = _predict_json(capsys, trained / "best.pt", *val_images[1][:6])
    assert code == 0 and [r["top"][0]["index"] for r in rows] == [r["top"][0]["index"] for r in ref]
    assert weights.meta["categories"] == load_checkpoint(trained / "best.pt")["classes"]


class PaperDropout(nn.Dropout):
    """The paper's dropout (§4.2): kept units unscaled while training, x (1 - p) at test time."""

    def forward(self, x):
        return x * (torch.rand_like(x) >= self.p) if self.training else x * (1 - self.p)


def test_dropout_is_folded_for_inference():
    torch.manual_seed(0)
    net = alexnet.AlexNet(alexnet.ModelConfig(num_classes=7, width=0.125)).eval()
    net.classifier.drop6, net.classifier.drop7 = PaperDropout(0.5), PaperDropout(0.5)
    net.eval()
    x = torch.randn(2, 3, 64, 64) * 58
    folded = inference_net(net, 64)
    assert not any(isinstance(m, nn.Dropout) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)
        assert folded.classifier.fc7.weight.equal(net.classifier.fc7.weight * 0.5)
    plain = alexnet.AlexNet(alexnet.ModelConfig(num_classes=7, width=0.125, dropout_mode="inverted")).eval()  # torch's
    fc7 = plain.classifier.fc7.weight.clone()
    fold_dropout(plain)
    assert plain.classifier.fc7.weight.equal(fc7)


# ---- fine-tuning -----------------------------------------------------------------------------


def test_finetune_end_to_end(trained, val_images, tmp_path, capsys):
    src = tmp_path / "src"  # a 3-class store of other classes' images (not the source's 10 classes)
    classes = sorted({f.parent.name for f in val_images[1]})[:3]
    for split in ("train", "val"):
        for c, new in zip(classes, ("ant", "bee", "cow")):
            (src / split / new).mkdir(parents=True)
            for f in sorted((val_images[0] / c).iterdir()):
                (src / split / new / f.name).write_bytes(f.read_bytes())
    store = tmp_path / "store3"
    assert main(["prepare", str(src), str(store), "--size", "72", "--quiet"]) == 0
    run = tmp_path / "ft"
    code = main(["finetune", str(trained / "best.pt"), "--data", str(store), "--out", str(run), "--freeze",
                 "conv1..conv3", "--lr", "0.005", "--pretrained-lr-mult", "0.2", "--epochs", "2", "-b", "8",
                 "--set", "train.log_every_steps=2"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["epoch"] == 2
    before, after = load_checkpoint(trained / "best.pt"), load_checkpoint(run / "last.pt")
    cfg = after["config"]
    assert cfg["model"]["num_classes"] == 3 and cfg["finetune"]["freeze"] == "conv1..conv3"
    assert (cfg["optim"]["lr"], cfg["optim"]["batch_size"], cfg["train"]["log_every_steps"]) == (0.005, 8, 2)
    assert after["classes"] == ["ant", "bee", "cow"] and after["model"]["classifier.fc8.weight"].shape[0] == 3
    for k in ("features.conv1.weight", "features.conv3.bias"):  # frozen: as trained
        assert torch.equal(before["model"][k], after["model"][k]), k
    for k in ("features.conv4.weight", "classifier.fc6.weight"):  # pretrained, learning slowly
        assert not torch.equal(before["model"][k], after["model"][k]), k
    mults = [g["lr_mult"] for g in after["optimizer"]["param_groups"]]
    assert mults == [1.0, 1.0, 0.2, 0.2]  # the new fc8's weights and biases at 1 x, the pretrained ones at 0.2 x
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0  # an ordinary run: it resumes
    assert main(["eval", str(run / "last.pt"), "--data", str(store)]) == 0


def test_finetune_keeps_the_trained_layers_rate_unless_told(trained, tiny_store, tmp_path):
    from alexnet.ship.finetune import finetune_config
    _, weights = alexnet.load(trained / "best.pt")
    base = weights.config.optim.lr
    cfg = finetune_config(weights, tiny_store, str(tmp_path / "a"), [])
    assert cfg.optim.lr == pytest.approx(base / 0.1)  # the new classifier 10x, the trained layers at `base`
    cfg = finetune_config(weights, tiny_store, str(tmp_path / "b"), ["finetune.pretrained_lr_mult=0.5"])
    assert cfg.optim.lr == pytest.approx(base / 0.5)
    cfg = finetune_config(weights, tiny_store, str(tmp_path / "c"), ["optim.lr=0.003"])
    assert cfg.optim.lr == 0.003 and cfg.finetune.source == str(trained / "best.pt")
    with pytest.raises(alexnet.errors.ConfigError, match="fine-tuning keeps the trained net"):
        finetune_config(weights, tiny_store, None, ["model.width=1"])


# ---- every command, every format, the same pixels ---------------------------------------------------


@pytest.fixture(scope="module")
def other_size_store(tmp_path_factory):
    """3 real Imagenette images per class and split, stored at 100px: another side than the nets' 72px."""
    from alexnet.data.prepare import prepare
    out = tmp_path_factory.mktemp("stores") / "imagenette-100"
    prepare(IMAGENETTE, out, size=100, limit_per_class=3, progress=False, workers=2)
    return out


def test_eval_gives_the_net_the_pixels_predict_gives_it(trained, other_size_store, tmp_path, capsys):
    """On a store of another side, eval rescales each image as predict rescales a file: the same
    probabilities image by image, and the top-1 error predict's answers give."""
    from alexnet.evaluate import net_pixels
    from alexnet.ship.predict import predict_files
    store = open_store(other_size_store)
    reader = store.split("val")
    files = []
    for i, (x, y) in enumerate(zip(reader.read(np.arange(len(reader))), reader.labels)):  # the stored images, lossless
        f = tmp_path / store.classes[y] / f"{i:03d}.png"
        f.parent.mkdir(exist_ok=True)
        Image.fromarray(x.permute(1, 2, 0).numpy()).save(f)
        files.append(f)
    model, weights = alexnet.load(trained / "best.pt")
    assert store.size == 100 != weights.size == 72
    by_predict = [p for p in predict_files(model, weights, files, topk=10, views="10crop")]
    expect = torch.zeros(len(files), len(weights.classes))
    for row, p in zip(expect, by_predict):
        row[p.indices] = torch.tensor(p.probs)
    got = predict([model], net_pixels(reader, weights.input), weights.mean, PredictOptions(weights.crop, "10crop", 64))
    torch.testing.assert_close(got, expect, rtol=1e-5, atol=1e-6)
    assert main(["eval", str(trained / "best.pt"), "--data", str(other_size_store), "--views", "10crop", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["top1_error"] == pytest.approx(np.mean([p.classes[0] != p.truth for p in by_predict]))
    assert "rescaled to the net's 72px" in result["rescaled"]
    code = main(["viz", "predictions", str(trained), "--data", str(other_size_store), "-o", str(tmp_path / "v")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "--size 72" in err  # viz does not rescale: it says so


def test_every_command_takes_every_format(trained, tiny_store, tmp_path, capsys):
    """eval, predict, export, finetune and alexnet.load on .pt, a run folder, .safetensors and .onnx
    (export and finetune refuse ONNX in one line: a graph holds no tensors to copy)."""
    weights, graph = tmp_path / "net.safetensors", tmp_path / "net.onnx"
    assert main(["export", str(trained), "--weights", str(weights), "--onnx", str(graph)]) == 0  # a run folder
    capsys.readouterr()
    errors = {}
    for net in (trained / "best.pt", trained, weights, graph):
        assert main(["eval", str(net), "--data", str(tiny_store), "--views", "center", "--json"]) == 0
        errors[net] = json.loads(capsys.readouterr().out)["top1_error"]
        model, w = alexnet.load(net)
        assert not model.training and w.meta["categories"] == open_store(tiny_store).classes
    assert len(set(errors.values())) == 1, errors  # the same net, the same answers
    for net in (graph, tmp_path / "missing.onnx"):
        assert main(["export", str(net), "--weights", str(tmp_path / "x.safetensors")]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and ("ONNX export" in err or "no model file" in err)
    assert main(["finetune", str(graph), "--data", str(tiny_store)]) == 2
    assert "ONNX" in capsys.readouterr().err


def test_export_of_last_pt_writes_its_own_metrics(trained, tmp_path):
    from alexnet.checkpoint import read_record
    out = tmp_path / "last.safetensors"
    assert main(["export", str(trained / "last.pt"), "--weights", str(out)]) == 0
    _, weights = alexnet.load(out)
    assert weights.meta["metrics"] == read_record(trained / "last.pt").metrics != []
    assert weights.meta["progress"]["step"] == read_record(trained / "last.pt").progress["step"]


def test_small_promises_of_the_readme(trained, val_images, tmp_path, capsys):
    model, weights = alexnet.load(trained)  # a run folder: its best.pt
    assert weights.source == str(trained / "best.pt")
    img = Image.open(val_images[1][0]).convert("RGB")
    as_tensor = torch.from_numpy(np.array(img)).permute(2, 0, 1)  # (3, H, W) uint8, as torchvision reads it
    torch.testing.assert_close(weights.transforms()(as_tensor), weights.transforms()(img), rtol=0, atol=0)
    torch.testing.assert_close(weights.transforms()(as_tensor.float() / 255), weights.transforms()(img), rtol=0, atol=0)
    f = val_images[1][0]
    same = [str(f), str(f.parent / ".." / f.parent.name / f.name), str(f.parent / f"{f.stem}*{f.suffix}")]
    code, rows, _ = _predict_json(capsys, trained / "best.pt", *same)
    assert code == 0 and len(rows) == 1  # one file named three ways: predicted once
    assert main(["predict", str(trained / "best.pt"), str(val_images[0]), "--figure", str(tmp_path / "f.png")]) == 0
    err = capsys.readouterr().err
    assert f"the first 16 of {len(val_images[1])} images" in err


def test_eval_runs_in_the_precision_and_layout_the_net_trained_in(trained, tiny_store, capsys):
    """Issue 28: evaluation defaults to the run's train.precision and train.channels_last (bf16 +
    channels-last on a CPU run of the quick preset); --precision overrides; fp16 stays on CUDA."""
    import dataclasses

    from alexnet.evaluate import read_record, trained_options
    record = read_record(trained / "best.pt")
    bf16 = dataclasses.replace(record, config=dataclasses.replace(record.config, train=dataclasses.replace(
        record.config.train, precision="bf16", channels_last=True)))
    how = trained_options(bf16, torch.device("cpu"))
    assert (how.precision, how.channels_last, how.crop) == ("bf16", True, record.config.data.crop)
    fp16 = dataclasses.replace(bf16, config=dataclasses.replace(bf16.config, train=dataclasses.replace(
        bf16.config.train, precision="fp16")))
    assert trained_options(fp16, torch.device("cpu")).precision == "fp32"
    assert main(["eval", str(trained / "best.pt"), "--data", str(tiny_store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == record.config.train.precision
    assert main(["eval", str(trained / "best.pt"), "--data", str(tiny_store), "--json", "--precision", "bf16"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "bf16"
