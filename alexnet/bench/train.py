"""`alexnet bench train`: the real training loop (store, loader, augmentation, step, validation,
checkpoints: Trainer.fit on a run folder) for N epochs, and next to it, in the same process and on
the same net, the model's own step on a synthetic batch already on the device. It reports images
per second end to end, the share of the wall time in each part of the loop, and the ratio of the
two rates: how close the loop comes to the model's speed.

Parts (train/phases.py): data (waiting for the loader's next batch), step (augmentation, forward,
backward, SGD update), validation, checkpoint (the snapshot, and waiting for the background
writer), other (logging, the progress line, Python between parts). By default each boundary
synchronises the device, so GPU work is charged to the part that queued it; --no-sync measures the
loop as it runs unmeasured (then the parts are host time only, and wall time is the honest total).

Wall time runs from the call of fit (first batch requested) to the last checkpoint on disk,
compilation included; the first step's excess over the median step is reported as an estimate of
compilation and warm-up (cuDNN autotuning, the allocator). Optionally the final checkpoint is then
evaluated (centre or ten patches, §4.1), outside the timed stretch.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ..config import build_config, to_dict
from ..data.store import open_store
from ..errors import UserError
from ..evaluate import PredictOptions, evaluate_checkpoints
from ..runtime import resolve_device, run_facts
from ..train import Drive, open_trainer
from ..train.phases import PhaseTimer
from .timing import timed


def bench_train(store: str, preset: str | None, overrides: list[str], epochs: int = 2, out: str | None = None,
                device: str = "auto", sync_phases: bool = True, synthetic_steps: int = 20, warmup: int = 3,
                final_eval: str = "none", max_seconds: float = 0.0) -> dict:
    """Run the loop (epochs=0: the preset's own budget) into run folder `out` (default: a temporary
    folder, removed afterwards), then time the synthetic step; returns the result as a dict."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
            result = bench_train(store, preset, overrides, epochs, str(Path(tmp) / "run"), device, sync_phases,
                                 synthetic_steps, warmup, final_eval, max_seconds)
        return {**result, "run": None}
    if epochs < 0 or synthetic_steps < 1 or warmup < 0 or max_seconds < 0:
        raise UserError("need --epochs >= 0, --synthetic-steps >= 1, --warmup >= 0, --max-seconds >= 0")
    sets = [f"data.store={store}", f"train.out={out}", f"train.device={device}", "train.progress=false", *overrides]
    cfg = build_config(preset, sets + ([f"schedule.epochs={epochs}"] if epochs else []))
    dev = resolve_device(cfg.train.device)
    timer = PhaseTimer(dev, sync_phases)
    given = {o.split("=", 1)[0] for o in sets[2:]}  # the caller's keys; the preset's data facts yield to the store
    trainer = open_trainer(cfg, phases=timer, given=given)
    cfg = trainer.cfg  # fitted to the store
    try:
        wall, summary = _timed_fit(trainer, max_seconds)
        synthetic = _synthetic_rate(trainer, synthetic_steps, warmup)
    finally:
        trainer.close()
    phases = timer.summary(wall)
    steps = summary["step"]
    images = steps * cfg.optim.batch_size
    step_t = phases.get("step")
    result = {
        **run_facts(dev), "preset": preset, "overrides": overrides, "store": str(store), "run": str(out), "config": to_dict(cfg),
        "epochs": summary["epoch"], "steps": steps, "batch": cfg.optim.batch_size, "images": images,
        "status": summary["status"], "best_val_top1_error": summary["best_val_top1_error"],
        "wall_s": wall, "img_s": images / wall, "sync_phases": sync_phases, "phases": phases,
        "first_step_excess_s": step_t["first_s"] - step_t["median_s"] if step_t else None,
        "synthetic_img_s": synthetic, "end_to_end_vs_synthetic": images / wall / synthetic,
    }
    if final_eval != "none":
        result["final_eval"] = _final_eval(Path(out) / "last.pt", store, final_eval, dev, cfg.eval.batch_size)
    return result


def _timed_fit(trainer, max_seconds: float) -> tuple[float, dict]:
    """fit(), timed; with max_seconds the driver's deadline stops it cleanly after the step that
    ends past it (last.pt saved, status "stopped")."""
    start = time.perf_counter()
    summary = trainer.fit(Drive(seconds=max_seconds))
    return time.perf_counter() - start, summary


def _synthetic_rate(trainer, steps: int, warmup: int) -> float:
    """img/s of the same Trainer.train_step (augmentation included) on one uint8 batch already on the
    device: the model's speed without the loader, validation or checkpoints. Steps are timed as one
    stretch, as in training."""
    p, cfg = trainer.parts, trainer.cfg
    gen = torch.Generator().manual_seed(0)
    size, batch = p.store.size, cfg.optim.batch_size
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen).to(p.device)
    labels = torch.randint(0, cfg.model.num_classes, (batch,), generator=gen).to(p.device)
    trainer.model.train()
    return timed(lambda: trainer.train_step(images, labels), steps, warmup, p.device, per_call=False).rate(batch)


def _final_eval(checkpoint: Path, store: str, views: str, device: torch.device, batch: int) -> dict:
    """Top-1/top-5 error of `checkpoint` on its validation split; `batch` views per forward pass."""
    start = time.perf_counter()
    images = max(1, batch // 10) if views == "10crop" else batch
    result = evaluate_checkpoints([str(checkpoint)], open_store(store), None, views,
                                  PredictOptions(0, batch_size=images, device=device))
    return {**result, "seconds": time.perf_counter() - start}


def format_train(r: dict) -> str:
    lines = [f"bench train on {r['device']}, torch {r['torch']}, {r['date']}: preset {r['preset']} "
             f"{' '.join(r['overrides'])}",
             f"{r['epochs']} epochs, {r['steps']} steps of {r['batch']} ({r['status']}), "
             + (f"run {r['run']}" if r["run"] else "in a temporary run folder, removed (keep it with --out)"),
             f"end to end: {r['img_s']:.1f} img/s over {r['wall_s']:.2f} s (first batch to the last checkpoint on disk); "
             f"the model's step on a device batch: {r['synthetic_img_s']:.1f} img/s; "
             f"ratio {r['end_to_end_vs_synthetic']:.2f}",
             f"{'part':<11} {'seconds':>8} {'share':>6} {'calls':>6} {'first s':>8} {'median s':>9}"
             + ("" if r["sync_phases"] else "   (host time only: --no-sync)")]
    for name, v in r["phases"].items():
        calls = "" if v["calls"] is None else v["calls"]
        first = "" if v["first_s"] is None else f"{v['first_s']:.4f}"
        median = "" if v["median_s"] is None else f"{v['median_s']:.4f}"
        lines.append(f"{name:<11} {v['seconds']:>8.2f} {100 * v['share']:>5.1f}% {calls:>6} {first:>8} {median:>9}")
    if r["first_step_excess_s"] is not None:
        lines.append(f"first step minus the median step (compilation, autotuning): {r['first_step_excess_s']:.2f} s")
    lines.append(f"best validation top-1 error {r['best_val_top1_error']:.4f}")
    if e := r.get("final_eval"):
        lines.append(f"final checkpoint, {e['views']}: top-1 error {e['top1_error']:.4f}, top-5 error "
                     f"{e['top5_error']:.4f} on {e['images']} images ({e['seconds']:.1f} s)")
    return "\n".join(lines)
