"""The ablation table (§3-§4, §6): the paper net against each switch, trained with the same
budget and seeds, evaluated with ten patches (§4.1) on Imagenette's validation images; the
paper's reported differences beside ours.

Each (variant, seed) is one unit of work: a checkpoint and a JSON of its errors under
WORK/ablations/SIZE/, reused by a rerun and by the tencrop-ensemble experiment.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..data.store import open_store
from ..viz.results import pyplot
from .common import (SMALL_NET, Context, cached, check_settings, completed_seeds, evaluate_nets, experiment_config,
                     failed_losses, held_out_split, paired_trainer, pct, recorded_seconds, save_net, slug, subset,
                     train_or_fail, write_result)
from .verdict import MIN_SEEDS, interval_of

# name -> (overrides, paper's change of top-1 / top-5 error in points (None: no number), where)
VARIANTS = {
    "paper net": ([], (0.0, 0.0), ""),
    "no LRN": (["model.lrn=false"], (1.4, 1.2), "§3.3"),
    "pooling 2/2": (["model.pool_kernel=2"], (0.4, 0.3), "§3.4"),
    "one column": (["model.columns=1"], (1.7, 1.2), "§3.2"),
    "no PCA noise": (["data.pca_std=0"], (1.0, None), "§4.1: 'over 1%' top-1"),
    "no dropout": (["model.dropout=0"], (None, None), "§4.2: 'substantial overfitting', no number"),
    "no conv3": (["model.remove_conv=3"], (2.0, None), "§7: 'about 2%' top-1 for any middle layer"),
    "no conv4": (["model.remove_conv=4"], (2.0, None), "§7"),
    "tanh": (["model.activation=tanh"], (None, None), "§3.1: 6x slower on CIFAR-10, no ImageNet number"),
    "sixth conv": (["model.extra_conv=true"], (None, None), "§6: only with pre-training (-1.7 / -1.6)"),
}
# preset and budget per size: phases = steps at lr, then at lr/10; val_per_class: ten-patch images per class (0: all)
SIZES = {
    "tiny": dict(preset=None, extra=[*SMALL_NET, "model.width=0.125", "optim.batch_size=16"], crop=64, phases=[2, 1],
                 val_per_class=2, seeds=1),
    # cpu: the paper's recipe with He init (SMALL_NET) at a quarter width on 128px crops of a 144px store
    # (pool5 3x3, so 3/2 and 2/2 pooling give different shapes, as in the paper), batch 64, 10 epochs of
    # Imagenette (8 at lr 0.01, 2 at 0.001: near the plateau), every one of the 3,925 validation images,
    # 5 seeds. bf16 + channels-last: 1.7x faster than fp32 on this host (results/pilot/result.json).
    # About 15 min a net there (9.4 min training, 5 min ten-patch evaluation): 50 nets, ~12.5 h, run in
    # sessions of --hours 1 (units cached).
    "cpu": dict(preset=None, extra=[*SMALL_NET, "model.width=0.25", "optim.batch_size=64", "train.precision=bf16",
                                    "train.channels_last=true"], crop=128, phases=[1176, 294], val_per_class=0, seeds=5),
    # full: 40 epochs of Imagenette; 3 seeds, the fewest the claims table's rule judges (experiments/verdict.py)
    "full": dict(preset="imagenette", extra=[], crop=224, phases=[2220, 740], val_per_class=0, seeds=3),
}


def config(ctx: Context, variant: str, seed: int):
    """The config of one (variant, seed) unit at the context's size."""
    sz, store = SIZES[ctx.size], open_store(ctx.data)
    return experiment_config(ctx, sz["preset"], sz["extra"] + [
        f"data.size={store.size}", f"data.crop={sz['crop']}", f"model.num_classes={store.num_classes}",
        f"train.seed={seed}", *VARIANTS[variant][0]])


def net(ctx: Context, variant: str, seed: int, work: Path | None = None) -> Path:
    """The checkpoint of `variant` trained with `seed` at the context's size (trained once, then reused)."""
    sz = SIZES[ctx.size]
    path = (work or ctx.work) / f"{slug(variant)}-s{seed}.pt"
    if not path.is_file():
        ctx.check_budget()
        cfg = config(ctx, variant, seed)
        ctx.log(f"training {variant}, seed {seed}: {sum(sz['phases'])} steps")
        start = time.perf_counter()
        trainer = paired_trainer(cfg)
        losses = train_or_fail(trainer, sz["phases"])
        path.parent.mkdir(parents=True, exist_ok=True)
        save_net(trainer, path)
        cached(path.with_suffix(".train.json"), lambda: {"losses": losses, "seconds": time.perf_counter() - start,
                                                         "failed": failed_losses(losses, cfg.model.num_classes)})
    return path


def errors(ctx: Context, paths: list[Path], key: str) -> dict:
    """Centre and ten-patch errors of one net or an ensemble on the size's validation subset (cached under `key`)."""
    def compute() -> dict:
        store = open_store(ctx.data)
        reader = subset(store.split(held_out_split(store)), SIZES[ctx.size]["val_per_class"])
        ctx.log(f"evaluating {key} on {len(reader)} images")
        return {"images": len(reader), "checkpoints": [str(p) for p in paths],
                **{views: evaluate_nets(paths, reader, views, ctx.device) for views in ("center", "10crop")}}
    return cached(paths[0].parent / f"{key}.eval.json", compute)


