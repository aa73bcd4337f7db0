"""Figure 1 (§3.1): a four-layer CNN on CIFAR-10 reaches 25% training error six times sooner
with ReLUs than with tanh units; each with its own learning rate, no regularisation.

The net is `model.arch=cifar4` (docs/paper.md "cifar"). "No regularisation": no weight decay,
no dropout, no crops or reflections (data.crop = the stored side), no colour noise. Training
error is measured after every epoch on the training images themselves (eval mode, no
augmentation), like the paper's y-axis. The learning rate of each activation is the one of a
small sweep with the lowest training error after `sweep_epochs`.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..data.store import open_store
from ..viz.results import pyplot
from .common import BudgetSpent, Context, cached, check_settings, experiment_config, pct, subset, trainer_on, write_result
from .verdict import MIN_SEEDS, interval_of

PAPER = {"target_error": 0.25, "speedup": 6.0}
THRESHOLDS = (0.5, 0.4, 0.3, 0.25)  # the paper's 25%, and easier levels a short CPU budget can reach
SIZES = {  # per_class: training images of each class (0: all 5,000); the store decides the image side
    "tiny": dict(per_class=16, lrs=(0.002, 0.008), sweep_epochs=1, max_epochs=2, seeds=1, batch=32),
    # cpu: 5,000 images (500 per class) and up to 100 epochs, so that ReLU crosses 25% and tanh can
    # (benchmarks/figure1_speed.md: ~4 s an epoch on one thread; the recorded 50 s came from 2 threads
    # on the shared 2-core host); the sweep's grid reaches above the lr each activation picks
    # 5 seeds (the claims table's power): the 3 of the committed result took 56.6 min, so ~1.6 h
    "cpu": dict(per_class=500, lrs=(0.002, 0.004, 0.008, 0.016), sweep_epochs=3, max_epochs=100, seeds=5, batch=128),
    "full": dict(per_class=0, lrs=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.016), sweep_epochs=5, max_epochs=60,
                 seeds=3, batch=128),
}


def overrides(size: int, activation: str, lr: float, seed: int, batch: int) -> list[str]:
    return ["model.arch=cifar4", "model.num_classes=10", "model.lrn=false", "model.init=paper",
            f"model.activation={activation}", f"optim.lr={lr}", "optim.weight_decay=0", f"optim.batch_size={batch}",
            f"data.size={size}", f"data.crop={size}", "data.flip=false", "data.pca_std=0", f"train.seed={seed}"]


def curve(ctx: Context, activation: str, lr: float, seed: int, epochs: int, stop_below: float | None) -> dict:
    """Training error after each epoch (until it is <= stop_below, if given)."""
    ctx.check_budget()
    sz = SIZES[ctx.size]
    store = open_store(ctx.data)
    cfg = experiment_config(ctx, None, overrides(store.size, activation, lr, seed, sz["batch"]))
    train_images = subset(store.split(cfg.data.train_split), sz["per_class"])  # what it trains on, also measured
    trainer = trainer_on(cfg, sz["per_class"], eval_reader=train_images)
    errors, losses, seconds = [], [], []
    start = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        out = trainer.run_steps(len(trainer.parts.loader))
        seconds.append(time.perf_counter() - t0)
        losses.append(float(np.mean(out["losses"])) if out["finite"] else math.nan)
        errors.append(trainer.validate()["top1_error"] if out["finite"] else 1.0)
        ctx.log(f"{activation} lr {lr:g} seed {seed}: epoch {epoch + 1} training error {pct(errors[-1])}%")
        if not out["finite"] or (stop_below is not None and errors[-1] <= stop_below):
            break
    return {"activation": activation, "lr": lr, "seed": seed, "train_error": errors, "train_loss": losses,
            "train_seconds": seconds, "images": len(train_images), "diverged": not out["finite"],
            "seconds": time.perf_counter() - start}


def first_epoch_below(errors: list[float], target: float) -> int | None:
    """The first epoch (1-based) whose training error is <= target, or None."""
    return next((e + 1 for e, err in enumerate(errors) if err <= target), None)


def sweep(ctx: Context, activation: str) -> dict:
    """Each lr of the size's grid for sweep_epochs (seed 0); the best is the lowest final error."""
    sz = SIZES[ctx.size]
    runs = [cached(ctx.work / f"sweep-{activation}-lr{lr:g}.json",
                   lambda lr=lr: curve(ctx, activation, lr, 0, sz["sweep_epochs"], None)) for lr in sz["lrs"]]
    best = min(runs, key=lambda r: (r["diverged"], r["train_error"][-1]))
    return {"runs": runs, "best_lr": best["lr"]}


def run(ctx: Context) -> dict:
    try:
        return measure(ctx)
    except BudgetSpent as stop:  # the finished curves stay cached; the same command continues
        ctx.log(f"{stop}; nothing written yet")
        return {}


