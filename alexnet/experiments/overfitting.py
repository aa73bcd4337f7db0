"""Overfitting (§4.1, §4.2): "Without this scheme [random patches and reflections], our network
suffers from substantial overfitting"; "Without dropout, our network exhibits substantial
overfitting. Dropout roughly doubles the number of iterations required to converge."

The paper net, the net trained on the centre patch without reflections, and the net without
dropout, each from the same seeds for the same budget on a small training set (overfitting shows
in a short run only when the net sees few images). After training, the centre-patch top-1 error
on the training images it saw and on held-out validation images: the gap (validation minus
training) per seed, and how much larger it is without the scheme. Convergence: the steps each
net needs to bring its training loss (averaged over an epoch of steps) to the lowest level both
reach by mid-budget, a yardstick inside both runs (the lowest level both reach by the end is the
dropout net's last steps, which makes the ratio budget / steps of the other net).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..data.store import open_store
from ..evaluate import load_model
from ..viz.features import hidden_features, neighbour_agreement
from ..viz.kernels import kernel_stats
from ..viz.results import pyplot
from .common import (SMALL_NET, Context, cached, check_settings, completed_seeds, evaluate_nets, experiment_config,
                     failed_losses, held_out_split, initial_net, paired_trainer, pct, recorded_seconds, save_net, slug,
                     subset, train_or_fail, write_result)

# name -> the overrides that take the paper's scheme away
VARIANTS = {
    "paper net": [],
    "no augmentation": ["data.random_crop=false", "data.flip=false"],  # §4.1 "this scheme": patches + reflections
    "no dropout": ["model.dropout=0"],  # §4.2
}
# per_class: training images of each class; phases: steps at the preset's lr (one phase: no lr cut, so
# that the steps to a loss level compare the nets, not the schedule); val_per_class: held-out images
SIZES = {
    "tiny": dict(preset=None, extra=[*SMALL_NET, "model.width=0.125", "optim.batch_size=16"], crop=64, per_class=4,
                 phases=[4], val_per_class=2, seeds=1),
    # cpu: the paper's recipe with He init (SMALL_NET) at a quarter width on 128px crops of a 144px store
    # (bf16 + channels-last, results/pilot/result.json), 1,000 training images seen ~40 times each, all
    # 3,925 validation images, 5 seeds: ~5 min a net on this host, 15 nets ~1.2 h
    "cpu": dict(preset=None, extra=[*SMALL_NET, "model.width=0.25", "optim.batch_size=64", "train.precision=bf16",
                                    "train.channels_last=true"], crop=128, per_class=100, phases=[640],
                val_per_class=0, seeds=5),
    # full: all of Imagenette for the ablations' budget (40 epochs of 74 steps), at the imagenette preset's size
    "full": dict(preset="imagenette", extra=[], crop=224, per_class=0, phases=[2960], val_per_class=0, seeds=3),
}



def unit(ctx: Context, variant: str, seed: int) -> dict:
    """One net trained and measured: its training and validation error and its loss curve (cached)."""
    sz = SIZES[ctx.size]
    path = ctx.work / f"{slug(variant)}-s{seed}.pt"

    def compute() -> dict:
        ctx.check_budget()
        start = time.perf_counter()
        store = open_store(ctx.data)
        cfg = experiment_config(ctx, sz["preset"], sz["extra"] + [
            f"data.size={store.size}", f"data.crop={sz['crop']}", f"model.num_classes={store.num_classes}",
            f"train.seed={seed}", *VARIANTS[variant]])
        ctx.log(f"training {variant}, seed {seed}: {sum(sz['phases'])} steps")
        trainer = paired_trainer(cfg, sz["per_class"])
        losses = train_or_fail(trainer, sz["phases"])
        save_net(trainer, path)
        train = subset(store.split(cfg.data.train_split), sz["per_class"])  # the images it trained on
        val = subset(store.split(held_out_split(store)), sz["val_per_class"])
        errs = {"train": evaluate_nets([path], train, "center", ctx.device),
                "val": evaluate_nets([path], val, "center", ctx.device)}
        ctx.log(f"{variant}, seed {seed}: training error {pct(errs['train']['top1_error'])}%, "
                f"validation error {pct(errs['val']['top1_error'])}%")
        return {"variant": variant, "seed": seed, "train_images": len(train), "val_images": len(val),
                "steps_per_epoch": len(trainer.parts.loader), "losses": losses,
                "train_top1_error": errs["train"]["top1_error"], "val_top1_error": errs["val"]["top1_error"],
                "gap": errs["val"]["top1_error"] - errs["train"]["top1_error"], "seconds": time.perf_counter() - start,
                "failed": failed_losses(losses, cfg.model.num_classes)}
    path.parent.mkdir(parents=True, exist_ok=True)
    return cached(path.with_suffix(".json"), compute)


def smoothed(losses: list[float], window: int) -> np.ndarray:
    """The mean loss of the last `window` steps at every step from `window` on."""
    c = np.cumsum(np.insert(np.asarray(losses, float), 0, 0.0))
    return (c[window:] - c[:-window]) / window


def steps_to_common_loss(a: list[float], b: list[float], window: int) -> dict:
    """The lowest smoothed training loss both runs reach by mid-budget, and the steps each needs to get
    there (both by construction within the first half: neither ratio is the budget's edge)."""
    sa, sb = smoothed(a, window), smoothed(b, window)
    mid = max(1, len(a) // 2 - window + 1)  # smoothed index of the mid-budget step
    level = max(sa[:mid].min(), sb[:mid].min())
    first = (lambda s: int(np.argmax(s <= level)) + window)
    return {"loss": float(level), "steps_a": first(sa), "steps_b": first(sb), "ratio": first(sa) / first(sb)}


def run(ctx: Context) -> dict:
    sz = SIZES[ctx.size]
    check_settings(ctx.work, {"store": str(ctx.data), **sz})
    by_seed = completed_seeds(ctx, ctx.seeds or sz["seeds"], lambda s: {v: unit(ctx, v, s) for v in VARIANTS})
    seeds = len(by_seed)
    if not seeds:
        ctx.log("no seed complete yet: nothing written")
        return {}
    runs = {v: [b[v] for b in by_seed] for v in VARIANTS}
    base = runs["paper net"]
    ok = lambda *units: not any(u.get("failed") for u in units)  # noqa: E731  failed runs: counted, kept out
    extra_gap = {v: [r["gap"] - b["gap"] for r, b in zip(runs[v], base) if ok(r, b)] for v in VARIANTS if v != "paper net"}
    window = base[0]["steps_per_epoch"]
    convergence = [steps_to_common_loss(d["losses"], n["losses"], window)
                   for d, n in zip(base, runs["no dropout"]) if ok(d, n)]
    failed_runs = {v: sum(bool(r.get("failed")) for r in rs) for v, rs in runs.items()}
    summary = {v: {"train_top1_error": [r["train_top1_error"] for r in rs], "val_top1_error":
                   [r["val_top1_error"] for r in rs], "gap": [r["gap"] for r in rs]} for v, rs in runs.items()}
    result = {"settings": {**sz, "seeds": seeds, "store": str(ctx.data), "views": "center"},
              "summary": summary, "extra_gap": extra_gap, "dropout_convergence": convergence,
              "convergence_yardstick": "mid-budget", "failed_runs": failed_runs,
              "kernels": [kernels(ctx, "paper net", s) for s in range(seeds)],
              "runs": {v: [{k: x for k, x in r.items() if k != "losses"} for r in rs] for v, rs in runs.items()},
              "seconds": sum(recorded_seconds(ctx.work / f"{slug(v)}-s{s}.json") for v in VARIANTS for s in range(seeds))}
    write_result(ctx, result, plot(runs, window), table(summary, extra_gap, convergence, base[0]))
    return result


def kernels(ctx: Context, variant: str, seed: int) -> dict:
    """§6.1 by numbers, for the trained net and the same net at its initialisation: conv1's kernels
    (Figure 3, viz/kernels.py) and the share of each validation image's 5 nearest training images
    in fc7 space that share its class (Figure 4 right, viz/features.py)."""
    trained, cfg, _ = load_model(ctx.work / f"{slug(variant)}-s{seed}.pt", torch.device("cpu"))
    init = initial_net(cfg)  # the weights paired_trainer started it from
    store, sz = open_store(ctx.data), SIZES[ctx.size]
    train = subset(store.split(cfg.data.train_split), sz["per_class"])
    val = subset(store.split(held_out_split(store)), sz["val_per_class"])
    mean = store.mean if cfg.data.mean_image else None

    def stats(model) -> dict:
        feats = [hidden_features(model, r, mean, cfg.data.crop, torch.device("cpu")) for r in (train, val)]
        return {**kernel_stats(model), "fc7_neighbour_agreement": neighbour_agreement(
            feats[0], train.labels, feats[1], val.labels, k=5)}
    return {"seed": seed, "trained": stats(trained), "init": stats(init)}


def plot(runs: dict, window: int):
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6))
    for i, (v, rs) in enumerate(runs.items()):
        for j, r in enumerate(rs):
            ax.plot([i - 0.12, i + 0.12], [100 * r["train_top1_error"], 100 * r["val_top1_error"]], "-o",
                    color=f"C{i}", ms=3, alpha=0.8, label=v if j == 0 else None)
            s = smoothed(r["losses"], window)
            bx.plot(np.arange(window, window + len(s)), s, color=f"C{i}", lw=1, label=v if j == 0 else None)
    ax.set_xticks(range(len(runs)), [f"{v}\n(train, val)" for v in runs], fontsize=8)
    ax.set(ylabel="centre-patch top-1 error (%)", title="Training vs validation error, every seed")
    bx.set(xlabel="step", ylabel=f"training loss (mean of {window} steps)", title="§4.2: steps to converge")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def table(summary: dict, extra_gap: dict, convergence: list[dict], first: dict) -> str:
    out = ["| net | training error per seed | validation error per seed | gap (val - train) per seed | "
           "gap minus the paper net's |", "|---|---|---|---|---|"]
    for v, s in summary.items():
        more = ", ".join(f"{100 * g:+.1f}" for g in extra_gap[v]) if v in extra_gap else "-"
        out.append(f"| {v} | {', '.join(pct(e) for e in s['train_top1_error'])} | "
                   f"{', '.join(pct(e) for e in s['val_top1_error'])} | "
                   f"{', '.join(f'{100 * g:+.1f}' for g in s['gap'])} | {more} |")
    conv = "; ".join(f"loss {c['loss']:.2f}: {c['steps_a']} vs {c['steps_b']} steps, {c['ratio']:.2f}x" for c in convergence)
    out.append(f"\nCentre-patch top-1 errors in % on the {first['train_images']} training images each net saw and on "
               f"{first['val_images']} validation images. Steps to the lowest training loss both reach by mid-budget, "
               f"with dropout vs without (per seed): {conv} (paper: 'roughly doubles').")
    return "\n".join(out)
