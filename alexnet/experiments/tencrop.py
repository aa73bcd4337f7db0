"""Ten patches and ensembles (§4.1, §6): on the same checkpoints, the centre patch vs the ten
patches, one net vs the average of N nets' softmax. The nets are the ablation experiment's
"paper net" checkpoints (trained there if missing, one per seed). Each replicate r is an
ensemble of its own nets (seeds r*N .. r*N+N-1), so the replicates' gains are independent
measurements (one ensemble shared by every seed would make them one measurement, repeated)."""
from __future__ import annotations

import numpy as np

from . import ablations
from ..viz.results import pyplot
from .common import Context, check_settings, completed_seeds, pct, recorded_seconds, write_result

# §6 / Table 1-2: one CNN, centre 39.0 / 18.3 vs ten patches 37.5 / 17.0 (ILSVRC-2010 test);
# one CNN 40.7 / 18.2 vs five CNNs 38.1 / 16.4 (ILSVRC-2012 val, ten patches)
PAPER = {"tencrop_gain": (1.5, 1.3), "ensemble_of_5_gain": (2.6, 1.8)}
NETS = {"tiny": 2, "cpu": 3, "full": 5}  # nets in one ensemble (the paper's 5 at full size)
REPLICATES = {"tiny": 1, "cpu": 5, "full": 3}  # independent ensembles (--seeds), each of NETS nets of its own


def replicate(ctx: Context, work, r: int, n: int) -> dict:
    """Ensemble r: the nets of seeds r*n .. r*n+n-1, each alone and all together."""
    seeds = range(r * n, (r + 1) * n)
    paths = [ablations.net(ctx, "paper net", s, work) for s in seeds]
    singles = [ablations.errors(ctx, [p], f"paper-net-s{s}") for s, p in zip(seeds, paths)]
    ensemble = ablations.errors(ctx, paths, f"ensemble-s{seeds[0]}-{seeds[-1]}")
    return {"seeds": list(seeds), "singles": singles, **ensemble,
            "members_10crop_top1_error": float(np.mean([x["10crop"]["top1_error"] for x in singles])),
            "seconds": sum(recorded_seconds(p.with_suffix(".train.json")) for p in paths)}  # the nets' training


def run(ctx: Context) -> dict:
    n = NETS[ctx.size]
    work = ctx.work.parent.parent / "ablations" / ctx.size  # shared with the ablation experiment
    check_settings(work, {"store": str(ctx.data), **ablations.SIZES[ctx.size]})
    ensembles = completed_seeds(ctx, ctx.seeds or REPLICATES[ctx.size], lambda r: replicate(ctx, work, r, n))
    if not ensembles:
        ctx.log("no ensemble complete yet: nothing written")
        return {}
    singles = [x for e in ensembles for x in e["singles"]]
    rows = {"one net (mean of singles)": mean(singles),
            f"ensemble of {n} (mean of {len(ensembles)})": mean(ensembles)}
    result = {"settings": {"nets": n, "replicates": len(ensembles), "store": str(ctx.data),
                           **ablations.SIZES[ctx.size]}, "paper": PAPER,
              "singles": singles, "ensembles": ensembles, "rows": rows,
              "seconds": sum(e["seconds"] for e in ensembles)}
    write_result(ctx, result, plot(rows), table(rows, singles, ensembles))
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


def table(rows: dict, singles: list[dict], ensembles: list[dict]) -> str:
    out = ["| nets | centre top-1 / top-5 | ten patches top-1 / top-5 |", "|---|---|---|"]
    for s, r in enumerate(singles):
        out.append(f"| net seed {s} | {pct(r['center']['top1_error'])} / {pct(r['center']['top5_error'])} | "
                   f"{pct(r['10crop']['top1_error'])} / {pct(r['10crop']['top5_error'])} |")
    for name, r in rows.items():
        out.append(f"| {name} | {pct(r['center']['top1_error'])} / {pct(r['center']['top5_error'])} | "
                   f"{pct(r['10crop']['top1_error'])} / {pct(r['10crop']['top5_error'])} |")
    one = rows["one net (mean of singles)"]
    change10 = 100 * (one["10crop"]["top1_error"] - one["center"]["top1_error"])
    changes = ", ".join(f"{100 * (e['10crop']['top1_error'] - e['members_10crop_top1_error']):+.1f}" for e in ensembles)
    n = len(ensembles[0]["seeds"])
    out.append(f"\nTen patches instead of the centre patch change one net's top-1 error by {change10:+.1f} points "
               f"(paper: -1.5); averaging {n} nets changes the ten-patch top-1 error of its members by {changes} "
               f"points (per independent ensemble; paper, 5 nets: -2.6). Errors in % on {ensembles[0]['images']} "
               f"validation images.")
    return "\n".join(out)
