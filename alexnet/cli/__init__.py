"""The `alexnet` command line. One module per group of commands registers its subcommands;
every user mistake ends in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import InputWarning, UserError
from . import bench, data, experiments, info, ship, train, viz
from .args import Parser

GROUPS = (train, data, info, bench, ship, viz, experiments)  # each has register(subparsers); the --help order


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="alexnet", description="The 2012 AlexNet: train, evaluate, inspect, predict, export, fine-tune.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


FIRST_STEPS = """alexnet: the 2012 AlexNet. Start with

  alexnet quickstart      prepare the bundled Imagenette, train the paper's net (about 4 to 6 minutes
                          on a 2-core CPU: README.md "Results"), evaluate it

then try it on your own photos:

  alexnet predict runs/quickstart-quick/best.pt photo.jpg

All commands: alexnet --help; one command's options: alexnet COMMAND --help"""


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, InputWarning):
        return f"alexnet: warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


_python_format_warning = warnings.formatwarning


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning  # an InputWarning is one line, like an error
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(FIRST_STEPS)
        return 0
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad argument (2, one line already printed): a code, as below
        return e.code if isinstance(e.code, int) else 0
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
