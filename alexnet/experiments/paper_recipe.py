"""§5: the paper's recipe trains the paper's net. The `imagenette` preset (N(0, 0.01) weights,
biases 1 in conv2, conv4, conv5, fc6, fc7, the paper's dropout, SGD at lr 0.01 cut tenfold on a
plateau) at full width (96-256-384-384-256, 4096-4096), beside Caffe's biases of 0.1 (BVLC's
change after nets sat at loss 6.9 with biases 1) and He init, each from the same seeds (paired
init, same images, crops and masks). Per arm and seed: the validation error after every epoch,
the epoch at which it left chance, and the best error.

Resumable per epoch: after each epoch the net is checkpointed (WORK/ARM-sSEED.pt) and its
epoch's record appended (ARM-sSEED.json); a rerun continues from there, and --hours stops it
between epochs.
"""
from __future__ import annotations

import json
import time

from ..data.store import open_store
from ..fsutil import write_atomic
from ..viz.results import pyplot
from .common import (Context, check_settings, completed_seeds, experiment_config, held_out_split, paired_trainer, pct,
                     save_net, subset, write_result)

ARMS = {
    "paper": [],  # §5 as written
    "bias 0.1": ["model.init_bias=0.1"],  # Caffe's bvlc_alexnet: the same, with biases 0.1 instead of 1
    "He init": ["model.init=kaiming", "model.input_scale=0.01724"],  # He-normal weights on inputs scaled to unit std
}
LEAVES_CHANCE = 0.05  # "left chance": validation top-1 error at least 5 points under chance (1 - 1/classes)
SIZES = {
    "tiny": dict(crop=64, epochs=2, seeds=1, val_per_class=2, extra=["model.width=0.125", "optim.batch_size=16",
                                                                       "train.precision=fp32", "train.channels_last=false"]),
    # cpu: full width at 128px crops of a 144px store (pool5 3x3), the preset's batch 128, 30 epochs,
    # 3 seeds, per-epoch validation on 100 images a class: ~8.6 min an epoch on this host
    # (results/pilot/result.json: 6.7 s a step, 73 steps), 270 net-epochs ~39 h, in sessions (--hours)
    "cpu": dict(crop=128, epochs=30, seeds=3, val_per_class=100, extra=[]),
    "full": dict(crop=224, epochs=90, seeds=3, val_per_class=0, extra=[]),
}


def train_arm(ctx: Context, arm: str, seed: int) -> dict:
    """The arm's per-epoch record for `seed`, continued from its last finished epoch."""
    sz, store = SIZES[ctx.size], open_store(ctx.data)
    path, record_path = ctx.work / f"{arm.replace(' ', '-')}-s{seed}.pt", ctx.work / f"{arm.replace(' ', '-')}-s{seed}.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"arm": arm, "seed": seed, "epochs": []}
    if len(record["epochs"]) >= sz["epochs"]:
        return record
    cfg = experiment_config(ctx, "imagenette", [f"data.size={store.size}", f"data.crop={sz['crop']}",
                                                f"model.num_classes={store.num_classes}", f"train.seed={seed}",
                                                *sz["extra"], *ARMS[arm]])
    val = subset(store.split(held_out_split(store)), sz["val_per_class"])
    trainer = paired_trainer(cfg, eval_reader=val)
    if path.is_file():
        trainer.restore(path)  # weights, optimiser, schedule and counters of the last checkpointed epoch
        # the checkpoint is the truth: a kill between it and the record loses no epoch and repeats none
        record["epochs"] = record["epochs"][:trainer.epoch]
        while len(record["epochs"]) < trainer.epoch:
            record["epochs"].append(epoch_record(trainer, trainer.validate()["top1_error"], [], True, 0.0))
    ctx.work.mkdir(parents=True, exist_ok=True)
    while len(record["epochs"]) < sz["epochs"] and all(e["finite"] for e in record["epochs"]):
        ctx.check_budget()
        start = time.perf_counter()
        out = trainer.run_steps(len(trainer.parts.loader))
        err = trainer.validate()["top1_error"] if out["finite"] else 1.0
        if out["finite"] and not trainer.health.at_chance(trainer.step, err):
            trainer.schedule.observe(len(record["epochs"]), err)  # ÷10 on a plateau, as fit (no cut at chance)
        save_net(trainer, path)
        record["epochs"].append(epoch_record(trainer, err, out["losses"], out["finite"], time.perf_counter() - start))
        write_atomic(record_path, (json.dumps(record, indent=1) + "\n").encode())
        ctx.log(f"{arm}, seed {seed}: epoch {len(record['epochs'])} val error {pct(err)}%")
    return record  # a diverged arm stops early: its last epoch says finite false


def epoch_record(trainer, err: float, losses: list[float], finite: bool, seconds: float) -> dict:
    return {"val_top1_error": err, "train_loss": sum(losses) / len(losses) if losses else None,
            "lr": trainer.schedule.lr, "finite": finite, "seconds": seconds}


def summary(record: dict, chance: float) -> dict:
    errors = [e["val_top1_error"] for e in record["epochs"]]
    left = next((i + 1 for i, e in enumerate(errors) if e <= chance - LEAVES_CHANCE), None)
    return {"seed": record["seed"], "epochs": len(errors), "left_chance": left, "best_error": min(errors),
            "val_top1_error": errors, "seconds": sum(e["seconds"] for e in record["epochs"])}


def run(ctx: Context) -> dict:
    sz = SIZES[ctx.size]
    check_settings(ctx.work, {"store": str(ctx.data), **sz})
    store = open_store(ctx.data)
    chance = 1 - 1 / store.num_classes
    by_seed = completed_seeds(ctx, ctx.seeds or sz["seeds"], lambda s: {a: train_arm(ctx, a, s) for a in ARMS})
    if not by_seed:
        ctx.log("no seed complete yet: nothing written")
        return {}
    arms = {a: [summary(b[a], chance) for b in by_seed] for a in ARMS}
    result = {"settings": {**sz, "size": store.size, "seeds": len(by_seed), "store": str(ctx.data)},
              "chance": chance, "leaves_chance_by": LEAVES_CHANCE, "arms": arms,
              "seconds": sum(x["seconds"] for runs in arms.values() for x in runs)}
    write_result(ctx, result, plot(arms, chance), table(arms, chance))
    return result


def plot(arms: dict, chance: float):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (arm, runs) in enumerate(arms.items()):
        for j, r in enumerate(runs):
            ax.plot(range(1, len(r["val_top1_error"]) + 1), [100 * e for e in r["val_top1_error"]], color=f"C{i}",
                    lw=1, label=arm if j == 0 else None)
    ax.axhline(100 * chance, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="epoch", ylabel="validation top-1 error (%)", title="§5: the paper's recipe at full width")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def table(arms: dict, chance: float) -> str:
    out = ["| arm | epoch it left chance, per seed | best top-1 error per seed |", "|---|---|---|"]
    for arm, runs in arms.items():
        left = ", ".join(str(r["left_chance"]) if r["left_chance"] else f"> {r['epochs']}" for r in runs)
        out.append(f"| {arm} | {left} | {', '.join(pct(r['best_error']) for r in runs)} |")
    out.append(f"\nLeft chance: validation top-1 error at most {pct(chance - LEAVES_CHANCE)}% (chance {pct(chance)}%).")
    return "\n".join(out)
