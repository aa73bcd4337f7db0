"""What every experiment shares: where it works, training a net for a fixed budget on (part of)
a store, evaluating it over views, caching each finished unit of work, and writing the result
(results/<name>/result.json, a plot, a markdown table) with the command, date and device."""
from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..config import Config, build_config
from ..data.store import open_store
from ..data.subset import SubsetReader, balanced_indices
from ..errors import UserError
from ..evaluate import PredictOptions, load_model, predict, topk_errors
from ..fsutil import write_atomic
from ..nets.model import build_model, init_paired
from ..runtime import configure_torch, resolve_device
from ..viz.results import environment, pct  # noqa: F401  pct: for the experiments' tables
from ..viz.results import write_result as save_result
from ..train import Drive, Trainer, build_parts
from .verdict import failed_run
from . import SIZES  # noqa: F401  (the sizes live beside the list, so the CLI can read them without torch)



class BudgetSpent(Exception):
    """The session's --hours are spent: the experiment writes what its finished seeds give."""


@dataclass
class Context:
    """Where an experiment reads and writes, and at which size it runs."""

    name: str
    data: Path  # the store it trains on
    out: Path  # results/<name>: result.json, <name>.png, table.md
    work: Path  # runs/experiments/<name>/<size>: checkpoints and finished units (cache)
    size: str = "cpu"
    device: str = "auto"
    threads: int = 1  # torch and decode threads: on a shared 2-core CPU one thread each is fastest
    seeds: int = 0  # 0: the size's default
    progress: bool = True
    command: str = ""  # the command line that made the result, written beside it
    deadline: float = 0.0  # time.monotonic() after which no new unit starts (--hours); 0: none

    def check_budget(self) -> None:
        """Called before a unit starts: past the deadline, stop (finished units stay cached)."""
        if self.deadline and time.monotonic() > self.deadline:
            raise BudgetSpent(f"[{self.name}] --hours spent: the finished units are cached under {self.work}; "
                              "the same command continues from them")

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[{self.name}] {message}", file=sys.stderr, flush=True)


# The small sizes' net (tiny, cpu): the paper's recipe (SGD at lr 0.01, dropout 0.5, fp32) with He init on
# inputs scaled by 1/58, since the paper's N(0, 0.01) init sits at chance longer than these budgets
# (docs/paper.md, "init"). Not the quick preset: its budget choices (linear decay, dropout 0.25, bf16) are
# for the quickstart, and would change what the ablations measure.
SMALL_NET = ["model.init=kaiming", "model.input_scale=0.01724"]


def experiment_config(ctx: Context, preset: str | None, overrides: list[str]) -> Config:
    """A config for one training unit: the preset, the experiment's overrides, the context's store and device."""
    extra = [f"data.store={ctx.data}", f"data.val_split={held_out_split(open_store(ctx.data))}",
             f"train.device={ctx.device}", f"train.threads={ctx.threads}",
             f"data.threads={ctx.threads}", "train.progress=false",
             "data.holdout=0"]  # fixed budgets, nothing chosen by validation: every training image trains
    return build_config(preset, extra + overrides)


def held_out_split(store) -> str:
    """The store's evaluation split: Imagenette's `val`, CIFAR-10's `test`."""
    return "val" if "val" in store.splits else "test"


def check_settings(work: Path, settings: dict) -> None:
    """The work folder's finished units belong to one set of settings (recorded in settings.json);
    a rerun with other settings must not reuse them."""
    path = work / "settings.json"
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as they come back from the file
    if path.is_file() and json.loads(path.read_text()) != settings:
        raise UserError(f"{work} holds units trained with other settings ({path}): delete it or choose another --work")
    work.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(settings, indent=1) + "\n").encode())


def cached(path: Path, compute: Callable[[], dict]) -> dict:
    """The JSON at `path` if a previous run finished this unit, else compute() written there."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(value, indent=1) + "\n").encode())
    return value


def recorded_seconds(path: Path) -> float:
    """The wall time a cached unit recorded when it ran (0 when it recorded none): a result's
    total stays the time its units took, also when a rerun only reads them back."""
    return float(json.loads(path.read_text()).get("seconds", 0.0)) if path.is_file() else 0.0


def subset(reader, per_class: int, seed: int = 0):
    """`per_class` images of every class of `reader` (the whole split when per_class is 0)."""
    return SubsetReader(reader, balanced_indices(np.asarray(reader.labels), per_class, seed)) if per_class else reader


def trainer_on(cfg: Config, train_per_class: int = 0, eval_reader=None) -> Trainer:
    """A Trainer (no run folder: no per-epoch validation or log) on `train_per_class` images of
    every class of the training split (all when 0); `eval_reader` replaces its validation split.
    Its schedule is sized from the loader of those images (Trainer builds it)."""
    configure_torch(cfg.train.threads, cfg.train.deterministic)
    parts = build_parts(cfg, resolve_device(cfg.train.device))
    loader = parts.loader.on(subset(parts.loader.reader, train_per_class))  # the same images whatever the seed
    if len(loader) == 0:
        raise UserError(f"{len(loader.reader)} training images are fewer than one batch of {cfg.optim.batch_size}")
    parts = dataclasses.replace(parts, loader=loader, val_reader=eval_reader or parts.val_reader)
    return Trainer(parts.cfg, parts)


def paired_trainer(cfg: Config, train_per_class: int = 0, eval_reader=None) -> Trainer:
    """trainer_on with the paired init: every layer's initial weights drawn from its own generator,
    seeded by (train.seed, layer name) (nets/model.py layer_generator), so each arm of a seed starts
    from the baseline's weights in every layer whose shape it shares. Data order, crops,
    reflections, colour noise and dropout masks already come from train.seed alone
    (BatchLoader's seed, train/loop.py step_generator). tests/test_experiments.py checks it."""
    trainer = trainer_on(cfg, train_per_class, eval_reader)
    init_paired(trainer.model, cfg.train.seed)  # before any step: the optimiser holds no state yet
    return trainer


def initial_net(cfg: Config) -> torch.nn.Module:
    """The net a paired_trainer starts from (CPU, eval mode)."""
    with torch.random.fork_rng(devices=[]):  # what build_parts draws, then the paired re-draw
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model)
    init_paired(model, cfg.train.seed)
    return model.eval()


