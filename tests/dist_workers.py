"""Worker processes for tests/test_distributed.py, started by torch.multiprocessing.spawn (one per
rank, gloo on the CPU). Each writes what it found to RESULTS/rank-R.pt for the test to check.
Kept in their own module so the spawned processes import only what they need."""
import copy
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def init(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)


class IndexReader:
    """A split of n constant images whose pixels hold their index: what a net sees tells which image it was."""

    format = "raw"

    def __init__(self, n: int, size: int = 8):
        self.n, self.size = n, size
        self.labels = np.arange(n) % 3

    def __len__(self) -> int:
        return self.n

    def read(self, idx: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        images = torch.as_tensor(np.asarray(idx), dtype=torch.uint8)[:, None, None, None].expand(-1, 3, self.size, self.size)
        if out is None:
            return images.clone()
        out.copy_(images)
        return out


class IndexNet(nn.Module):
    """Logits that put (almost) all the probability on class = the image's index (+ shift)."""

    def __init__(self, classes: int, shift: int = 0):
        super().__init__()
        self.classes, self.shift = classes, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = (x.mean((1, 2, 3)).round().long() + self.shift) % self.classes
        return 30.0 * F.one_hot(index, self.classes).float() + x.mean((1, 2, 3))[:, None] * 0.01


def eval_once(rank: int, world: int, port: int, results: str) -> None:
    """predict() over 1..world processes, for several split sizes (some smaller than the world)."""
    from alexnet.evaluate import PredictOptions, predict
    init(rank, world, port)
    groups = {w: dist.new_group(list(range(w))) for w in range(2, world + 1)}  # every rank creates every group
    found = {}
    for w, group in groups.items():
        for n in (7, 2):
            for views in ("center", "10crop"):
                if rank < w:
                    models = [IndexNet(n), IndexNet(n, shift=1)]
                    found[(w, n, views)] = predict(models, IndexReader(n), None, PredictOptions(
                        6, views, 2, torch.device("cpu"), rank=rank, world=w, group=group))
    torch.save(found, Path(results) / f"rank-{rank}.pt")
    dist.destroy_process_group()


def _count_sent(counts: dict):
    """Wrap the collectives ColumnNet uses so they record the values this rank sends."""
    real = {name: getattr(dist, name) for name in ("all_gather", "reduce_scatter", "all_reduce")}

    def all_gather(parts, x, group=None):
        counts["sent"] += x.numel() * (len(parts) - 1)
        return real["all_gather"](parts, x, group=group)

    def reduce_scatter(out, chunks, group=None):
        counts["sent"] += sum(c.numel() for c in chunks) - out.numel()
        return real["reduce_scatter"](out, chunks, group=group)

    def all_reduce(x, group=None, **kw):
        w = dist.get_world_size(group)
        counts["sent"] += 2 * (w - 1) * x.numel() // w  # a ring all-reduce
        return real["all_reduce"](x, group=group, **kw)

    return real, dict(all_gather=all_gather, reduce_scatter=reduce_scatter, all_reduce=all_reduce)


def columns(rank: int, world: int, port: int, results: str, overrides: list[str]) -> None:
    """§3.2 model parallelism (2 ranks per replica): one column's outputs and gradients against the
    whole grouped net, the bytes it sends, then a few training steps saved as a whole-net checkpoint."""
    from alexnet.config import build_config
    from alexnet.nets.model import build_model
    from alexnet.train import distributed, open_trainer
    from alexnet.train.columns import ColumnNet, ColumnShards, bytes_per_step, full_name
    from alexnet.train.optim import build_optimizer
    init(rank, world, port)
    cfg = build_config("quick", overrides)
    layout = distributed.from_env("cpu", model_parallel=True)
    torch.manual_seed(0)
    full = build_model(cfg.model)  # the same weights on every rank
    net = ColumnNet(copy.deepcopy(full), layout)
    shards = ColumnShards(layout, full, build_optimizer(full, cfg.optim))
    # the replica's rows of a global batch; dropout masks as a one-device run of the global batch draws them
    g = torch.Generator().manual_seed(1)
    x = layout.rows(torch.randn(4 * layout.replicas, 3, 64, 64, generator=g) * 50)
    y = layout.rows(torch.randint(0, 10, (4 * layout.replicas,), generator=g))
    one_device = distributed.Layout(rank=layout.replica, world=layout.replicas)
    distributed.share_dropout(full, one_device)
    counts = {"sent": 0}
    real, counting = _count_sent(counts)
    for name, fn in counting.items():
        setattr(dist, name, fn)
    torch.manual_seed(7)
    out = net(x)
    F.cross_entropy(out, y).backward()
    for name, fn in real.items():
        setattr(dist, name, fn)
    torch.manual_seed(7)
    ref = full(x)
    F.cross_entropy(ref, y).backward()
    full_grads = dict(full.named_parameters())
    grad_err = max(((p.grad - shards._take(full_name(n), full_grads[full_name(n)].grad)).abs().max()
                    / full_grads[full_name(n)].grad.abs().max()).item() for n, p in net.named_parameters())
    net.eval()
    full.eval()
    with torch.no_grad():
        eval_err = (net(x) - full(x)).abs().max().item()
    found = {"out_err": (out - ref).abs().max().item(), "out_scale": ref.abs().max().item(), "grad_err": grad_err,
             "eval_err": eval_err, "sent_bytes": 4 * counts["sent"],
             "predicted_bytes": sum(bytes_per_step(full, x.shape[0], 64).values())}
    # divergence: a rank whose own column stayed finite stops with the others, at the earliest bad step
    found["first_bad"] = [distributed.first_over_ranks(torch.tensor(v), layout).item()
                          for v in ([-1, 7, 3, -1][rank], -1)]
    trainer = open_trainer(cfg, layout=layout)  # from the seed's weights, like a one-device run
    trainer.run_steps(3)
    trainer.save()
    weights, optim = trainer.parts.state_dicts()
    trainer.close()
    dist.barrier()  # rank 0 has written last.pt
    again = open_trainer(cfg, resume=True, layout=layout)  # each column takes its share of the whole-net checkpoint
    weights2, optim2 = again.parts.state_dicts()
    found["round_trip"] = layout.replica != 0 or all(torch.equal(weights[k], weights2[k]) for k in weights) and all(
        torch.equal(a, b) for i in optim["state"] for a, b in zip(optim["state"][i].values(), optim2["state"][i].values()))
    torch.save(found, Path(results) / f"rank-{rank}.pt")
    again.close()
    dist.destroy_process_group()
