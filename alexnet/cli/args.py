"""Arguments shared by several commands, the parser class every command uses, and the argument
types that carry their range (tests/test_input.py sweeps a value outside each one)."""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
from pathlib import Path

from ..errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that name the argument. An unknown flag that looks
    like a config key (`--lr 0.1`) gets a hint: `--set optim.lr=0.1`."""

    has_commands = False

    def add_subparsers(self, **kwargs):
        self.has_commands = True
        return super().add_subparsers(**kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extra = super().parse_known_args(args, namespace)
        if extra and not self.has_commands:  # a command's own parser: what it does not know is an error
            self.error(f"unrecognized arguments: {' '.join(extra)}{self._hint(extra)}")
        return namespace, extra

    def _hint(self, extra: list[str]) -> str:
        flags = [a for a in extra if a.startswith("-")]
        if not flags:
            return ""
        flag, _, value = flags[0].partition("=")
        i = extra.index(flags[0])
        if not value and i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            value = extra[i + 1]
        key = config_key(flag.lstrip("-"))
        options = [s for a in self._actions for s in a.option_strings if s not in ("-h", "--help")]
        if key and "--set" in options:
            return f"; to set {key}, use --set {key}={value or 'VALUE'}"
        close = difflib.get_close_matches(flag, options, n=1, cutoff=0.75)
        return f"; did you mean {close[0]}?" if close else ""


# PyTorch-example and common spellings of config keys, for the hint of an unknown flag
ALIASES = {"lr": "optim.lr", "learning_rate": "optim.lr", "wd": "optim.weight_decay", "batch_size": "optim.batch_size",
           "bs": "optim.batch_size", "b": "optim.batch_size", "j": "loader.threads", "workers": "loader.threads"}


def config_key(name: str) -> str | None:
    """The config key a flag name stands for (`lr` -> optim.lr, `pca-std` -> data.pca_std), or None."""
    from ..config import Config
    name = name.replace("-", "_")
    if name in ALIASES:
        return ALIASES[name]
    cfg = Config()
    keys = [f"{s.name}.{f.name}" for s in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, s.name))]
    found = [k for k in keys if k.split(".", 1)[1] == name or k.replace(".", "_") == name]
    return found[0] if len(found) == 1 else None


class Number:
    """An argparse type: an int (or float) in [low, high], finite. Errors name the range."""

    def __init__(self, kind: type = int, low: float = -math.inf, high: float = math.inf):
        self.kind, self.low, self.high = kind, low, high
        self.__name__ = kind.__name__  # argparse names the type in some messages

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.high == math.inf:
            return f"{what} >= {self.low:g}"
        return f"{what} in {self.low:g}..{self.high:g}"

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value


POSITIVE = Number(int, 1)  # counts: images, batches, steps
NON_NEGATIVE = Number(int, 0)  # 0 has a meaning ("auto", "none")
SHARE = Number(float, 0.01, 1.0)  # a share of each batch (loader.device_share)


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="preset name (alexnet config --list) or a .toml file that edits the defaults")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. --set optim.lr=0.02 train.precision=bf16")


def config_from_args(args, extra: list[str] | None = None):
    """The config of --preset and --set, after `extra` overrides (from a command's own flags)."""
    from ..config import build_config
    check_agree(extra or [], args.overrides)
    return build_config(args.preset, (extra or []) + args.overrides)


def given_keys(overrides: list[str]) -> set[str]:
    """The config keys the user set on the command line (--set and a command's flags, as key=value),
    as this version spells them."""
    from ..config import current_key
    return {current_key(item.split("=", 1)[0]) for item in overrides if "=" in item}


def check_agree(flags: list[str], overrides: list[str]) -> None:
    """A key set both by a command's flag (as key=value) and by --set must get one value."""
    from ..errors import ConfigError
    given = dict(item.split("=", 1) for item in overrides if "=" in item)
    for key, value in (item.split("=", 1) for item in flags):
        if key in given and given[key] != value:
            raise ConfigError(f"{key} is given twice, {value!r} by a flag and {given[key]!r} by --set: give it once")


def check_output(path: str | None, flag: str) -> None:
    """Fail before the work, not after it, when an output file cannot be written: the nearest
    existing folder above it must be a writable folder (nothing is created here)."""
    if not path:
        return
    probe = Path(path).expanduser().absolute().parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UserError(f"{flag} {path}: cannot write there ({probe} is not a writable folder); choose another path")
