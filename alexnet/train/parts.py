"""What a training run is made of, built from its config by one function with no side effects
(no files written, no global torch state changed, the caller's config left as it is): the config
fitted to the store, the store, the net, the optimiser, the loader and the augmentation constants.
The loop (loop.py) runs them, with the schedule it sizes from the loader; the experiments and
benchmarks build the same parts and drive them through the loop's one driver, Trainer.fit.

Under torchrun (train/distributed.py) the parts are this process's: its replica's share of the
global batch, and with model parallelism its column of the net (train/columns.py). Wrapping in
DistributedDataParallel is the only step that talks to other processes: distributed.wrap."""
from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt
from ..config import Config
from ..data.augment import Augmenter
from ..data.loader import BatchLoader
from ..data.store import SplitReader, Store, open_store
from ..data.subset import SubsetReader, holdout_indices
from ..errors import ConfigError
from ..nets.layers import freeze
from ..nets.model import build_model
from ..nets.sizes import check_crop, crop_for, smallest_input, sizing_net
from .columns import ColumnNet, ColumnShards
from .distributed import Layout, share_dropout
from .optim import build_optimizer


@dataclass
class Parts:
    cfg: Config  # the config fitted to the store (check_data): what the run trains with and saves
    device: torch.device
    store: Store
    model: nn.Module  # the plain module: its state_dict is what checkpoints hold
    forward: nn.Module  # what a step calls: the model, or torch.compile of it
    optimizer: torch.optim.Optimizer
    loader: BatchLoader  # the training split in an order that is a function of (seed, epoch)
    val_reader: SplitReader | SubsetReader  # the per-epoch validation: the holdout of the training split, or data.val_split
    augment: Augmenter  # §4.1 augmentation with the store's §2 mean image and PCA, on the device
    layout: Layout = dataclasses.field(default_factory=Layout)  # where this process sits (one process: the default)
    columns: ColumnShards | None = None  # model parallelism: converts this column's state to the whole net's
    from_store: dict = dataclasses.field(default_factory=dict)  # config values taken from the store (check_data)
    val_name: str = "val"  # what val_reader is, for logs: "holdout" (data.holdout > 0) or data.val_split

    def state_dicts(self) -> tuple[dict, dict]:
        """The whole net's model and optimiser state dicts, as a one-device run saves them
        (gathered from both columns under model parallelism: a collective)."""
        if self.columns is not None:
            return self.columns.state_dicts(self.model, self.optimizer)
        return ckpt.unwrap(self.model).state_dict(), self.optimizer.state_dict()

    def load_state_dicts(self, model: dict, optimizer: dict) -> None:
        """Load a whole-net checkpoint's model and optimiser state (this column's share of it)."""
        if self.columns is not None:
            return self.columns.load_state_dicts(self.model, self.optimizer, model, optimizer)
        ckpt.unwrap(self.model).load_state_dict(model)
        self.optimizer.load_state_dict(optimizer)


def build_parts(cfg: Config, device: torch.device, layout: Layout | None = None,
                given: Collection[str] | None = None) -> Parts:
    """`given`: the config keys the user set (check_data); None: every value is the caller's."""
    layout = layout or Layout()
    if not cfg.data.store:
        raise ConfigError("data.store is empty: point it at a folder made by `alexnet prepare` (--data STORE)")
    store = open_store(cfg.data.store)
    cfg, from_store = check_data(cfg, store, given)  # the caller's config is left as it is
    # too small for the net: an error; pool5 under 6x6: a warning, for a shape the user chose
    check_crop(cfg.model, cfg.data.crop, warn=given is None or any(k in given for k in GEOMETRY))
    with torch.random.fork_rng(devices=[]):  # the initial weights, drawn without touching the caller's RNG
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model).to(device)  # the whole net, the same on every rank
    freeze(model, cfg.finetune.freeze)  # §6 fine-tuning: layers kept as loaded
    model, columns = _place(model, cfg, layout)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    compiled = cfg.train.compile and layout.world == 1  # distributed: compiled around DDP by distributed.wrap
    forward = torch.compile(model, mode=cfg.train.compile_mode) if compiled else model
    train_reader, val_reader = split_readers(cfg, store)
    loader = BatchLoader(train_reader, layout.local_batch(cfg.optim.batch_size), shuffle=True, seed=cfg.train.seed,
                         rank=layout.replica, world=layout.replicas, device=device, settings=cfg.loader)
    if len(loader) == 0:
        raise ConfigError(_too_few(cfg, len(train_reader), len(val_reader)))
    return Parts(cfg=cfg, device=device, store=store, model=model, forward=forward,
                 optimizer=build_optimizer(model, cfg.optim, cfg.finetune),
                 loader=loader, val_reader=val_reader,
                 augment=Augmenter.of(cfg.data, store, device),
                 layout=layout, columns=columns, from_store=from_store,
                 val_name="holdout" if cfg.data.holdout else cfg.data.val_split)


