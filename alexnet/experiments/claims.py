"""The paper's claims, one table (`alexnet experiment claims`): each claim's number in the paper,
ours at each size it ran at (cpu: results/NAME/, full: results/full/NAME/, the GPU suite's paper
part), the spread over seeds and a verdict computed by the rule of experiments/verdict.py.
Nothing here trains: it reads the committed result files and writes results/claims.md and
results/claims.json, so the table always says what the results say.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import write_atomic
from ..viz.results import pyplot
from . import verdict as rule

SIZES = ("cpu", "full")  # full: the paper's sizes, run by the GPU suite's paper part into results/full/NAME/


@dataclass(frozen=True)
class Measure:
    """A claim measured at one size: per-seed effects in the paper's direction, and what they ran at."""

    values: list[float]
    ran_at: str  # the size in words: images, steps or epochs, width


@dataclass(frozen=True)
class Claim:
    section: str
    text: str
    paper: float | None  # the paper's effect in the claim's direction (points, or a ratio); None: no number
    paper_text: str
    source: str | None  # the experiment whose results/NAME/result.json it reads; None: no experiment yet
    measure: Callable[[dict], Measure | None] | None = None
    ratio: bool = False


def result_path(results: Path, source: str, size: str) -> Path:
    return results / source / "result.json" if size == "cpu" else results / "full" / source / "result.json"


# -- what each experiment's result says about a claim -------------------------------------------
def _pts(x: float) -> float:
    return round(100 * x, 6)  # errors are fractions in the results, points here


def figure1_ratio(r: dict) -> Measure:
    """tanh epochs / ReLU epochs to the lowest training error both reach (25% when both reach it)."""
    levels = sorted({round(100 * c["error"], 1) for c in r["common_level"]})
    s = r["settings"]
    return Measure([c["ratio"] for c in r["common_level"]],
                   f"{r['curves']['relu'][0]['images']:,} images, <= {s['max_epochs']} epochs, at "
                   f"{', '.join(f'{x:g}%' for x in levels)} training error")


def lrn_cifar_gain(r: dict) -> Measure:
    runs = r["runs"]
    first = runs["true"][0]
    return Measure([_pts(a["top1_error"] - b["top1_error"]) for a, b in zip(runs["false"], runs["true"])],
                   f"{first['train_images']:,} images, {sum(r['settings']['phases'])} steps")


def ablation(variant: str, k: str) -> Callable[[dict], Measure]:
    """The variant's ten-patch error minus the paper net's, per seed (k: top1_error / top5_error)."""
    def measure(r: dict) -> Measure:
        rows, s = r["rows"], r["settings"]
        base = rows["paper net"]["per_seed"]
        return Measure([_pts(a["10crop"][k] - b["10crop"][k]) for a, b in zip(rows[variant]["per_seed"], base)],
                       f"width {_width(s)}, {s['crop']}px, {sum(s['phases'])} steps")
    return measure


def tencrop_gain(r: dict) -> Measure:
    s = r["settings"]
    return Measure([_pts(x["center"]["top1_error"] - x["10crop"]["top1_error"]) for x in r["singles"]],
                   f"width {_width(s)}, {s['crop']}px, {sum(s['phases'])} steps")


def ensemble_gain(r: dict) -> Measure:
    """Each member's ten-patch top-1 error minus the ensemble's."""
    s, e = r["settings"], r["ensemble"]["10crop"]["top1_error"]
    return Measure([_pts(x["10crop"]["top1_error"] - e) for x in r["singles"]],
                   f"{s['nets']} nets (not 5), width {_width(s)}, {sum(s['phases'])} steps")


def extra_gap(variant: str) -> Callable[[dict], Measure]:
    """How much larger the variant's validation - training gap is than the paper net's, per seed."""
    def measure(r: dict) -> Measure:
        s, first = r["settings"], r["runs"]["paper net"][0]
        return Measure([_pts(g) for g in r["extra_gap"][variant]],
                       f"{first['train_images']:,} images, width {_width(s)}, {sum(s['phases'])} steps")
    return measure


def dropout_convergence(r: dict) -> Measure:
    s = r["settings"]
    return Measure([c["ratio"] for c in r["dropout_convergence"]],
                   f"{r['runs']['paper net'][0]['train_images']:,} images, {sum(s['phases'])} steps")


def kernel_measure(key: str) -> Callable[[dict], Measure]:
    """A §6.1 share of the trained nets minus the same at their initialisation, per seed, in points."""
    def measure(r: dict) -> Measure:
        s = r["settings"]
        return Measure([_pts(k["trained"][key] - k["init"][key]) for k in r["kernels"]],
                       f"{r['runs']['paper net'][0]['train_images']:,} images, width {_width(s)}, "
                       f"{sum(s['phases'])} steps")
    return measure


