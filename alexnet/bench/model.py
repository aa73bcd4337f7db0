"""`alexnet bench model`: training and inference throughput of the paper net against
torchvision's `alexnet` under the pytorch/examples ImageNet settings, side by side in one
process on synthetic input (random, never zeros: zeros run faster than real data).

Rows:
  torchvision  torchvision.models.alexnet, fp32, eager, torch.optim.SGD (pytorch/examples)
  paper-ref    the paper net, fp32, eager, reference LRN (nn.functional.local_response_norm)
  paper-fast   the paper net on the fast path: model.lrn_impl=auto (the Triton op on CUDA, the
               fused LRN on CPU), PaperSGD (foreach), and on CUDA bf16 autocast + channels-last
               (+ torch.compile unless --no-compile). With --lrn-impl I1 I2 ..., one such row
               per LRN implementation, named paper-fast-I1, paper-fast-I2, ...
  paper-fast-bf16 (CPU only) the fast path with bf16 autocast + channels-last through oneDNN
               (AVX-512 BF16 / AMX where the CPU has them); the ratio cpu_bf16_channels_last_vs_fp32
               says whether it pays on this CPU (the quick preset uses it)
  no-lrn, no-lrn-bf16  the floor: the first fast row's net and the bf16 row's with model.lrn=false, in
               the same precision and layout; fast_vs_no_lrn (and _bf16) is what the LRN leaves
               of the net's speed (1.0: the LRN is free)
The training steps of all rows are timed in turns (one step of each row per round), and so are
the inference passes, so that a loaded host slows every row alike; each row keeps its median.

With a store (--data STORE), also the whole training step fed two ways, paper-fast each time:
  synthetic    one random uint8 batch already on the device, augmented every step (§4.1)
  store        the training loader (data.threads, data.decode) reading STORE, then the same
and their ratio: how close end-to-end training from disk comes to the model's own speed.
"""
from __future__ import annotations

import datetime
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision

from ..config import ModelConfig, OptimConfig
from ..data.augment import eval_views, store_augmenter
from ..data.loader import BatchLoader
from ..errors import UserError
from ..nets.model import AlexNet
from ..runtime import autocast, device_name, run_facts, sync
from ..train.optim import build_optimizer
from .timing import timed


@dataclass
class Setup:
    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    precision: str
    channels_last: bool


def _setups(device: torch.device, compile_: bool, compile_mode: str = "default",
            lrn_impls: tuple[str, ...] = ("auto",), width: float = 1.0) -> list[Setup]:
    cuda = device.type == "cuda"
    tv = torchvision.models.alexnet(weights=None).to(device)
    ref = AlexNet(ModelConfig(lrn_impl="reference", width=width)).to(device)
    setups = [
        Setup("torchvision", tv, torch.optim.SGD(tv.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4), "fp32", False),
        Setup("paper-ref", ref, build_optimizer(ref, OptimConfig()), "fp32", False),
    ]
    for impl in lrn_impls:
        fast = AlexNet(ModelConfig(lrn_impl=impl, width=width)).to(device)
        if cuda:
            fast = fast.to(memory_format=torch.channels_last)
        name = "paper-fast" if len(lrn_impls) == 1 else f"paper-fast-{impl}"
        forward = torch.compile(fast, mode=compile_mode) if compile_ else fast
        setups.append(Setup(name, forward, build_optimizer(fast, OptimConfig()), "bf16" if cuda else "fp32", cuda))
    floors = [("no-lrn", "bf16" if cuda else "fp32", cuda)]
    if not cuda:  # the CPU's own fast path: bf16 autocast + channels-last through oneDNN (AVX-512 BF16 / AMX)
        cpu = AlexNet(ModelConfig(lrn_impl=lrn_impls[0], width=width)).to(device).to(memory_format=torch.channels_last)
        forward = torch.compile(cpu, mode=compile_mode) if compile_ else cpu
        setups.append(Setup("paper-fast-bf16", forward, build_optimizer(cpu, OptimConfig()), "bf16", True))
        floors.append(("no-lrn-bf16", "bf16", True))
    for name, precision, channels_last in floors:  # the same nets without §3.3's LRN: the floor
        bare = AlexNet(ModelConfig(lrn=False, width=width)).to(device)
        bare = bare.to(memory_format=torch.channels_last) if channels_last else bare
        forward = torch.compile(bare, mode=compile_mode) if compile_ else bare
        setups.append(Setup(name, forward, build_optimizer(bare, OptimConfig()), precision, channels_last))
    return setups


