"""A result on disk: results/<name>/result.json (the numbers with the command, date and device
that made them), a plot, and table.md (the markdown the README shows)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..fsutil import write_atomic
from ..runtime import run_facts


def environment(device: torch.device, command: str = "") -> dict:
    """How the result was made (runtime.run_facts), written beside every result."""
    return run_facts(device, command)


def write_result(out: Path, name: str, result: dict, figure, table: str) -> Path:
    """out/result.json, out/<name>.png and out/table.md; returns the JSON's path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "result.json"
    write_atomic(path, (json.dumps(result, indent=1) + "\n").encode())
    figure.savefig(out / f"{name}.png", dpi=110)
    write_atomic(out / "table.md", (table.rstrip() + "\n").encode())
    return path


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
