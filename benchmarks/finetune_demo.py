"""Fine-tuning demonstrated, Imagenette -> CIFAR-10: the record behind docs/results.md's table.

Trains a short source net on Imagenette with the `quick` preset, then four runs of one budget on
100 CIFAR-10 images per class (upscaled to the source's 144px): from scratch, and fine-tuned from
the source net three ways (§6's transfer: a new classifier on the trained layers). Each step is
the project's own command (`alexnet prepare / train / finetune`), run in turn in one process;
each run's top-1/top-5 error on the 1,000 test images after every epoch is read from its
`metrics.jsonl` and the whole is written as one JSON with the commands, host, date and commit.
The stores and a finished source net (runs/source/best.pt) in --work are reused (the record
says so); the four runs are always made afresh.

    PYTHONPATH=. python benchmarks/finetune_demo.py [--data ../shared/data] [--work /tmp/finetune-demo]
        [--json benchmarks/finetune-cpu.json]
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_EPOCHS = 2
EPOCHS = 5
TARGET = f"--epochs {EPOCHS} --set data.val_split=test data.holdout=0"  # each epoch's validation: the test split
RUNS = {  # name -> the command's head; each gets --data, --out and TARGET
    "scratch": "alexnet train --preset quick",
    "finetune": "alexnet finetune SOURCE",
    "finetune-all-at-0.01": "alexnet finetune SOURCE --lr 0.01 --pretrained-lr-mult 1",
    "finetune-lr-0.01": "alexnet finetune SOURCE --lr 0.01",
}


def run(command: str, cwd: Path) -> float:
    """Runs one `alexnet ...` command line with this checkout's package; returns its wall time."""
    print(f"$ {command}", flush=True)
    argv = [sys.executable, "-m", "alexnet", *shlex.split(command)[1:]]
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return round(time.perf_counter() - start, 1)


def val_errors(run_dir: Path) -> list[dict]:
    """Every validation entry of a run: epoch, split, top-1 and top-5 error."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: r[k] for k in ("epoch", "split", "top1_error", "top5_error")} for r in rows if r["kind"] == "val"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/finetune-demo"))
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "finetune-cpu.json")
    args = ap.parse_args()
    work, data = args.work, args.data.resolve()
    work.mkdir(parents=True, exist_ok=True)
    source = "runs/source/best.pt"
    steps = {
        "prepare-source": f"alexnet prepare {data}/imagenette-224.tar.gz stores/imagenette-144 --size 144",
        "prepare-target": f"alexnet prepare {data}/cifar10-jpeg.tar.gz stores/cifar10-144-100 --size 144 --limit-per-class 100",
        "source": f"alexnet train --preset quick --data stores/imagenette-144 --epochs {SOURCE_EPOCHS} --out runs/source",
    }
    for name, head in RUNS.items():
        steps[name] = f"{head.replace('SOURCE', source)} --data stores/cifar10-144-100 --out runs/{name} {TARGET}"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    reused = ["source"] if (work / source).is_file() else []
    seconds = {}
    for name, command in steps.items():
        if name in reused:
            continue
        if name in RUNS:
            shutil.rmtree(work / "runs" / name, ignore_errors=True)
        seconds[name] = run(command, work)
    record = {
        "command": " ".join(["PYTHONPATH=. python benchmarks/finetune_demo.py", *map(shlex.quote, sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "device": f"cpu ({platform.machine()})",
        "commit": commit, "steps": steps, "seconds": seconds, "reused": reused,
        "source": {"errors": val_errors(work / "runs" / "source")},
        "runs": {name: {"errors": val_errors(work / "runs" / name),
                        "config": json.loads((work / "runs" / name / "config.json").read_text())}
                 for name in RUNS},
    }
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
