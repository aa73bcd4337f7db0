"""Local response normalisation (§3.3) as Triton kernels: one read of `a` forward, one of `a` and `g` backward.

Paper convention (alpha is NOT divided by n), across channels at every (batch, h, w):

    d[i] = k + alpha * sum_{j=max(0,i-n//2)}^{min(C-1,i+n//2)} a[j]^2
    b[i] = a[i] * d[i]^-beta
    grad_a[i] = g[i] * d[i]^-beta - 2*alpha*beta * a[i] * sum_{j in window(i)} t[j],   t[j] = g[j] * a[j] * d[j]^(-beta-1)

(the same formula as alexnet.lrn._FastLRN; the window is symmetric, so "j in window(i)" == "i in window(j)").

`lrn_forward` / `lrn_backward` are the CUDA kernels of the `alexnet::lrn` custom op registered in
alexnet/nets/lrn.py (which gives torch.compile its fake implementation and autograd formula).

Why the design is what it is
----------------------------
LRN does ~20 flops per element and is bound by memory traffic. The byte floor is
  forward : read a, write b                   -> 2 tensors
  backward: read a, read g, write grad_a      -> 3 tensors
so nothing else is stored between forward and backward: the backward recomputes d from `a`
(n multiply-adds per element) instead of reading a saved d (which would cost one extra write in the
forward and one extra read in the backward: 5 -> 7 tensors moved, +40%). Only the input is saved,
in its own dtype (a bf16 input saves 2 bytes per element, not 4).

Everything is computed in float32 inside the kernels (in fp16, a^2 overflows for |a| > 256; in
bf16, alpha*sum is lost next to k); loads convert up, stores convert back to the tensor's dtype,
so bf16/fp16 callers need no extra cast kernels.

Two kernels per direction, one per memory format:
- NCHW (contiguous): a program owns BLOCK spatial positions (contiguous in memory) of one image and
  walks the channels one at a time, keeping the last n values of the window in registers (a tuple
  of n vectors shifted by one per step). Each element is loaded from global memory exactly once and
  each load is a contiguous, coalesced row of BLOCK values. The window sum is re-added from the n
  registers at every step rather than kept as a running sum (+new -old): a running sum in fp32
  cancels catastrophically when a large channel leaves the window next to small ones.
  The channel loop is unrolled by n: with the rotating tuples carried around a plain loop, the
  sm_90 compile of the backward aborts in LLVM's SLP vectorizer ("PHI reordering is free."
  assertion; Triton 3.8, reproduced by compiling for sm_90 on a machine without a GPU). Unrolled
  by n, every carried value is fresh each iteration. Steps past the last channel are masked.
- channels_last (NHWC): a program owns BLOCK_P positions x all C channels as one register tile
  [BLOCK_P, CP] (CP = next power of two >= C); the channel window is contiguous memory, so the tile
  load is coalesced, and the window sum is n shifted copies of the tile made with tl.gather along
  the channel axis (register/shared-memory shuffles, no second trip to global memory).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# --------------------------------------------------------------------------------------------
# NCHW: sliding window over channels, register tuple of the last n values
# --------------------------------------------------------------------------------------------
@triton.jit
def _pow_neg(d, beta):
    # d ** -beta for d >= k > 0
    return tl.exp2(-beta * tl.log2(d))


@triton.jit
def _lrn_fwd_nchw(
    a_ptr, b_ptr,              # (B, C, HW) contiguous, any of fp32/bf16/fp16
    C, HW,
    alpha, beta, k,
    N: tl.constexpr,           # window size n (odd); compile-time so the window unrolls into registers
    BLOCK: tl.constexpr,       # spatial positions per program
):
    HALF: tl.constexpr = N // 2
    pid_s = tl.program_id(0)
    img = tl.program_id(1).to(tl.int64)
    offs = pid_s * BLOCK + tl.arange(0, BLOCK)            # (BLOCK,) spatial index within one channel plane
    smask = offs < HW
    a_img = a_ptr + img * C * HW + offs                     # (BLOCK,) pointers to channel 0
    b_img = b_ptr + img * C * HW + offs

    # win[j] = a[i - HALF + j] (fp32), j = 0..N-1; channels outside [0, C) are 0.
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    win = (zero,)
    for _ in tl.static_range(N - 1):
        win = win + (zero,)

    # Start at i = -HALF so the first HALF steps only fill the window (their loads of channels
    # 0..HALF-1 are real, their stores are masked off); no separate prologue needed.
    # The loop is unrolled by N (see the module docstring: a rotating tuple carried around a
    # non-unrolled loop crashes LLVM's SLP vectorizer in this Triton; unrolled, the shifts are
    # renames and it also lets N independent loads be in flight). Steps past C-1 are masked.
    for i0 in range(-HALF, C, N):
        for u in tl.static_range(N):
            i = i0 + u                                      # the output channel of this step
            c_new = i + HALF                                # the channel entering the window
            v = tl.load(a_img + c_new * HW, mask=smask & (c_new < C), other=0.0).to(tl.float32)
            win = win[1:] + (v,)
            s = win[0] * win[0]
            for j in tl.static_range(1, N):
                s += win[j] * win[j]
            out = win[HALF] * _pow_neg(k + alpha * s, beta)
            tl.store(b_img + i * HW, out.to(b_ptr.dtype.element_ty), mask=smask & (i >= 0) & (i < C))


@triton.jit
def _lrn_bwd_nchw(
    a_ptr, g_ptr, ga_ptr,      # (B, C, HW) contiguous; a and g may have different dtypes
    C, HW,
    alpha, beta, k,
    N: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # At step i we finish grad[i]. It needs t[i-HALF .. i+HALF], and t[i+HALF] needs
    # d[i+HALF], which needs a[i .. i+2*HALF]. So step i loads a[i+2*HALF] and g[i+HALF] (each
    # element once) and keeps four register windows:
    #   wa = a[i .. i+2H]  (N)        wg = g[i .. i+H]  (H+1)
    #   wp = d^-beta[i .. i+H]  (H+1) wt = t[i-H .. i+H]  (N)
    HALF: tl.constexpr = N // 2
    pid_s = tl.program_id(0)
    img = tl.program_id(1).to(tl.int64)
    offs = pid_s * BLOCK + tl.arange(0, BLOCK)
    smask = offs < HW
    a_img = a_ptr + img * C * HW + offs
    g_img = g_ptr + img * C * HW + offs
    ga_img = ga_ptr + img * C * HW + offs

    zero = tl.zeros([BLOCK], dtype=tl.float32)
    wa = (zero,)
    wt = (zero,)
    for _ in tl.static_range(N - 1):
        wa = wa + (zero,)
        wt = wt + (zero,)
    wg = (zero,)
    wp = (zero,)
    for _ in tl.static_range(HALF):
        wg = wg + (zero,)
        wp = wp + (zero,)

    # i starts at -2*HALF: the first load is a[0]; steps with i < 0 only fill the windows
    # (g and t of channels < 0 are 0, so they contribute nothing).
    for i0 in range(-2 * HALF, C, N):                       # unrolled by N, as in the forward
        for u in tl.static_range(N):
            i = i0 + u
            ca = i + 2 * HALF
            cg = i + HALF
            va = tl.load(a_img + ca * HW, mask=smask & (ca < C), other=0.0).to(tl.float32)
            vg = tl.load(g_img + cg * HW, mask=smask & (cg >= 0) & (cg < C), other=0.0).to(tl.float32)
            wa = wa[1:] + (va,)
            wg = wg[1:] + (vg,)
            # d[i+HALF] from a[i .. i+2H]
            s = wa[0] * wa[0]
            for j in tl.static_range(1, N):
                s += wa[j] * wa[j]
            d = k + alpha * s
            p = _pow_neg(d, beta)                           # d[i+HALF]^-beta
            t = vg * wa[HALF] * p / d                       # t[i+HALF]; 0 for channels >= C (g = 0)
            wp = wp[1:] + (p,)
            wt = wt[1:] + (t,)
            tsum = wt[0]
            for j in tl.static_range(1, N):
                tsum += wt[j]
            grad = wg[0] * wp[0] - (2.0 * alpha * beta) * wa[0] * tsum
            tl.store(ga_img + i * HW, grad.to(ga_ptr.dtype.element_ty), mask=smask & (i >= 0) & (i < C))


# --------------------------------------------------------------------------------------------
# channels_last: one [BLOCK_P, CP] tile per program, window sums by shifting along channels
# --------------------------------------------------------------------------------------------
@triton.jit
def _window_sum_tile(x, C, N: tl.constexpr, BLOCK_P: tl.constexpr, CP: tl.constexpr):
    # x: (BLOCK_P, CP) fp32, zero in padded channels >= C. Returns sum_{|j-c| <= N//2, 0<=j<C} x[:, j].
    HALF: tl.constexpr = N // 2
    ch = tl.arange(0, CP)[None, :]                           # (1, CP)
    acc = x
    for j in tl.static_range(N):
        if j != HALF:
            src = ch + (j - HALF)                            # channel read for output channel ch
            ok = (src >= 0) & (src < C)
            idx = tl.broadcast_to(tl.minimum(tl.maximum(src, 0), CP - 1), (BLOCK_P, CP))
            acc += tl.where(ok, tl.gather(x, idx, axis=1), 0.0)
    return acc


@triton.jit
def _lrn_fwd_nhwc(
    a_ptr, b_ptr,              # (P, C) rows = B*H*W positions, channels contiguous
    P, C,
    alpha, beta, k,
    N: tl.constexpr,
    BLOCK_P: tl.constexpr,
    CP: tl.constexpr,          # next power of two >= C
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)   # (BLOCK_P,)
    ch = tl.arange(0, CP)                                                       # (CP,)
    mask = (rows[:, None] < P) & (ch[None, :] < C)
    offs = rows[:, None] * C + ch[None, :]                                      # (BLOCK_P, CP)
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    d = k + alpha * _window_sum_tile(a * a, C, N, BLOCK_P, CP)
    tl.store(b_ptr + offs, (a * _pow_neg(d, beta)).to(b_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lrn_bwd_nhwc(
    a_ptr, g_ptr, ga_ptr,      # (P, C) each
    P, C,
    alpha, beta, k,
    N: tl.constexpr,
    BLOCK_P: tl.constexpr,
    CP: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    ch = tl.arange(0, CP)
    mask = (rows[:, None] < P) & (ch[None, :] < C)
    offs = rows[:, None] * C + ch[None, :]
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    d = k + alpha * _window_sum_tile(a * a, C, N, BLOCK_P, CP)
    p = _pow_neg(d, beta)
    t = g * a * p / d                                        # 0 in padded channels (a = g = 0)
    grad = g * p - (2.0 * alpha * beta) * a * _window_sum_tile(t, C, N, BLOCK_P, CP)
    tl.store(ga_ptr + offs, grad.to(ga_ptr.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------------------
# launchers
# --------------------------------------------------------------------------------------------
def _is_channels_last(x: torch.Tensor) -> bool:
    # Both formats describe the same memory when C == 1 or H*W == 1; treat those as NCHW.
    return (not x.is_contiguous()) and x.is_contiguous(memory_format=torch.channels_last)


def _nchw_config(hw: int) -> tuple[int, int]:
    """(BLOCK, num_warps) for the NCHW kernels: 4 fp32 per thread (one 16-byte load per row).

    With 8 per thread the backward needs ~215 registers per thread (ptxas, sm_90a), leaving only
    two programs per SM to hide memory latency. To be tuned on the GPU (benchmarks/lrn_bench.py).
    """
    block = 512 if hw >= 1024 else 256
    return block, block // 128


def _nhwc_config(c: int) -> tuple[int, int, int]:
    """(BLOCK_P, CP, num_warps) for the channels_last kernels: ~2048-element tiles; to be tuned on the GPU."""
    cp = triton.next_power_of_2(c)
    return max(1, 2048 // cp), cp, 4


def _check(x: torch.Tensor, n: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"LRN expects (B, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"lrn_triton supports float32/bfloat16/float16, got {x.dtype}")
    if n < 1 or n % 2 == 0:
        raise ValueError(f"n must be odd and positive, got {n}")


def lrn_forward(a: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """Paper-convention LRN of (B, C, H, W) `a` (NCHW or channels_last): b in a's dtype and memory format
    (a non-dense input, e.g. a slice, gives an NCHW-contiguous b)."""
    _check(a, n)
    B, C, H, W = a.shape
    alpha, beta, k = float(alpha), float(beta), float(k)
    if _is_channels_last(a):
        b = torch.empty_like(a, memory_format=torch.channels_last)
        bp, cp, warps = _nhwc_config(C)
        P = B * H * W
        _lrn_fwd_nhwc[(triton.cdiv(P, bp),)](a, b, P, C, alpha, beta, k, N=n, BLOCK_P=bp, CP=cp, num_warps=warps)
        return b
    a = a.contiguous()
    b = torch.empty_like(a, memory_format=torch.contiguous_format)
    block, warps = _nchw_config(H * W)
    _lrn_fwd_nchw[(triton.cdiv(H * W, block), B)](a, b, C, H * W, alpha, beta, k, N=n, BLOCK=block, num_warps=warps)
    return b


def lrn_backward(a: torch.Tensor, g: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """grad_a of lrn_forward for the output gradient g (recomputes the denominators from a), in a's
    dtype; channels_last when a is, else NCHW-contiguous."""
    _check(a, n)
    B, C, H, W = a.shape
    alpha, beta, k = float(alpha), float(beta), float(k)
    if _is_channels_last(a):
        g = g.contiguous(memory_format=torch.channels_last)   # no-op when autograd hands g in a's format
        ga = torch.empty_like(a, memory_format=torch.channels_last)
        bp, cp, warps = _nhwc_config(C)
        P = B * H * W
        _lrn_bwd_nhwc[(triton.cdiv(P, bp),)](a, g, ga, P, C, alpha, beta, k, N=n, BLOCK_P=bp, CP=cp, num_warps=warps)
        return ga
    a = a.contiguous()
    g = g.contiguous()
    ga = torch.empty_like(a, memory_format=torch.contiguous_format)
    block, warps = _nchw_config(H * W)
    _lrn_bwd_nchw[(triton.cdiv(H * W, block), B)](a, g, ga, C, H * W, alpha, beta, k, N=n, BLOCK=block, num_warps=warps)
    return ga
