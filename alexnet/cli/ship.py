"""`alexnet predict`, `alexnet export` and `alexnet finetune`: using a trained net (alexnet/ship/)."""
from __future__ import annotations

import json
import sys

from ..config import choices
from ..errors import UserError
from .args import POSITIVE, check_output
from .train import add_shortcut_args, shortcut_overrides

MODEL = ("a checkpoint (.pt), weights (.safetensors), a torchvision AlexNet state dict (.pth), an ONNX file "
         "or a run folder (its best.pt)")  # what ship/weights.py load reads


def cmd_predict(args) -> int:
    from ..runtime import resolve_device
    from ..ship.figure import PANELS, figure4
    from ..ship.predict import image_files, predict_files
    from ..ship.weights import load
    device = resolve_device(args.device, "--device")
    check_output(args.figure, "--figure")
    model, weights = load(args.model, device)
    files, results = image_files(args.images)
    for p in predict_files(model, weights, files, args.topk, args.views, args.batch_size, device):
        results.append(p)
        if p.error:
            continue
        if args.json:
            print(json.dumps(p.to_json()), flush=True)
        else:
            top = ", ".join(f"{n} ({100 * q:.1f}%)" for n, q in zip(p.names, p.probs))
            print(f"{p.file}: {top}", flush=True)
    bad = [p for p in results if p.error]
    for p in bad:
        print(f"alexnet: error: {p.file}: {p.error}; skipped", file=sys.stderr)
    if args.figure:
        path, drawn = figure4(results, args.figure, weights.size)
        readable = sum(not p.error for p in results)
        more = f" (the first {drawn} of {readable} images: a figure shows at most {PANELS})" if drawn < readable else ""
        print(f"figure: {path}{more}", file=sys.stderr)
    return 2 if bad else 0


def cmd_export(args) -> int:
    from ..ship.onnx import PARITY_LIMIT, export_onnx
    from ..ship.weights import load, net_file, save_safetensors
    if not (args.weights or args.onnx):
        raise UserError("export needs --weights OUT.safetensors and/or --onnx OUT.onnx")
    if net_file(args.model).suffix == ".onnx":
        raise UserError(f"{args.model} is already an ONNX export (a graph, not the net's tensors): export from the "
                        "checkpoint or weights file it was made from")
    check_output(args.weights, "--weights")
    check_output(args.onnx, "--onnx")  # both before either is written
    model, weights = load(args.model)
    if args.weights:
        path = save_safetensors(model, weights, args.weights)
        print(f"weights: {path} ({len(model.state_dict())} tensors, {weights.num_params:,} parameters, "
              f"{len(weights.classes)} classes, {weights.size}px stored / {weights.crop}px crops)")
    if args.onnx:
        diff = export_onnx(model, weights.meta, weights.input, args.onnx)
        print(f"onnx: {args.onnx}; onnxruntime vs PyTorch (fp32): max |logit difference| {diff:.2e} "
              f"(limit {PARITY_LIMIT:g})")
    return 0


def cmd_finetune(args) -> int:
    from ..ship.finetune import finetune
    extra = shortcut_overrides(args, {"freeze": "finetune.freeze", "pretrained_lr_mult": "finetune.pretrained_lr_mult"})
    result = finetune(args.model, args.data, args.out, extra + args.overrides)
    print(json.dumps(result))
    return 130 if result["status"] == "interrupted" else 0


def register(sub) -> None:
    model_help = MODEL
    p = sub.add_parser("predict", help="the top classes of your images, with the model's own preprocessing")
    p.add_argument("model", metavar="MODEL", help=model_help)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders (searched recursively) or globs")
    p.add_argument("--topk", type=POSITIVE, default=5, help="how many classes to show per image (default 5)")
    p.add_argument("--views", choices=choices("eval.views"), default="center",
                   help="the centre patch, or the ten patches of §4.1 averaged (as `alexnet eval`)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--figure", metavar="OUT.png", help="also draw the predictions as the paper's Figure 4 (left)")
    p.add_argument("--batch-size", type=POSITIVE, default=64, help="images per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (ONNX files run on the CPU)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="self-describing weights (.safetensors) and ONNX for onnxruntime")
    p.add_argument("model", metavar="MODEL", help=MODEL.replace(", an ONNX file", ""))
    p.add_argument("--weights", metavar="OUT.safetensors",
                   help="write the weights with their description: config, classes, mean image, PCA, sizes, metrics")
    p.add_argument("--onnx", metavar="OUT.onnx",
                   help="write an ONNX graph (dynamic batch, LRN as ONNX LRN, dropout folded), checked in onnxruntime")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("finetune", help="fine-tune a trained net on another store's classes (§6)")
    p.add_argument("model", metavar="MODEL", help="the trained net: " + MODEL.replace(", an ONNX file", ""))
    p.add_argument("--data", required=True, metavar="STORE", help="store folder of the new classes (alexnet prepare)")
    p.add_argument("--out", metavar="RUN", help="run folder (default runs/finetune-<store name>)")
    p.add_argument("--freeze", metavar="LAYERS",
                   help="layers kept as trained, e.g. conv1..conv5 or conv1,conv2 (= --set finetune.freeze=...)")
    p.add_argument("--pretrained-lr-mult", metavar="X",
                   help="the trained layers learn at --lr times X (default 0.1; = --set finetune.pretrained_lr_mult=X). "
                        "Without --lr they keep the rate they were trained with and the new classifier learns 1/X "
                        "times faster")
    add_shortcut_args(p)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides of the trained net's recipe, e.g. --set schedule.epochs=5")
    p.set_defaults(func=cmd_finetune)
