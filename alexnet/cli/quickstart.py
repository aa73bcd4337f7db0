"""The main job: find the bundled Imagenette, prepare a store once, train, evaluate (centre, and
eval.views: ten patches by default, §4.1), print the numbers and write them to
WORK/results/quickstart/ (result.json, with the run's config.json and metrics.jsonl beside it).
Re-running continues or reuses what is done.

Which checkpoint is reported: best.pt, chosen by the per-epoch validation. With data.holdout > 0
(the default) that validation runs on images held out of the training split, so the validation
split that is reported was never used to choose anything (the paper tuned on its validation set and
reported test, §6). With data.holdout=0 best.pt is chosen on the reported split itself, and the
output says so."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from ..config import Config, build_config
from ..data.bundled import IMAGENETTE, find_data_dir


def quickstart(data_dir: str | None, work: Path, preset: str, overrides: list[str]) -> dict:
    from ..data.prepare import prepare
    from ..data.store import open_store
    from ..evaluate import evaluate_checkpoints
    from ..runtime import resolve_device
    from ..train import train
    from ..viz.tensorboard import epoch_images

    archive = find_data_dir(data_dir) / IMAGENETTE
    cfg = build_config(preset, overrides)
    size = cfg.data.size or 256  # §2
    store_dir = work / "stores" / f"imagenette-{size}"
    seconds: dict[str, float] = {}
    print(f"[1/3] store {store_dir} from {archive}")
    t = time.perf_counter()
    print(prepare(archive, store_dir, size=size, progress=cfg.train.progress).line())
    seconds["prepare"] = time.perf_counter() - t
    run = work / "runs" / f"quickstart-{preset}"
    cfg.data.store, cfg.train.out = str(store_dir), str(run)
    resume = (run / "last.pt").exists()
    print(f"[2/3] train into {run}" + (" (continuing)" if resume else ""))
    t = time.perf_counter()
    summary = train(cfg, resume=resume, hooks=[epoch_images])  # TensorBoard: Figure 3 and 4 left per epoch
    seconds["train"] = time.perf_counter() - t
    print(json.dumps(summary))
    if summary["status"] != "finished":
        print("interrupted: run `alexnet quickstart` again to continue where it stopped")
        return {"status": summary["status"]}
    chosen = chosen_on(cfg)
    print(f"[3/3] evaluate best.pt ({chosen}) on the {cfg.data.val_split} split")
    store, device = open_store(store_dir), resolve_device(cfg.train.device)
    results = {}
    for views in dict.fromkeys(("center", cfg.eval.views)):
        t = time.perf_counter()
        results[views] = evaluate_checkpoints([str(run / "best.pt")], store, cfg.data.val_split, views, device,
                                              cfg.eval.batch_size, cfg.train.precision,
                                              channels_last=cfg.train.channels_last)
        seconds[f"eval_{views}"] = time.perf_counter() - t
    (run / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for views, r in results.items():
        print(f"  {views:>6}: top-1 accuracy {100 * (1 - r['top1_error']):.2f}%  "
              f"(top-1 error {100 * r['top1_error']:.2f}%, top-5 error {100 * r['top5_error']:.2f}%) on {r['images']} images")
    print(f"  reported: best.pt, {chosen}")
    record = result_record(cfg, preset, summary, results, seconds, resume, device)
    out = write_record(record, run, work / "results" / "quickstart")
    print(f"results: {out}; metrics: {run / 'metrics.jsonl'}; TensorBoard: tensorboard --logdir {run / 'tb'}")
    return results


def chosen_on(cfg: Config) -> str:
    """Where best.pt was chosen, in words."""
    if cfg.data.holdout:
        return (f"chosen by the error on {100 * cfg.data.holdout:g}% of each class held out of the "
                f"{cfg.data.train_split} split (data.holdout), never trained on; the {cfg.data.val_split} split "
                "is used only here")
    return (f"chosen by the error on the {cfg.data.val_split} split itself (data.holdout=0): the number below is "
            "selected on the split it reports")


def result_record(cfg: Config, preset: str, summary: dict, results: dict, seconds: dict, resumed: bool,
                  device) -> dict:
    """What result.json holds: the errors of both views, which checkpoint and why, the time of each
    phase, how much was trained and how fast, and where it ran."""
    from ..viz.results import environment
    from .experiments import command_line
    steps = summary["step"]
    return {
        "results": {views: {k: r[k] for k in ("top1_error", "top5_error", "images", "split")} | {
            "top1_accuracy": 1 - r["top1_error"]} for views, r in results.items()},
        "checkpoint": "best.pt", "chosen_on": summary.get("val_split", cfg.data.val_split),
        "why": chosen_on(cfg),
        "best_selection_top1_error": summary["best_val_top1_error"],
        "preset": preset, "epochs": summary["epoch"], "steps": steps, "batch_size": cfg.optim.batch_size,
        "schedule": cfg.schedule.kind, "precision": cfg.train.precision, "channels_last": cfg.train.channels_last,
        "seconds": {k: round(v, 1) for k, v in seconds.items()} | {"total": round(sum(seconds.values()), 1)},
        "train_img_per_s": round(steps * cfg.optim.batch_size / seconds["train"], 1) if not resumed else None,
        "resumed": resumed,  # a re-run that continued or reused a run: its times are not the whole job's
        "commit": _commit(), **environment(device, command_line()),
    }


def write_record(record: dict, run: Path, out: Path) -> Path:
    """out/result.json, with the run's config.json and metrics.jsonl copied beside it (small files)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metrics.jsonl"):
        shutil.copyfile(run / name, out / name)
    path = out / "result.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def _commit() -> str | None:
    """The package's git commit (None outside a git checkout), + "-dirty" with uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")
