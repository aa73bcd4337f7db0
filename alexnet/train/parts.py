"""What a training run is made of, built from its config by one function with no side effects
(no files written, no global torch state changed): the store, the net, the optimiser, the
schedule, the loader and the augmentation constants. The loop (loop.py) runs them; benchmarks
build the same parts and drive them through the loop's public API."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import Config
from ..data.augment import pca_lambda
from ..data.loader import BatchLoader
from ..data.store import SplitReader, Store, open_store
from ..errors import ConfigError
from ..nets.layers import freeze
from ..nets.model import build_model
from ..nets.sizes import check_crop, crop_for
from .optim import build_optimizer
from .schedule import Schedule, build_schedule


@dataclass
class Parts:
    device: torch.device
    store: Store
    model: nn.Module  # the plain module: its state_dict is what checkpoints hold
    forward: nn.Module  # what a step calls: the model, or torch.compile of it
    optimizer: torch.optim.Optimizer
    schedule: Schedule  # owns the learning rate
    loader: BatchLoader  # the training split in an order that is a function of (seed, epoch)
    val_reader: SplitReader
    mean: torch.Tensor | None  # (3, S, S) §2 mean image on the device, or None (data.mean_image=false)
    eigvecs: torch.Tensor  # (3, 3) §4.1 PCA of RGB values, columns
    lam: torch.Tensor  # (3,) scales of the PCA noise (augment.pca_lambda)


def build_parts(cfg: Config, device: torch.device) -> Parts:
    if not cfg.data.store:
        raise ConfigError("data.store is empty: point it at a folder made by `alexnet prepare` (--data STORE)")
    store = open_store(cfg.data.store)
    check_data(cfg, store)
    check_crop(cfg.model, cfg.data.crop)  # too small for the net: an error; pool5 under 6x6: a warning
    with torch.random.fork_rng(devices=[]):  # the initial weights, drawn without touching the caller's RNG
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model).to(device)
    freeze(model, cfg.finetune.freeze)  # §6 fine-tuning: layers kept as loaded
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model, mode=cfg.train.compile_mode) if cfg.train.compile else model
    train_reader = store.split(cfg.data.train_split)
    loader = BatchLoader(train_reader, cfg.optim.batch_size, shuffle=True, seed=cfg.train.seed,
                         prefetch=cfg.data.prefetch, max_batches=cfg.train.max_steps_per_epoch,
                         device=device, threads=cfg.data.threads, decode=cfg.data.decode,
                         cpu_decoder=cfg.data.cpu_decoder, device_share=cfg.data.device_share, backend=cfg.data.backend)
    if len(loader) == 0:
        raise ConfigError(f"split {cfg.data.train_split!r} has {len(train_reader)} images, "
                          f"fewer than one batch of optim.batch_size={cfg.optim.batch_size}")
    return Parts(device=device, store=store, model=model, forward=forward,
                 optimizer=build_optimizer(model, cfg.optim, cfg.finetune),
                 schedule=build_schedule(cfg.schedule, cfg.optim.lr, len(loader)),
                 loader=loader, val_reader=store.split(cfg.data.val_split),
                 mean=store.mean.to(device) if cfg.data.mean_image else None,
                 eigvecs=store.pca_eigvecs.to(device), lam=pca_lambda(store.pca_eigvals, cfg.data.pca_scale).to(device))


def check_data(cfg: Config, store: Store) -> None:
    """The config must fit the store it trains on; model.num_classes=0 becomes the store's count."""
    if cfg.data.crop > store.size:
        raise ConfigError(f"data.crop={cfg.data.crop} is larger than the store's {store.size}px images ({store.path}): "
                          + crop_for(cfg.model, store.size))
    if cfg.data.size == 0:
        cfg.data.size = store.size  # inferred, and saved so in config.json and checkpoints
    if cfg.data.size != store.size:
        raise ConfigError(f"data.size={cfg.data.size} but store {store.path} holds {store.size}px images: "
                          f"set data.size={store.size}")
    if cfg.model.num_classes == 0:
        cfg.model.num_classes = store.num_classes  # inferred, and saved so in config.json and checkpoints
    if cfg.model.num_classes != store.num_classes:
        raise ConfigError(f"model.num_classes={cfg.model.num_classes} but store {store.path} has "
                          f"{store.num_classes} classes: set model.num_classes={store.num_classes}")
