"""The LRN's CPU candidates (issue 28), forward + backward alone, interleaved in one process.

    python benchmarks/lrn_cpu_bench.py --out benchmarks/lrn-cpu.json   # b64: conv1 and conv2 LRNs
    python benchmarks/lrn_cpu_bench.py --batch 4 --rounds 2              # smoke

Candidates, each on post-ReLU input (scale ~30) in channels-last, bf16 and fp32:
  fast        the torch autograd.Function (nets/lrn.py _FastLRN, fp32 inside, casts around it)
  op-numba    the op alexnet::lrn with its numba kernels (nets/kernels/lrn_numba.py)
  op-torch    the op alexnet::lrn with its torch formula (what runs where numba is missing)
  banded      _FastLRN's formula with the channel-window sum as a matmul by a 0/1 band (C x C)
  inductor    torch.compile (inductor) of the formula alone, forward and backward; compile time kept
  clone2      two copies of the input: 4 tensor passes, near the 5-pass floor of forward + backward
The same input and output gradient for every candidate; each round times every candidate once,
in turn; the record keeps the median and min ms of the rounds and each one's ratio to op-numba.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alexnet.nets import lrn as L  # noqa: E402
from alexnet.runtime import run_facts  # noqa: E402

N, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0  # §3.3, paper convention


def _op_torch(x, g):
    with mock.patch.object(L, "_kernels_on_cpu", lambda: None):  # the op's torch formula
        return _grad(lambda t: L.lrn_op(t, N, ALPHA, BETA, K), x, g)


def _banded_sum(a: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """Window sum over channels of channels-last a as (B*H*W, C) @ band."""
    B, C, H, W = a.shape
    rows = a.permute(0, 2, 3, 1).reshape(-1, C)
    return (rows @ band).view(B, H, W, C).permute(0, 3, 1, 2)


class _Banded(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, band):
        d = _banded_sum(a * a, band).mul_(ALPHA).add_(K)
        ctx.save_for_backward(a, d, band)
        return a * d.pow(-BETA)

    @staticmethod
    def backward(ctx, g):
        a, d, band = ctx.saved_tensors
        dp = d.pow(-BETA)
        return g * dp - (2 * ALPHA * BETA) * a * _banded_sum(g * a * dp / d, band), None


def _grad(fn, x, g):
    t = x.detach().requires_grad_()
    (gx,) = torch.autograd.grad(fn(t), t, g)
    return gx


def candidates(C: int, compiled):
    idx = torch.arange(C)
    band = ((idx[:, None] - idx[None, :]).abs() <= N // 2).float()  # (C, C) 0/1 band
    return {
        "fast": lambda x, g: _grad(lambda t: L.local_response_norm(t, N, ALPHA, BETA, K, impl="fast"), x, g),
        "op-numba": lambda x, g: _grad(lambda t: L.lrn_op(t, N, ALPHA, BETA, K), x, g),
        "op-torch": _op_torch,
        "banded": lambda x, g: _grad(lambda t: _Banded.apply(t.float(), band).to(t.dtype), x, g),
        "inductor": lambda x, g: _grad(compiled, x, g),
        "clone2": lambda x, g: (x.clone(), g.clone()),
    }


def _formula(t):  # the LRN in plain torch ops, for inductor
    a = t.float()
    sq = torch.nn.functional.pad(a * a, (0, 0, 0, 0, N // 2, N // 2))
    s = sum(sq[:, i : i + a.shape[1]] for i in range(N))
    return (a * (K + ALPHA * s).pow(-BETA)).to(t.dtype)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    compiled = torch.compile(_formula, dynamic=False)
    cases = []
    for C, S in ((96, 55), (256, 27)):  # conv1's LRN (B, 96, 55, 55) and conv2's (B, 256, 27, 27), full width
        for dtype in (torch.bfloat16, torch.float32):
            gen = torch.Generator().manual_seed(0)
            x = (torch.relu(torch.randn(args.batch, C, S, S, generator=gen)) * 30).to(dtype)
            x = x.contiguous(memory_format=torch.channels_last)
            g = torch.randn(x.shape, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
            fns = candidates(C, compiled)
            first = {}
            for name, fn in fns.items():  # warm-up: numba's cache load, inductor's compile
                t = time.perf_counter()
                fn(x, g)
                first[name] = time.perf_counter() - t
            ms = {name: [] for name in fns}
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    t = time.perf_counter()
                    fn(x, g)
                    ms[name].append(1000 * (time.perf_counter() - t))
            med = {k: statistics.median(v) for k, v in ms.items()}
            case = {"shape": list(x.shape), "dtype": str(dtype).removeprefix("torch."), "layout": "channels_last",
                    "median_ms": med, "min_ms": {k: min(v) for k, v in ms.items()},
                    "first_call_s": first, "op_numba_speedup": {k: v / med["op-numba"] for k, v in med.items()}}
            cases.append(case)
            print(json.dumps({k: case[k] for k in ("shape", "dtype", "median_ms")}), flush=True)
    record = {"what": __doc__.split("\n")[0], **run_facts(torch.device("cpu")),
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "threads": torch.get_num_threads(), "rounds": args.rounds, "cases": cases,
              "host_note": "shared 2-core host: other sessions were running (load average above 2)"}
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
