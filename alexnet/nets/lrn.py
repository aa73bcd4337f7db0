"""Local response normalisation (§3.3), exactly the paper's formula:

    b[i] = a[i] / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]^2) ** beta

PyTorch's nn.LocalResponseNorm divides alpha by n; here `alpha` is the paper's alpha.
The 2012 code and Caffe also divide by n but pass 1e-4: that is `alpha_per_n=True`.

Two implementations compute the same function:
- "reference": torch.nn.functional.local_response_norm (autograd through avg_pool3d).
- "fast": one autograd.Function with the analytic backward (saves only its input and the
  denominator). It is also more accurate: in fp32 its conv1 weight gradient is 9e-7 from
  float64, the reference's 1e-3 (tests/test_fastpath.py).
- "triton": alexnet/nets/kernels/lrn_triton.py, one read of the input forward, of input and gradient
  backward. Opt-in (model.lrn_impl=triton): verified under Triton's interpreter only, not yet
  on a GPU (benchmarks/lrn_bench.py checks and times it; make it the CUDA default after that).
All compute in float32 whatever the input dtype: the sum of squares overflows fp16
and loses the small alpha*sum term in bf16.
"""
from __future__ import annotations

import functools

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


class _FastLRN(torch.autograd.Function):
    # d b_i / d a_j = delta_ij d_i^-beta - 2 alpha beta a_i a_j d_i^(-beta-1) for j in window(i), so
    # grad_a = g * d^-beta - 2 alpha beta * a * window_sum(g * b / d)  (the window is symmetric).
    @staticmethod
    def forward(ctx, a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        d = window_sum(a * a, n).mul_(alpha).add_(k)  # (B, C, H, W) denominators before the power
        b = a * d.pow(-beta)
        ctx.save_for_backward(a, d)
        ctx.params = (n, alpha, beta)
        return b

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        a, d = ctx.saved_tensors
        n, alpha, beta = ctx.params
        d_pow = d.pow(-beta)
        inner = g * a * d_pow / d  # g_j * b_j / d_j
        grad = g * d_pow - (2.0 * alpha * beta) * a * window_sum(inner, n)
        return grad, None, None, None, None


@functools.lru_cache(maxsize=1)
def _triton_lrn():
    """alexnet.kernels.lrn_triton.lrn_triton, or None where triton is missing (imported lazily:
    TRITON_INTERPRET is read when triton is first imported)."""
    try:
        from .kernels.lrn_triton import lrn_triton
    except ImportError:
        return None
    return lrn_triton


def local_response_norm(
    x: torch.Tensor, n: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, impl: str = "fast"
) -> torch.Tensor:
    """Paper-convention LRN on (B, C, H, W); computed in float32, returned in x's dtype.

    impl="triton" uses the Triton kernels (CUDA; on CPU only under TRITON_INTERPRET=1, for tests).
    """
    if impl == "triton":
        lrn_triton = _triton_lrn()
        if lrn_triton is None:
            raise RuntimeError("impl='triton' needs triton (and CUDA, or TRITON_INTERPRET=1 set before import)")
        return lrn_triton(x, n, alpha, beta, k)  # computes in float32 inside, writes x's dtype
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
        self.impl = "fast" if impl == "auto" else impl  # auto stays on the verified path (see module docstring)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        impl = self.impl
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            impl = "reference"  # exporters understand the stock op, not a custom autograd.Function
        with torch.autocast(x.device.type, enabled=False):
            return local_response_norm(x, self.n, self.alpha, self.beta, self.k, impl)

    def extra_repr(self) -> str:
        return f"n={self.n}, alpha={self.alpha:g} (paper convention), beta={self.beta}, k={self.k}, impl={self.impl}"
