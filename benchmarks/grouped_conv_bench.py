"""Issue 4, item 2: which exact implementation of the paper's two-column (groups=2) convolutions
is fastest. For conv2, conv4 and conv5 at batch 256 it checks each alternative against cuDNN's
grouped convolution on fresh random input, then times forward+backward (median, CUDA events).

Alternatives (all compute the same function; "blockdiag" does twice the FLOPs):
  grouped     nn.functional.conv2d(groups=2)
  split       two half convolutions on channel halves, outputs concatenated
  blockdiag   one dense convolution whose off-diagonal weight blocks are zero

The model's switch between the first two is `model.grouped_impl=grouped|split` (model.ColumnConv2d).

Run on the GPU box:  python benchmarks/grouped_conv_bench.py            (bf16 and fp32, NCHW and channels-last)
Smoke test on CPU:   python benchmarks/grouped_conv_bench.py --small
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# (name, in_channels, out_channels, kernel, padding, spatial) of the paper's grouped layers (§3.5)
LAYERS = [("conv2", 96, 256, 5, 2, 27), ("conv4", 384, 384, 3, 1, 13), ("conv5", 384, 256, 3, 1, 13)]


def grouped(x, w, b, pad):
    return F.conv2d(x, w, b, padding=pad, groups=2)


def split(x, w, b, pad):
    xa, xb = x.chunk(2, dim=1)
    wa, wb = w.chunk(2, dim=0)
    ba, bb = b.chunk(2)
    return torch.cat([F.conv2d(xa, wa, ba, padding=pad), F.conv2d(xb, wb, bb, padding=pad)], dim=1)


def blockdiag(x, w, b, pad):
    out_c, in_half = w.shape[0], w.shape[1]
    dense = w.new_zeros(out_c, 2 * in_half, *w.shape[2:])
    dense[: out_c // 2, :in_half] = w[: out_c // 2]
    dense[out_c // 2 :, in_half:] = w[out_c // 2 :]
    return F.conv2d(x, dense, b, padding=pad)


IMPLS = {"grouped": grouped, "split": split, "blockdiag": blockdiag}


def time_fb(fn, x, w, b, pad, steps: int, device) -> float:
    """Median ms of forward+backward."""
    def run():
        x.grad = w.grad = b.grad = None
        fn(x, w, b, pad).float().sum().backward()

    for _ in range(3):
        run()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            run()
            times.append(1000 * (time.perf_counter() - t))
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="batch 2, fp32 NCHW only (CPU smoke test)")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = 2 if args.small else 256
    dtypes = [torch.float32] if args.small else [torch.float32, torch.bfloat16]
    formats = [torch.contiguous_format] if args.small else [torch.contiguous_format, torch.channels_last]
    torch.backends.cudnn.benchmark = True
    print(f"device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}, batch {batch}")
    print(f"{'layer':<6} {'dtype':<9} {'format':<14} " + " ".join(f"{n + ' ms':>13}" for n in IMPLS) + "  max rel err")
    for name, cin, cout, k, pad, hw in LAYERS:
        for dtype in dtypes:
            for fmt in formats:
                x = (torch.randn(batch, cin, hw, hw, device=device) * 3).relu().to(dtype).contiguous(memory_format=fmt)
                w = (torch.randn(cout, cin // 2, k, k, device=device) * 0.01).to(dtype).contiguous(memory_format=fmt)
                b = torch.randn(cout, device=device).to(dtype)
                ref = grouped(x.double(), w.double(), b.double(), pad)
                errs = [((IMPLS[i](x, w, b, pad).double() - ref).norm() / ref.norm()).item() for i in IMPLS]
                x.requires_grad_(), w.requires_grad_(), b.requires_grad_()
                ms = [time_fb(IMPLS[i], x, w, b, pad, args.steps, device) for i in IMPLS]
                label = "channels_last" if fmt == torch.channels_last else "nchw"
                print(f"{name:<6} {str(dtype)[6:]:<9} {label:<14} " + " ".join(f"{m:>13.3f}" for m in ms)
                      + f"  {max(errs):.1e}")


if __name__ == "__main__":
    main()
