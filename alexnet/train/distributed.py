"""Training on several devices with PyTorch distributed, launched by `torchrun` (one process per
device): data parallelism with DistributedDataParallel, and the paper's own model parallelism
(§3.2, train/columns.py), alone or together.

Where a process sits comes from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT): NCCL on CUDA, gloo on the CPU. With train.model_parallel, ranks 2r and 2r+1
hold the two columns of replica r; without it every rank is a replica.

One recipe whatever the layout: optim.batch_size is the global batch and optim.lr its lr. Each
of R replicas takes every R-th image of the single-process batch (data/loader.shard), and the
random draws of a step (crops, reflections, PCA noise, dropout masks) are made for the whole
global batch, each replica keeping its rows. So 1 x 128 and 2 x 64 see the same images with the
same augmentation; they differ only in the order floating-point sums are taken.

Rank 0 alone writes checkpoints, logs, TensorBoard and the progress bar.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data.augment import Draws
from ..errors import ConfigError
from ..nets.model import PaperDropout
from ..runtime import resolve_device


@dataclass(frozen=True)
class Layout:
    """This process's place in the job. The default is a single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  # which device of this node
    columns: int = 1  # 2 with model parallelism (§3.2): the columns of one replica sit on two ranks
    pair: object = field(default=None, compare=False)  # process group of this replica's columns
    same_column: object = field(default=None, compare=False)  # process group of the replicas of this column
    owns_group: bool = False  # this Layout started the process group and ends it

    @property
    def replicas(self) -> int:
        return self.world // self.columns

    @property
    def replica(self) -> int:
        return self.rank // self.columns

    @property
    def column(self) -> int:
        return self.rank % self.columns

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, global_batch: int) -> int:
        """Each replica's share of optim.batch_size (the global batch)."""
        if global_batch % self.replicas:
            raise ConfigError(f"optim.batch_size={global_batch} (the global batch) does not split over {self.replicas} "
                              f"replicas: run on a number of replicas that divides it (keeping the global batch "
                              f"keeps the recipe; a resumed run cannot change it)")
        return global_batch // self.replicas

    def rows(self, t: torch.Tensor) -> torch.Tensor:
        """This replica's rows of a tensor made for the whole global batch."""
        return t[self.replica :: self.replicas] if self.replicas > 1 else t

    def eval_shard(self) -> dict:
        """predict()'s rank, world and group: replicas share the images, both columns see the same ones."""
        return dict(rank=self.replica, world=self.replicas, group=self.same_column)

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def restart_count() -> int:
    """How many times torchrun has restarted this job (--max-restarts): 0 on the first attempt."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def from_env(device_name: str = "auto", model_parallel: bool = False) -> Layout:
    """The Layout of this process: joins (or starts) the process group that torchrun describes."""
    columns, local_rank = 2 if model_parallel else 1, int(os.environ.get("LOCAL_RANK", "0"))
    started = not dist.is_initialized() and env_world() > 1
    if started:
        device = process_device(device_name, local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    if not dist.is_initialized():
        if columns > 1:
            raise ConfigError("train.model_parallel=true places the two columns on two processes: launch with "
                              "torchrun --nproc-per-node 2 (or an even number: 2 per replica)")
        return Layout()
    rank, world = dist.get_rank(), dist.get_world_size()
    if rank == 0:
        _warn_shared_store()
    if world % columns:
        raise ConfigError(f"train.model_parallel=true needs an even number of processes (2 per replica), not {world}")
    pair, same_column = _groups(rank, world, columns)
    return Layout(rank=rank, world=world, local_rank=local_rank, columns=columns, pair=pair, same_column=same_column,
                  owns_group=started)


def _warn_shared_store() -> None:
    """torchrun --max-restarts with its rendezvous store shared with the workers (the default since
    torch 2.5) can hand a restarted worker the addresses of the killed ones (pytorch/pytorch#135712)."""
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    if restarts > 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        print("alexnet: warning: torchrun restarts may reconnect to the killed workers through the shared "
              "rendezvous store (pytorch/pytorch#135712): launch with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1",
              file=sys.stderr)


def _groups(rank: int, world: int, columns: int) -> tuple[object, object]:
    """The process groups of model parallelism: every rank creates every group, in the same order."""
    if columns == 1:
        return None, None  # data parallelism only: the whole world
    pair = same_column = None
    for r in range(world // columns):
        g = dist.new_group(list(range(r * columns, (r + 1) * columns)))
        pair = g if rank // columns == r else pair
    for c in range(columns):
        g = dist.new_group(list(range(c, world, columns)))
        same_column = g if rank % columns == c else same_column
    return pair, same_column


def process_device(name: str, local_rank: int) -> torch.device:
    """The device of this process: train.device, with CUDA's index taken from LOCAL_RANK under torchrun."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def local_draws(d: Draws, layout: Layout) -> Draws:
    """This replica's rows of a step's augmentation draws (made for the global batch)."""
    return Draws(*(layout.rows(getattr(d, f.name)) for f in dataclasses.fields(Draws)))


class SharedDropout(nn.Module):
    """§4.2 dropout whose mask is drawn for the whole global batch and both columns, of which this
    process keeps its rows (its replica) and its units (its column): the masks of a step do not
    depend on how the job is split. With one process it draws what the layer it replaces draws,
    with the same semantics (`paper`: kept units unscaled, x(1-p) at test; else torch's inverted)."""

    def __init__(self, p: float, layout: Layout, paper: bool = True):
        super().__init__()
        self.p, self.layout, self.paper = p, layout, paper

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, units) -> (b, units)
        scale = 1.0 - self.p if self.paper else 1.0  # undoes F.dropout's 1/(1-p) in training; the test-time factor
        if not self.training or self.p == 0:
            return x if scale == 1.0 else x * scale
        L = self.layout
        b, units = x.shape
        noise = F.dropout(x.new_ones(b * L.replicas, units * L.columns), self.p)  # 0 or 1 / (1 - p)
        noise = L.rows(noise)[:, L.column * units : (L.column + 1) * units]
        return x * (noise * scale)

    def extra_repr(self) -> str:
        return (f"p={self.p}, {'paper' if self.paper else 'inverted'}, replicas={self.layout.replicas}, "
                f"columns={self.layout.columns}")


def share_dropout(model: nn.Module, layout: Layout) -> nn.Module:
    """Replace every dropout layer of `model` (PaperDropout or nn.Dropout) by a SharedDropout of the
    same semantics (no parameters change)."""
    for name, child in model.named_children():
        if isinstance(child, (PaperDropout, nn.Dropout)):
            setattr(model, name, SharedDropout(child.p, layout, paper=isinstance(child, PaperDropout)))
        else:
            share_dropout(child, layout)
    return model


def data_parallel(model: nn.Module, cfg: Config, layout: Layout, device: torch.device) -> nn.Module:
    """DistributedDataParallel over the replicas (of this column): gradients are averaged in
    buckets of ddp.bucket_mb, each all-reduced as soon as backward has filled it, so the
    communication overlaps the rest of the backward pass. One replica: the model itself."""
    if layout.replicas == 1:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, process_group=layout.same_column,
        bucket_cap_mb=cfg.ddp.bucket_mb)


def mean_over_replicas(t: torch.Tensor, layout: Layout) -> torch.Tensor:
    """The mean of a per-replica value (a loss) over the replicas."""
    if layout.replicas == 1:
        return t
    t = t.detach().clone()
    dist.all_reduce(t, group=layout.same_column)
    return t / layout.replicas


def first_over_ranks(step: torch.Tensor | None, layout: Layout) -> torch.Tensor | None:
    """The earliest of the ranks' first non-finite steps (-1: none on any rank), so that a rank
    whose own column stayed finite stops with the others. Called at points every rank reaches."""
    if layout.world == 1 or step is None:
        return step
    never = torch.iinfo(step.dtype).max
    step = torch.where(step < 0, torch.full_like(step, never), step)
    dist.all_reduce(step, op=dist.ReduceOp.MIN)
    return torch.where(step == never, torch.full_like(step, -1), step)


def barrier(layout: Layout) -> None:
    if layout.world > 1:
        dist.barrier()


def wrap(parts, cfg: Config) -> None:
    """parts.forward becomes DistributedDataParallel over the replicas (torch.compile around it
    with train.compile): the one step of building a run that talks to the other processes."""
    if parts.layout.world == 1:
        return
    forward = data_parallel(parts.model, cfg, parts.layout, parts.device)
    parts.forward = torch.compile(forward, mode=cfg.train.compile_mode) if cfg.train.compile else forward


def stop_agreed(requested: bool, sync_point: bool, layout: Layout) -> bool:
    """Whether to stop now (Ctrl-C, SIGTERM). Alone: at once. With several ranks, all stop at the
    same step: the requests are shared at sync points (every log_every_steps) and any one counts."""
    if layout.world == 1:
        return requested
    if not sync_point:
        return False
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([int(requested)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def note_world_change(saved_world: int, layout: Layout, global_batch: int) -> None:
    """Say so (rank 0) when a run resumes on another number of processes: same global batch, same recipe."""
    if saved_world != layout.world and layout.is_main:
        print(f"alexnet: resuming a run saved by {saved_world} process(es) on {layout.world}: the global batch "
              f"stays {global_batch} ({layout.replicas} replica(s) x {global_batch // layout.replicas}), so the data "
              "order and the recipe are unchanged", file=sys.stderr)


def quiet(cfg: Config) -> Config:
    """The config of a rank other than 0: no progress bar, no printed epochs."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False))