def _width(settings: dict) -> str:
    return next((o.split("=")[1] for o in settings.get("extra", []) if o.startswith("model.width=")), "1")


CLAIMS = [
    Claim("§3.1, Fig. 1", "ReLU reaches 25% training error sooner than tanh (CIFAR-10, four-layer net)", 6.0,
          "6x sooner", "figure1", figure1_ratio, ratio=True),
    Claim("§3.3", "LRN lowers top-1 error", 1.4, "-1.4 points", "ablations", ablation("no LRN", "top1_error")),
    Claim("§3.3", "LRN lowers top-5 error", 1.2, "-1.2 points", "ablations", ablation("no LRN", "top5_error")),
    Claim("§3.3", "LRN lowers CIFAR-10 test error (conv + locally connected net)", 2.0, "13% -> 11%", "lrn-cifar",
          lrn_cifar_gain),
    Claim("§3.4", "overlapping pooling (3/2) lowers top-1 error vs 2/2", 0.4, "-0.4 points", "ablations",
          ablation("pooling 2/2", "top1_error")),
    Claim("§3.4", "overlapping pooling lowers top-5 error", 0.3, "-0.3 points", "ablations",
          ablation("pooling 2/2", "top5_error")),
    Claim("§3.2", "two columns lower top-1 error vs one", 1.7, "-1.7 points", "ablations",
          ablation("one column", "top1_error")),
    Claim("§3.2", "two columns lower top-5 error vs one", 1.2, "-1.2 points", "ablations",
          ablation("one column", "top5_error")),
    Claim("§4.1", "PCA colour noise lowers top-1 error", 1.0, "over 1 point", "ablations",
          ablation("no PCA noise", "top1_error")),
    Claim("§4.1", "without random patches and reflections, substantial overfitting (larger val - train gap)",
          None, "'substantial', no number", "overfitting", extra_gap("no augmentation")),
    Claim("§4.2", "without dropout, substantial overfitting (larger val - train gap)", None,
          "'substantial', no number", "overfitting", extra_gap("no dropout")),
    Claim("§4.2", "dropout roughly doubles the iterations to converge", 2.0, "about 2x", "overfitting",
          dropout_convergence, ratio=True),
    Claim("§4.1", "ten patches lower top-1 error vs the centre patch", 1.5, "-1.5 points (39.0 -> 37.5)",
          "tencrop-ensemble", tencrop_gain),
    Claim("§6", "an ensemble of 5 CNNs lowers top-1 error vs one", 2.6, "-2.6 points (40.7 -> 38.1)",
          "tencrop-ensemble", ensemble_gain),
    Claim("§6", "7 CNNs (two pre-trained on ImageNet Fall 2011) lower top-1 error vs one", 4.0,
          "-4.0 points (40.7 -> 36.7)", None),
    Claim("§7", "removing conv3 raises top-1 error", 2.0, "about +2 points", "ablations",
          ablation("no conv3", "top1_error")),
    Claim("§7", "removing conv4 raises top-1 error", 2.0, "about +2 points", "ablations",
          ablation("no conv4", "top1_error")),
    Claim("§6.1, Fig. 3", "conv1 learns structured kernels: share of energy at low spatial frequency, trained - init (points)",
          None, "a picture, no number", "overfitting", kernel_measure("low_frequency_share")),
    Claim("§6.1, Fig. 3", "the columns specialise in colour: the two columns' mean chroma apart, trained - init (points)", None,
          "column 1 colour-agnostic, column 2 colour-specific", "overfitting", kernel_measure("chroma_split")),
    Claim("§6.1, Fig. 4", "fc7 nearest neighbours share the query's class: share of the 5 nearest training "
          "images, trained - init (points)", None, "a picture, no number", "overfitting",
          kernel_measure("fc7_neighbour_agreement")),
]


# -- the table -------------------------------------------------------------------------------
def rows(results: Path) -> list[dict]:
    """One row per claim and size: the numbers, the interval and the verdict by the rule."""
    out = []
    for c in CLAIMS:
        for size in SIZES:
            path = result_path(results, c.source, size) if c.source else None
            r = json.loads(path.read_text()) if path is not None and path.is_file() else None
            m = c.measure(r) if r is not None and r.get("size") == size else None
            values = m.values if m else []
            i = rule.interval_of(values, c.ratio) if len(values) >= rule.MIN_SEEDS else None
            out.append({"section": c.section, "claim": c.text, "paper": c.paper, "paper_text": c.paper_text,
                        "ratio": c.ratio, "size": size, "source": str(path.relative_to(results)) if path else None,
                        "command": r.get("command") if m else None, "ran_at": m.ran_at if m else None,
                        "seconds": r.get("seconds") if m else None, "date": r.get("date") if m else None,
                        "values": values, "seeds": len(values),
                        "interval": None if i is None else [i.mean, i.low, i.high],
                        "verdict": rule.verdict(values, c.paper, c.ratio, needs_gpu=size == "full")})
    return out


