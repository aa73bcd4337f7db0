"""The pilot behind the experiments' sizes (`python -m alexnet.experiments.pilot STORE144 [OUT]`; then
`python -m alexnet.experiments.pilot plan` writes results/pilot/plan.json and table.md, the cost and
noise per experiment):
seconds per training step and per ten-patch evaluated image of each candidate size, timed side by
side in one process, written to results/pilot/result.json with the host, date and command. The
sizes' budgets (ablations.SIZES etc.) are these times multiplied out; the noise that decides how
many seeds they need is the measured paired spread of the claims table (results/claims.json).

A few steps per candidate: on a shared host the numbers are an estimate of the order of the cost,
which is what choosing a size needs; the record says how loaded the host was.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from ..data.store import open_store
from .common import Context, evaluate_nets, experiment_config, save_net, subset, trainer_on
from ..viz.results import environment
from ..fsutil import write_atomic
from ..runtime import resolve_device
from .verdict import smallest_detectable

# name -> (the experiment it prices, preset, overrides)
CANDIDATES = {
    "small-net w0.25 crop128 b64 fp32": ("ablations/overfitting/tencrop", None,
                                         ["model.init=kaiming", "model.input_scale=0.01724", "model.width=0.25",
                                          "optim.batch_size=64", "data.crop=128"]),
    "small-net w0.25 crop128 b64 bf16 channels-last": ("ablations/overfitting/tencrop", None,
                                                       ["model.init=kaiming", "model.input_scale=0.01724",
                                                        "model.width=0.25", "optim.batch_size=64", "data.crop=128",
                                                        "train.precision=bf16", "train.channels_last=true"]),
    "small-net w0.5 crop128 b64 bf16 channels-last": ("ablations/overfitting/tencrop", None,
                                                      ["model.init=kaiming", "model.input_scale=0.01724",
                                                       "model.width=0.5", "optim.batch_size=64", "data.crop=128",
                                                       "train.precision=bf16", "train.channels_last=true"]),
    "imagenette preset w1 crop128 b128 bf16 channels-last": ("paper-recipe", "imagenette", ["data.crop=128"]),
}


def time_candidate(ctx: Context, preset: str | None, overrides: list[str], steps: int, eval_images: int) -> dict:
    store = open_store(ctx.data)
    cfg = experiment_config(ctx, preset, [f"data.size={store.size}", f"model.num_classes={store.num_classes}",
                                          "train.seed=0", *overrides])
    trainer = trainer_on(cfg)
    trainer.run_steps(2)  # warm-up: first-call allocations
    start = time.perf_counter()
    out = trainer.run_steps(steps)
    step_s = (time.perf_counter() - start) / steps
    path = ctx.work / "pilot.pt"
    save_net(trainer, path)
    reader = subset(store.split("val"), max(1, eval_images // store.num_classes))
    start = time.perf_counter()
    evaluate_nets([path], reader, "10crop", ctx.device)
    eval_s = (time.perf_counter() - start) / len(reader)
    return {"overrides": overrides, "preset": preset, "batch": cfg.optim.batch_size, "steps_timed": steps,
            "seconds_per_step": step_s, "seconds_per_10crop_image": eval_s, "finite": out["finite"],
            "steps_per_epoch": len(trainer.parts.loader), "train_images": len(trainer.parts.loader.reader)}


SMALL, FULL = "small-net w0.25 crop128 b64 bf16 channels-last", "imagenette preset w1 crop128 b128 bf16 channels-last"
VAL_IMAGES = 3925  # Imagenette's val split, which the cpu sizes evaluate whole


def units() -> dict:
    """experiment -> (pilot candidate, units a seed, training steps a unit, ten-patch images a unit,
    centre-patch images a unit, seeds, note), from the experiments' own cpu sizes."""
    from . import ablations, overfitting, paper_recipe, tencrop
    abl, ovf, rec = ablations.SIZES["cpu"], overfitting.SIZES["cpu"], paper_recipe.SIZES["cpu"]
    epochs, arms = rec["epochs"], len(paper_recipe.ARMS)
    return {
        "ablations": (SMALL, len(ablations.VARIANTS), sum(abl["phases"]), VAL_IMAGES, VAL_IMAGES, abl["seeds"],
                      f"{len(ablations.VARIANTS)} arms"),
        "overfitting": (SMALL, len(overfitting.VARIANTS), sum(ovf["phases"]), 0,
                        VAL_IMAGES + 10 * ovf["per_class"], ovf["seeds"], "centre patch on its training and val images"),
        "tencrop-ensemble": (SMALL, tencrop.NETS["cpu"], sum(abl["phases"]), VAL_IMAGES, VAL_IMAGES,
                             tencrop.REPLICATES["cpu"],
                             f"{tencrop.NETS['cpu']} nets a replicate (some shared with ablations' seeds) plus the "
                             f"ensemble's ten-patch pass (about one more unit)"),
        "paper-recipe": (FULL, arms, epochs * 73, 0, epochs * 10 * rec["val_per_class"], rec["seeds"],
                         f"{arms} arms x {epochs} epochs of 73 steps, validated each epoch"),
    }


