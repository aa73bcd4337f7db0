"""§6 evaluation: top-1 and top-5 error, over the centre patch or the ten patches (§4.1),
for one net or an ensemble whose softmax outputs are averaged (§6, "averaging the predictions
of five similar CNNs").

A net is always fed its own pixels: the stored side S, crop and mean image its checkpoint record
carries (checkpoint.Record), whatever the store it is evaluated on holds; a store of another side
is rescaled image by image as `alexnet predict` rescales a file (data/convert.resize_crop).

With several processes (torchrun), each predicts every world-th image (data/loader.shard, no
padding) and the shares are gathered back into the reader's order: every image counted once."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .checkpoint import InputMeta, Record
from .checkpoint import read_record as read_file
from .config import Config
from .data.augment import eval_views
from .data.convert import resize_crop, to_chw
from .data.loader import BatchLoader
from .data.store import open_store
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


def read_record(path: str | Path) -> Record:
    """The checkpoint record of the alexnet checkpoint at `path` (complete)."""
    return complete(read_file(path))


def complete(record: Record) -> Record:
    """`record` with its input statistics: a version-1 best.pt, written before checkpoints carried
    them, takes them from its store while that store is still there."""
    if record.input is not None:
        return record
    path, store = record.source, record.config.data.store
    try:
        found = open_store(store).input_meta()
    except UserError:
        raise CheckpointError(f"{path} is an old (version 1) best.pt without its input statistics and its store "
                              f"{store or '(none)'} cannot be opened: use last.pt of the same run (it carries them), "
                              "or run this from the folder where that store is") from None
    return replace(record, input=InputMeta.from_state(found))


def load_net(record: Record, device: torch.device | str = "cpu") -> nn.Module:
    """The one place a net is built from a record: its config's net with its weights, in eval mode."""
    model = build_model(record.config.model)
    try:
        model.load_state_dict(record.model)
    except RuntimeError as e:
        raise CheckpointError(f"{record.source}: weights do not fit the saved config ({str(e).splitlines()[0]})") from None
    return model.to(device).eval()


def load_model(path: str | Path, device: torch.device) -> tuple[nn.Module, Config, Record]:
    """The net of an alexnet checkpoint, its config and its record (as written: `complete` it
    before using its input statistics)."""
    record = read_file(path)
    return load_net(record, device), record.config, record


class ResizedReader:
    """A store split at another side: each stored image rescaled as `alexnet predict` rescales a file
    (shorter side to `size`, centre square: data/convert.resize_crop), (3, size, size) uint8."""

    format = "raw"

    def __init__(self, reader, size: int):
        self.reader, self.size, self.name, self.labels = reader, size, reader.name, reader.labels

    def __len__(self) -> int:
        return len(self.reader)

    def read(self, indices: np.ndarray, out: torch.Tensor | None = None, *decoder) -> torch.Tensor:
        stored = self.reader.read(indices)  # (N, 3, s, s) uint8 at the store's side
        images = [torch.from_numpy(np.ascontiguousarray(to_chw(resize_crop(Image.fromarray(x.permute(1, 2, 0).numpy()),
                                                                           self.size)))) for x in stored]
        batch = torch.stack(images)  # (N, 3, size, size)
        return batch if out is None else out.copy_(batch)


def net_pixels(reader, inp: InputMeta):
    """`reader` as the net takes it: at the net's stored side (ResizedReader when the store's differs)."""
    return reader if reader.size == inp.size else ResizedReader(reader, inp.size)


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


def evaluate_checkpoints(paths: list[str], store, split: str | None = None, views: str | None = None,
                         how: PredictOptions | None = None) -> dict:
    """evaluate_nets of the alexnet checkpoints at `paths` (other formats: load them with
    ship.weights.load and call evaluate_nets)."""
    device = (how or PredictOptions(0)).device
    nets = []
    for p in paths:
        model, _, record = load_model(p, device)
        nets.append((str(p), model, complete(record)))
    return evaluate_nets(nets, store, split, views, how)


def trained_options(record: Record, device: torch.device) -> PredictOptions:
    """How a net is evaluated by default: in the precision and layout it trained in (bf16 +
    channels-last on a CPU when the run used them; fp16 is a CUDA precision, so fp32 elsewhere)."""
    precision = record.config.train.precision
    if precision == "fp16" and device.type != "cuda":
        precision = "fp32"
    return PredictOptions(record.config.data.crop, record.config.eval.views, record.config.eval.batch_size, device,
                          precision, record.config.train.channels_last)


def evaluate_nets(nets: list[tuple[str, nn.Module, Record]], store, split: str | None = None,
                  views: str | None = None, how: PredictOptions | None = None) -> dict:
    """Top-1/top-5 error of the nets' averaged softmax on `split` of `store` (default: the first
    net's validation split) over `views` (default: the first net's eval.views, §4.1). Each net
    gets its own pixels (its record's side, crop and mean image; module docstring). `how`: the
    batch, device, precision and layout, and this process's share of the images as in predict
    (default: trained_options of the first net, on the CPU); the crop is always the net's."""
    first = nets[0][2]
    how = how or trained_options(first, torch.device("cpu"))
    how = replace(how, crop=first.config.data.crop, views=views or first.config.eval.views)
    views = how.views
    if how.channels_last:  # the convolutions then run channels-last: faster through oneDNN on CPU, the same up to rounding
        nets = [(p, m.to(memory_format=torch.channels_last), r) for p, m, r in nets]
    for p, _, r in nets:
        if len(r.classes) != store.num_classes:
            raise UserError(f"{p} predicts {len(r.classes)} classes but store {store.path} has "
                            f"{store.num_classes}: evaluate it on the data it was trained for")
    for p, _, r in nets[1:]:
        if (r.input.size, r.config.data.crop, r.config.data.mean_image) != \
                (first.input.size, first.config.data.crop, first.config.data.mean_image) or \
                not torch.equal(r.input.mean, first.input.mean):
            raise UserError(f"{p} and {nets[0][0]} differ in their input (stored side, crop or mean image): "
                            "an ensemble needs one input format; evaluate them one by one")
    models = [match_classes(m, r.classes, store, p) for p, m, r in nets]
    reader = store.split(split or first.config.data.val_split)
    pixels = net_pixels(reader, first.input)
    mean = first.input.mean if first.config.data.mean_image else None
    probs = predict(models, pixels, mean, how)
    labels = torch.as_tensor(reader.labels, dtype=torch.int64)
    result = {"checkpoints": [p for p, _, _ in nets], "store": str(store.path), "split": reader.name, "views": views,
              "precision": how.precision, "channels_last": how.channels_last,
              "images": len(reader), **topk_errors(probs, labels), "hardest": hardest_classes(probs, labels, store.class_names)}
    if reader.size != first.input.size:
        result["rescaled"] = f"the store's {reader.size}px images rescaled to the net's {first.input.size}px, as predict does"
    if store.num_classes <= 5:
        result["note"] = f"top-5 error is 0 by construction: the store has only {store.num_classes} classes"
    return result
