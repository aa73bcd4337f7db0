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
    ran_at: str  # the size in words: images, steps or epochs, width (and failed runs kept out)


@dataclass(frozen=True)
class Claim:
    section: str
    text: str
    paper: float | None  # the paper's effect in the claim's direction (points, or a ratio); None: no number
    paper_text: str
    source: str | None  # the experiment whose results/NAME/result.json it reads; None: no experiment yet
    measure: Callable[[dict], Measure | None] | None = None
    ratio: bool = False
    independent: str | None = None  # its key in results/independent.json: published ablations on ImageNet


def result_path(results: Path, source: str, size: str) -> Path:
    return results / source / "result.json" if size == "cpu" else results / "full" / source / "result.json"


# -- what each experiment's result says about a claim -------------------------------------------
def _pts(x: float) -> float:
    return round(100 * x, 6)  # errors are fractions in the results, points here


def figure1_ratio(r: dict) -> Measure:
    """tanh epochs / ReLU epochs to the lowest training error both reach (25% when both reach it)."""
    levels = [round(100 * c["error"], 1) for c in r["common_level"]]  # seed order, as the ratios
    s = r["settings"]
    return Measure([c["ratio"] for c in r["common_level"]],
                   f"{r['curves']['relu'][0]['images']:,} images, <= {s['max_epochs']} epochs, at "
                   f"{', '.join(f'{x:g}%' for x in levels)} training error (per seed)")


def _failed(run: dict, classes: int) -> bool:
    """A run that ended at chance or diverged (verdict.failed_run); recorded, or judged from its final loss."""
    if "failed" in run:
        return bool(run["failed"])
    return "final_loss" in run and rule.failed_run(run["final_loss"], classes)


def _failures(arms: dict[str, list[dict]], classes: int) -> tuple[list[bool], str]:
    """Per seed: did any arm fail; and the failure count of each arm in words."""
    flags = {name: [_failed(x, classes) for x in runs] for name, runs in arms.items()}
    any_failed = [any(f) for f in zip(*flags.values())]
    words = ", ".join(f"{name} {sum(f)}/{len(f)}" for name, f in flags.items())
    return any_failed, f"failed runs (at chance or diverged, kept out of the effect): {words}"


def lrn_cifar_gain(r: dict) -> Measure:
    runs = r["runs"]
    first = runs["true"][0]
    failed, words = _failures({"without LRN": runs["false"], "with LRN": runs["true"]}, 10)
    return Measure([_pts(a["top1_error"] - b["top1_error"]) for a, b, f in zip(runs["false"], runs["true"], failed)
                    if not f], f"{first['train_images']:,} images, {sum(r['settings']['phases'])} steps; {words}")


def ablation(variant: str, k: str) -> Callable[[dict], Measure]:
    """The variant's ten-patch error minus the paper net's, per seed (k: top1_error / top5_error)."""
    def measure(r: dict) -> Measure:
        rows, s = r["rows"], r["settings"]
        base = rows["paper net"]["per_seed"]
        failed, words = _failures({"paper net": base, variant: rows[variant]["per_seed"]}, 10)
        images = base[0].get("images", 0)
        return Measure([_pts(a["10crop"][k] - b["10crop"][k]) for a, b, f in zip(rows[variant]["per_seed"], base, failed)
                        if not f], f"width {_width(s)}, {s['crop']}px, {sum(s['phases'])} steps, {images:,} val images; "
                                   f"{words}")
    return measure


def tencrop_gain(r: dict) -> Measure:
    s = r["settings"]
    return Measure([_pts(x["center"]["top1_error"] - x["10crop"]["top1_error"]) for x in r["singles"]],
                   f"width {_width(s)}, {s['crop']}px, {sum(s['phases'])} steps")


def ensemble_gain(r: dict) -> Measure | None:
    """Per independent ensemble (each of its own seeds' nets): its members' mean ten-patch top-1 error
    minus the ensemble's. A result with one ensemble shared by every seed (before the replicates) gives
    no independent values: None."""
    if "ensembles" not in r:
        return None
    s = r["settings"]
    return Measure([_pts(e["members_10crop_top1_error"] - e["10crop"]["top1_error"]) for e in r["ensembles"]],
                   f"{s['nets']} nets an ensemble{'' if s['nets'] == 5 else ' (not 5)'}, width {_width(s)}, "
                   f"{sum(s['phases'])} steps")


