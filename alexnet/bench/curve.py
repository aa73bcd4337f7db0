"""`alexnet bench curve`: does the fast path train like the reference path (the same loss curve
over 200 steps, within run-to-run noise)?

Method. One config, three runs of N SGD steps (default 200) on the same store, all from the same
initial weights (the first run's state_dict is loaded into the other two):
  ref    the faithful path: model.lrn_impl=reference, fp32, NCHW, eager
  fast   model.lrn_impl=fast; on CUDA also bf16 autocast, channels-last and torch.compile
         (unless --no-compile); on CPU fp32 unless --precision bf16
  noise  the reference path again with train.seed+1: another data order, other crops, flips,
         PCA colour noise and dropout masks, i.e. another draw of SGD's randomness
ref and fast see the same batches, augmentations and dropout masks (the order is a function of
(seed, epoch), the rest of (seed, step): see train/loop.py), so their curves differ only by the
arithmetic of the fast path. noise vs ref is the run-to-run noise that any training result is
measured against. Per-step losses are smoothed with a W-step moving average (W=20); the fast path
is within noise when the largest gap between the smoothed fast and ref curves is no larger than
the largest gap between the smoothed noise and ref curves.

The learning rate stays at optim.lr (no validation, no schedule cut) and epochs are crossed
as in Trainer.fit when the split is shorter than N batches.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import unwrap
from ..config import Config, build_config
from ..errors import UserError
from ..runtime import configure_torch, device_name, resolve_device
from ..train import Trainer, build_parts

RUNS = ("ref", "fast", "noise")


def path_overrides(name: str, device: torch.device, precision: str, compile_: bool) -> list[str]:
    """The config switches of one run; they come after the user's --set, so they win."""
    if name == "fast":
        cuda = device.type == "cuda"
        return ["model.lrn_impl=fast", f"train.precision={precision}", f"train.channels_last={str(cuda).lower()}",
                f"train.compile={str(cuda and compile_).lower()}"]
    return ["model.lrn_impl=reference", "train.precision=fp32", "train.channels_last=false", "train.compile=false"]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


def train_losses(cfg: Config, steps: int, init: dict[str, torch.Tensor] | None, given: set[str] | None = None) -> dict:
    """N steps of one run from `init` (None: the config's own seeded init); losses as floats.
    `given`: the config keys the user set; the store's facts replace the others, as in `train`."""
    configure_torch(cfg.train.threads, cfg.train.deterministic)
    parts = build_parts(cfg, resolve_device(cfg.train.device), given=given)
    cfg = parts.cfg  # fitted to the store
    if init is not None:
        unwrap(parts.model).load_state_dict(init)
    start = _state(parts.model)
    result = Trainer(cfg, parts).run_steps(steps)  # Trainer.fit's batches, augmentation and dropout draws
    return {**result, "start": start, "batch": cfg.optim.batch_size, "crop": cfg.data.crop, "seed": cfg.train.seed,
            "batches_per_epoch": len(parts.loader)}


def moving_average(x: list[float], window: int) -> np.ndarray:
    """Means of every `window` consecutive values: (len(x) - window + 1,)."""
    return np.convolve(np.asarray(x, dtype=np.float64), np.ones(window) / window, mode="valid")


