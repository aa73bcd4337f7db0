"""§6 evaluation: top-1 and top-5 error, over the centre patch or the ten patches (§4.1),
for one net or an ensemble whose softmax outputs are averaged (§6, "averaging the predictions
of five similar CNNs").

With several processes (torchrun), each predicts every world-th image (data/loader.shard, no
padding) and the shares are gathered back into the reader's order: every image counted once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, model_weights
from .config import Config, from_dict
from .data.augment import eval_views
from .data.loader import BatchLoader
from .errors import CheckpointError, UserError
from .nets.model import build_model
from .runtime import autocast, to_device


@dataclass(frozen=True)
class PredictOptions:
    """How predict() runs: the views (§4.1), the batch, where and in what precision, and this
    process's share of the images (rank, world, group: train/distributed.py's eval_shard)."""
    crop: int
    views: str = "center"  # "center" or "10crop"
    batch_size: int = 256
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"  # autocast precision: evaluate in the one the net trained in (train.precision)
    channels_last: bool = False  # the input in that layout (nets whose weights are channels-last)
    progress: bool = False
    threads: int = 0  # loader decode threads (0: one per core)
    on_device: bool = False  # leave the result on `device` (no transfer)
    rank: int = 0
    world: int = 1
    group: Any = None


@torch.no_grad()
def predict(models: list[nn.Module], reader, mean: torch.Tensor | None, how: PredictOptions) -> torch.Tensor:
    """Softmax averaged over views and models: (N, C) float32 in the reader's order, on the CPU
    (one transfer at the end, no host sync per batch), or left on `how.device` with on_device.
    With world > 1 this process predicts images rank, rank + world, ... and the result is gathered
    from the `world` processes of `group` (a collective: every one of them calls predict)."""
    for m in models:
        m.eval()
    device = how.device
    loader = BatchLoader(reader, how.batch_size, shuffle=False, drop_last=False, device=device, threads=how.threads,
                         rank=how.rank, world=how.world)
    mean = None if mean is None else mean.to(device)
    out = []
    batches = loader.batches(0)
    if how.progress:
        from tqdm import tqdm
        batches = tqdm(batches, total=len(loader), desc=f"eval {how.views}", leave=False)
    layout = torch.channels_last if how.channels_last else torch.contiguous_format
    for x, _ in batches:
        v = eval_views(x, how.crop, mean, how.views)  # (V, B, 3, crop, crop)
        V, B = v.shape[:2]
        v = v.flatten(0, 1).contiguous(memory_format=layout)  # (V*B, 3, crop, crop)
        probs = 0.0
        for m in models:
            with autocast(device, how.precision):
                logits = m(v)  # (V*B, C)
            probs = probs + F.softmax(logits.float(), dim=-1).view(V, B, -1).mean(0)  # (B, C)
        out.append(probs / len(models))  # (B, C) on the device
    mine = torch.cat(out) if out else None  # None: fewer images than processes
    if how.world > 1:
        probs = gather_shards(None if mine is None else mine.cpu(), len(reader), how.world, how.group)
        return probs.to(device) if how.on_device else probs
    return mine if how.on_device else mine.cpu()


def gather_shards(mine: torch.Tensor | None, n: int, world: int, group=None) -> torch.Tensor:
    """Every process's rows (rank r holds rows r, r + world, ...) put back in order: (n, C)."""
    shares = [None] * world
    dist.all_gather_object(shares, mine, group=group)
    shape = next(s for s in shares if s is not None).shape[1:]
    out = torch.empty((n, *shape))
    for r, share in enumerate(shares):
        if share is not None:
            out[r::world] = share
    return out