def extra_gap(variant: str) -> Callable[[dict], Measure]:
    """How much larger the variant's validation - training gap is than the paper net's, per seed."""
    def measure(r: dict) -> Measure:
        s, first = r["settings"], r["runs"]["paper net"][0]
        return Measure([_pts(g) for g in r["extra_gap"][variant]],
                       f"{first['train_images']:,} images, width {_width(s)}, {sum(s['phases'])} steps")
    return measure


def dropout_convergence(r: dict) -> Measure | None:
    """Steps with / without dropout to the training loss both reach by mid-budget. A result measured on
    the earlier yardstick (the dropout net's own lowest loss, reached at the budget's end) gives None."""
    if r.get("convergence_yardstick") != "mid-budget":
        return None
    s = r["settings"]
    return Measure([c["ratio"] for c in r["dropout_convergence"]],
                   f"{r['runs']['paper net'][0]['train_images']:,} images, {sum(s['phases'])} steps, at the loss "
                   f"both reach by step {sum(s['phases']) // 2}")


def kernel_measure(key: str) -> Callable[[dict], Measure]:
    """A §6.1 share of the trained nets minus the same at their initialisation, per seed, in points."""
    def measure(r: dict) -> Measure:
        s = r["settings"]
        return Measure([_pts(k["trained"][key] - k["init"][key]) for k in r["kernels"]],
                       f"{r['runs']['paper net'][0]['train_images']:,} images, width {_width(s)}, "
                       f"{sum(s['phases'])} steps")
    return measure


def paper_recipe_trains(r: dict) -> Measure:
    """§5: points the paper recipe's best validation error lies below chance, per seed; beside it, each
    arm's epochs until the error left chance and its best error."""
    arms, s = r["arms"], r["settings"]

    def arm(name: str, runs: list[dict]) -> str:
        left = ", ".join(str(x["left_chance"]) if x["left_chance"] else "-" for x in runs)
        best = ", ".join(f"{100 * x['best_error']:.1f}" for x in runs)
        return f"{name}: left chance at epoch {left}, best {best}%"
    words = "; ".join(arm(name, runs) for name, runs in arms.items())
    return Measure([_pts(r["chance"] - x["best_error"]) for x in arms["paper"]],
                   f"width 1, {s['crop']}px of {s['size']}, {s['epochs']} epochs; {words}")


def _width(settings: dict) -> str:
    return next((o.split("=")[1] for o in settings.get("extra", []) if o.startswith("model.width=")), "1")


