"""§3.3 on CIFAR-10: "a four-layer CNN achieved a 13% test error rate without normalization
and 11% with normalization". The net is cuda-convnet's conv + locally connected net
(`model.arch=cifar_local`), trained on random 24x24 crops with reflections (§3.3: "with
translations and reflections"), tested on the centre 24x24 patch of the test images.
"""
from __future__ import annotations

import time

import numpy as np

from ..data.store import open_store
from ..viz.results import pyplot
from .common import (SMALL_NET, Context, cached, check_settings, completed_seeds, evaluate_nets, experiment_config,
                     failed_losses, held_out_split, paired_trainer, pct, save_net, subset, train_or_fail, write_result)
from .verdict import MIN_SEEDS, interval_of

PAPER = {"without_lrn": 0.13, "with_lrn": 0.11}
# per_class: training images of each class (0: all); phases: steps at lr, then at lr/10.
# cpu and tiny use He init on inputs scaled by 1/58 (SMALL_NET): cuda-convnet's
# stds (conv1 1e-4) stay near chance for longer than a CPU budget; full uses them (init=paper).
SIZES = {
    "tiny": dict(per_class=16, batch=32, phases=[3, 1], test_per_class=10, seeds=1,
                 init=[*SMALL_NET, "optim.lr=0.01"]),
    # cpu: 10,000 training images for 10 epochs (8 at lr, 2 at lr/10), all 10,000 test images, 5 seeds:
    # ~7.5 min a net on this host (0.58 s a step, results/lrn-cifar's earlier units), 10 nets ~1.3 h
    "cpu": dict(per_class=1000, batch=128, phases=[624, 156], test_per_class=0, seeds=5,
                init=[*SMALL_NET, "optim.lr=0.01"]),
    "full": dict(per_class=0, batch=128, phases=[39000, 6000], test_per_class=0, seeds=3,
                 init=["model.init=paper", "optim.lr=0.001"]),
}


def net(ctx: Context, lrn: bool, seed: int) -> dict:
    sz = SIZES[ctx.size]
    path = ctx.work / f"lrn-{str(lrn).lower()}-s{seed}.pt"

    def compute() -> dict:
        ctx.check_budget()
        start = time.perf_counter()
        store = open_store(ctx.data)
        cfg = experiment_config(ctx, None, [
            "model.arch=cifar_local", f"model.num_classes={store.num_classes}", f"model.lrn={lrn}",
            f"data.size={store.size}", "data.crop=24", "data.flip=true", "data.pca_std=0",
            f"optim.batch_size={sz['batch']}", f"train.seed={seed}", *sz["init"]])
        ctx.log(f"training lrn={lrn}, seed {seed}: {sum(sz['phases'])} steps")
        trainer = paired_trainer(cfg, sz["per_class"])
        losses = train_or_fail(trainer, sz["phases"])
        path.parent.mkdir(parents=True, exist_ok=True)
        save_net(trainer, path)
        test = subset(store.split(held_out_split(store)), sz["test_per_class"])
        errs = evaluate_nets([path], test, "center", ctx.device)
        ctx.log(f"lrn={lrn}, seed {seed}: test error {pct(errs['top1_error'])}%")
        return {"lrn": lrn, "seed": seed, "test_images": len(test), "train_images": len(trainer.parts.loader.reader),
                "final_loss": float(np.mean(losses[-20:])), **errs, "seconds": time.perf_counter() - start,
                "failed": failed_losses(losses, store.num_classes)}  # at chance or diverged: a failure, not an error rate
    return cached(path.with_suffix(".json"), compute)


def run(ctx: Context) -> dict:
    check_settings(ctx.work, {"store": str(ctx.data), **SIZES[ctx.size]})
    sz = SIZES[ctx.size]
    by_seed = completed_seeds(ctx, ctx.seeds or sz["seeds"], lambda s: {lrn: net(ctx, lrn, s) for lrn in (False, True)})
    seeds = len(by_seed)
    if not seeds:
        ctx.log("no seed complete yet: nothing written")
        return {}
    runs = {lrn: [b[lrn] for b in by_seed] for lrn in (False, True)}
    summary = {("with_lrn" if lrn else "without_lrn"): float(np.mean([r["top1_error"] for r in rs]))
               for lrn, rs in runs.items()}
    failures = {("with_lrn" if lrn else "without_lrn"): sum(bool(r.get("failed")) for r in rs) for lrn, rs in runs.items()}
    result = {"settings": {**sz, "seeds": seeds, "store": str(ctx.data)}, "paper": PAPER,
              "runs": {str(k).lower(): v for k, v in runs.items()}, "test_error": summary,
              "failed_runs": failures,
              "seconds": sum(r.get("seconds", 0.0) for rs in runs.values() for r in rs)}
    write_result(ctx, result, plot(runs), table(runs, summary))
    return result


def plot(runs: dict):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for i, (lrn, rs) in enumerate(runs.items()):
        errs = [100 * r["top1_error"] for r in rs]
        ax.bar(i, np.mean(errs), 0.6, color="C1" if lrn else "C0", alpha=0.7)
        ax.plot([i] * len(errs), errs, "k.")
        if len(errs) >= MIN_SEEDS:  # the 95% interval of the mean over seeds
            ci = interval_of(errs, ratio=False)
            ax.plot([i, i], [ci.low, ci.high], color="k", lw=1)
        ax.plot([i - 0.3, i + 0.3], [100 * PAPER["with_lrn" if lrn else "without_lrn"]] * 2, "r-", lw=2)
    ax.set_xticks([0, 1], ["without LRN", "with LRN"])
    ax.set(ylabel="CIFAR-10 test error (%)", title="§3.3: LRN on CIFAR-10 (red: paper; line: 95% interval)")
    fig.tight_layout()
    return fig


def table(runs: dict, summary: dict) -> str:
    out = ["| net | test error, per seed | mean | paper |", "|---|---|---|---|"]
    for lrn, rs in runs.items():
        key = "with_lrn" if lrn else "without_lrn"
        out.append(f"| conv + locally connected, {'with' if lrn else 'without'} LRN | "
                   f"{', '.join(pct(r['top1_error']) for r in rs)} | {pct(summary[key])} | {pct(PAPER[key])} |")
    r = runs[False][0]
    out.append(f"\nErrors in % on {r['test_images']} test images (centre 24x24 patch); {r['train_images']} training images. "
               "Failed runs (ended at chance or diverged; the claims table keeps their seeds out of the effect): "
               + ", ".join(f"{'with' if lrn else 'without'} LRN {sum(bool(x.get('failed')) for x in rs)}/{len(rs)}"
                           for lrn, rs in runs.items()) + ".")
    return "\n".join(out)
