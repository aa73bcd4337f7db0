"""The `alexnet` command line. One module per group of commands registers its subcommands;
every user mistake ends in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import UserError
from . import bench, data, experiments, info, train, viz

GROUPS = (train, data, info, bench, experiments, viz)  # each has register(subparsers); their order is the --help order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alexnet", description="The 2012 AlexNet: train, evaluate, inspect.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
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
