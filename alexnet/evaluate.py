"""§6 evaluation: top-1 and top-5 error, over the centre patch or the ten patches (§4.1),
for one net or an ensemble whose softmax outputs are averaged (§6, "averaging the predictions
of five similar CNNs")."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, model_weights
from .config import Config, from_dict
from .data.augment import eval_views
from .data.loader import BatchLoader
from .errors import CheckpointError, UserError
from .nets.model import build_model
from .runtime import autocast


@torch.no_grad()
def predict(models: list[nn.Module], reader, mean: torch.Tensor | None, crop: int, views: str,
            batch_size: int, device: torch.device, precision: str = "fp32", progress: bool = False,
            threads: int = 0) -> torch.Tensor:
    """Softmax averaged over views and models: (N, C) float32 on the CPU, in the reader's order."""
    for m in models:
        m.eval()
    loader = BatchLoader(reader, batch_size, shuffle=False, drop_last=False, device=device, threads=threads)
    mean = None if mean is None else mean.to(device)
    out = []
    batches = loader.batches(0)
    if progress:
        from tqdm import tqdm
        batches = tqdm(batches, total=len(loader), desc=f"eval {views}", leave=False)
    for x, _ in batches:
        v = eval_views(x, crop, mean, views)  # (V, B, 3, crop, crop)
        V, B = v.shape[:2]
        probs = 0.0
        for m in models:
            with autocast(device, precision):
                logits = m(v.flatten(0, 1))  # (V*B, C)
            probs = probs + F.softmax(logits.float(), dim=-1).view(V, B, -1).mean(0)  # (B, C)
        out.append((probs / len(models)).cpu())
    return torch.cat(out)


def topk_errors(probs: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """Fraction of samples whose label is not among the k most probable classes."""
    result = {}
    for k in ks:
        k_eff = min(k, probs.shape[1])
        hit = (probs.topk(k_eff, dim=1).indices == labels[:, None]).any(dim=1)
        result[f"top{k}_error"] = 1.0 - hit.float().mean().item()
    return result


def load_model(path: str | Path, device: torch.device) -> tuple[nn.Module, Config, dict]:
    """Rebuild a net from an alexnet checkpoint (its saved config says which net)."""
    state = load_checkpoint(path)
    if "config" not in state:
        raise CheckpointError(f"{path} has no saved config: it was not written by `alexnet train`")
    cfg = from_dict(state["config"])
    model = build_model(cfg.model)
    try:
        model.load_state_dict(model_weights(state, path))
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the saved config ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), cfg, state


def evaluate_checkpoints(paths: list[str], store, split: str | None, views: str | None, device: torch.device,
                         batch_size: int = 256, precision: str = "fp32", progress: bool = False) -> dict:
    """Top-1/top-5 error of the checkpoints' averaged softmax on `split` (default: the first
    checkpoint's validation split) over `views` (default: the first checkpoint's eval.views, §4.1)."""
    loaded = [load_model(p, device)[:2] for p in paths]
    for p, (_, cfg) in zip(paths, loaded):
        if cfg.model.num_classes != store.num_classes:
            raise UserError(f"{p} predicts {cfg.model.num_classes} classes but store {store.path} has "
                            f"{store.num_classes}: evaluate it on the data it was trained for")
        if cfg.data.crop > store.size:
            raise UserError(f"{p} uses {cfg.data.crop}px crops but store {store.path} holds {store.size}px images")
    if len({(cfg.data.crop, cfg.data.mean_image) for _, cfg in loaded}) != 1:
        raise UserError("the checkpoints differ in crop size or mean subtraction: an ensemble needs one input format")
    first = loaded[0][1].data
    views = views or loaded[0][1].eval.views
    reader = store.split(split or first.val_split)
    mean = store.mean if first.mean_image else None
    probs = predict([m for m, _ in loaded], reader, mean, first.crop, views, batch_size, device, precision, progress)
    labels = torch.as_tensor(reader.labels, dtype=torch.int64)
    return {"checkpoints": [str(p) for p in paths], "store": str(store.path), "split": reader.name, "views": views,
            "images": len(reader), **topk_errors(probs, labels)}
