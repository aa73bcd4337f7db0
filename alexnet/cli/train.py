"""`alexnet train`, `alexnet eval` and `alexnet quickstart`: the jobs of the paper (§5, §6)."""
from __future__ import annotations

import json
from pathlib import Path

from .args import add_config_args, config_from_args


def cmd_train(args) -> int:
    from ..train import train
    from ..train.resume import resumed_config
    if args.resume:
        cfg, resume = resumed_config(Path(args.resume), args.overrides), True
    else:
        extra = [f"data.store={args.data}"] if args.data else []
        extra += [f"train.out={args.out}"] if args.out else []
        cfg, resume = config_from_args(args, extra), False
    result = train(cfg, resume=resume)
    print(json.dumps(result))
    return 130 if result["status"] == "interrupted" else 0


def cmd_eval(args) -> int:
    from ..data.store import open_store
    from ..evaluate import evaluate_checkpoints
    from ..runtime import resolve_device
    store = open_store(args.data)
    result = evaluate_checkpoints(args.checkpoints, store, args.split, args.views, resolve_device(args.device),
                                  args.batch_size, args.precision, progress=not args.json)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(args.checkpoints)} net(s), {result['views']}, {result['images']} images of {result['split']}: "
              f"top-1 error {100 * result['top1_error']:.2f}%, top-5 error {100 * result['top5_error']:.2f}%")
    return 0


def cmd_quickstart(args) -> int:
    from .quickstart import quickstart
    result = quickstart(data_dir=args.data_dir, work=Path(args.work), preset=args.preset or "quick", overrides=args.overrides)
    return 130 if result.get("status") == "interrupted" else 0


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="prepare the bundled Imagenette, train, evaluate (the main job)")
    add_config_args(p)
    p.add_argument("--data-dir", help="folder holding imagenette-224.tar.gz (default: $ALEXNET_DATA, ../shared/data)")
    p.add_argument("--work", default=".", help="where stores/ and runs/ go (default: current folder)")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("train", help="train a net (§5)")
    add_config_args(p)
    p.add_argument("--data", help="store folder (same as --set data.store=...)")
    p.add_argument("--out", help="run folder (same as --set train.out=...)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue the run in folder RUN exactly where it stopped; --set may then change only its "
                        "budget (schedule.*), optim.lr, logging and how it runs (device, threads, kernels, precision)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1/top-5 error of one net or an ensemble (§6)")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="one or more checkpoints; several are averaged")
    p.add_argument("--data", required=True, help="store folder")
    p.add_argument("--split", default=None, help="default: the validation split the checkpoint was trained with")
    p.add_argument("--views", choices=["center", "10crop"], default=None,
                   help="the centre patch, or the ten patches of §4.1 (corners, centre, reflections); default: "
                        "eval.views of the first checkpoint's config (10crop, the paper's, unless its run set it)")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="autocast precision")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_eval)