def needed_seeds(sd: float, target: float) -> int | None:
    """The fewest seeds whose smallest detectable effect (80% power) is <= target, given a paired sd."""
    for n in range(3, 200):
        if smallest_detectable(_spread(sd, n), False) <= target:
            return n
    return None


def _spread(sd: float, n: int) -> list[float]:
    """n values with sample sd exactly `sd` (for the MDE formula)."""
    base = [(-1) ** i for i in range(n)] if n % 2 == 0 else [(-1) ** i for i in range(n - 1)] + [0.0]
    mean = sum(base) / n
    cur = (sum((b - mean) ** 2 for b in base) / (n - 1)) ** 0.5
    return [b * sd / cur for b in base]


def plan(results: Path) -> dict:
    """Each experiment's cost at its cpu size (pilot times x units) and, for the top-1 ablation rows,
    the paired sd measured so far (results/claims.json) and the seeds it would take to detect 2 points."""
    pilot = json.loads((results / "pilot" / "pilot.json").read_text())["candidates"]
    out = {}
    for name, (cand, n, steps, tencrop_images, centre_images, seeds, note) in units().items():
        c = pilot[cand]
        unit_s = (steps * c["seconds_per_step"] + tencrop_images * c["seconds_per_10crop_image"]
                  + centre_images * c["seconds_per_10crop_image"] / 10)  # a centre patch: a tenth of ten
        out[name] = {"seeds": seeds, "units_per_seed": n, "seconds_per_unit": round(unit_s),
                     "hours_per_seed": round(n * unit_s / 3600, 2), "note": note, "priced_by": cand}
    from . import figure1, lrn_cifar
    cifar = json.loads((results / "lrn-cifar" / "result.json").read_text())  # the committed run's own times
    runs = [x for rs in cifar["runs"].values() for x in rs]
    step_s = sum(x["seconds"] for x in runs) / (len(runs) * sum(cifar["settings"]["phases"]))
    steps = sum(lrn_cifar.SIZES["cpu"]["phases"])
    out["lrn-cifar"] = {"seeds": lrn_cifar.SIZES["cpu"]["seeds"], "units_per_seed": 2,
                        "seconds_per_unit": round(steps * step_s), "hours_per_seed": round(2 * steps * step_s / 3600, 2),
                        "note": f"2 arms of {steps} steps",
                        "priced_by": f"results/lrn-cifar/result.json: {step_s:.2f} s a step, test pass included"}
    fig = json.loads((results / "figure1" / "result.json").read_text())
    curves = sum(x["seconds"] for a in ("relu", "tanh") for x in fig["curves"][a]) / fig["settings"]["seeds"]
    out["figure1"] = {"seeds": figure1.SIZES["cpu"]["seeds"], "units_per_seed": 2, "seconds_per_unit": round(curves / 2),
                      "hours_per_seed": round(curves / 3600, 2), "note": "a ReLU and a tanh curve, plus the lr sweeps once",
                      "priced_by": "results/figure1/result.json: its curves' own times"}
    rows = [r for r in json.loads((results / "claims.json").read_text()) if r["size"] == "cpu" and
            r["source"] == "ablations/result.json" and len(r["values"]) >= 3]
    out["noise"] = {r["claim"]: {"paired_sd_points": round(statistics.stdev(r["values"]), 2), "seeds": r["seeds"],
                                 "ran_at": r["ran_at"], "seeds_for_2_points": needed_seeds(statistics.stdev(r["values"]), 2.0),
                                 "smallest_detectable_at_5_seeds": round(smallest_detectable(
                                     _spread(statistics.stdev(r["values"]), 5), False), 2)} for r in rows}
    out["note"] = ("noise: the paired sd of the committed cpu results (64px, 100 steps, 300 images), probably "
                   "above the new size's (3,925 images: the binomial part alone shrinks ~3.6x), not a bound; the new "
                   "size's own sd comes with its first 5 seeds, and the claims table's power column then says "
                   "whether it decides")
    return out