def seed_errors(ctx: Context, variant: str, seed: int) -> dict:
    """errors() of one (variant, seed); a finished unit is read from its JSON without its checkpoint
    (the GPU suite carries only the JSON files from one call to the next)."""
    key = f"{slug(variant)}-s{seed}"
    done = ctx.work / f"{key}.eval.json"
    out = json.loads(done.read_text()) if done.is_file() else errors(ctx, [net(ctx, variant, seed)], key)
    train = ctx.work / f"{key}.train.json"  # failed: the run ended at chance or diverged (kept out of the effect)
    return {**out, "failed": bool(json.loads(train.read_text()).get("failed", False)) if train.is_file() else False}


def run(ctx: Context) -> dict:
    check_settings(ctx.work, {"store": str(ctx.data), **SIZES[ctx.size]})
    by_seed = completed_seeds(ctx, ctx.seeds or SIZES[ctx.size]["seeds"],  # seed by seed: whole pairs first
                              lambda s: {v: seed_errors(ctx, v, s) for v in VARIANTS})
    seeds = len(by_seed)
    if not seeds:
        ctx.log("no seed complete yet: nothing written")
        return {}
    rows = {}
    for variant in VARIANTS:
        per_seed = [b[variant] for b in by_seed]
        rows[variant] = {"per_seed": per_seed, **{f"{views}_{k}": float(np.mean([r[views][k] for r in per_seed]))
                                                 for views in ("center", "10crop") for k in ("top1_error", "top5_error")}}
    base = rows["paper net"]
    for variant, row in rows.items():
        per_seed_delta = [r["10crop"]["top1_error"] - b["10crop"]["top1_error"]
                          for r, b in zip(row["per_seed"], base["per_seed"])]
        row.update(delta_top1=row["10crop_top1_error"] - base["10crop_top1_error"],
                   delta_top5=row["10crop_top5_error"] - base["10crop_top5_error"], delta_top1_per_seed=per_seed_delta,
                   paper_delta=VARIANTS[variant][1], paper_note=VARIANTS[variant][2])
    sz = SIZES[ctx.size]
    result = {"settings": {**sz, "seeds": seeds, "store": str(ctx.data), "views": "10crop"}, "rows": rows,
              "seconds": sum(recorded_seconds(ctx.work / f"{slug(v)}-s{s}.train.json")
                             for v in VARIANTS for s in range(seeds))}
    write_result(ctx, result, plot(rows, seeds), table(rows, seeds, sz))
    return result


def plot(rows: dict, seeds: int):
    plt = pyplot()
    names = list(rows)[1:]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    y = np.arange(len(names))
    ours = [100 * rows[n]["delta_top1"] for n in names]
    ax.barh(y, ours, color="C0", alpha=0.7, label=f"ours (mean of {seeds} seeds)")
    first_paper = next(i for i, n in enumerate(names) if rows[n]["paper_delta"][0] is not None)
    for i, n in enumerate(names):
        deltas = [100 * d for d in rows[n]["delta_top1_per_seed"]]
        ax.plot(deltas, [i] * seeds, "k.", ms=4)
        if seeds >= MIN_SEEDS:  # the 95% interval of the mean change over seeds
            ci = interval_of(deltas, ratio=False)
            ax.plot([ci.low, ci.high], [i, i], color="k", lw=1)
        paper = rows[n]["paper_delta"][0]
        if paper is not None:
            ax.plot([paper], [i], "r|", ms=14, mew=2, label="paper" if i == first_paper else None)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set(xlabel="change of ten-patch top-1 error vs the paper net (points; dots: seeds, line: 95% interval)",
           title="Ablations on Imagenette")
    ax.legend(loc="center left", fontsize=8)
    fig.tight_layout()
    return fig


def table(rows: dict, seeds: int, sz: dict) -> str:
    out = ["| variant | top-1 err (10 patches) | top-5 err | change top-1 (per seed) | change top-5 | "
           "paper's change top-1 / top-5 |",
           "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        paper = r["paper_delta"]
        paper_txt = "-" if name == "paper net" else " / ".join("-" if p is None else f"+{p:g}" for p in paper)
        if r["paper_note"]:
            paper_txt += f" ({r['paper_note']})"
        per_seed = ", ".join(f"{100 * d:+.1f}" for d in r["delta_top1_per_seed"])
        out.append(f"| {name} | {pct(r['10crop_top1_error'])} | {pct(r['10crop_top5_error'])} | "
                   f"{100 * r['delta_top1']:+.1f} ({per_seed}) | {100 * r['delta_top5']:+.1f} | {paper_txt} |")
    images = rows["paper net"]["per_seed"][0]["images"]
    out.append(f"\nMeans over {seeds} seeds; {sum(sz['phases'])} training steps each ({sz['phases'][0]} at the preset's "
               f"lr, then {sz['phases'][1]} at a tenth of it); errors in % on {images} validation images.")
    failed = {n: sum(bool(x.get("failed")) for x in r["per_seed"]) for n, r in rows.items()}
    if any(failed.values()):  # the claims table keeps these seeds out of the variant's effect
        out.append("Failed runs (ended at chance or diverged): " + ", ".join(f"{n} {k}/{seeds}" for n, k in failed.items()
                                                                           if k) + ".")
    return "\n".join(out)