# paper_text: what the paper reports, in words; the paper column shows its effect in the claim's
# direction (the sign convention of ours: positive = the way the paper says) beside it
CLAIMS = [
    Claim("§3.1, Fig. 1", "ReLU reaches 25% training error sooner than tanh (CIFAR-10, four-layer net)", 6.0,
          "six times sooner", "figure1", figure1_ratio, ratio=True),
    Claim("§3.3", "LRN lowers top-1 error", 1.4, "error 1.4 points lower with LRN", "ablations",
          ablation("no LRN", "top1_error"), independent="lrn_top1"),
    Claim("§3.3", "LRN lowers top-5 error", 1.2, "error 1.2 points lower with LRN", "ablations",
          ablation("no LRN", "top5_error"), independent="lrn_top5"),
    Claim("§3.3", "LRN lowers CIFAR-10 test error (conv + locally connected net)", 2.0, "13% without, 11% with",
          "lrn-cifar", lrn_cifar_gain),
    Claim("§3.4", "overlapping pooling (3/2) lowers top-1 error vs 2/2", 0.4, "error 0.4 points lower with 3/2",
          "ablations", ablation("pooling 2/2", "top1_error"), independent="pool_top1"),
    Claim("§3.4", "overlapping pooling lowers top-5 error", 0.3, "error 0.3 points lower with 3/2", "ablations",
          ablation("pooling 2/2", "top5_error")),
    Claim("§3.2", "two columns lower top-1 error vs one", 1.7, "error 1.7 points lower with two", "ablations",
          ablation("one column", "top1_error")),
    Claim("§3.2", "two columns lower top-5 error vs one", 1.2, "error 1.2 points lower with two", "ablations",
          ablation("one column", "top5_error")),
    Claim("§4.1", "PCA colour noise lowers top-1 error", 1.0, "error over 1 point lower with it", "ablations",
          ablation("no PCA noise", "top1_error")),
    Claim("§4.1", "without random patches and reflections, substantial overfitting (larger val - train gap)",
          None, "'substantial', no number", "overfitting", extra_gap("no augmentation")),
    Claim("§4.2", "without dropout, substantial overfitting (larger val - train gap)", None,
          "'substantial', no number", "overfitting", extra_gap("no dropout")),
    Claim("§4.2", "dropout roughly doubles the iterations to converge", 2.0, "about twice the iterations",
          "overfitting", dropout_convergence, ratio=True),
    Claim("§4.1", "ten patches lower top-1 error vs the centre patch", 1.5, "39.0% centre, 37.5% ten patches",
          "tencrop-ensemble", tencrop_gain),
    Claim("§6", "an ensemble of 5 CNNs lowers top-1 error vs one", 2.6, "40.7% one, 38.1% five",
          "tencrop-ensemble", ensemble_gain),
    Claim("§6", "7 CNNs (two pre-trained on ImageNet Fall 2011) lower top-1 error vs one", 4.0,
          "40.7% one, 36.7% seven", None),
    Claim("§7", "removing conv3 raises top-1 error", 2.0, "about 2 points higher", "ablations",
          ablation("no conv3", "top1_error")),
    Claim("§7", "removing conv4 raises top-1 error", 2.0, "about 2 points higher", "ablations",
          ablation("no conv4", "top1_error")),
    Claim("§6.1, Fig. 3", "conv1 learns structured kernels: share of energy at low spatial frequency, trained - init (points)",
          None, "a picture, no number", "overfitting", kernel_measure("low_frequency_share")),
    Claim("§6.1, Fig. 3", "the columns specialise in colour: the two columns' mean chroma apart, trained - init (points)", None,
          "column 1 colour-agnostic, column 2 colour-specific", "overfitting", kernel_measure("chroma_split")),
    Claim("§6.1, Fig. 4", "fc7 nearest neighbours share the query's class: share of the 5 nearest training "
          "images, trained - init (points)", None, "a picture, no number", "overfitting",
          kernel_measure("fc7_neighbour_agreement")),
    Claim("§5", "the paper's recipe (N(0, 0.01) weights, biases 1, lr 0.01) trains the paper's net at full width: "
          "best top-1 error below chance (points)", None, "trained 90 epochs, no number for the start",
          "paper-recipe", paper_recipe_trains),
]


# -- the table -------------------------------------------------------------------------------
def independent(results: Path) -> dict:
    """results/independent.json: published ablations on ImageNet itself, each with its source; every
    claim entry gets its source's short name and full citation."""
    path = results / "independent.json"
    data = json.loads(path.read_text()) if path.is_file() else {"sources": {}, "claims": {}}
    return {key: {**entry, "cite": data["sources"][entry["source"]]} for key, entry in data["claims"].items()}


def rows(results: Path) -> list[dict]:
    """One row per claim and size: the numbers, the interval, the smallest effect the size can detect,
    the p-value (Holm-adjusted over the size's measured rows) and the verdict by the rule."""
    out, published = [], independent(results)
    for c in CLAIMS:
        for size in SIZES:
            path = result_path(results, c.source, size) if c.source else None
            r = json.loads(path.read_text()) if path is not None and path.is_file() else None
            m = c.measure(r) if r is not None and r.get("size") == size else None
            values = m.values if m else []
            enough = len(values) >= rule.MIN_SEEDS
            i = rule.interval_of(values, c.ratio) if enough else None
            out.append({"section": c.section, "claim": c.text, "paper": c.paper, "paper_text": c.paper_text,
                        "independent": published.get(c.independent) if c.independent else None,
                        "ratio": c.ratio, "size": size, "source": str(path.relative_to(results)) if path else None,
                        "command": r.get("command") if m else None, "ran_at": m.ran_at if m else None,
                        "seconds": r.get("seconds") if m else None, "date": r.get("date") if m else None,
                        "values": values, "seeds": len(values),
                        "interval": None if i is None else [i.mean, i.low, i.high],
                        "smallest_detectable": rule.smallest_detectable(values, c.ratio) if enough else None,
                        "p": rule.p_value(values, c.ratio) if enough else None, "p_holm": None,
                        "verdict": rule.verdict(values, c.paper, c.ratio, needs_gpu=size == "full")})
    for size in SIZES:  # the family: the rows measured at one size
        family = [r for r in out if r["size"] == size and r["p"] is not None]
        for r, p in zip(family, rule.holm([r["p"] for r in family])):
            r["p_holm"] = p
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


