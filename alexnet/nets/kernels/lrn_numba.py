"""LRN (§3.3) on the CPU with numba: one pass over memory forward, one backward.

The paper's formula, b_i = a_i / d_i^beta with d_i = k + alpha * sum_{j in window(i)} a_j^2
(n adjacent channels, alpha not divided by n: nets/lrn.py owns the convention).

- Input and output stay in the caller's dtype (float32, or bfloat16 passed as its uint16 bits);
  all arithmetic is float32 inside, bf16 is rounded to nearest even on the store as torch does.
  float64 input computes in float64 (for gradcheck).
- Nothing but the input is kept for the backward: it recomputes d from `a`, which it reads anyway
  (like kernels/lrn_triton.py). No tensor the size of the activation is allocated beyond the
  output (forward) and the input gradient (backward); the scratch is a few rows per thread.
- Two layouts: channels-last (rows of C contiguous channels, one row per position) and NCHW
  (planes of positions, tiles of T positions at a time). Both are parallel over rows or tiles.
- beta = 0.75 (the paper's) uses d^-0.75 = 1 / (sqrt(d) * sqrt(sqrt(d))), which vectorises;
  any other beta uses exp(-beta * log d).
The kernels are compiled on first use (a few seconds) and cached on disk (numba's cache=True,
next to this file or under NUMBA_CACHE_DIR).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_TILE = 64  # positions per NCHW tile
_ROWS = 256  # channels-last rows (positions) per parallel job


def _load(src, dst):  # dst[:] = src[:] in the compute dtype (src float32/float64, or bf16 bits as uint16)
    pass


def _store(src, dst):  # dst[:] = src[:] in dst's dtype (bf16: round to nearest even)
    pass


def _like(proto, v):  # v in the dtype of the array proto (float32 or float64)
    pass


@overload(_like, inline="always")
def _like_impl(proto, v):
    if proto.dtype == types.float64:
        return lambda proto, v: np.float64(v)
    return lambda proto, v: np.float32(v)


@overload(_load, inline="always")
def _load_impl(src, dst):
    if src.dtype == types.uint16:
        def impl(src, dst):
            bits = dst.view(np.uint32)
            for i in range(src.shape[0]):
                bits[i] = np.uint32(src[i]) << np.uint32(16)
        return impl

    def impl(src, dst):
        for i in range(src.shape[0]):
            dst[i] = src[i]
    return impl


@overload(_store, inline="always")
def _store_impl(src, dst):
    if dst.dtype == types.uint16:
        def impl(src, dst):
            bits = src.view(np.uint32)
            for i in range(dst.shape[0]):
                u = bits[i]
                dst[i] = np.uint16((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
        return impl

    def impl(src, dst):
        for i in range(dst.shape[0]):
            dst[i] = src[i]
    return impl


@njit(inline="always", **_OPTS)
def _pow_neg(d, dp, beta, m):  # dp[:m] = d[:m] ** -beta
    if beta == 0.75:
        one = _like(d, 1.0)
        for i in range(m):
            r = np.sqrt(d[i])
            dp[i] = one / (r * np.sqrt(r))
    else:
        nb = _like(d, -beta)
        for i in range(m):
            dp[i] = np.exp(nb * np.log(d[i]))


@njit(inline="always", **_OPTS)
def _window_sum(padded, d, C, half):
    """d[i] = padded[i] + ... + padded[i + 2*half], i < C: §3.3's sum over n adjacent channels of a
    zero-padded row, added in the same order everywhere (forward and backward agree bit for bit)."""
    for i in range(C):
        d[i] = padded[i]
    for s in range(1, 2 * half + 1):
        for i in range(C):
            d[i] += padded[s + i]


@njit(inline="always", **_OPTS)
def _denominators(a, sq, d, C, half, alpha, k):
    """d[:C] = k + alpha * window_sum(a^2); sq is a zero-padded scratch row of C + 2*half."""
    for i in range(C):
        sq[half + i] = a[i] * a[i]
    _window_sum(sq, d, C, half)
    for i in range(C):
        d[i] = k + alpha * d[i]


@njit(parallel=True, **_OPTS)
def forward_rows(x, out, proto, n, alpha, beta, k):
    """Channels-last: x, out (R, C), one row per position."""
    R, C = x.shape
    half = n // 2
    alpha, k = _like(proto, alpha), _like(proto, k)
    for job in prange((R + _ROWS - 1) // _ROWS):
        a = np.empty(C, proto.dtype)
        sq = np.zeros(C + 2 * half, proto.dtype)
        d = np.empty(C, proto.dtype)
        dp = np.empty(C, proto.dtype)
        for r in range(job * _ROWS, min(R, (job + 1) * _ROWS)):
            _load(x[r], a)
            _denominators(a, sq, d, C, half, alpha, k)
            _pow_neg(d, dp, beta, C)
            for i in range(C):
                dp[i] *= a[i]
            _store(dp, out[r])


@njit(parallel=True, **_OPTS)
def backward_rows(x, g, grad, proto, n, alpha, beta, k):
    """Channels-last: grad_a = g d^-beta - 2 alpha beta a window_sum(g a d^(-beta-1))."""
    R, C = x.shape
    half = n // 2
    c2 = _like(proto, 2.0 * alpha * beta)
    alpha, k = _like(proto, alpha), _like(proto, k)
    for job in prange((R + _ROWS - 1) // _ROWS):
        a = np.empty(C, proto.dtype)
        gr = np.empty(C, proto.dtype)
        sq = np.zeros(C + 2 * half, proto.dtype)
        tp = np.zeros(C + 2 * half, proto.dtype)  # zero-padded g_j b_j / d_j
        d = np.empty(C, proto.dtype)
        dp = np.empty(C, proto.dtype)
        for r in range(job * _ROWS, min(R, (job + 1) * _ROWS)):
            _load(x[r], a)
            _load(g[r], gr)
            _denominators(a, sq, d, C, half, alpha, k)
            _pow_neg(d, dp, beta, C)
            for i in range(C):
                tp[half + i] = gr[i] * a[i] * dp[i] / d[i]
            _window_sum(tp, d, C, half)
            for i in range(C):
                dp[i] = gr[i] * dp[i] - c2 * a[i] * d[i]
            _store(dp, grad[r])


@njit(inline="always", **_OPTS)
def _tile_window_sum(padded, d, C, m, half):
    """NCHW tile: d[c, :m] = padded[c, :m] + ... + padded[c + 2*half, :m] (_window_sum per position)."""
    for c in range(C):
        for p in range(m):
            d[c, p] = padded[c, p]
        for s in range(1, 2 * half + 1):
            for p in range(m):
                d[c, p] += padded[c + s, p]


@njit(inline="always", **_OPTS)
def _tile_denominators(a, sq, d, C, m, half, alpha, k):
    """NCHW tile: a (C, T) -> d (C, T); sq (C + 2*half, T) zero-padded scratch."""
    for c in range(C):
        for p in range(m):
            sq[half + c, p] = a[c, p] * a[c, p]
    _tile_window_sum(sq, d, C, m, half)
    for c in range(C):
        for p in range(m):
            d[c, p] = k + alpha * d[c, p]


@njit(parallel=True, **_OPTS)
def forward_planes(x, out, proto, n, alpha, beta, k):
    """NCHW: x, out (B, C, P); tiles of _TILE positions of one image."""
    B, C, P = x.shape
    half = n // 2
    alpha, k = _like(proto, alpha), _like(proto, k)
    tiles = (P + _TILE - 1) // _TILE
    for job in prange(B * tiles):
        b, p0 = job // tiles, (job % tiles) * _TILE
        m = min(_TILE, P - p0)
        a = np.empty((C, _TILE), proto.dtype)
        sq = np.zeros((C + 2 * half, _TILE), proto.dtype)
        d = np.empty((C, _TILE), proto.dtype)
        dp = np.empty(_TILE, proto.dtype)
        for c in range(C):
            _load(x[b, c, p0:p0 + m], a[c])
        _tile_denominators(a, sq, d, C, m, half, alpha, k)
        for c in range(C):
            _pow_neg(d[c], dp, beta, m)
            for p in range(m):
                dp[p] *= a[c, p]
            _store(dp, out[b, c, p0:p0 + m])


@njit(parallel=True, **_OPTS)
def backward_planes(x, g, grad, proto, n, alpha, beta, k):
    """NCHW backward, same formula as backward_rows."""
    B, C, P = x.shape
    half = n // 2
    c2 = _like(proto, 2.0 * alpha * beta)
    alpha, k = _like(proto, alpha), _like(proto, k)
    tiles = (P + _TILE - 1) // _TILE
    for job in prange(B * tiles):
        b, p0 = job // tiles, (job % tiles) * _TILE
        m = min(_TILE, P - p0)
        a = np.empty((C, _TILE), proto.dtype)
        gr = np.empty((C, _TILE), proto.dtype)
        sq = np.zeros((C + 2 * half, _TILE), proto.dtype)
        tp = np.zeros((C + 2 * half, _TILE), proto.dtype)
        d = np.empty((C, _TILE), proto.dtype)
        dp = np.empty((C, _TILE), proto.dtype)
        for c in range(C):
            _load(x[b, c, p0:p0 + m], a[c])
            _load(g[b, c, p0:p0 + m], gr[c])
        _tile_denominators(a, sq, d, C, m, half, alpha, k)
        for c in range(C):
            _pow_neg(d[c], dp[c], beta, m)
            for p in range(m):
                tp[half + c, p] = gr[c, p] * a[c, p] * dp[c, p] / d[c, p]
        _tile_window_sum(tp, d, C, m, half)
        for c in range(C):
            for p in range(m):
                dp[c, p] = gr[c, p] * dp[c, p] - c2 * a[c, p] * d[c, p]
            _store(dp[c, :m], grad[b, c, p0:p0 + m])


# -- torch entry points (the CPU kernels of the op alexnet::lrn, nets/lrn.py) -------------------
def _as_numpy(t):
    """A numpy view of t's memory: float32 as is, bfloat16 as its uint16 bits."""
    import torch

    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def _proto(x):
    """An empty array of the compute dtype: float64 for float64 x, else float32."""
    import torch

    return np.empty(0, np.float64 if x.dtype == torch.float64 else np.float32)


