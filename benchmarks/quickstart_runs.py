"""`alexnet quickstart` from a fresh store, several times: ten-patch accuracy (mean and spread)
and the seconds of each phase, into one committed JSON (issue 28: >= 72% ten patches, <= 180 s).

    python benchmarks/quickstart_runs.py --runs 3 --out benchmarks/quickstart-runs.json

Run it on a quiet host (nothing else running: the record keeps the load average before and
after each run). Each run is a new process in an empty work folder, so the store is prepared
anew, and with an empty numba cache (NUMBA_CACHE_DIR inside that folder), so the LRN's CPU
kernels compile as on a fresh machine; the first-use compile overlaps the store's preparation.
The phases come from the run's own record (runs/quickstart-quick/quickstart.json: prepare,
train, evaluate, total); wall_s is the whole process, start-up included.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from alexnet.runtime import command_line, source_commit  # noqa: E402


def one_run(data_dir: str | None, preset: str, results: Path | None = None) -> dict:
    """One fresh quickstart; with `results`, its result record (result.json, table.md, as
    `alexnet quickstart --results DIR` writes them) is kept there."""
    with tempfile.TemporaryDirectory(prefix="quickstart-") as work:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(work) / "numba-cache")}
        cmd = [sys.executable, "-m", "alexnet", "quickstart", "--work", work, "--preset", preset]
        cmd += ["--data-dir", data_dir] if data_dir else []
        cmd += ["--results", str(results.resolve())] if results else []
        load = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        record = json.loads((Path(work) / "runs" / f"quickstart-{preset}" / "quickstart.json").read_text())
    return {"wall_s": round(wall, 1), "seconds": record["seconds"], "errors": record["errors"],
            "accuracy_10crop_percent": round(100 * (1 - record["errors"]["10crop"]["top1"]), 2),
            "accuracy_center_percent": round(100 * (1 - record["errors"]["center"]["top1"]), 2),
            "epochs": record.get("epochs"), "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def spread(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 2), "min": min(values), "max": max(values),
            "stdev": round(statistics.stdev(values), 2) if len(values) > 1 else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--preset", default="quick")
    p.add_argument("--data-dir", default=None, help="folder holding imagenette-224.tar.gz (default: as quickstart)")
    p.add_argument("--out", default="benchmarks/quickstart-runs.json")
    p.add_argument("--results", type=Path, default=None,
                   help="keep the last run's result record here (the README's headline: results/quickstart)")
    args = p.parse_args()
    commit = source_commit()  # before the runs: the last one writes --results into the checkout
    runs = []
    for i in range(args.runs):
        runs.append(one_run(args.data_dir, args.preset, args.results if i == args.runs - 1 else None))
        print(json.dumps({"run": i + 1, **runs[-1]}), flush=True)
    phases = sorted({k for r in runs for k in r["seconds"]})
    record = {
        "what": "alexnet quickstart from a fresh store and an empty numba cache, run in turn; "
                "ten-patch accuracy on Imagenette's val split (3,925 images) and seconds per phase",
        "command": command_line(sys.argv), "commit": commit, "host": platform.node(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": runs,
        "accuracy_10crop_percent": spread([r["accuracy_10crop_percent"] for r in runs]),
        "accuracy_center_percent": spread([r["accuracy_center_percent"] for r in runs]),
        "wall_s": spread([r["wall_s"] for r in runs]),
        "phase_s": {k: spread([r["seconds"][k] for r in runs if k in r["seconds"]]) for k in phases},
        "goals": {"accuracy_10crop_percent_min": 72.0, "quickstart_s_max": 180.0},
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