def topk_errors(probs: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """Fraction of samples whose label is not among the k most probable classes."""
    labels = to_device(labels, probs.device)
    errors = []
    for k in ks:
        k_eff = min(k, probs.shape[1])
        hit = (probs.topk(k_eff, dim=1).indices == labels[:, None]).any(dim=1)
        errors.append(1.0 - hit.float().mean())
    return dict(zip((f"top{k}_error" for k in ks), torch.stack(errors).tolist()))  # one transfer


def hardest_classes(probs: torch.Tensor, labels: torch.Tensor, names: list[str], n: int = 3) -> list[dict]:
    """The n classes with the highest top-1 error, by the names people read."""
    labels = to_device(labels, probs.device)
    classes = probs.shape[1]
    seen = torch.bincount(labels, minlength=classes)
    wrong = torch.bincount(labels[probs.argmax(1) != labels], minlength=classes)
    error = (wrong.double() / seen.clamp(min=1).double()).cpu()
    order = [int(c) for c in error.argsort(descending=True, stable=True) if seen[c] > 0][:n]
    return [{"class": names[c], "top1_error": float(error[c]), "images": int(seen[c])} for c in order]


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


class InStoreOrder(nn.Module):
    """A net whose outputs are reordered to the store's class order (output j predicts store class j)."""

    def __init__(self, net: nn.Module, order: list[int]):
        super().__init__()
        self.net, self.order = net, order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, self.order]  # (B, num_classes) in the store's order


def match_classes(net: nn.Module, trained: list[str] | None, store, path) -> nn.Module:
    """The net with its outputs in the store's class order. Classes are compared by name (a
    checkpoint records them): another order is remapped, other names are an error."""
    if trained is None or list(trained) == store.classes:
        return net
    if sorted(trained) != sorted(store.classes):
        ours, theirs = sorted(set(store.classes) - set(trained)), sorted(set(trained) - set(store.classes))
        raise UserError(f"{path} was trained on other classes than store {store.path} holds: the store's "
                        f"{', '.join(ours[:3])}{' ...' if len(ours) > 3 else ''} are not among them (the net's "
                        f"{', '.join(theirs[:3])}{' ...' if len(theirs) > 3 else ''} are not in the store); "
                        "evaluate it on a store of the classes it was trained on")
    index = {c: i for i, c in enumerate(trained)}
    return InStoreOrder(net, [index[c] for c in store.classes])


def evaluate_checkpoints(paths: list[str], store, split: str | None, views: str | None, device: torch.device,
                         batch_size: int = 256, precision: str = "fp32", progress: bool = False,
                         rank: int = 0, world: int = 1, group=None, channels_last: bool = False) -> dict:
    """Top-1/top-5 error of the checkpoints' averaged softmax on `split` (default: the first
    checkpoint's validation split) over `views` (default: the first checkpoint's eval.views, §4.1);
    shared by `world` processes as in predict. channels_last: the nets' weights in that layout (the
    convolutions then run channels-last: faster through oneDNN on CPU, the same numbers up to rounding)."""
    loaded = [load_model(p, device) for p in paths]
    if channels_last:
        loaded = [(m.to(memory_format=torch.channels_last), cfg, state) for m, cfg, state in loaded]
    for p, (_, cfg, _) in zip(paths, loaded):
        if cfg.model.num_classes != store.num_classes:
            raise UserError(f"{p} predicts {cfg.model.num_classes} classes but store {store.path} has "
                            f"{store.num_classes}: evaluate it on the data it was trained for")
        if cfg.data.crop > store.size:
            raise UserError(f"{p} uses {cfg.data.crop}px crops but store {store.path} holds {store.size}px images")
    if len({(cfg.data.crop, cfg.data.mean_image) for _, cfg, _ in loaded}) != 1:
        raise UserError("the checkpoints differ in crop size or mean subtraction: an ensemble needs one input format")
    models = [match_classes(m, state.get("classes"), store, p) for p, (m, _, state) in zip(paths, loaded)]
    first = loaded[0][1].data
    views = views or loaded[0][1].eval.views
    reader = store.split(split or first.val_split)
    mean = store.mean if first.mean_image else None
    probs = predict(models, reader, mean, PredictOptions(first.crop, views, batch_size, device, precision, channels_last,
                                                         progress, rank=rank, world=world, group=group))
    labels = torch.as_tensor(reader.labels, dtype=torch.int64)
    result = {"checkpoints": [str(p) for p in paths], "store": str(store.path), "split": reader.name, "views": views,
              "images": len(reader), **topk_errors(probs, labels), "hardest": hardest_classes(probs, labels, store.class_names)}
    if store.num_classes <= 5:
        result["note"] = f"top-5 error is 0 by construction: the store has only {store.num_classes} classes"
    return result