def train_phases(trainer: Trainer, phases: list[int]) -> list[float]:
    """phases[i] steps at the initial lr times schedule.factor^i (§5's cuts at fixed points: the
    schedule kind "cuts", train/schedule.py); returns the per-step losses. Stops with an error on
    a non-finite step."""
    losses, finite = drive_phases(trainer, phases)
    if not finite:
        raise UserError(f"training diverged (non-finite loss) at lr {trainer.schedule.lr:g}: lower optim.lr")
    return losses


def drive_phases(trainer: Trainer, phases: list[int]) -> tuple[list[float], bool]:
    """The phases as one schedule of planned cuts, driven a phase at a time so that a run gone
    non-finite stops at the end of that phase: (the per-step losses, whether all were finite)."""
    cuts = tuple(itertools.accumulate(phases[:-1]))
    if cuts:
        trainer.set_schedule(dataclasses.replace(trainer.cfg.schedule, kind="cuts", cut_steps=cuts))
    losses: list[float] = []
    for steps in phases:
        out = trainer.fit(Drive(steps=steps, losses=True))
        losses += out["losses"]
        if not out["finite"]:
            return losses, False
    return losses, True


def completed_seeds(ctx: Context, seeds: int, per_seed: Callable[[int], dict]) -> list[dict]:
    """per_seed(s) for s = 0, 1, ... until the budget is spent: every arm of seed s, so that the
    experiment reads whole pairs; the seeds finished (a later session adds the rest)."""
    done = []
    try:
        for s in range(seeds):
            done.append(per_seed(s))
    except BudgetSpent as stop:
        ctx.log(f"{stop}; {len(done)} of {seeds} seeds complete")
    return done


def failed_losses(losses: list[float], classes: int) -> bool:
    """verdict.failed_run on the mean loss of the last 20 steps (the run ended at chance, or diverged)."""
    tail = losses[-20:]
    return failed_run(float(np.mean(tail)) if tail else float("nan"), classes)


def train_or_fail(trainer: Trainer, phases: list[int]) -> list[float]:
    """train_phases, except that a diverged run is a result (a failure counted per arm, failed_losses),
    not an error: it stops at the phase whose steps went non-finite, and its losses say so."""
    losses, finite = drive_phases(trainer, phases)
    return losses if finite else losses + [float("nan")]


def save_net(trainer: Trainer, path: Path) -> None:
    save_checkpoint(trainer.state(), path, keep_prev=False)


def evaluate_nets(paths: list[Path], reader, views: str, device: str = "auto", batch_size: int = 128) -> dict:
    """Top-1/top-5 error of the checkpoints' averaged softmax (§6) on `reader` (a split or a subset)."""
    dev = resolve_device(device, "--device")
    loaded = [load_model(p, dev)[:2] for p in paths]
    cfg = loaded[0][1]
    mean = open_store(cfg.data.store).mean if cfg.data.mean_image else None
    how = PredictOptions(cfg.data.crop, views, batch_size, dev, threads=1)
    probs = predict([m for m, _ in loaded], reader, mean, how)
    return topk_errors(probs, torch.as_tensor(np.asarray(reader.labels), dtype=torch.int64))


def write_result(ctx: Context, result: dict, figure, table: str) -> Path:
    """results/<name>/result.json (with command, date, device and size), <name>.png and table.md."""
    env = environment(resolve_device(ctx.device, "--device"), ctx.command)
    return save_result(ctx.out, ctx.name, {"experiment": ctx.name, **env, "size": ctx.size, **result}, figure, table)


def slug(variant: str) -> str:
    """A variant's name as a file name stem (its cached units: WORK/SLUG-sSEED.*)."""
    return variant.replace(" ", "-").replace("/", "")