def _num(x: float, ratio: bool) -> str:
    return f"{x:.2f}x" if ratio else f"{x:+.1f}"


def ours(row: dict) -> str:
    if not row["values"]:
        return "-"
    per_seed = ", ".join(_num(v, row["ratio"]) for v in row["values"])
    if row["interval"] is None:
        return f"{per_seed} ({row['ran_at']})"
    mean, low, high = row["interval"]
    return (f"{_num(mean, row['ratio'])} [{_num(low, row['ratio'])}, {_num(high, row['ratio'])}]; "
            f"per seed {per_seed} ({row['ran_at']})")


def markdown(table: list[dict]) -> str:
    lines = ["| § | claim | paper | size | ours: mean [95% interval]; per seed (ran at) | seeds | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['section']} | {r['claim']} | {r['paper_text']} | {r['size']} | {ours(r)} | "
                     f"{r['seeds']} | {r['verdict']} |")
    lines.append(
        f"\nEffects are in the paper's direction: points of error (positive: the way the paper says) or ratios "
        f"(above 1: the way the paper says). The interval is Student's 95% t-interval over the per-seed values "
        f"(ratios: on their logarithms, so their mean is the geometric mean). Verdict, in this order: no result, or fewer than {rule.MIN_SEEDS} seeds: "
        f"'{rule.NOT_RUN}' ('{rule.NOT_RUN_GPU}' for the full size); the interval below 0: '{rule.NOT_REPRODUCED}'; "
        f"above 0 and its top at or beyond the paper's effect (or the paper gives no number): '{rule.REPRODUCED}'; "
        f"above 0 but below the paper's effect: '{rule.SMALLER}'; holding 0 (a ratio 1) and below the paper's "
        f"effect: '{rule.NOT_REPRODUCED}' (the paper's effect is ruled out); holding 0 and reaching the paper's "
        f"effect (or no number): '{rule.NOISE}'. "
        f"cpu rows read results/NAME/result.json, full rows results/full/NAME/result.json "
        f"(the GPU suite's paper part); `alexnet experiment claims` regenerates this table.")
    lines += ["", "| result | command | date | wall time of its units |", "|---|---|---|---|"]
    seen = {}
    for r in table:
        if r["command"] and r["source"] not in seen:
            seen[r["source"]] = r
            wall = "not recorded" if r["seconds"] is None else f"{r['seconds'] / 60:.1f} min"
            lines.append(f"| {r['source']} | `{r['command']}` | {r['date']} | {wall} |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict]):
    """Every measured row: each seed (dots), the 95% interval (bar), the paper's value (red line), no effect (grey)."""
    plt = pyplot()
    measured = [r for r in table if r["values"]]
    fig, axes = plt.subplots(len(measured), 1, figsize=(7.5, 0.75 * len(measured) + 0.6), squeeze=False)
    for ax, r in zip(axes[:, 0], measured):
        ax.axvline(1.0 if r["ratio"] else 0.0, color="grey", lw=0.8)
        if r["paper"] is not None:
            ax.axvline(r["paper"], color="red", lw=1.5)
        if r["interval"] is not None:
            mean, low, high = r["interval"]
            ax.plot([low, high], [0, 0], color="C0", lw=3, alpha=0.5)
            ax.plot([mean], [0], "|", color="C0", ms=12, mew=2)
        ax.plot(r["values"], [0] * len(r["values"]), "k.", ms=6)
        if r["ratio"]:
            ax.set_xscale("log")
        ax.set_yticks([])
        ax.set_title(f"{r['section']} {r['claim']} ({r['size']}): {r['verdict']}", fontsize=7, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("effect in the paper's direction (points, or ratio on a log axis); red: the paper; "
                           "bar: 95% interval; dots: seeds", fontsize=7)
    fig.tight_layout()
    return fig


def write(results: Path) -> list[dict]:
    """results/claims.md, claims.json and claims.png from the result files under `results`."""
    table = rows(results)
    write_atomic(results / "claims.json", (json.dumps(table, indent=1) + "\n").encode())
    write_atomic(results / "claims.md", markdown(table).encode())
    if any(r["values"] for r in table):
        plot(table).savefig(results / "claims.png", dpi=110)
    return table
