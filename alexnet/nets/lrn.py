"""Local response normalisation (§3.3), exactly the paper's formula:

    b[i] = a[i] / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2) ** beta

PyTorch's nn.LocalResponseNorm divides alpha by n; here `alpha` is the paper's alpha.
The 2012 code and Caffe also divide by n but pass 1e-4: that is `alpha_per_n=True`.

Three implementations compute the same function (model.lrn_impl):
- "reference": torch.nn.functional.local_response_norm (autograd through avg_pool3d).
- "fast": one autograd.Function in torch with the analytic backward (saves only its input and
  the denominator). It is also more accurate: in fp32 its conv1 weight gradient is 9e-7 from
  float64, the reference's 1e-3 (tests/test_fastpath.py). No compiled code: the fallback.
- "triton": the custom op `alexnet::lrn` (torch.library), one node that torch.compile traces
  without a graph break (fake implementation and autograd registered below); it saves only its
  input, and the backward recomputes the denominators. Kernels:
  CUDA: alexnet/nets/kernels/lrn_triton.py (one read of the input forward, of input and gradient
  backward). CPU: alexnet/nets/kernels/lrn_numba.py, the same single pass in numba, in the
  input's dtype (bf16 under autocast, fp32 arithmetic inside) and layout (channels-last rows or
  NCHW planes); the Triton kernels under Triton's interpreter (TRITON_INTERPRET=1,
  tests/test_lrn_triton.py); the formula in torch where numba is missing.
"auto" (the default) is the op where it has a compiled kernel (Triton on CUDA, numba on the
CPU), else "fast". Measured on one H200
(../shared/gpu/README.md, 2026-11-26, the whole eager training step of the paper net, batch 256,
bf16 + channels-last): Triton 22,815 img/s, fast 12,451, reference 9,186; LRN forward+backward of
256x96x55x55 bf16 NHWC: Triton 0.59 ms, fast 6.16 ms, torch 8.17 ms. On the 2-core CPU host:
benchmarks/lrn-cpu.json (`python benchmarks/lrn_cpu_bench.py`).
All compute in float32 whatever the input dtype: the sum of squares overflows fp16
and loses the small alpha*sum term in bf16.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import threading

import torch
import torch.nn.functional as F
from torch import nn


def window_sum(x: torch.Tensor, n: int) -> torch.Tensor:
    """Sum over channels j in [i - n//2, i + n//2] clipped to [0, C-1]. x: (B, C, H, W)."""
    half = n // 2
    padded = F.pad(x, (0, 0, 0, 0, half, half))  # zero channels at both ends: (B, C + 2*half, H, W)
    out = padded[:, 0 : x.shape[1]].clone()
    for shift in range(1, 2 * half + 1):
        out += padded[:, shift : shift + x.shape[1]]
    return out


def lrn_direct(a: torch.Tensor, n: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> torch.Tensor:
    """The formula written out channel by channel: slow, only for tests."""
    C = a.shape[1]
    out = torch.empty_like(a)
    for i in range(C):
        lo, hi = max(0, i - n // 2), min(C - 1, i + n // 2)
        s = (a[:, lo : hi + 1] ** 2).sum(dim=1)
        out[:, i] = a[:, i] / (k + alpha * s) ** beta
    return out


def _denominator(a: torch.Tensor, n: int, alpha: float, k: float) -> torch.Tensor:
    """d = k + alpha * window_sum(a^2), the base of the power (a: float32, (B, C, H, W))."""
    return window_sum(a * a, n).mul_(alpha).add_(k)


def _input_grad(a: torch.Tensor, d: torch.Tensor, g: torch.Tensor, n: int, alpha: float, beta: float) -> torch.Tensor:
    # d b_i / d a_j = delta_ij d_i^-beta - 2 alpha beta a_i a_j d_i^(-beta-1) for j in window(i), so
    # grad_a = g * d^-beta - 2 alpha beta * a * window_sum(g * b / d)  (the window is symmetric).
    d_pow = d.pow(-beta)
    inner = g * a * d_pow / d  # g_j * b_j / d_j
    return g * d_pow - (2.0 * alpha * beta) * a * window_sum(inner, n)


class _FastLRN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        d = _denominator(a, n, alpha, k)  # (B, C, H, W) denominators before the power
        ctx.save_for_backward(a, d)
        ctx.params = (n, alpha, beta)
        return a * d.pow(-beta)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        a, d = ctx.saved_tensors
        n, alpha, beta = ctx.params
        return _input_grad(a, d, g, n, alpha, beta), None, None, None, None


# -- the custom op alexnet::lrn ----------------------------------------------------------------
_HAS_TRITON = importlib.util.find_spec("triton") is not None  # without importing it (see _triton_kernels)
_HAS_NUMBA = importlib.util.find_spec("numba") is not None


@functools.lru_cache(maxsize=1)
def _numba_kernels():
    """alexnet/nets/kernels/lrn_numba.py (the op's CPU kernels), or None where numba is missing."""
    try:
        from .kernels import lrn_numba
    except ImportError:
        return None
    return lrn_numba


@functools.lru_cache(maxsize=1)
def _triton_kernels():
    """alexnet/nets/kernels/lrn_triton.py, or None where triton is missing (imported lazily:
    TRITON_INTERPRET is read when triton is first imported)."""
    try:
        from .kernels import lrn_triton
    except ImportError:
        return None
    return lrn_triton


def _kernels_on_cpu():
    """The Triton kernels when Triton's CPU interpreter is on (tests), else the numba kernels,
    else None (the torch formula)."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return _triton_kernels()
    return _numba_kernels()


def _out_format(x: torch.Tensor) -> torch.memory_format:
    """The op's output layout, as the Triton kernels write it: channels_last for a channels_last
    input, else NCHW-contiguous (the fake implementation must promise the same strides)."""
    cl = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl else torch.contiguous_format


@torch.library.custom_op("alexnet::lrn", mutates_args=())
def lrn_op(x: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """Paper-convention LRN of (B, C, H, W) x: float32 inside, output in x's dtype. CPU kernel."""
    kernels = _kernels_on_cpu()
    if kernels is not None:
        return kernels.lrn_forward(x, n, alpha, beta, k)
    a = x.float()
    b = a * _denominator(a, n, alpha, k).pow(-beta)
    return b.to(x.dtype).contiguous(memory_format=_out_format(x))


@torch.library.custom_op("alexnet::lrn_backward", mutates_args=())
def lrn_backward_op(x: torch.Tensor, g: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """grad_x of alexnet::lrn for the output gradient g (recomputes the denominators). CPU kernel."""
    kernels = _kernels_on_cpu()
    if kernels is not None:
        return kernels.lrn_backward(x, g, n, alpha, beta, k)
    a = x.float()
    grad = _input_grad(a, _denominator(a, n, alpha, k), g.float(), n, alpha, beta)
    return grad.to(x.dtype).contiguous(memory_format=_out_format(x))


@lrn_op.register_kernel("cuda")
def _lrn_cuda(x, n, alpha, beta, k):
    return _require_triton().lrn_forward(x, n, alpha, beta, k)


@lrn_backward_op.register_kernel("cuda")
def _lrn_backward_cuda(x, g, n, alpha, beta, k):
    return _require_triton().lrn_backward(x, g, n, alpha, beta, k)


def _require_triton():
    kernels = _triton_kernels()
    if kernels is None:
        raise RuntimeError("model.lrn_impl=triton on CUDA needs the triton package: install it or use lrn_impl=fast")
    return kernels


@lrn_op.register_fake
def _lrn_fake(x, n, alpha, beta, k):
    return torch.empty_like(x, memory_format=_out_format(x))


@lrn_backward_op.register_fake
def _lrn_backward_fake(x, g, n, alpha, beta, k):
    return torch.empty_like(x, memory_format=_out_format(x))


def _lrn_setup(ctx, inputs, output):
    x, n, alpha, beta, k = inputs
    ctx.save_for_backward(x)  # only the input, in its own dtype: the backward recomputes d
    ctx.params = (n, alpha, beta, k)


def _lrn_grad(ctx, g):
    (x,) = ctx.saved_tensors
    return lrn_backward_op(x, g, *ctx.params), None, None, None, None


lrn_op.register_autograd(_lrn_grad, setup_context=_lrn_setup)


def resolve_impl(impl: str, device: torch.device) -> str:
    """model.lrn_impl=auto: the op alexnet::lrn where it has a compiled kernel (Triton on CUDA,
    numba on the CPU), else the fused autograd LRN in torch (measured: see the module docstring)."""
    if impl != "auto":
        return impl
    compiled = _HAS_TRITON if device.type == "cuda" else device.type == "cpu" and _HAS_NUMBA
    return "triton" if compiled else "fast"


def local_response_norm(
    x: torch.Tensor, n: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, impl: str = "fast"
) -> torch.Tensor:
    """Paper-convention LRN on (B, C, H, W); computed in float32, returned in x's dtype.

    impl="triton" is the custom op alexnet::lrn (Triton kernels on CUDA; see the module docstring).
    """
    impl = resolve_impl(impl, x.device)
    if impl == "triton":
        return lrn_op(x, n, float(alpha), float(beta), float(k))
    x32 = x.float()
    if impl == "reference":
        y = F.local_response_norm(x32, n, alpha=alpha * n, beta=beta, k=k)  # torch divides alpha by n
    else:
        y = _FastLRN.apply(x32, n, alpha, beta, k)
    return y.to(x.dtype)


class LocalResponseNorm(nn.Module):
    """§3.3 with k=2, n=5, alpha=1e-4, beta=0.75 as in the paper."""

    def __init__(self, n: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 alpha_per_n: bool = False, impl: str = "auto"):
        super().__init__()
        self.n, self.beta, self.k = n, beta, k
        self.alpha = alpha / n if alpha_per_n else alpha
        self.impl = impl  # "auto" is resolved per call, on the input's device (resolve_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        impl = self.impl
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            impl = "reference"  # exporters understand the stock op, not a custom autograd.Function
        with torch.autocast(x.device.type, enabled=False):
            return local_response_norm(x, self.n, self.alpha, self.beta, self.k, impl)

    def extra_repr(self) -> str:
        return f"n={self.n}, alpha={self.alpha:g} (paper convention), beta={self.beta}, k={self.k}, impl={self.impl}"


def warm_up_cpu_kernels(dtype: torch.dtype) -> threading.Thread | None:
    """Compile (or load from numba's disk cache) the op's CPU kernels for channels-last `dtype`
    input, forward and backward, in a background thread: the first compile takes seconds
    (benchmarks/lrn-cpu.json first_call_s), which a caller can overlap with other work (the
    quickstart: with preparing the store). None where there are no numba kernels."""
    if not _HAS_NUMBA:
        return None

    def compile_() -> None:
        x = torch.ones(1, 2, 2, 2, dtype=dtype).contiguous(memory_format=torch.channels_last)
        lrn_backward_op(x, lrn_op(x, 5, 1e-4, 0.75, 2.0), 5, 1e-4, 0.75, 2.0)

    thread = threading.Thread(target=compile_, name="lrn-kernels", daemon=True)
    thread.start()
    return thread