def _layout(x):
    """'rows' for channels-last x (positions x channels), else 'planes' (NCHW-contiguous)."""
    import torch

    cl = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return "rows" if cl else "planes"


def _views(t, layout):
    B, C, H, W = t.shape
    if layout == "rows":
        return _as_numpy(t.permute(0, 2, 3, 1).reshape(B * H * W, C))  # a view: t is channels-last
    return _as_numpy(t.reshape(B, C, H * W))


def _prepare(x):
    import numba
    import torch

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))  # as torch's ops

    if x.dtype not in (torch.float32, torch.bfloat16, torch.float64):
        x = x.float()
    layout = _layout(x)
    if layout == "planes":
        x = x.contiguous()
    fmt = torch.channels_last if layout == "rows" else torch.contiguous_format
    return x, layout, fmt


def lrn_forward(x, n: int, alpha: float, beta: float, k: float):
    """b = LRN(x) for a float32 or bfloat16 (B, C, H, W) x on the CPU, in x's dtype and layout."""
    import torch

    dtype = x.dtype
    x, layout, fmt = _prepare(x.detach())
    out = torch.empty_like(x, memory_format=fmt)
    if x.numel():
        kernel = forward_rows if layout == "rows" else forward_planes
        kernel(_views(x, layout), _views(out, layout), _proto(x), n, float(alpha), float(beta), float(k))
    return out.to(dtype)


def lrn_backward(x, g, n: int, alpha: float, beta: float, k: float):
    """grad_x of LRN for the output gradient g, in x's dtype and layout (recomputes d from x)."""
    import torch

    dtype = x.dtype
    x, layout, fmt = _prepare(x.detach())
    g = g.to(x.dtype).contiguous(memory_format=fmt)
    grad = torch.empty_like(x, memory_format=fmt)
    if x.numel():
        kernel = backward_rows if layout == "rows" else backward_planes
        kernel(_views(x, layout), _views(g, layout), _views(grad, layout), _proto(x), n, float(alpha), float(beta), float(k))
    return grad.to(dtype)