def paper_cell(row: dict) -> str:
    """The paper's effect with ours' sign (positive: the way the claim says), then its words."""
    head = "no number" if row["paper"] is None else _num(row["paper"], row["ratio"])
    return f"{head} ({row['paper_text']})"


def independent_cell(row: dict) -> str:
    i = row["independent"]
    if not i:
        return "-"
    head = "-" if i.get("effect") is None else _num(i["effect"], row["ratio"])
    return f"{head} ({i['source']}: {i['text']})"


def power_cell(row: dict) -> str:
    mde = row["smallest_detectable"]
    return "-" if mde is None else _num(mde, row["ratio"]).lstrip("+")


def p_cell(row: dict) -> str:
    return "-" if row["p"] is None else f"{row['p']:.2g} ({row['p_holm']:.2g})"


def family_note(table: list[dict], size: str) -> str:
    """How the size's tests read together: the count chance alone would give, and what survives Holm."""
    family = [r for r in table if r["size"] == size and r["p"] is not None]
    if not family:
        return f"{size}: no row measured yet."
    raw = sum(r["p"] < 0.05 for r in family)
    kept = [r for r in family if r["p_holm"] < 0.05]
    names = "; ".join(f"{r['section']} {r['claim']}" for r in kept) or "none"
    return (f"{size}: {len(family)} rows tested at once; with no effect anywhere, 5% tests would reject about "
            f"{0.05 * len(family):.1f} of them by chance; {raw} have p < 0.05, {len(kept)} keep it after Holm's "
            f"adjustment (family-wise 5%): {names}.")


def markdown(table: list[dict]) -> str:
    lines = ["| § | claim | paper (sign as ours) | independent, on ImageNet | size | ours: mean [95% interval]; per seed "
             "(ran at) | seeds | smallest detectable (80% power) | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['section']} | {r['claim']} | {paper_cell(r)} | {independent_cell(r)} | {r['size']} | "
                     f"{ours(r)} | {r['seeds']} | {power_cell(r)} | {p_cell(r)} | {r['verdict']} |")
    lines.append(
        f"\nEvery effect, the paper's, the independent one and ours, is in the claim's direction: points of error "
        f"(positive: the way the paper says, e.g. +1.4 for 'LRN lowers top-1 error by 1.4 points') or ratios "
        f"(above 1: the way the paper says). The interval is Student's 95% t-interval over the per-seed values "
        f"(ratios: on their logarithms, so their mean is the geometric mean); per-seed values are paired "
        f"differences: every arm of a seed sees the same images, crops and masks, and (units trained from "
        f"2026-12-08 on) starts from the same weights in every layer it shares with the baseline. Smallest detectable: the effect a two-sided 5% test of this many seeds finds "
        f"with 80% power given the measured spread, (t(0.975, n-1) + t(0.8, n-1)) * sd / sqrt(n); what more "
        f"seeds would cost: results/pilot/table.md. "
        f"Verdict, in this order: no result, or fewer than {rule.MIN_SEEDS} seeds: '{rule.NOT_RUN}' "
        f"('{rule.NOT_RUN_GPU}' for the full size); the interval below 0: '{rule.NOT_REPRODUCED}'; above 0 and its "
        f"top at or beyond the paper's effect (or the paper gives no number): '{rule.REPRODUCED}'; above 0 but below "
        f"the paper's effect: '{rule.SMALLER}'; holding 0 (a ratio 1) and below the paper's effect: "
        f"'{rule.NOT_REPRODUCED}' (the paper's effect is ruled out); holding 0 and reaching the paper's effect, "
        f"with a smallest detectable effect larger than the paper's: '{rule.CANNOT_DECIDE}' (too little power: "
        f"not a finding); otherwise holding 0: '{rule.NOISE}'. Failed runs (final training loss at chance, "
        f"within 5% of ln(classes), or diverged) are counted per arm and kept out of the effect. "
        f"p: two-sided one-sample t-test of 'no effect', in brackets Holm-adjusted over the rows of the same size. "
        f"cpu rows read results/NAME/result.json, full rows results/full/NAME/result.json "
        f"(the GPU suite's paper part); `alexnet experiment claims` regenerates this table.")
    lines += ["", "Read together: " + " ".join(family_note(table, size) for size in SIZES)]
    cites = {r["independent"]["source"]: r["independent"]["cite"] for r in table if r["independent"]}
    if cites:
        lines += ["", "Independent sources: " + "; ".join(f"{k}: {v}" for k, v in cites.items()) + "."]
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
