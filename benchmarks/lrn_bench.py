"""Benchmark LRN forward+backward: torch's nn.LocalResponseNorm, alexnet's _FastLRN, and the Triton kernels.

    python benchmarks/lrn_bench.py            # on a CUDA machine: 256x96x55x55 and 256x256x27x27
    python benchmarks/lrn_bench.py --small    # smoke test (runs on CPU; Triton rows need CUDA)
    python benchmarks/lrn_bench.py --sweep    # also time a few Triton block configurations
    python benchmarks/lrn_bench.py --json-out F   # also the rows as JSON (the GPU suite's lrn-bench step)

For every case it first checks each implementation against torch's op in float32 on a fresh
random post-ReLU input (scale ~30) and a random output gradient, then times
`torch.autograd.grad(lrn(x), x, g)` (forward + backward) and the forward alone with
triton.testing.do_bench (median). GB/s is the byte floor divided by the time; the floor is
5 tensors of x's size: forward reads a and writes b, backward reads a and g and writes grad_a; the
bandwidth is this card's, measured by a device-to-device copy (bytes read + written), unless
--bandwidth gives one. On CUDA a Triton failure is an error (exit 1), never "unsupported here".
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alexnet.nets.lrn import _FastLRN, lrn_op  # noqa: E402

N, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0  # §3.3, paper convention (torch's alpha is ALPHA * N)


def _triton_fn():
    """The custom op alexnet::lrn (its CUDA kernel is the Triton one), where CUDA and triton exist."""
    if not torch.cuda.is_available():
        return None
    try:
        import triton  # noqa: F401
    except ImportError:
        return None
    return lrn_op


def implementations(triton_op):
    torch_lrn = torch.nn.LocalResponseNorm(N, alpha=ALPHA * N, beta=BETA, k=K)
    impls = {
        # the stock op, in the input's dtype (what a model without alexnet.lrn would run)
        "torch nn.LocalResponseNorm": lambda x: torch_lrn(x),
        # alexnet.lrn "fast" on CPU: fp32 inside, cast back
        "_FastLRN (fp32 inside)": lambda x: _FastLRN.apply(x.float(), N, ALPHA, BETA, K).to(x.dtype),
    }
    if triton_op is not None:
        impls["triton"] = lambda x: triton_op(x, N, ALPHA, BETA, K)
    return impls


def bench(fn, device: str) -> float:
    """Median milliseconds."""
    if device == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
    fn()  # CPU: a few plain repetitions, only to smoke-test the script
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def make_inputs(shape, dtype, channels_last, device, seed):
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.relu(torch.randn(shape, generator=gen, device=device)) * 30
    g = torch.randn(shape, generator=gen, device=device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(dtype).contiguous(memory_format=fmt), g.to(dtype).contiguous(memory_format=fmt)


def max_rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    """max |got - ref| / max |ref| (the gradient has near-zero entries where its two terms cancel)."""
    return float((got.detach().float() - ref.detach()).abs().max() / ref.detach().abs().max().clamp_min(1e-30))


def check(fn, x, g) -> tuple[float, float]:
    """Errors of output and input gradient against torch's op run in float32 on the same values."""
    ref_in = x.detach().float().requires_grad_()
    ref = torch.nn.functional.local_response_norm(ref_in, N, alpha=ALPHA * N, beta=BETA, k=K)
    (ref_grad,) = torch.autograd.grad(ref, ref_in, g.float())
    xi = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    y = fn(xi)
    (gx,) = torch.autograd.grad(y, xi, g)
    return max_rel_err(y, ref), max_rel_err(gx, ref_grad)


def copy_bandwidth_tb_s(device: str) -> float:
    """This card's copy bandwidth: bytes read + written by a 1 GiB device-to-device copy (median)."""
    src = torch.empty(2**28, dtype=torch.float32, device=device)  # 1 GiB
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src), device)
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e12


def run_case(shape, dtype, channels_last, device, impls, seed):
    numel = 1
    for s in shape:
        numel *= s
    floor_bytes = 5 * numel * torch.tensor([], dtype=dtype).element_size()
    rows = []
    for name, fn in impls.items():
        x, g = make_inputs(shape, dtype, channels_last, device, seed)
        try:
            err_y, err_g = check(fn, x, g)
        except (NotImplementedError, RuntimeError) as e:  # e.g. no bf16 avg_pool3d on CPU
            if name == "triton":  # the kernel under test: its failure is the result, not a gap
                raise
            rows.append((name, f"unsupported here: {str(e).splitlines()[0][:60]}"))
            continue
        xr = x.detach().requires_grad_()
        ms_fb = bench(lambda: torch.autograd.grad(fn(xr), xr, g), device)
        with torch.no_grad():
            ms_f = bench(lambda: fn(x), device)
        rows.append((name, ms_f, ms_fb, floor_bytes / (ms_fb * 1e-3) / 1e9, err_y, err_g))
    return floor_bytes, rows


