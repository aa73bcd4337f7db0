"""The main job: find the bundled Imagenette, prepare a store once, train, evaluate (centre, and
eval.views: ten patches by default, §4.1), and print the numbers. Re-running continues or reuses what is done.

It writes the record of the call into the run folder (quickstart.json: the errors, the wall time
of each phase, the command, date, host and the package's commit; quickstart.md: the rows the
README shows) and, with `--results DIR`, as DIR/result.json and DIR/table.md: the README's
headline is `alexnet quickstart --results results/quickstart` from a fresh clone, committed
(tests/test_results_readme.py keeps the README equal to it); the run's config.json and
metrics.jsonl are copied beside it.

Which checkpoint is reported: best.pt, chosen by the per-epoch validation. With data.holdout > 0
(the default) that validation runs on images held out of the training split, so the validation
split that is reported was never used to choose anything (the paper tuned on its validation set and
reported test, §6). With data.holdout=0 best.pt is chosen on the reported split itself, and the
output says so."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from ..config import build_config
from ..data.bundled import IMAGENETTE, find_data_dir
from .args import given_keys


def quickstart(data_dir: str | None, work: Path, preset: str, overrides: list[str], results_dir: Path | None = None) -> dict:
    import torch

    from ..data.prepare import prepare
    from ..data.store import open_store
    from ..evaluate import PredictOptions, evaluate_checkpoints
    from ..nets.lrn import warm_up_cpu_kernels
    from ..runtime import resolve_device
    from ..train import train
    from ..viz.tensorboard import epoch_images

    start = time.perf_counter()
    archive = find_data_dir(data_dir) / IMAGENETTE
    cfg = build_config(preset, overrides)
    size = cfg.data.size or 256  # §2
    store_dir = work / "stores" / f"imagenette-{size}"
    run = work / "runs" / f"quickstart-{preset}"
    reused = {"store": (store_dir / "store.json").exists(), "run": (run / "last.pt").exists()}
    if resolve_device(cfg.train.device).type == "cpu":  # the LRN's numba kernels compile while the store is made
        warm_up_cpu_kernels(torch.bfloat16 if cfg.train.precision == "bf16" else torch.float32)
    print(f"[1/3] store {store_dir} from {archive}")
    print(prepare(archive, store_dir, size=size, progress=cfg.train.progress).line())
    seconds = {"prepare": time.perf_counter() - start}
    cfg.data.store, cfg.train.out = str(store_dir), str(run)
    resume = reused["run"]
    print(f"[2/3] train into {run}" + (" (continuing)" if resume else ""))
    summary = train(cfg, resume=resume, hooks=[epoch_images], given=given_keys(overrides))  # TensorBoard: Figure 3 and 4 left per epoch
    print(json.dumps(summary))
    if summary["status"] != "finished":
        print("interrupted: run `alexnet quickstart` again to continue where it stopped")
        return {"status": summary["status"]}
    seconds["train"] = time.perf_counter() - start - seconds["prepare"]
    chosen = chosen_on(cfg)
    print(f"[3/3] evaluate best.pt ({chosen}) on the {cfg.data.val_split} split")
    store, device = open_store(store_dir), resolve_device(cfg.train.device)
    how = PredictOptions(cfg.data.crop, batch_size=cfg.eval.batch_size, device=device, precision=cfg.train.precision,
                         channels_last=cfg.train.channels_last)  # the precision and layout it trained in
    results = {views: evaluate_checkpoints([str(run / "best.pt")], store, cfg.data.val_split, views, how)
               for views in dict.fromkeys(("center", cfg.eval.views))}
    (run / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    seconds["evaluate"] = time.perf_counter() - start - seconds["prepare"] - seconds["train"]
    seconds["total"] = time.perf_counter() - start
    places = [(run, "quickstart.json", "quickstart.md")] + ([(results_dir, "result.json", "table.md")] if results_dir else [])
    record = write_record(places, run, {**facts(cfg, preset, summary, device), "errors": {
        views: {"top1": r["top1_error"], "top5": r["top5_error"]} for views, r in results.items()},
        "images": next(iter(results.values()))["images"],
        "seconds": {k: round(v, 1) for k, v in seconds.items()}, "reused": reused})
    for views, r in results.items():
        print(f"  {views:>6}: top-1 accuracy {100 * (1 - r['top1_error']):.2f}%  "
              f"(top-1 error {100 * r['top1_error']:.2f}%, top-5 error {100 * r['top5_error']:.2f}%) on {r['images']} images")
    print(f"  reported: best.pt, {chosen}")
    print(f"results: {run / 'results.json'} and {record}; metrics: {run / 'metrics.jsonl'}; "
          f"TensorBoard: tensorboard --logdir {run / 'tb'}")
    return results


def chosen_on(cfg: Config) -> str:
    """Where best.pt was chosen, in words."""
    if cfg.data.holdout:
        return (f"chosen by the error on {100 * cfg.data.holdout:g}% of each class held out of the "
                f"{cfg.data.train_split} split (data.holdout), never trained on; the {cfg.data.val_split} split "
                "is used only here")
    return (f"chosen by the error on the {cfg.data.val_split} split itself (data.holdout=0): the number below is "
            "selected on the split it reports")


def facts(cfg: Config, preset: str, summary: dict, device) -> dict:
    """Where and how the quickstart ran: command, date, host, commit, the recipe's knobs, which
    checkpoint is reported and on what it was chosen."""
    import platform

    from ..runtime import command_line, source_commit
    from ..viz.results import environment
    return {**environment(device, command_line(_without_results(sys.argv))), "commit": source_commit(),
            "host": platform.node(), "preset": preset, "split": cfg.data.val_split,
            "checkpoint": "best.pt", "chosen_on": "holdout" if cfg.data.holdout else cfg.data.val_split,
            "why": chosen_on(cfg), "epochs": summary["epoch"], "steps": summary["step"],
            "batch_size": cfg.optim.batch_size, "schedule": cfg.schedule.kind,
            "precision": cfg.train.precision, "channels_last": cfg.train.channels_last}


def write_record(places: list[tuple[Path, str, str]], run: Path, record: dict) -> Path:
    """The record as JSON and its table (quickstart_table) as markdown, in each (folder, json name,
    markdown name) of `places`, with the run's config.json and metrics.jsonl beside it outside the
    run folder; the first JSON's path."""
    from ..fsutil import write_atomic
    for folder, json_name, table_name in places:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / json_name, (json.dumps(record, indent=1) + "\n").encode())
        write_atomic(folder / table_name, (quickstart_table(record) + "\n").encode())
        if folder != run:
            for name in ("config.json", "metrics.jsonl"):
                shutil.copyfile(run / name, folder / name)
    return places[0][0] / places[0][1]


