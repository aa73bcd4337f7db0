"""Training throughput on one vs several processes (issue 14; docs/scaling.md).

Compare (default): rounds of the same training steps, alternated so that load drifts cancel,
each launched by torchrun on this host with the same global batch:
  1 process (all cores) | 1 process, 1 thread | 2 processes of 1 thread, data parallel (DDP) |
  2 processes of 1 thread, the two columns (§3.2)
Figures are medians over the rounds; vs_1_process lists each round's ratio to the first row.

    python benchmarks/dist_bench.py --data STORE [--preset quick] [--set k=v ...] [--rounds 3]

DDP's own cost (for the GPU suite: one GPU, NCCL, world size 1): the same process alternates
plain steps and steps through DistributedDataParallel, which copies the gradients into buckets
and all-reduces them (with one rank, no bytes cross):

    torchrun --standalone --nproc-per-node 1 benchmarks/dist_bench.py --worker --ddp-overhead \\
        --data STORE --preset imagenette --set train.precision=bf16 train.channels_last=true model.lrn_impl=triton

Every figure comes from rank 0's clock around `--steps` steps after `--warmup` steps, through
the project's own loop (train.parts.build_parts, Trainer.run_steps).

The cost model of docs/scaling.md (computed, not measured; its inputs are flags):

    python benchmarks/dist_bench.py --cost-model [--step-ms 11.22 --batch 256]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from alexnet.config import build_config
from alexnet.nets.model import build_model
from alexnet.runtime import configure_torch, device_name, sync
from alexnet.train import Trainer, build_parts, distributed
from alexnet.train.columns import bytes_per_step

REPO = Path(__file__).resolve().parents[1]


def _steps(trainer: Trainer, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds for `steps` training steps after `warmup` (all ranks in step: the collectives tie them)."""
    trainer.run_steps(warmup)
    sync(device)
    start = time.perf_counter()
    trainer.run_steps(steps)
    sync(device)
    return time.perf_counter() - start


def _allreduce_ms(numel: int, device: torch.device, repeats: int = 5) -> float:
    """Median ms of one all-reduce of `numel` float32 values (a whole gradient) over all ranks."""
    t = torch.ones(numel, device=device)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        dist.all_reduce(t)
        sync(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])


