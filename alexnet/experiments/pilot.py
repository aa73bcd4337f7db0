"""The pilot behind the experiments' sizes (`python -m alexnet.experiments.pilot STORE144 [CIFAR32]`):
seconds per training step and per ten-patch evaluated image of each candidate size, timed side by
side in one process, written to results/pilot/result.json with the host, date and command. The
sizes' budgets (ablations.SIZES etc.) are these times multiplied out; the noise that decides how
many seeds they need is the measured paired spread of the claims table (results/claims.json).

A few steps per candidate: on a shared host the numbers are an estimate of the order of the cost,
which is what choosing a size needs; the record says how loaded the host was.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from ..data.store import open_store
from .common import Context, evaluate_nets, experiment_config, save_net, subset, trainer_on
from ..viz.results import environment
from ..fsutil import write_atomic
from ..runtime import resolve_device

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


def main(argv: list[str]) -> int:
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
    import json
    write_atomic(out / "result.json", (json.dumps(record, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