def measure(ctx: Context) -> dict:
    check_settings(ctx.work, {"store": str(ctx.data), **SIZES[ctx.size]})
    sz, target = SIZES[ctx.size], PAPER["target_error"]
    seeds = ctx.seeds or sz["seeds"]
    result = {"settings": {**sz, "lrs": list(sz["lrs"]), "seeds": seeds, "store": str(ctx.data), "target_error": target},
              "paper": PAPER, "sweeps": {}, "curves": {}, "epochs_to_target": {}}
    for act in ("relu", "tanh"):
        sw = sweep(ctx, act)
        result["sweeps"][act] = sw
        result["curves"][act] = [cached(ctx.work / f"{act}-lr{sw['best_lr']:g}-s{seed}.json",
                                        lambda seed=seed: curve(ctx, act, sw["best_lr"], seed, sz["max_epochs"], target))
                                 for seed in range(seeds)]
        result["epochs_to_target"][act] = {str(t): [first_epoch_below(c["train_error"], t) for c in result["curves"][act]]
                                           for t in THRESHOLDS}
    result["speedup"] = {str(t): speedups({a: result["epochs_to_target"][a][str(t)] for a in ("relu", "tanh")},
                                          sz["max_epochs"]) for t in THRESHOLDS}
    result["common_level"] = [common_level(r["train_error"], t["train_error"])
                               for r, t in zip(result["curves"]["relu"], result["curves"]["tanh"])]
    units = [*(x for a in ("relu", "tanh") for x in result["sweeps"][a]["runs"]),
             *(x for a in ("relu", "tanh") for x in result["curves"][a])]
    result["seconds"] = sum(u.get("seconds", 0.0) for u in units)  # the units' wall time when they ran
    write_result(ctx, result, plot(result), table(result))
    return result


def common_level(relu: list[float], tanh: list[float]) -> dict:
    """The lowest training error both runs reach, and the epochs each needs for it: a ratio the
    budget can always measure, when the paper's 25% is out of its reach."""
    level = max(min(relu), min(tanh))
    r, t = first_epoch_below(relu, level), first_epoch_below(tanh, level)
    return {"error": level, "relu_epochs": r, "tanh_epochs": t, "ratio": t / r}


def speedups(epochs: dict, max_epochs: int) -> dict:
    """tanh epochs / ReLU epochs per seed; a run that never got there counts as a lower bound."""
    out = []
    for r, t in zip(epochs["relu"], epochs["tanh"]):
        if r is None:
            out.append(None)
        else:
            out.append({"ratio": (t or max_epochs) / r, "lower_bound": t is None})
    ratios = [o["ratio"] for o in out if o]
    return {"per_seed": out, "median": float(np.median(ratios)) if ratios else None,
            "any_lower_bound": any(o and o["lower_bound"] for o in out)}


def plot(result: dict):
    """Left: every seed's training error per epoch. Right: tanh / ReLU epochs per seed at the
    lowest error both reach, their 95% interval and the paper's 6x."""
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
    for act, style in (("relu", "-"), ("tanh", "--")):
        for i, c in enumerate(result["curves"][act]):
            ax.plot(range(1, len(c["train_error"]) + 1), c["train_error"], style, color="C0" if act == "relu" else "C3",
                    label=f"{act} (lr {c['lr']:g})" if i == 0 else None, lw=1.2)
    ax.axhline(result["paper"]["target_error"], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="epochs", ylabel="training error rate", ylim=(0, 0.9),
           title=f"Figure 1: CIFAR-10, four-layer CNN ({result['curves']['relu'][0]['images']} training images)")
    ax.legend()
    ratios = [c["ratio"] for c in result["common_level"]]
    bx.plot([0] * len(ratios), ratios, "k.", ms=8, label="seeds")
    i = interval_of(ratios, ratio=True) if len(ratios) >= MIN_SEEDS else None
    if i is not None:
        bx.plot([0, 0], [i.low, i.high], color="C0", lw=6, alpha=0.4, label="95% interval")
    bx.axhline(result["paper"]["speedup"], color="red", lw=1.5, label="paper: 6x")
    bx.axhline(1, color="grey", lw=0.8)
    bx.set_yscale("log")
    bx.set_xticks([])
    bx.set(ylabel="tanh epochs / ReLU epochs", title="at the lowest error both reach")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def table(result: dict) -> str:
    rows = ["| activation | lr (sweep) | final training error per seed | " +
            " | ".join(f"epochs to {pct(t)}%" for t in THRESHOLDS) + " |", "|---|---|---|" + "---|" * len(THRESHOLDS)]
    for act in ("relu", "tanh"):
        curves = result["curves"][act]
        cells = [", ".join(str(e) if e else f"> {len(c['train_error'])}"
                           for e, c in zip(result["epochs_to_target"][act][str(t)], curves)) for t in THRESHOLDS]
        finals = ", ".join(pct(c["train_error"][-1]) + "%" for c in curves)
        rows.append(f"| {act} | {result['sweeps'][act]['best_lr']:g} | {finals} | " + " | ".join(cells) + " |")
    ratios = []
    for t in THRESHOLDS:
        sp = result["speedup"][str(t)]
        ratios.append("-" if sp["median"] is None else
                      ("at least " if sp["any_lower_bound"] else "") + f"{sp['median']:.1f}x")
    rows.append("| tanh / ReLU epochs (median) | | | " + " | ".join(ratios) + " |")
    common = result["common_level"]
    rows.append("\nAt the lowest error both reach (per seed: " + "; ".join(
        f"{pct(c['error'])}%: ReLU epoch {c['relu_epochs']}, tanh epoch {c['tanh_epochs']}, {c['ratio']:.1f}x"
        for c in common) + f"), ReLU is {np.median([c['ratio'] for c in common]):.1f}x sooner (median).")
    rows.append("\nPaper (Figure 1, all 50,000 images): ReLU reaches 25% training error 6x sooner than tanh. '-': "
                "ReLU did not reach that level within the budget; 'at least': tanh did not, and the budget stands "
                "in for its epochs.")
    return "\n".join(rows)
