"""The retrieval study behind `alexnet viz codes` (§6.1): validation images query the training
images; same class = relevant. Methods: exact Euclidean search on the last hidden layer, binary
codes of it at several lengths (Hamming), and the same auto-encoder on raw pixels (Hamming),
with exact Euclidean on pixels as a further reference. Precision@k and query time per method."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.loader import BatchLoader
from ..data.store import Store
from .codes import euclidean_search, hamming_search, precision_at_k, timed, train_codec
from .features import cached_features, default_cache
from .results import pct
from .results import pyplot

KS = (1, 10, 50)


def pixels(reader, side: int = 32) -> np.ndarray:
    """(N, 3 * side * side) float32: every image shrunk to side x side (antialiased), 0..255."""
    out = []
    for x, _ in BatchLoader(reader, 256, shuffle=False, drop_last=False, threads=1).batches(0):
        out.append(F.interpolate(x.float(), size=(side, side), mode="bilinear", antialias=True).flatten(1))
    return torch.cat(out).numpy()


def study(checkpoint: Path, model, cfg, store: Store, db_reader, query_reader, device: torch.device,
          bits: tuple[int, ...] = (64, 128, 256), steps: int = 2000, log=print, cache: Path | None = None) -> dict:
    """Binary codes vs exact search on fc7 features (cached in the folder `cache`, default features.default_cache())."""
    cache = cache or default_cache()
    mean = store.mean if cfg.data.mean_image else None
    log(f"fc7 features of {len(db_reader)} training and {len(query_reader)} validation images (cached)")
    db = cached_features(cache, checkpoint, model, db_reader, mean, cfg.data.crop, device, store.path)
    q = cached_features(cache, checkpoint, model, query_reader, mean, cfg.data.crop, device, store.path)
    db_y, q_y = np.asarray(db_reader.labels), np.asarray(query_reader.labels)
    kmax = min(max(KS), len(db))
    rows = []

    def add(method: str, representation: str, nbits, search, *args, train_s: float | None = None):
        (idx, _), seconds = timed(search, *args, kmax)
        rows.append({"method": method, "representation": representation, "bits": nbits,
                     "query_ms": 1000 * seconds / len(q), "train_s": train_s,
                     **{f"p@{k}": precision_at_k(idx, q_y, db_y, k) for k in KS if k <= kmax}})
        log(f"{method}: p@10 {pct(rows[-1].get('p@10'))}%")

    add("exact Euclidean", f"fc7 ({db.shape[1]}-d float)", 32 * db.shape[1], euclidean_search, db, q)
    log("pixels of every image at 32x32")
    db_px, q_px = pixels(db_reader), pixels(query_reader)
    add("exact Euclidean", f"pixels ({db_px.shape[1]}-d)", 32 * db_px.shape[1], euclidean_search, db_px, q_px)
    for source, (dbx, qx) in (("fc7", (db, q)), ("pixels", (db_px, q_px))):
        for b in bits:
            t0 = time.perf_counter()
            codec = train_codec(dbx, b, steps=steps)
            train_s = time.perf_counter() - t0
            add(f"{b}-bit codes, Hamming", f"auto-encoder on {source}", b, hamming_search,
                codec.encode(dbx), codec.encode(qx), train_s=train_s)
    return {"database_images": len(db), "query_images": len(q), "feature_dim": int(db.shape[1]),
            "ks": [k for k in KS if k <= kmax], "chance_precision": float(np.mean([np.mean(db_y == y) for y in q_y])),
            "autoencoder_steps": steps, "rows": rows}


def plot(result: dict):
    plt = pyplot()
    k = "p@10" if "p@10" in result["rows"][0] else f"p@{result['ks'][-1]}"
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for source, colour in (("fc7", "C0"), ("pixels", "C3")):
        codes = [r for r in result["rows"] if r["representation"] == f"auto-encoder on {source}"]
        ax.plot([r["bits"] for r in codes], [100 * r[k] for r in codes], "o-", color=colour,
                label=f"binary codes of {source} (Hamming)")
        exact = next(r for r in result["rows"]
                     if r["method"] == "exact Euclidean" and r["representation"].startswith(source))
        ax.axhline(100 * exact[k], color=colour, ls="--", lw=1, label=f"exact Euclidean, {exact['representation']}")
    ax.axhline(100 * result["chance_precision"], color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="code length (bits)", ylabel=f"{k} same class (%)", title="Retrieval with short binary codes")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def table(result: dict) -> str:
    ks = result["ks"]
    out = ["| method | representation | bits per image | " + " | ".join(f"p@{k}" for k in ks) +
           " | query time (ms / query) |", "|---|---|---|" + "---|" * len(ks) + "---|"]
    for r in result["rows"]:
        out.append(f"| {r['method']} | {r['representation']} | {r['bits']} | " +
                   " | ".join(pct(r[f"p@{k}"]) for k in ks) + f" | {r['query_ms']:.3f} |")
    out.append(f"\n{result['query_images']} validation images query {result['database_images']} training images; "
               f"precision in % of same-class neighbours (chance {pct(result['chance_precision'])}%); query time is "
               "the best of 3 runs of the whole batch of queries, divided by the number of queries (faiss, 1 thread).")
    return "\n".join(out)