def curve_gap(a: list[float], b: list[float], window: int) -> dict[str, float]:
    d = np.abs(moving_average(a, window) - moving_average(b, window))
    return {"mean_abs": float(d.mean()), "max_abs": float(d.max())}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def bench_curve(store: str, preset: str | None, overrides: list[str], steps: int = 200, device: str = "auto",
                precision: str | None = None, compile_: bool = True, window: int = 20) -> dict:
    if steps < 1 or window < 1:
        raise UserError(f"--steps {steps} and --window {window} must both be >= 1")
    window = min(window, steps)
    dev = resolve_device(device, "--device")
    precision = precision or ("bf16" if dev.type == "cuda" else "fp32")
    base = [f"data.store={store}", f"train.device={device}", "train.progress=false", *overrides]
    cfgs = {name: build_config(preset, base + path_overrides(name, dev, precision, compile_)) for name in RUNS}
    cfgs["noise"].train.seed += 1  # other draws of order, augmentation and dropout; same weights (loaded)
    given = {o.split("=", 1)[0] for o in overrides}  # the store's size and classes adapt the preset, as in train
    runs = {"ref": train_losses(cfgs["ref"], steps, None, given)}
    init = runs["ref"]["start"]
    runs["fast"] = train_losses(cfgs["fast"], steps, init, given)
    runs["noise"] = train_losses(cfgs["noise"], steps, init, given)
    losses = {name: r["losses"] for name, r in runs.items()}
    finite = {name: r["finite"] for name, r in runs.items()}
    fast_gap = curve_gap(losses["fast"], losses["ref"], window)
    noise_gap = curve_gap(losses["noise"], losses["ref"], window)
    return {
        "device": device_name(dev), "torch": torch.__version__, "preset": preset, "store": str(store),
        "overrides": overrides, "steps": steps, "window": window, "batch": runs["ref"]["batch"],
        "crop": runs["ref"]["crop"], "batches_per_epoch": runs["ref"]["batches_per_epoch"],
        "runs": {name: {"seed": runs[name]["seed"], "config": path_overrides(name, dev, precision, compile_)}
                 for name in RUNS},
        "same_init": all(_same(runs[name]["start"], init) for name in RUNS),
        "finite": finite,
        "first_loss": {name: v[0] for name, v in losses.items()},
        "final_mean": {name: float(np.mean(v[-window:])) for name, v in losses.items()},
        "fast_vs_ref": fast_gap, "noise_vs_ref": noise_gap,
        "within_noise": all(finite.values()) and fast_gap["max_abs"] <= noise_gap["max_abs"],
        "losses": losses,
    }


def to_json(result: dict) -> str:
    """Strict JSON: a non-finite loss becomes null (json.dumps would write NaN, which is not JSON)."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(result), allow_nan=False)


def write_json(text: str, path: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    except OSError as e:
        raise UserError(f"cannot write --out {path}: {e.strerror}") from None


def format_curve(result: dict) -> str:
    w, ls = result["window"], result["losses"]
    ma = {name: moving_average(v, w) for name, v in ls.items()}
    lines = [f"bench curve on {result['device']}, torch {result['torch']}, preset {result['preset']}, "
             f"{result['steps']} steps of batch {result['batch']} at {result['crop']}px, {w}-step moving averages",
             *(f"  {name:<5} seed {r['seed']}: {' '.join(r['config'])}" for name, r in result["runs"].items()),
             f"{'step':>5} {'loss ref':>9} {'fast':>9} {'noise':>9} {f'mean{w} ref':>11} {'fast':>9} {'noise':>9}"]
    for s in sorted({1, *range(w, result["steps"] + 1, w), result["steps"]}):
        row = f"{s:>5} " + " ".join(f"{ls[n][s - 1]:>9.4f}" for n in RUNS)
        if s >= w:
            row += f" {ma['ref'][s - w]:>11.4f} " + " ".join(f"{ma[n][s - w]:>9.4f}" for n in ("fast", "noise"))
        lines.append(row)
    f, n = result["fast_vs_ref"], result["noise_vs_ref"]
    lines += [f"gap of the {w}-step means: fast vs ref mean {f['mean_abs']:.3g} max {f['max_abs']:.3g}; "
              f"noise vs ref mean {n['mean_abs']:.3g} max {n['max_abs']:.3g}",
              "final mean loss: " + ", ".join(f"{k} {v:.4f}" for k, v in result["final_mean"].items()),
              f"same initial weights: {result['same_init']}; all finite: {all(result['finite'].values())}",
              f"within noise: {result['within_noise']} (max gap fast vs ref <= noise vs ref)"]
    return "\n".join(lines)
