"""alexnet/nets/kernels/lrn_triton.py under Triton's CPU interpreter, against the formula and the reference impl.

TRITON_INTERPRET must be set before triton is first imported, and other tests import torch (and
possibly triton) first, so each group of checks runs in a fresh interpreter: pytest runs this same
file as a script, `python tests/test_lrn_triton.py GROUP`, with TRITON_INTERPRET=1. Sizes are small
because the interpreter executes every program instance in Python.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ["fp32_nchw", "fp32_channels_last", "low_precision", "module_and_edges"]


@pytest.mark.parametrize("group", GROUPS)
def test_triton_lrn_under_interpreter(group):
    import triton  # noqa: F401 - in the test extra on Linux x86-64 (pyproject.toml): missing fails, never skips
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, __file__, group], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert f"OK {group}" in proc.stdout


# ---------------------------------------------------------------------------------------------
# the checks, run in the child process
# ---------------------------------------------------------------------------------------------
# (B, C, H, W): C=96 as conv1, C=7 and C=3 (window wider than half the channels), C=1; H*W of
# 35, 15, 323 (> one 256-wide block, not a multiple of it); batch 1 and 3; C=8 = a power of two
# (no zero padding channels in the channels_last tile).
SHAPES = [(3, 96, 5, 7), (1, 7, 3, 5), (2, 13, 17, 19), (3, 3, 2, 2), (1, 1, 4, 3), (2, 8, 3, 3)]


def _post_relu(shape, seed, scale=30.0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(*shape, generator=g)) * scale  # large enough for alpha*sum to matter


def _exact(a, g, n=5, alpha=1e-4, beta=0.75, k=2.0):
    """Forward and input gradient of the formula in float64 through torch.autograd (lrn_direct)."""
    import torch
    from alexnet.nets.lrn import lrn_direct

    a64 = a.detach().double().contiguous().requires_grad_()
    y = lrn_direct(a64, n, alpha, beta, k)
    (ga,) = torch.autograd.grad(y, a64, g.double())
    return y.detach(), ga


def _triton(a, g, **kw):
    import torch
    from alexnet.nets.lrn import local_response_norm

    a = a.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    y = local_response_norm(a, impl="triton", **kw)
    (ga,) = torch.autograd.grad(y, a, g)
    return y, ga


def _close(got, want, rtol, what):
    import torch

    # The input gradient is a difference of two terms and can be ~0 where they cancel, so its
    # absolute tolerance scales with the tensor's magnitude.
    atol = rtol * float(want.detach().abs().max()) + 1e-12
    torch.testing.assert_close(got.double(), want.double(), rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def _check_fp32(channels_last: bool):
    import torch
    from alexnet.nets.lrn import local_response_norm

    for i, shape in enumerate(SHAPES):
        a = _post_relu(shape, seed=i)
        g = torch.randn(*shape, generator=torch.Generator().manual_seed(100 + i))
        if channels_last:
            a = a.contiguous(memory_format=torch.channels_last)
            g = g.contiguous(memory_format=torch.channels_last)
        y, ga = _triton(a, g)
        assert y.dtype == torch.float32 and ga.dtype == torch.float32
        if channels_last and shape[1] > 1 and shape[2] * shape[3] > 1:
            assert y.is_contiguous(memory_format=torch.channels_last), "output keeps channels_last"
            assert ga.is_contiguous(memory_format=torch.channels_last), "gradient keeps channels_last"
        y64, ga64 = _exact(a, g)
        _close(y, y64, 1e-5, f"forward {shape}")
        _close(ga, ga64, 1e-5, f"backward {shape}")
        # and the repository's reference implementation (torch's avg_pool3d formulation) in fp32
        ar = a.detach().clone().requires_grad_()
        yr = local_response_norm(ar, impl="reference")
        (gr,) = torch.autograd.grad(yr, ar, g)
        _close(y, yr, 1e-5, f"forward vs reference {shape}")
        _close(ga, gr, 1e-4, f"backward vs reference {shape}")
        assert (y64 - a.double() / 2**0.75).abs().max() > 1e-3 or shape[1] == 1 or a.max() < 1
        print(f"  {'NHWC' if channels_last else 'NCHW'} {shape}: fwd max rel "
              f"{float(((y.double() - y64).abs() / y64.abs().clamp_min(1e-6)).max()):.2e}, bwd max abs/max "
              f"{float((ga.double() - ga64).abs().max() / ga64.abs().max()):.2e}")


def group_fp32_nchw():
    _check_fp32(channels_last=False)


def group_fp32_channels_last():
    _check_fp32(channels_last=True)


def group_low_precision():
    import torch

    for dtype in (torch.bfloat16, torch.float16):
        for channels_last in (False, True):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            shape = (3, 96, 5, 7)
            a = _post_relu(shape, seed=7).to(dtype).contiguous(memory_format=fmt)
            g = torch.randn(*shape, generator=torch.Generator().manual_seed(8)).to(dtype).contiguous(memory_format=fmt)
            y, ga = _triton(a, g)
            assert y.dtype == dtype and ga.dtype == dtype
            y64, ga64 = _exact(a, g)  # the formula on the same (rounded) input values
            # fp32 inside, one rounding to bf16/fp16 on the way out: bf16 has 8 bits of mantissa
            _close(y, y64, 1e-2, f"{dtype} forward")
            _close(ga, ga64, 1e-2, f"{dtype} backward")

            # 3e4 squared overflows fp16 (max 65504) and sum*alpha is ~1e5: must stay finite and right
            big = torch.full((1, 16, 2, 3), 3e4).to(dtype).contiguous(memory_format=fmt)
            gb = torch.ones_like(big)
            yb, gab = _triton(big, gb)
            assert torch.isfinite(yb).all() and torch.isfinite(gab).all(), f"{dtype} overflow"
            yb64, gab64 = _exact(big, gb)
            _close(yb, yb64, 1e-2, f"{dtype} 3e4 forward")
            _close(gab, gab64, 1e-2, f"{dtype} 3e4 backward")
            print(f"  {dtype} {'NHWC' if channels_last else 'NCHW'}: ok")


def group_module_and_edges():
    import torch
    from alexnet.nets.lrn import LocalResponseNorm, local_response_norm, lrn_direct

    # the nn.Module under CPU bf16 autocast: output in bf16, finite, close to the formula
    a = torch.full((1, 16, 2, 2), 3e4)
    m = LocalResponseNorm(impl="triton")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(a.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), lrn_direct(a), rtol=1e-2, atol=1e-2)

    # alpha_per_n and other n / alpha / beta / k reach the kernel: n=3 and n=7 (compile-time N)
    x = _post_relu((2, 11, 3, 3), seed=3, scale=50.0)
    for n, alpha, beta, k in [(3, 2e-4, 0.5, 1.0), (7, 1e-3, 0.75, 2.0), (1, 1e-3, 0.75, 2.0)]:
        g = torch.randn_like(x)
        y, ga = _triton(x, g, n=n, alpha=alpha, beta=beta, k=k)
        y64, ga64 = _exact(x, g, n, alpha, beta, k)
        _close(y, y64, 1e-5, f"n={n} forward")
        _close(ga, ga64, 1e-5, f"n={n} backward")
    torch.testing.assert_close(LocalResponseNorm(alpha_per_n=True, impl="triton")(x),
                               torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(x), rtol=1e-5, atol=1e-6)

    # a non-contiguous input (every other channel) is handled
    wide = _post_relu((2, 20, 3, 4), seed=4)
    sl = wide[:, ::2]
    torch.testing.assert_close(local_response_norm(sl, impl="triton"), local_response_norm(sl, impl="reference"),
                               rtol=1e-5, atol=1e-6)
    # the CPU "fast" path is untouched by the Triton wiring (it is the autograd.Function)
    torch.testing.assert_close(local_response_norm(x, impl="fast"), lrn_direct(x), rtol=1e-5, atol=1e-6)
    print("  module, n in {1,3,7}, non-contiguous: ok")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1 (pytest does this)"
    name = sys.argv[1]
    globals()[f"group_{name}"]()
    print(f"OK {name}")