def _too_few(cfg: Config, images: int, held: int) -> str:
    """Why the training split gives no batch, with what the holdout took and what to set."""
    split, batch = cfg.data.train_split, cfg.optim.batch_size
    if not cfg.data.holdout:
        return (f"split {split!r} has {images} images, fewer than one batch of optim.batch_size={batch}: "
                f"set optim.batch_size={images} or less")
    return (f"split {split!r} has {images + held} images and data.holdout={cfg.data.holdout:g} held out {held} for "
            f"validation, leaving {images}, fewer than one batch of optim.batch_size={batch}: set "
            f"optim.batch_size={images} or less, or data.holdout=0 (validate on data.val_split, all {images + held} train)")


HOLDOUT_SEED = 0  # the held-out images are the same for every train.seed (ensembles, --seeds)


def split_readers(cfg: Config, store: Store) -> tuple[SplitReader | SubsetReader, SplitReader | SubsetReader]:
    """(what trains, what the per-epoch validation reads): with data.holdout > 0 the training split
    without its holdout, and the holdout; else the whole training split and data.val_split."""
    train = store.split(cfg.data.train_split)
    if not cfg.data.holdout:
        return train, store.split(cfg.data.val_split)
    kept, held = holdout_indices(np.asarray(train.labels), cfg.data.holdout, HOLDOUT_SEED)
    return SubsetReader(train, kept), SubsetReader(train, held)


def _place(model: nn.Module, cfg: Config, layout: Layout) -> tuple[nn.Module, ColumnShards | None]:
    """This process's part of the net: the whole net, or its column (§3.2 model parallelism);
    dropout masks drawn for the global batch when there are several processes."""
    if layout.columns > 1:
        return ColumnNet(model, layout), ColumnShards(layout, model, build_optimizer(model, cfg.optim))
    return (share_dropout(model, layout) if layout.world > 1 else model), None


# What decides pool5's side (nets/sizes.py): a warning about it concerns the user only when they chose one of these
GEOMETRY = ("data.crop", "model.arch", "model.pool_kernel", "model.remove_conv", "model.extra_conv")


def check_data(cfg: Config, store: Store, given: Collection[str] | None = None) -> tuple[Config, dict]:
    """The config fitted to the store it trains on (a new Config; `cfg` is left as it is), and
    what was taken from the store ({key: value}, for the log).

    The stored side (data.size) and the class count (model.num_classes) are facts of the data: a
    value the user did not set (`given`: the keys set on the command line; None: every value is
    the caller's) becomes the store's, and a 0 always does. A value the user set must agree with
    the store. So does data.val_split when the user set it; otherwise a store without it but
    with one other split than the training one validates on that one (CIFAR-10's `test`). The
    crop is the recipe's, kept when it fits; when it does not and the user did not choose it, it
    keeps the recipe's margin (data.crop of data.size, else the paper's 224 of 256) at the
    store's side."""
    def chosen(key: str) -> bool:
        return given is None or key in given

    taken = {}
    crop = cfg.data.crop
    if crop > store.size and not chosen("data.crop"):
        low = smallest_input(sizing_net(cfg.model))
        if store.size < low:
            raise ConfigError(f"store {store.path} holds {store.size}px images: " + crop_for(cfg.model, store.size))
        crop = taken["data.crop"] = max(crop * store.size // cfg.data.size if cfg.data.size else store.size * 7 // 8, low)
    if crop > store.size:
        raise ConfigError(f"data.crop={crop} is larger than the store's {store.size}px images ({store.path}): "
                          + crop_for(cfg.model, store.size))
    facts = {}
    for key, value, fact in (("data.size", cfg.data.size, store.size),
                             ("model.num_classes", cfg.model.num_classes, store.num_classes)):
        if value == 0 or (value != fact and not chosen(key)):
            taken[key] = fact  # saved so in config.json and checkpoints
        elif value != fact:
            what = f"holds {fact}px images" if key == "data.size" else f"has {fact} classes"
            raise ConfigError(f"{key}={value} but store {store.path} {what}: set {key}={fact}, or leave it out "
                              "(it comes from the store)")
        facts[key] = taken.get(key, value)
    others = [s for s in store.splits if s != cfg.data.train_split]
    val_split = cfg.data.val_split
    if val_split not in store.splits and not chosen("data.val_split") and len(others) == 1:
        val_split = taken["data.val_split"] = others[0]
    data = dataclasses.replace(cfg.data, crop=crop, size=facts["data.size"], val_split=val_split)
    model = dataclasses.replace(cfg.model, num_classes=facts["model.num_classes"])
    return dataclasses.replace(cfg, data=data, model=model), taken
