"""`alexnet train`, `alexnet eval` and `alexnet quickstart`: the jobs of the paper (§5, §6)."""
from __future__ import annotations

import json
from pathlib import Path

from .args import add_config_args, config_from_args


def cmd_train(args) -> int:
    from ..train import train
    from ..train.distributed import env_rank
    from ..train.resume import resumed_config
    if args.seeds:
        return _train_seeds(args)
    if args.resume:
        cfg, resume = resumed_config(Path(args.resume), args.overrides), True
    else:
        extra = [f"data.store={args.data}"] if args.data else []
        extra += [f"train.out={args.out}"] if args.out else []
        cfg, resume = config_from_args(args, extra), False
    result = train(cfg, resume=resume)
    if env_rank() == 0:  # under torchrun, rank 0 speaks for the job
        print(json.dumps(result))
    return 130 if result["status"] == "interrupted" else 0


def _train_seeds(args) -> int:
    """§6 an ensemble: one run per seed in OUT/seed-S (under torchrun, one member per process)."""
    import sys

    from ..errors import UserError
    from ..train.ensemble import train_seeds
    if args.resume:
        raise UserError("--seeds continues its members by itself: run the same --seeds command again, "
                        "or resume one member with --resume OUT/seed-S")
    extra = [f"data.store={args.data}"] if args.data else []
    extra += [f"train.out={args.out}"] if args.out else []
    cfg = config_from_args(args, extra)
    results = train_seeds(cfg, args.seeds)
    for result in results:
        print(json.dumps(result))
    print(f"alexnet: evaluate the ensemble with: alexnet eval {cfg.train.out}/seed-*/best.pt --data {cfg.data.store}",
          file=sys.stderr)
    return 130 if any(r["status"] == "interrupted" for r in results) else 0


def cmd_eval(args) -> int:
    from ..data.store import open_store
    from ..evaluate import evaluate_checkpoints
    from ..train import distributed
    store = open_store(args.data)
    layout = distributed.from_env(args.device)  # under torchrun each process evaluates its share of the images
    result = evaluate_checkpoints(args.checkpoints, store, args.split, args.views,
                                  distributed.process_device(args.device, layout.local_rank), args.batch_size,
                                  args.precision, progress=not args.json and layout.is_main, **layout.eval_shard())
    layout.close()
    if not layout.is_main:
        return 0
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
    p.add_argument("--seeds", nargs="+", type=int, metavar="S",
                   help="§6 an ensemble: one run per seed into OUT/seed-S, one after another (under torchrun one "
                        "per process); the same command again continues them; then alexnet eval OUT/seed-*/best.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1/top-5 error of one net or an ensemble (§6)")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="one or more checkpoints; several are averaged")
    p.add_argument("--data", required=True, help="store folder")
    p.add_argument("--split", default=None, help="default: the validation split the checkpoint was trained with")
    p.add_argument("--views", choices=["center", "10crop"], default="center",
                   help="the centre patch, or the ten patches of §4.1 (corners, centre, reflections)")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="autocast precision")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_eval)
