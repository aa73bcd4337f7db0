"""The main job: find the bundled Imagenette, prepare a store once, train, evaluate (centre, and
eval.views: ten patches by default, §4.1), and print the numbers. Re-running continues or reuses what is done."""
from __future__ import annotations

import json
from pathlib import Path

from ..config import build_config
from ..data.bundled import IMAGENETTE, find_data_dir
from .args import given_keys


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
    print(f"[1/3] store {store_dir} from {archive}")
    print(prepare(archive, store_dir, size=size, progress=cfg.train.progress).line())
    run = work / "runs" / f"quickstart-{preset}"
    cfg.data.store, cfg.train.out = str(store_dir), str(run)
    resume = (run / "last.pt").exists()
    print(f"[2/3] train into {run}" + (" (continuing)" if resume else ""))
    summary = train(cfg, resume=resume, hooks=[epoch_images], given=given_keys(overrides))  # TensorBoard: Figure 3 and 4 left per epoch
    print(json.dumps(summary))
    if summary["status"] != "finished":
        print("interrupted: run `alexnet quickstart` again to continue where it stopped")
        return {"status": summary["status"]}
    print("[3/3] evaluate best.pt on the held-out split")
    store, device = open_store(store_dir), resolve_device(cfg.train.device)
    results = {views: evaluate_checkpoints([str(run / "best.pt")], store, cfg.data.val_split, views, device,
                                           cfg.eval.batch_size) for views in dict.fromkeys(("center", cfg.eval.views))}
    (run / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for views, r in results.items():
        print(f"  {views:>6}: top-1 accuracy {100 * (1 - r['top1_error']):.2f}%  "
              f"(top-1 error {100 * r['top1_error']:.2f}%, top-5 error {100 * r['top5_error']:.2f}%) on {r['images']} images")
    print(f"results: {run / 'results.json'}; metrics: {run / 'metrics.jsonl'}; TensorBoard: tensorboard --logdir {run / 'tb'}")
    return results
