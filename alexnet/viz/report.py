"""`alexnet report RUN -o report.html`: one self-contained page about a training run: the loss,
error, learning-rate and throughput curves (RUN/metrics.jsonl), the final metrics, Figure 3's
kernel grid with each column's chroma, Figure 4's prediction and neighbour panels, and the
config. Images are inline PNGs (data: URLs); no script, no external file."""
from __future__ import annotations

import base64
import datetime
import html
import importlib.util
import json
from pathlib import Path

import torch

from ..data.store import open_store
from ..errors import UserError
from ..evaluate import load_model
from .kernels import RANDOM_CHROMA, column_chroma, figure3
from .features import default_cache
from .panels import neighbours_figure, png, predictions_figure
from .results import pyplot

STYLE = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}pre{background:#f7f7f7;padding:1em;overflow:auto}"""


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run} has no metrics.jsonl: point `alexnet report` at a run folder made by `alexnet train`")
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut by a kill: the rest is still worth showing
            continue
    return rows


def curves_figure(rows: list[dict]):
    plt = pyplot()
    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val"]
    fig, ax = plt.subplots(2, 2, figsize=(10, 6))
    steps = [r["step"] for r in train]
    ax[0, 0].plot(steps, [r["loss"] for r in train], lw=1)
    ax[0, 0].set(xlabel="step", ylabel="loss", title="training loss")
    ax[0, 1].plot([r["epoch"] for r in val], [100 * r["top1_error"] for r in val], "o-", label="top-1")
    ax[0, 1].plot([r["epoch"] for r in val], [100 * r["top5_error"] for r in val], "o-", label="top-5")
    ax[0, 1].set(xlabel="epoch", ylabel="error (%)", title="validation error (centre patch)")
    ax[0, 1].legend()
    ax[1, 0].plot(steps, [r["lr"] for r in train], lw=1)
    ax[1, 0].set(xlabel="step", ylabel="lr", title="learning rate", yscale="log")
    ax[1, 1].plot(steps, [r["img_per_s"] for r in train], lw=1)
    ax[1, 1].set(xlabel="step", ylabel="images / s", title="throughput")
    fig.tight_layout()
    return fig


def summary(rows: list[dict]) -> dict:
    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val"]
    out = {"steps": train[-1]["step"] if train else 0, "epochs": val[-1]["epoch"] if val else 0,
           "last training loss": train[-1]["loss"] if train else None,
           "mean images / s": sum(r["img_per_s"] for r in train) / len(train) if train else None}
    if val:
        best = min(val, key=lambda r: r["top1_error"])
        out |= {"last val top-1 error": val[-1]["top1_error"], "last val top-5 error": val[-1]["top5_error"],
                "best val top-1 error": best["top1_error"], "best epoch": best["epoch"]}
    return out


def build_report(run: Path, data: Path | None, device: torch.device, queries: int = 4, k: int = 6,
                 db_per_class: int = 50, cache: Path | None = None) -> str:
    """The report's HTML. data: the store (default: the one in the run's config); cache: the folder
    of fc7 features (default: features.default_cache(), never the run folder)."""
    run = Path(run)
    rows = read_metrics(run)
    ckpt = next((p for p in (run / "best.pt", run / "last.pt") if p.is_file()), None)
    if ckpt is None:
        raise UserError(f"{run} has no best.pt or last.pt: train it first (alexnet train --out {run})")
    model, cfg, _ = load_model(ckpt, device)
    store = open_store(data or cfg.data.store)
    parts = [f"<h1>Run {html.escape(run.name)}</h1>",
             f"<p>{html.escape(str(run.resolve()))}; checkpoint {ckpt.name}; store {html.escape(str(store.path))}; "
             f"made {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}</p>",
             "<h2>Metrics</h2>", _table(summary(rows)),
             "<h2>Curves</h2>", _img(png(curves_figure(rows)), "training curves")]
    parts += ["<h2>conv1 kernels (Figure 3)</h2>", _img(png(figure3(model)), "conv1 kernels"),
              _rows_table(column_chroma(model)),
              f"<p>Chroma: share of a kernel's (mean-free) weights that is not grey; random kernels: "
              f"{RANDOM_CHROMA:.2f}. The paper finds column 1 mostly colour-agnostic, column 2 mostly colour-specific.</p>"]
    val = cfg.data.val_split if cfg.data.val_split in store.splits else store.splits[-1]
    parts += ["<h2>Predictions (Figure 4 left)</h2>",
              _img(png(predictions_figure(model, cfg, store, val, 8, device)), "top-5 predictions")]
    if hasattr(model, "hidden") and importlib.util.find_spec("faiss") is None:  # faiss is optional: say what is left out
        parts += ["<h2>Nearest training images in fc7 space (Figure 4 right)</h2>",
                  "<p>Left out: nearest-neighbour search needs faiss (pip install 'alexnet[retrieval]').</p>"]
    elif hasattr(model, "hidden"):
        fig = neighbours_figure(ckpt, model, cfg, store, cfg.data.train_split, val, queries, k, db_per_class, device,
                                cache or default_cache())
        parts += ["<h2>Nearest training images in fc7 space (Figure 4 right)</h2>", _img(png(fig), "neighbours"),
                  f"<p>Database: {db_per_class or 'all'} training images per class.</p>"]
    config = run / "config.json"
    parts += ["<h2>Config</h2>", f"<pre>{html.escape(json.dumps(json.loads(config.read_text()), indent=1))}</pre>"
              if config.is_file() else "<p>(no config.json)</p>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>alexnet run {html.escape(run.name)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))


def _table(d: dict) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in d.items()) + "</table>"


def _rows_table(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