def worker(args) -> None:
    cfg = build_config(args.preset, [f"data.store={args.data}", "train.progress=false", *args.set])
    configure_torch(cfg.train.threads, False)
    if args.ddp_overhead and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")  # world size 1
    layout = distributed.from_env(cfg.train.device, cfg.train.model_parallel)
    device = distributed.process_device(cfg.train.device, layout.local_rank)
    parts = build_parts(cfg, device, layout)
    cfg = parts.cfg  # fitted to the store
    distributed.wrap(parts, cfg)
    trainer = Trainer(cfg, parts)
    batch = cfg.optim.batch_size
    result = {"device": device_name(device), "world": layout.world, "columns": layout.columns, "global_batch": batch,
              "threads": torch.get_num_threads()}
    if args.ddp_overhead:
        plain, wrapped = parts.forward, torch.nn.parallel.DistributedDataParallel(
            parts.model, device_ids=[device.index] if device.type == "cuda" else None,
            bucket_cap_mb=cfg.ddp.bucket_mb)
        times = {"plain": [], "ddp": []}
        for _ in range(args.rounds):
            for name, forward in (("plain", plain), ("ddp", wrapped)):
                parts.forward = forward
                times[name].append(_steps(trainer, args.warmup, args.steps, device))
        result.update({f"{k}_img_per_s": batch * args.steps / statistics.median(v) for k, v in times.items()},
                      ddp_over_plain=[d / p for d, p in zip(times["ddp"], times["plain"])])
    else:
        seconds = _steps(trainer, args.warmup, args.steps, device)
        result.update(img_per_s=batch * args.steps / seconds, step_ms=1000 * seconds / args.steps)
        full = build_model(cfg.model)
        if layout.world > 1:  # what data parallelism would all-reduce, timed on its own
            numel = sum(p.numel() for p in full.parameters())
            result.update(gradient_mb=4 * numel / 1e6, allreduce_ms=_allreduce_ms(numel, device))
        if layout.columns > 1:
            exchange = bytes_per_step(full, batch // layout.replicas, cfg.data.crop)
            result["column_exchange_mb_per_step"] = sum(exchange.values()) / 1e6
    if layout.is_main:
        print(json.dumps(result), flush=True)
    layout.close()


CONFIGS = [  # (name, processes, overrides)
    ("1 process", 1, []),
    ("1 process, 1 thread", 1, ["train.threads=1"]),
    ("2 processes, data parallel", 2, ["train.threads=1"]),
    ("2 processes, columns (§3.2)", 2, ["train.threads=1", "train.model_parallel=true"]),
]


def compare(args) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    found = {name: [] for name, _, _ in CONFIGS}
    for _ in range(args.rounds):
        for name, nproc, sets in CONFIGS:
            threads = [f"train.threads={os.cpu_count()}"] if nproc == 1 else []
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                   __file__, "--worker", "--data", args.data, "--preset", args.preset, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--set", *args.set, "data.threads=1", *threads, *sets]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            found[name].append(json.loads(out.strip().splitlines()[-1]))
    base = [r["img_per_s"] for r in found[CONFIGS[0][0]]]
    summary = {}
    for name, runs in found.items():
        rates = [r["img_per_s"] for r in runs]
        medians = {k: statistics.median(r[k] for r in runs) for k, v in runs[0].items() if isinstance(v, float)}
        summary[name] = {**runs[0], **medians, "vs_1_process": [round(a / b, 3) for a, b in zip(rates, base)]}
    print(json.dumps(summary, indent=1))


GB = 1e9


def ring_ms(nbytes: float, ranks: int, gbytes_per_s: float, hop_us: float) -> float:
    """A ring all-reduce: each rank sends 2 (n-1)/n of the data, in 2 (n-1) latency-bound hops."""
    if ranks == 1:
        return 0.0
    return 1000 * 2 * (ranks - 1) / ranks * nbytes / (gbytes_per_s * GB) + 2 * (ranks - 1) * hop_us / 1000


def cost_model(args) -> None:
    """Data parallelism from a measured one-GPU step and the gradient size; §3.2's exchange in 2012."""
    from alexnet.config import ModelConfig
    from alexnet.nets.model import count_parameters
    net = build_model(ModelConfig())
    grad = 4 * count_parameters(net)  # fp32 gradients, as DDP all-reduces them (params are fp32 under autocast)
    print(f"gradient: {count_parameters(net):,} parameters, {grad / 1e6:.1f} MB fp32; one-GPU step "
          f"{args.step_ms} ms at batch {args.batch} ({1000 * args.batch / args.step_ms:,.0f} img/s)\n")
    print("| GPUs | links | all-reduce ms | step ms: overlapped .. serial | img/s: serial .. overlapped "
          "| efficiency: serial .. overlapped |")
    print("|---:|---|---:|---|---|---|")
    nvlink = args.nvlink_gbs
    rows = [(n, f"NVLink {nvlink:g} GB/s", ring_ms(grad, n, nvlink, 3)) for n in (1, 2, 4, 8)]
    for node_gbits, label in ((100, "100 Gb/s per node"), (400, "400 Gb/s per node"), (3200, "8 x 400 Gb/s per node")):
        for nodes in (2, 16, 128):
            intra = ring_ms(grad, 8, nvlink, 3)  # reduce-scatter + all-gather inside the node
            inter = ring_ms(grad, nodes, node_gbits / 8, 10)  # the node's share across nodes, through its NICs
            rows.append((8 * nodes, f"{nodes} nodes x 8, NVLink + {label}", intra + inter))
    for n, links, comm in rows:
        fast, slow = max(args.step_ms, comm), args.step_ms + comm
        print(f"| {n} | {links} | {comm:.1f} | {fast:.1f} .. {slow:.1f} | {n * 1000 * args.batch / slow:,.0f} .. "
              f"{n * 1000 * args.batch / fast:,.0f} | {args.step_ms / slow:.0%} .. {args.step_ms / fast:.0%} |")
    exchange = bytes_per_step(net, 128, 224)
    paper = sum(v for k, v in exchange.items() if "lrn" not in k)
    step_2012 = 1000 * 128 / (90 * 1.2e6 / (5.5 * 86400))  # §5: ~90 epochs of 1.2M images in 5-6 days
    print(f"\n§3.2 columns, batch 128 at 224 px, bytes one GPU sends per step: "
          + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in exchange.items()))
    print(f"the paper's exchanges {paper / 1e6:.1f} MB ({sum(exchange.values()) / 1e6:.1f} MB with the LRN edges): "
          f"{1000 * paper / (args.pcie_gbs * GB):.1f} ms at {args.pcie_gbs:g} GB/s (PCIe 2.0 x16) vs a 2012 step of "
          f"~{step_2012:.0f} ms; data parallelism on the same link: {ring_ms(grad, 2, args.pcie_gbs, 0):.0f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="store folder (alexnet prepare)")
    p.add_argument("--preset", default="quick", help="config preset (default quick)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--steps", type=int, default=8, help="timed training steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the configurations")
    p.add_argument("--worker", action="store_true", help="run one configuration (under torchrun)")
    p.add_argument("--ddp-overhead", action="store_true", help="with --worker on one process: plain vs DDP steps")
    p.add_argument("--cost-model", action="store_true", help="print docs/scaling.md's computed tables")
    p.add_argument("--step-ms", type=float, default=11.22,
                   help="measured one-GPU step (default: H200, batch 256, eager, Triton LRN: 22,815 img/s)")
    p.add_argument("--batch", type=int, default=256, help="per-GPU batch of --step-ms")
    p.add_argument("--nvlink-gbs", type=float, default=360.0, help="NCCL all-reduce bus bandwidth in a node, GB/s")
    p.add_argument("--pcie-gbs", type=float, default=6.0, help="2012 GPU-to-GPU bandwidth, GB/s (PCIe 2.0 x16)")
    args = p.parse_args()
    if args.cost_model:
        return cost_model(args)
    worker(args) if args.worker else compare(args)


if __name__ == "__main__":
    main()