def _without_results(argv: list[str]) -> list[str]:
    """The command line without --results DIR: where the record goes, not what it measured."""
    out, skip = [], False
    for a in argv:
        if not skip and a != "--results" and not a.startswith("--results="):
            out.append(a)
        skip = a == "--results"
    return out


VIEWS = {"center": "centre patch", "10crop": "ten patches (§4.1)"}


def quickstart_table(record: dict) -> str:
    """The README's rows for a quickstart record: errors per view, then the time it took."""
    date, machine = record["date"][:10], record.get("machine") or record["device"]
    rows = ["| what | command | machine | top-1 err | top-5 err |", "|---|---|---|---|---|"]
    for i, (views, e) in enumerate(record["errors"].items()):
        what = (f"`{record['preset']}` preset, {record['images']:,} images of {record['split']}, {VIEWS[views]}"
                if i == 0 else f"same checkpoint, {VIEWS[views]}")
        where = f"`{record['command']}` | {machine}, {date}" if i == 0 else "(same) | (same)"
        rows.append(f"| {what} | {where} | {100 * e['top1']:.2f} | {100 * e['top5']:.2f} |")
    s = record["seconds"]
    reused = [k for k, v in record.get("reused", {}).items() if v]
    note = f" ({' and '.join(reused)} reused from an earlier call)" if reused else ""
    rows += ["", f"`{record['command']}` took {s['total']:.0f} s{note}: prepare {s['prepare']:.0f} s, "
                 f"training {s['train']:.0f} s, evaluation {s['evaluate']:.0f} s; commit "
                 f"{(record.get('commit') or 'unknown')[:7]}, {record['host_cores']} cores."]
    return "\n".join(rows)
