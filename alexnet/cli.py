"""The `alexnet` command line. Every user mistake ends in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import UserError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="preset name (alexnet config --list) or a .toml file that edits the defaults")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. --set optim.lr=0.02 train.precision=bf16")


def _config(args, extra: list[str] | None = None):
    from .config import build_config
    return build_config(args.preset, (extra or []) + args.overrides)


def cmd_config(args) -> int:
    from .config import preset_names, to_dict
    if args.list:
        print("\n".join(preset_names()))
        return 0
    print(json.dumps(to_dict(_config(args)), indent=2))
    return 0


def cmd_summary(args) -> int:
    from .model import build_model
    from .summary import format_table, layer_table
    cfg = _config(args)
    table = layer_table(build_model(cfg.model), args.crop or cfg.data.crop)
    print(json.dumps(table, indent=2) if args.json else format_table(table))
    return 0


def cmd_prepare(args) -> int:
    from .data.prepare import prepare
    labels: dict[str, str] = {}
    for item in args.labels or []:
        split, sep, path = item.partition("=")
        if not sep or not split or not path:
            raise UserError(f"--labels {item!r}: expected SPLIT=FILE, e.g. --labels val=LOC_val_solution.csv")
        if split in labels:
            raise UserError(f"--labels: split {split} is given twice ({labels[split]}, {path})")
        labels[split] = path
    summary = prepare(args.src, args.out, size=args.size, fmt=args.format, quality=args.quality,
                      workers=args.workers, strict=args.strict, splits=args.splits,
                      limit_per_class=args.limit_per_class, progress=not args.quiet,
                      labels=labels or None, synsets=args.synsets, full_decode=args.full_decode)
    print(summary.line())
    return 0


def cmd_train(args) -> int:
    from .train import train
    extra = []
    if args.resume:
        from .config import apply_overrides
        cfg = _resumed_config(Path(args.resume))
        apply_overrides(cfg, args.overrides)
        resume = True
    else:
        extra += [f"data.store={args.data}"] if args.data else []
        extra += [f"train.out={args.out}"] if args.out else []
        cfg = _config(args, extra)
        resume = False
    result = train(cfg, resume=resume)
    print(json.dumps(result))
    return 130 if result["status"] == "interrupted" else 0


def _resumed_config(run: Path):
    """The config saved in a run folder, so `--resume RUN` needs nothing else."""
    from .config import from_dict
    path = run / "config.json"
    if not path.is_file():
        raise UserError(f"nothing to resume in {run}: it has no config.json (is it a run folder?)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}); restore it from last.pt's config") from None
    cfg = from_dict(data)
    cfg.train.out = str(run)
    return cfg


def cmd_eval(args) -> int:
    from .data.store import open_store
    from .evaluate import evaluate_checkpoints
    from .train import resolve_device
    store = open_store(args.data)
    result = evaluate_checkpoints(args.checkpoints, store, args.split, args.views, resolve_device(args.device),
                                  args.batch_size, args.precision, progress=not args.json)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(args.checkpoints)} net(s), {args.views}, {result['images']} images of {result['split']}: "
              f"top-1 error {100 * result['top1_error']:.2f}%, top-5 error {100 * result['top5_error']:.2f}%")
    return 0


def cmd_quickstart(args) -> int:
    from .quickstart import quickstart
    result = quickstart(data_dir=args.data_dir, work=Path(args.work), preset=args.preset or "quick", overrides=args.overrides)
    return 130 if result.get("status") == "interrupted" else 0


def cmd_bench_model(args) -> int:
    from .bench import bench_model, format_model
    from .data.store import open_store
    from .train import resolve_device
    device = resolve_device(args.device)
    batch = args.batch_size or (256 if device.type == "cuda" else 16)
    steps = args.steps or (50 if device.type == "cuda" else 3)
    compile_ = device.type == "cuda" and not args.no_compile
    store = open_store(args.data) if args.data else None
    result = bench_model(device, batch, steps, warmup=args.warmup, compile_=compile_, store=store,
                         threads=args.data_threads, decode=args.decode, compile_mode=args.compile_mode)
    print(json.dumps(result) if args.json else format_model(result))
    return 0


def cmd_bench_data(args) -> int:
    from .bench_data import bench_data, format_data
    from .train import resolve_device
    device = resolve_device(args.device)
    result = bench_data(args.source, Path(args.work), device, args.batch_size, args.batches, args.workers,
                        crop=args.crop, size=args.size, data_dir=args.data_dir,
                        synthetic_images=args.synthetic_images, progress=not args.json)
    print(json.dumps(result) if args.json else format_data(result))
    return 0


def cmd_bench_curve(args) -> int:
    from .bench_curve import bench_curve, check_out, format_curve, to_json, write_json
    check_out(args.out)
    result = bench_curve(args.data, args.preset, args.overrides, steps=args.steps, device=args.device,
                         precision=args.precision, compile_=not args.no_compile, window=args.window)
    if args.out:
        write_json(to_json(result), args.out)
    print(to_json(result) if args.json else format_curve(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alexnet", description="The 2012 AlexNet: train, evaluate, inspect.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("quickstart", help="prepare the bundled Imagenette, train, evaluate (the main job)")
    _add_config_args(p)
    p.add_argument("--data-dir", help="folder holding imagenette-224.tar.gz (default: $ALEXNET_DATA, ../shared/data)")
    p.add_argument("--work", default=".", help="where stores/ and runs/ go (default: current folder)")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("prepare", help="turn an image-folder tree or archive into a store (§2)")
    p.add_argument("src", help="SRC/<split>/<class>/<images>, or a .tar/.tar.gz with that layout")
    p.add_argument("out", help="store folder to create (re-running continues an interrupted prepare)")
    p.add_argument("--size", type=int, default=256, help="stored side S (§2: 256)")
    p.add_argument("--format", choices=["raw", "jpeg"], default="raw", help="raw uint8 or JPEG-compressed")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality for --format jpeg")
    p.add_argument("--full-decode", action="store_true",
                   help="decode large JPEGs at full scale (slower; pixels identical to torchvision's Resize+CenterCrop)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--splits", nargs="+", default=None, help="only these splits (default: all)")
    p.add_argument("--limit-per-class", type=int, default=None, help="first K images per class (demos, tests)")
    p.add_argument("--strict", action="store_true", help="any unreadable image is an error instead of a skip")
    p.add_argument("--labels", action="append", metavar="SPLIT=FILE",
                   help="split SPLIT is flat (ImageNet's val: SRC/SPLIT/ILSVRC2012_val_*.JPEG, no class folders); "
                        "FILE gives each image's class, a class folder name of the other splits: 'file,class' "
                        "lines (Kaggle's LOC_val_solution.csv; comma, tab or space; header and extension optional) "
                        "or the devkit's ILSVRC2012_validation_ground_truth.txt (needs --synsets). Unknown classes, "
                        "missing files and unlabelled images are skipped into skipped.tsv. Repeatable")
    p.add_argument("--synsets", metavar="FILE",
                   help="for the devkit's ground truth: one wnid per line in ILSVRC2012_ID order (line 1 = ID 1), "
                        "made from the devkit's meta.mat with: python -c \"import scipy.io; "
                        "s = scipy.io.loadmat('meta.mat')['synsets'][:1000, 0]; print('\\n'.join(str(x['WNID'][0]) "
                        "for x in sorted(s, key=lambda x: int(x['ILSVRC2012_ID'][0, 0]))))\" > synsets.txt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a net (§5)")
    _add_config_args(p)
    p.add_argument("--data", help="store folder (same as --set data.store=...)")
    p.add_argument("--out", help="run folder (same as --set train.out=...)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN exactly where it stopped")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1/top-5 error of one net or an ensemble (§6)")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="one or more checkpoints; several are averaged")
    p.add_argument("--data", required=True, help="store folder")
    p.add_argument("--split", default=None, help="default: the validation split the checkpoint was trained with")
    p.add_argument("--views", choices=["center", "10crop"], default="center")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("summary", help="layer table: output shapes, neurons, parameters (§3.5)")
    _add_config_args(p)
    p.add_argument("--crop", type=int, default=None, help="input side (default: data.crop)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("bench", help="measure throughput side by side with a baseline")
    bench = p.add_subparsers(dest="what", required=True)
    p = bench.add_parser("model", help="train/inference img/s: paper net (reference, fast) vs torchvision")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=None, help="default 256 on CUDA, 16 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="fast path without torch.compile")
    p.add_argument("--compile-mode", choices=["default", "reduce-overhead", "max-autotune"], default="default",
                   help="torch.compile mode of the fast path (reduce-overhead: CUDA graphs)")
    p.add_argument("--data", default=None, metavar="STORE",
                   help="also time the training step fed from this store vs from a synthetic batch")
    p.add_argument("--data-threads", type=int, default=0, help="loader decode threads (0: one per core)")
    p.add_argument("--decode", choices=["cpu", "device"], default="cpu", help="jpeg stores: where to decode")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_model)

    p = bench.add_parser("data", help="img/s delivered to the model: torchvision ImageFolder/PIL/DataLoader vs the store")
    p.add_argument("--source", choices=["imagenette", "synthetic"], default="synthetic",
                   help="synthetic: generated ImageNet-like JPEGs (~500x375, ~105 KB); imagenette: the bundled archive")
    p.add_argument("--work", default="bench-data", help="folder for extracted/generated images and stores (reused)")
    p.add_argument("--data-dir", default=None, help="folder holding imagenette-224.tar.gz (default: as quickstart)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=50, help="timed batches per row")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers / decode threads")
    p.add_argument("--synthetic-images", type=int, default=2000)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_data)

    p = bench.add_parser("curve", help="loss curves of the fast and reference paths vs run-to-run noise (issue 4)")
    _add_config_args(p)
    p.add_argument("--data", required=True, help="store folder (same as --set data.store=...)")
    p.add_argument("--steps", type=int, default=200, help="SGD steps per run")
    p.add_argument("--window", type=int, default=20, help="moving-average window in steps")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="fast path autocast (default: bf16 on CUDA, fp32 on CPU); the reference path is fp32")
    p.add_argument("--no-compile", action="store_true", help="fast path without torch.compile (CUDA)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="also write the JSON result to this file")
    p.set_defaults(func=cmd_bench_curve)

    p = sub.add_parser("config", help="print the resolved config")
    _add_config_args(p)
    p.add_argument("--list", action="store_true", help="list the presets")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"alexnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("alexnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
