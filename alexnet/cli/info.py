"""`alexnet config` and `alexnet summary`: what a config resolves to, and the net it builds."""
from __future__ import annotations

import json

from .args import POSITIVE, add_config_args, config_from_args


def cmd_config(args) -> int:
    from ..config import preset_names, to_dict
    if args.list:
        print("\n".join(preset_names()))
        return 0
    print(json.dumps(to_dict(config_from_args(args)), indent=2))
    return 0


def cmd_summary(args) -> int:
    from ..nets.model import build_model
    from ..nets.sizes import check_crop
    from ..nets.summary import format_table, layer_table
    cfg = config_from_args(args)
    crop = args.crop or cfg.data.crop
    check_crop(cfg.model, crop, "--crop" if args.crop else "data.crop")
    table = layer_table(build_model(cfg.model), crop)
    print(json.dumps(table, indent=2) if args.json else format_table(table))
    return 0


def register(sub) -> None:
    p = sub.add_parser("summary", help="layer table: output shapes, neurons, parameters (§3.5)")
    add_config_args(p)
    p.add_argument("--crop", type=POSITIVE, default=None, help="input side (default: data.crop)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("config", help="print the resolved config")
    add_config_args(p)
    p.add_argument("--list", action="store_true", help="list the presets")
    p.set_defaults(func=cmd_config)