def sweep(shape, dtype, channels_last, device, op, seed):
    """Time Triton forward+backward for a few block configurations (patches the kernel module's config)."""
    from alexnet.nets.kernels import lrn_triton as mod
    x, g = make_inputs(shape, dtype, channels_last, device, seed)
    xr = x.detach().requires_grad_()
    orig_nchw, orig_nhwc = mod._nchw_config, mod._nhwc_config
    if channels_last:
        cp = 1 << (shape[1] - 1).bit_length()
        configs = [(max(1, tile // cp), cp, w) for tile in (1024, 2048, 4096) for w in (2, 4, 8)]
    else:
        configs = [(b, w) for b in (256, 512, 1024) for w in (1, 2, 4, 8) if b // (32 * w) >= 1]
    try:
        for cfg in configs:
            if channels_last:
                mod._nhwc_config = lambda c, cfg=cfg: cfg
            else:
                mod._nchw_config = lambda hw, cfg=cfg: cfg
            ms = bench(lambda: torch.autograd.grad(op(xr, N, ALPHA, BETA, K), xr, g), device)
            print(f"    sweep {cfg}: {ms:.3f} ms")
    finally:
        mod._nchw_config, mod._nhwc_config = orig_nchw, orig_nhwc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="small shapes (smoke test, e.g. on CPU)")
    p.add_argument("--sweep", action="store_true", help="also sweep Triton block sizes / warps (CUDA only)")
    p.add_argument("--bandwidth", type=float, default=None,
                   help="copy bandwidth in TB/s for the time floor (default: measured on this card; CPU: 0.02)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--json-out", default=None, help="also write the rows as JSON to this file")
    args = p.parse_args(argv)

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("lrn_bench: error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.bandwidth:
        bandwidth, source = args.bandwidth, "--bandwidth"
    elif device == "cuda":
        bandwidth, source = copy_bandwidth_tb_s(device), f"measured: 1 GiB copy on {torch.cuda.get_device_name()}"
    else:
        bandwidth, source = 0.02, "a nominal CPU figure (smoke test only)"
    mod = _triton_fn() if device == "cuda" else None
    if mod is None:
        print("Triton timings need CUDA (and triton): only torch and _FastLRN are timed here.")
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, torch {torch.__version__}; "
          f"bandwidth {bandwidth:.2f} TB/s ({source})")
    out_rows = []
    shapes = [(4, 96, 13, 13), (4, 256, 7, 7)] if args.small else [(256, 96, 55, 55), (256, 256, 27, 27)]
    impls = implementations(mod)

    header = f"{'shape':>18} {'dtype':>8} {'layout':>6}  {'impl':<27} {'fwd ms':>8} {'fwd+bwd ms':>10} {'GB/s':>7} {'err y':>8} {'err dx':>8}"
    for shape in shapes:
        for dtype in (torch.float32, torch.bfloat16):
            for channels_last in (False, True):
                floor, rows = run_case(shape, dtype, channels_last, device, impls, seed=0)
                floor_ms = floor / (bandwidth * 1e12) * 1e3
                print(f"\n{header}")
                print(f"{'':>18} byte floor {floor / 1e6:.1f} MB -> {floor_ms:.3f} ms at {bandwidth:.2f} TB/s")
                layout = "NHWC" if channels_last else "NCHW"
                for row in rows:
                    if len(row) == 2:
                        print(f"{'x'.join(map(str, shape)):>18} {str(dtype)[6:]:>8} {layout:>6}  {row[0]:<27} {row[1]}")
                        continue
                    name, ms_f, ms_fb, gbs, ey, eg = row
                    out_rows.append({"shape": "x".join(map(str, shape)), "dtype": str(dtype)[6:], "layout": layout,
                                     "impl": name, "ms_fwd": ms_f, "ms_fwd_bwd": ms_fb, "floor_ms": floor_ms,
                                     "gb_s": gbs, "err_y": ey, "err_dx": eg})
                    print(f"{'x'.join(map(str, shape)):>18} {str(dtype)[6:]:>8} {layout:>6}  {name:<27} "
                          f"{ms_f:8.3f} {ms_fb:10.3f} {gbs:7.0f} {ey:8.1e} {eg:8.1e}")
                if args.sweep and mod is not None:
                    sweep(shape, dtype, channels_last, device, mod, seed=1)
    print("\nerr: max |impl - torch fp32| / max |torch fp32| for the output (y) and the input gradient (dx);"
          " bf16 rows compare bf16 results with fp32 math on the same bf16 inputs.")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "bandwidth_tb_s": bandwidth,
                       "bandwidth_source": source, "rows": out_rows}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
