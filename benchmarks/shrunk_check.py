"""The GPU suite's goal run, shrunk to fit a CPU: the record behind docs/results.md's "shrunken check".

Runs `alexnet bench train` on the `imagenette-fast` preset (its schedule over 4 epochs at quarter
width on 112px crops of a 144px store, fp32) into a run folder, then writes one JSON with the
command, host, date and commit, bench train's own result (wall-time shares, centre-patch error of
last.pt) and the training loss of every step (from the run's metrics.jsonl: the loss logged each step).

    PYTHONPATH=. python benchmarks/shrunk_check.py --store stores/imagenette-144
        [--work /tmp/shrunk-check] [--json benchmarks/shrunk-check-cpu.json]
"""
import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHRUNK = ("data.size=144 data.crop=112 model.width=0.25 schedule.epochs=4 schedule.warmup_epochs=1 "
          "train.precision=fp32 train.channels_last=false train.cudnn_benchmark=false train.log_every_steps=1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True, help="an Imagenette store at 144px (alexnet prepare ... --size 144)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/shrunk-check"))
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "shrunk-check-cpu.json")
    args = ap.parse_args()
    run_dir, bench_json = args.work / "run", args.work / "bench-train.json"
    args.work.mkdir(parents=True, exist_ok=True)
    command = (f"alexnet bench train --preset imagenette-fast --data {args.store} --epochs 0 --final-eval center "
               f"--out {run_dir} --json-out {bench_json} --set {SHRUNK}")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"$ {command}", flush=True)
    subprocess.run([sys.executable, "-m", "alexnet", *shlex.split(command)[1:]], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    record = {
        "command": " ".join(["PYTHONPATH=. python benchmarks/shrunk_check.py", *map(shlex.quote, sys.argv[1:])]),
        "runs": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "commit": commit,
        "bench_train": json.loads(bench_json.read_text()),
        "train_loss": [r["loss"] for r in rows if r["kind"] == "train"],
    }
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
