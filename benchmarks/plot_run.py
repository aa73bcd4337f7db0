"""Plot a run's metrics.jsonl (training loss, validation top-1/top-5 error) to a PNG.

    python benchmarks/plot_run.py runs/quickstart-quick docs/quickstart.png
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(run: str, out: str) -> None:
    rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    val = [r for r in rows if r["kind"] == "val"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
    a.set(xlabel="step", ylabel="training loss", title="training loss")
    b.plot([r["epoch"] for r in val], [100 * r["top1_error"] for r in val], "o-", label="top-1")
    b.plot([r["epoch"] for r in val], [100 * r["top5_error"] for r in val], "o-", label="top-5")
    split = val[0].get("split", "validation") if val else "validation"  # "holdout": data.holdout of train
    b.set(xlabel="epoch", ylabel=f"{split} error (%)", title=f"per-epoch {split} error (centre patch)")
    b.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
