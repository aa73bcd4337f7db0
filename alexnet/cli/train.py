"""`alexnet train`, `alexnet eval` and `alexnet quickstart`: the jobs of the paper (§5, §6)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..config import choices
from ..errors import ConfigError, UserError
from .args import NON_NEGATIVE, POSITIVE, add_config_args, config_from_args, given_keys

SHORTCUTS = {  # flag -> config key: the flags users of pytorch/examples and torchvision's references type
    "epochs": "schedule.epochs", "lr": "optim.lr", "batch_size": "optim.batch_size", "workers": "loader.threads",
    "wd": "optim.weight_decay", "momentum": "optim.momentum",
}


def add_shortcut_args(p) -> None:
    p.add_argument("--epochs", metavar="N", help="the budget in epochs (= --set schedule.epochs=N)")
    p.add_argument("--lr", metavar="LR", help="the learning rate (= --set optim.lr=LR)")
    p.add_argument("-b", "--batch-size", metavar="N", help="images per SGD step (= --set optim.batch_size=N)")
    p.add_argument("-j", "--workers", metavar="N",
                   help="threads decoding each batch (= --set loader.threads=N; 0: one per core)")
    p.add_argument("--wd", "--weight-decay", dest="wd", metavar="WD",
                   help="weight decay (= --set optim.weight_decay=WD)")
    p.add_argument("--momentum", metavar="M", help="momentum (= --set optim.momentum=M)")


def shortcut_overrides(args, more: dict[str, str] | None = None) -> list[str]:
    """The `key=value` overrides of the shortcut flags given (SHORTCUTS, and `more` of the command);
    a key also given by --set with another value is an error."""
    items = [f"{key}={getattr(args, dest)}" for dest, key in {**SHORTCUTS, **(more or {})}.items()
             if getattr(args, dest) is not None]
    given = dict(o.split("=", 1) for o in args.overrides if "=" in o)
    for key, value in (item.split("=", 1) for item in items):
        if given.get(key, value) != value:
            raise UserError(f"--set {key}={given[key]} contradicts the flag that sets {key}={value}: give one of them")
    return items


def resume_target(path: Path) -> tuple[Path, Path | None]:
    """--resume RUN or --resume CHECKPOINT: the run folder, and the checkpoint to continue from (None: RUN/last.pt)."""
    return (path.parent, path) if path.is_file() else (path, None)


def cmd_train(args) -> int:
    from ..train import train
    from ..train.distributed import env_rank
    from ..train.resume import resumed_config
    if args.seeds:
        return _train_seeds(args)
    extra = shortcut_overrides(args)
    checkpoint = None
    if args.resume:
        given = [flag for flag, value in (("--preset", args.preset), ("--data", args.data), ("--out", args.out)) if value]
        if given:
            raise UserError(f"{given[0]} cannot be used with --resume: the run continues with its own config "
                            f"({Path(args.resume) / 'config.json'}); --set may change its budget, lr and logging")
        run, checkpoint = resume_target(Path(args.resume))
        cfg, resume, given = resumed_config(run, extra + args.overrides), True, None  # its config fits its store
    else:
        extra += [f"data.store={args.data}"] if args.data else []
        extra += [f"train.out={args.out}"] if args.out else []
        cfg, resume, given = config_from_args(args, extra), False, given_keys(extra + args.overrides)
        if cfg.finetune.source:  # a fresh run would ignore it: the source's weights are loaded by finetune
            raise ConfigError(f"finetune.source={cfg.finetune.source} is set by `alexnet finetune MODEL --data STORE`, "
                              "which loads the trained layers: use that command")
    from ..viz.tensorboard import epoch_images
    result = train(cfg, resume=resume, checkpoint=checkpoint, hooks=[epoch_images], given=given)
    if env_rank() == 0:  # under torchrun, rank 0 speaks for the job
        print(json.dumps(result))
    return 130 if result["status"] == "interrupted" else 0


def _train_seeds(args) -> int:
    """§6 an ensemble: one run per seed in OUT/seed-S (under torchrun, one member per process)."""
    import sys

    from ..train.ensemble import train_seeds
    if args.resume:
        raise UserError("--seeds continues its members by itself: run the same --seeds command again, "
                        "or resume one member with --resume OUT/seed-S")
    extra = shortcut_overrides(args)
    extra += [f"data.store={args.data}"] if args.data else []
    extra += [f"train.out={args.out}"] if args.out else []
    cfg = config_from_args(args, extra)
    results = train_seeds(cfg, args.seeds, given_keys(extra + args.overrides))
    for result in results:
        print(json.dumps(result))
    print(f"alexnet: evaluate the ensemble with: alexnet eval {cfg.train.out}/seed-*/best.pt --data {cfg.data.store}",
          file=sys.stderr)
    return 130 if any(r["status"] == "interrupted" for r in results) else 0


def cmd_eval(args) -> int:
    from ..data.store import open_store
    from ..evaluate import evaluate_nets, trained_options
    from ..runtime import resolve_device
    from ..ship.weights import load
    from ..train import distributed
    resolve_device(args.device, "--device")  # a missing device is named by its flag
    store = open_store(args.data)
    layout = distributed.from_env(args.device)  # under torchrun each process evaluates its share of the images
    device = distributed.process_device(args.device, layout.local_rank)
    nets = []
    for path in args.checkpoints:  # every format a net is written in
        model, weights = load(path, device)
        nets.append((weights.source, model, weights.record))  # a run folder: its best.pt
    how = trained_options(nets[0][2], device)  # the precision and layout the net trained in, unless --precision says
    how = dataclasses.replace(how, batch_size=args.batch_size, precision=args.precision or how.precision,
                              progress=not args.json and layout.is_main, **layout.eval_shard())
    result = evaluate_nets(nets, store, args.split, args.views, how)
    layout.close()
    if not layout.is_main:
        return 0
    if args.json:
        print(json.dumps(result))
    else:
        note = f" ({result['note']})" if "note" in result else ""
        rescaled = f" ({result['rescaled']})" if "rescaled" in result else ""
        hardest = ", ".join(f"{h['class']} {100 * h['top1_error']:.0f}%" for h in result["hardest"])
        print(f"{len(nets)} net(s), {result['views']}, {result['images']} images of {result['split']}{rescaled}: "
              f"top-1 error {100 * result['top1_error']:.2f}%, top-5 error {100 * result['top5_error']:.2f}%{note}; "
              f"hardest classes: {hardest}")
    return 0


def cmd_quickstart(args) -> int:
    from .args import check_output
    from .quickstart import quickstart
    check_output(args.results, "--results")  # before the work, not after it
    result = quickstart(data_dir=args.data_dir, work=Path(args.work), preset=args.preset or "quick", overrides=args.overrides,
                        results_dir=Path(args.results) if args.results else None)
    return 130 if result.get("status") == "interrupted" else 0


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="prepare the bundled Imagenette, train, evaluate (the main job)")
    add_config_args(p)
    p.add_argument("--data-dir", help="folder holding imagenette-224.tar.gz (default: $ALEXNET_DATA, ../shared/data)")
    p.add_argument("--work", default=".", help="where stores/ and runs/ go (default: current folder)")
    p.add_argument("--results", metavar="DIR", help="also write the record (errors, seconds per phase, commit) as "
                   "DIR/result.json and DIR/table.md: `--results results/quickstart` makes the README's headline")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("train", help="train a net (§5)")
    add_config_args(p)
    p.add_argument("--data", help="store folder (same as --set data.store=...)")
    p.add_argument("--out", help="run folder (same as --set train.out=...)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue the run in folder RUN exactly where it stopped (or from the checkpoint file RUN, "
                        "e.g. RUN/last.pt; best.pt holds no training state); --set may then change only its budget (schedule.*), optim.lr, logging and "
                        "how it runs (device, threads, kernels, precision)")
    add_shortcut_args(p)
    p.add_argument("--seeds", nargs="+", type=NON_NEGATIVE, metavar="S",
                   help="§6 an ensemble: one run per seed into OUT/seed-S, one after another (under torchrun one "
                        "per process); the same command again continues them; then alexnet eval OUT/seed-*/best.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="top-1/top-5 error of one net or an ensemble (§6)")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="one or more nets: checkpoints (.pt; a run folder: its best.pt), weights (.safetensors), "
                        "torchvision .pth or ONNX files; several are averaged")
    p.add_argument("--data", required=True, help="store folder (of another side: its images are rescaled to the "
                   "net's stored side, as predict does)")
    p.add_argument("--split", default=None, help="default: the validation split the checkpoint was trained with")
    p.add_argument("--views", choices=choices("eval.views"), default=None,
                   help="the centre patch, or the ten patches of §4.1 (corners, centre, reflections); default: "
                        "eval.views of the first checkpoint's config (10crop, the paper's, unless its run set it)")
    p.add_argument("--batch-size", type=POSITIVE, default=256, help="images per batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=choices("train.precision"),
                   help="autocast precision (default: the one the first net trained in, train.precision)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_eval)