def _in_turns(fns: list, steps: int, warmup: int, device: torch.device) -> list[float]:
    """Median seconds per call of each fn, timed in turns: `warmup` untimed rounds, then `steps`
    rounds that call each fn once (synchronised), so that a loaded host slows them alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    sync(device)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(steps):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            sync(device)
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def _train_fn(s: Setup, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        torch.compiler.cudagraph_mark_step_begin()  # a new iteration for CUDA graphs (reduce-overhead); else nothing
        with autocast(device, s.precision):
            loss = F.cross_entropy(s.model(x).float(), y)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
    return step


def _infer_fn(s: Setup, x: torch.Tensor, device: torch.device):
    @torch.no_grad()
    def run():
        with autocast(device, s.precision):
            s.model(x)
    return run


def bench_model(device: torch.device, batch: int, steps: int, warmup: int, compile_: bool, crop: int = 224,
                store=None, threads: int = 0, decode: str = "cpu", compile_mode: str = "default",
                loader_kw: dict | None = None, lrn_impls: tuple[str, ...] = ("auto",), width: float = 1.0) -> dict:
    """width < 1 shrinks the paper nets (model.width: smoke tests on a CPU; torchvision's row stays full)."""
    torch.manual_seed(0)
    setups = _setups(device, compile_, compile_mode, tuple(lrn_impls), width)
    x = torch.randn(batch, 3, crop, crop, device=device) * 50  # mean-subtracted 0..255 pixels
    y = torch.randint(0, 1000, (batch,), device=device)
    peak = None
    if device.type == "cuda":  # the peak of all rows together: rows run in turns
        torch.cuda.reset_peak_memory_stats(device)
    for s in setups:
        s.model.train()
    train = _in_turns([_train_fn(s, x, y, device) for s in setups], steps, warmup, device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    for s in setups:
        s.model.eval()
    infer = _in_turns([_infer_fn(s, x, device) for s in setups], steps, warmup, device)
    rows = [{"name": s.name, "precision": s.precision, "channels_last": s.channels_last,
             "train_img_s": batch / sec, "train_ms_step": 1000 * sec, "peak_mib": peak, "infer_img_s": batch / inf}
            for s, sec, inf in zip(setups, train, infer)]
    by = {r["name"]: r for r in rows}
    ratios = {}
    fast_rows = [s for s in setups[2:] if not s.name.startswith("no-lrn")]
    for s in fast_rows:
        by[s.name]["tencrop_img_s"] = _tencrop_rate(s, batch, crop, steps, warmup, device)
    fast = [s for s in fast_rows if s.name != "paper-fast-bf16"]
    for s in fast:
        tag = "" if s.name == "paper-fast" else s.name.removeprefix("paper-fast") + "_"
        ratios[f"fast_{tag}vs_paper_fp32_eager"] = by[s.name]["train_img_s"] / by["paper-ref"]["train_img_s"]
        ratios[f"fast_{tag}vs_torchvision_examples"] = by[s.name]["train_img_s"] / by["torchvision"]["train_img_s"]
    ratios["fast_vs_no_lrn"] = by[fast[0].name]["train_img_s"] / by["no-lrn"]["train_img_s"]
    ratios["fast_vs_no_lrn_infer"] = by[fast[0].name]["infer_img_s"] / by["no-lrn"]["infer_img_s"]
    if "paper-fast-bf16" in by and "paper-fast" in by:
        ratios["cpu_bf16_channels_last_vs_fp32"] = by["paper-fast-bf16"]["train_img_s"] / by["paper-fast"]["train_img_s"]
        ratios["cpu_bf16_channels_last_vs_fp32_infer"] = by["paper-fast-bf16"]["infer_img_s"] / by["paper-fast"]["infer_img_s"]
        ratios["fast_bf16_vs_no_lrn_bf16"] = by["paper-fast-bf16"]["train_img_s"] / by["no-lrn-bf16"]["train_img_s"]
        ratios["fast_bf16_vs_no_lrn_bf16_infer"] = by["paper-fast-bf16"]["infer_img_s"] / by["no-lrn-bf16"]["infer_img_s"]
        ratios["fast_bf16_vs_torchvision_examples"] = by["paper-fast-bf16"]["train_img_s"] / by["torchvision"]["train_img_s"]
    feed = None if store is None else bench_feed(fast[-1], store, device, batch, steps, warmup, threads, decode,
                                                 **(loader_kw or {}))
    if feed:
        ratios["store_vs_synthetic"] = feed["store_vs_synthetic"]
    return {**run_facts(device), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "device": device_name(device), "torch": torch.__version__, "batch": batch, "crop": crop, "width": width,
            "steps": steps, "compile": compile_, "compile_mode": compile_mode if compile_ else None,
            "lrn_impls": list(lrn_impls), "rows": rows, "ratios": ratios, "feed": feed}


def bench_feed(s: Setup, store, device: torch.device, batch: int, steps: int, warmup: int,
               threads: int = 0, decode: str = "cpu", **loader_kw) -> dict:
    """Train-step img/s of setup `s` fed from synthetic device batches and from `store`
    (its train split), over `steps` steps timed as one stretch (no sync between steps).
    loader_kw: more BatchLoader settings (cpu_decoder, device_share, backend)."""
    size = store.size
    crop = 224 if size >= 256 else size - size // 8  # the paper's 224 of 256, or the same margin
    augment = store_augmenter(store, device, crop, torch.Generator().manual_seed(0))

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        _train_fn(s, augment(images), labels, device)()

    def stretch(batches) -> float:  # steps timed as one stretch, as in training
        return timed(lambda: step(*next(batches)), steps, warmup, device, per_call=False).rate(batch)

    s.model.train()
    synthetic = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)
    loader = BatchLoader(store.split("train"), batch, shuffle=True, device=device, threads=threads, decode=decode,
                         **loader_kw)
    if len(loader) * 2 < warmup + steps:
        raise UserError(f"store {store.path} has {len(loader)} batches of {batch}: too few for {warmup} + {steps} "
                        "steps; lower --batch-size or --steps")
    fed = loader.forever()
    try:
        rates = {"synthetic": stretch(iter(lambda: (synthetic, labels), None)), "store": stretch(fed)}
    finally:
        fed.close()
    return {"store": str(store.path), "format": store.format, "size": size, "crop": crop, "threads": loader.threads,
            "decode": decode, **loader_kw, "synthetic_img_s": rates["synthetic"], "store_img_s": rates["store"],
            "store_vs_synthetic": rates["store"] / rates["synthetic"]}


def _tencrop_rate(s: Setup, batch: int, crop: int, steps: int, warmup: int, device: torch.device) -> float:
    """Images per second through §4.1's ten-patch evaluation (10 forward passes per image)."""
    per = max(1, batch // 10)
    images = torch.randint(0, 256, (per, 3, crop + 32, crop + 32), dtype=torch.uint8, device=device)
    mean = torch.rand(3, crop + 32, crop + 32, device=device) * 255

    @torch.no_grad()
    def run():
        v = eval_views(images, crop, mean, "10crop").flatten(0, 1)
        with autocast(device, s.precision):
            F.softmax(s.model(v).float(), -1).view(10, per, -1).mean(0)
    return per / timed(run, steps, warmup, device).median


def format_model(result: dict) -> str:
    lines = [f"bench model on {result['device']}, torch {result['torch']}, batch {result['batch']}, "
             f"{result['crop']}px, median of {result['steps']} steps",
             f"{'setup':<16} {'precision':<9} {'train img/s':>12} {'ms/step':>9} {'peak MiB':>9} {'infer img/s':>12}"]
    for r in result["rows"]:
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        lines.append(f"{r['name']:<16} {r['precision']:<9} {r['train_img_s']:>12.1f} {r['train_ms_step']:>9.1f} "
                     f"{peak:>9} {r['infer_img_s']:>12.1f}")
    for fast in result["rows"][2:]:
        if "tencrop_img_s" in fast:
            lines.append(f"{fast['name']} 10-patch eval: {fast['tencrop_img_s']:.1f} img/s")
    if f := result.get("feed"):
        lines.append(f"paper-fast training step fed from {f['store']} ({f['format']}, {f['size']}px -> {f['crop']}px, "
                     f"{f['threads']} threads, decode {f['decode']}): {f['store_img_s']:.1f} img/s vs "
                     f"{f['synthetic_img_s']:.1f} img/s from a synthetic batch on the device")
    lines.append("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in result["ratios"].items()))
    return "\n".join(lines)
