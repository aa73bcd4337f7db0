"""Arguments shared by several commands."""
from __future__ import annotations

import argparse


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="preset name (alexnet config --list) or a .toml file that edits the defaults")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. --set optim.lr=0.02 train.precision=bf16")


def config_from_args(args, extra: list[str] | None = None):
    """The config of --preset and --set, after `extra` overrides (from a command's own flags)."""
    from ..config import build_config
    return build_config(args.preset, (extra or []) + args.overrides)