def plan_table(plan: dict) -> str:
    """The plan as markdown: cost per seed and in all at the cpu size, and the noise so far."""
    out = ["| experiment | seeds | units a seed | min a unit | h a seed | h in all |", "|---|---|---|---|---|---|"]
    for name, p in plan.items():
        if name in ("noise", "note"):
            continue
        n = p["seeds"]
        out.append(f"| {name} | {n} | {p['units_per_seed']} | {p['seconds_per_unit'] / 60:.1f} | {p['hours_per_seed']:.2f} | "
                   f"{n * p['hours_per_seed']:.1f} |")
    out += ["", "| ablation row (top-1/top-5 error) | paired sd so far (points) | smallest detectable at 5 seeds | "
            "seeds for 2 points | h for them (all 10 arms) |", "|---|---|---|---|---|"]
    for claim, x in plan["noise"].items():
        out.append(f"| {claim} | {x['paired_sd_points']:.2f} | {x['smallest_detectable_at_5_seeds']:.2f} | "
                   f"{x['seeds_for_2_points']} | {x['seeds_for_2_points'] * plan['ablations']['hours_per_seed']:.0f} |")
    out.append(f"\nTimes from the pilot (results/pilot/pilot.json: a shared host, load 5-6 on 2 cores) and the "
               f"committed lrn-cifar and figure1 units; {plan['note']}.")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if argv and argv[0] == "plan":
        results = Path(argv[1] if len(argv) > 1 else "results")
        record = plan(results)
        write_atomic(results / "pilot" / "plan.json", (json.dumps(record, indent=1) + "\n").encode())
        write_atomic(results / "pilot" / "table.md", plan_table(record).encode())
        print(plan_table(record))
        return 0
    store = Path(argv[0]).resolve()
    out = Path(argv[1] if len(argv) > 1 else "results/pilot")
    steps = int(os.environ.get("PILOT_STEPS", "5"))
    ctx = Context(name="pilot", data=store, out=out, work=Path("runs/experiments/pilot"), progress=False)
    ctx.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    load = os.getloadavg()
    rows = {}
    for name, (prices, preset, overrides) in CANDIDATES.items():
        rows[name] = {"prices": prices, **time_candidate(ctx, preset, overrides, steps, 50)}
        print(name, f"{rows[name]['seconds_per_step']:.2f} s/step", f"{rows[name]['seconds_per_10crop_image']:.3f} s/img",
              file=sys.stderr, flush=True)
    env = environment(resolve_device("cpu", "--device"), "python -m alexnet.experiments.pilot " + " ".join(argv))
    record = {"experiment": "pilot", **env, "store": str(store), "threads": 1, "loadavg_before": load,
              "loadavg_after": os.getloadavg(),
              "note": "shared 2-core host (six sessions at once): an estimate of the cost's order, not a benchmark",
              "candidates": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "pilot.json", (json.dumps(record, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
