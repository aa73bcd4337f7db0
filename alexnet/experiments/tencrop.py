"""Ten patches and ensembles (§4.1, §6): on the same checkpoints, the centre patch vs the ten
patches, one net vs the average of N nets' softmax. The nets are the ablation experiment's
"paper net" checkpoints (trained there if missing, one per seed)."""
from __future__ import annotations

import numpy as np

from . import ablations
from ..viz.results import pyplot
from .common import Context, check_settings, pct, recorded_seconds, write_result

# §6 / Table 1-2: one CNN, centre 39.0 / 18.3 vs ten patches 37.5 / 17.0 (ILSVRC-2010 test);
# one CNN 40.7 / 18.2 vs five CNNs 38.1 / 16.4 (ILSVRC-2012 val, ten patches)
PAPER = {"tencrop_gain": (1.5, 1.3), "ensemble_of_5_gain": (2.6, 1.8)}
SEEDS = {"tiny": 2, "cpu": 3, "full": 5}


def run(ctx: Context) -> dict:
    n = ctx.seeds or SEEDS[ctx.size]
    work = ctx.work.parent.parent / "ablations" / ctx.size  # shared with the ablation experiment
    check_settings(work, {"store": str(ctx.data), **ablations.SIZES[ctx.size]})
    paths = [ablations.net(ctx, "paper net", s, work) for s in range(n)]
    singles = [ablations.errors(ctx, [p], f"paper-net-s{s}") for s, p in enumerate(paths)]
    ensemble = ablations.errors(ctx, paths, f"ensemble-of-{n}")
    rows = {"one net (mean of singles)": mean(singles), f"ensemble of {n}": ensemble}
    result = {"settings": {"nets": n, "store": str(ctx.data), **ablations.SIZES[ctx.size]}, "paper": PAPER,
              "singles": singles, "ensemble": ensemble, "rows": rows,
              "seconds": sum(recorded_seconds(p.with_suffix(".train.json")) for p in paths)}  # the nets' training
    write_result(ctx, result, plot(rows), table(rows, singles, ensemble))
    return result


def mean(results: list[dict]) -> dict:
    return {views: {k: float(np.mean([r[views][k] for r in results])) for k in ("top1_error", "top5_error")}
            for views in ("center", "10crop")} | {"images": results[0]["images"]}


def plot(rows: dict):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    x = np.arange(len(rows))
    for i, views in enumerate(("center", "10crop")):
        ax.bar(x + (i - 0.5) * 0.35, [100 * r[views]["top1_error"] for r in rows.values()], 0.35, label=views)
    ax.set_xticks(x, list(rows))
    ax.set(ylabel="top-1 error (%)", title="Centre vs ten patches, one net vs ensemble")
    ax.legend()
    fig.tight_layout()
    return fig


def table(rows: dict, singles: list[dict], ensemble: dict) -> str:
    out = ["| nets | centre top-1 / top-5 | ten patches top-1 / top-5 |", "|---|---|---|"]
    for s, r in enumerate(singles):
        out.append(f"| net seed {s} | {pct(r['center']['top1_error'])} / {pct(r['center']['top5_error'])} | "
                   f"{pct(r['10crop']['top1_error'])} / {pct(r['10crop']['top5_error'])} |")
    for name, r in rows.items():
        out.append(f"| {name} | {pct(r['center']['top1_error'])} / {pct(r['center']['top5_error'])} | "
                   f"{pct(r['10crop']['top1_error'])} / {pct(r['10crop']['top5_error'])} |")
    one = rows["one net (mean of singles)"]
    change10 = 100 * (one["10crop"]["top1_error"] - one["center"]["top1_error"])
    change_ens = 100 * (ensemble["10crop"]["top1_error"] - one["10crop"]["top1_error"])
    out.append(f"\nTen patches instead of the centre patch change one net's top-1 error by {change10:+.1f} points "
               f"(paper: -1.5); averaging {len(singles)} nets changes the ten-patch top-1 error by {change_ens:+.1f} "
               f"points (paper, 5 nets: -2.6). Errors in % on {ensemble['images']} validation images.")
    return "\n".join(out)
