"""The LRN's CPU kernels (nets/kernels/lrn_numba.py, the op alexnet::lrn on the CPU) against the
paper's formula evaluated channel by channel in float64 (nets/lrn.py: lrn_direct), for every
channel count the presets and ablations give the LRN, odd counts and tiny images, in both
layouts; gradcheck in float64; only the input kept for the backward."""
import pytest
import torch

from alexnet.nets.lrn import LocalResponseNorm, lrn_direct, lrn_op, resolve_impl

# full width 96/256; half width (the quick preset) and the column split 48/128; quarter width 24/64
# and its columns 12/32; cifar4 / cifar_local 32/64; odd counts and fewer channels than the window
CHANNELS = [96, 256, 48, 128, 24, 64, 12, 32, 13, 7, 3, 2, 1]
SPATIAL = [(5, 4), (1, 1), (2, 3)]
FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
BF16_REL = 2.0 ** -8  # stated bound: one bf16 rounding of the output (inputs are exact bf16 values)


def _inputs(c, h, w, fmt, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.relu(torch.randn(2, c, h, w, generator=gen)) * 40  # post-ReLU, large enough for alpha*sum to act
    g = torch.randn(2, c, h, w, generator=gen)
    return a.to(dtype).contiguous(memory_format=fmt), g.to(dtype).contiguous(memory_format=fmt)


def _exact(a, g):
    a64 = a.double().requires_grad_()
    y64 = lrn_direct(a64)
    (ga64,) = torch.autograd.grad(y64, a64, g.double())
    return y64, ga64


def _op(a, g):
    x = a.clone().requires_grad_()
    y = lrn_op(x, 5, 1e-4, 0.75, 2.0)
    (ga,) = torch.autograd.grad(y, x, g)
    return y, ga


@pytest.mark.parametrize("fmt", FORMATS, ids=list(FORMATS))
@pytest.mark.parametrize("c", CHANNELS)
def test_fp32_forward_and_backward_equal_the_formula(c, fmt):
    for h, w in SPATIAL:
        a, g = _inputs(c, h, w, FORMATS[fmt], torch.float32)
        y, ga = _op(a, g)
        y64, ga64 = _exact(a, g)
        assert y.dtype == ga.dtype == torch.float32
        assert y.is_contiguous(memory_format=FORMATS[fmt]) and ga.is_contiguous(memory_format=FORMATS[fmt])
        torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=0)
        torch.testing.assert_close(ga.double(), ga64, rtol=1e-5, atol=1e-6 * float(ga64.abs().max()))


@pytest.mark.parametrize("fmt", FORMATS, ids=list(FORMATS))
def test_bf16_within_one_rounding_of_the_formula(fmt):
    """bf16 in and out, float32 inside: each output is the exact value of its bf16 inputs up to
    one bf16 rounding (2^-8 relative), plus fp32 noise far below it."""
    for c in (96, 256, 48, 13, 1):
        a, g = _inputs(c, 6, 5, FORMATS[fmt], torch.bfloat16, seed=c)
        y, ga = _op(a, g)
        y64, ga64 = _exact(a, g)
        assert y.dtype == ga.dtype == torch.bfloat16 and y.is_contiguous(memory_format=FORMATS[fmt])
        assert ((y.double() - y64).abs() <= BF16_REL * y64.abs() + 1e-30).all()
        assert ((ga.double() - ga64).abs() <= BF16_REL * ga64.abs() + 1e-5 * ga64.abs().max()).all()
        assert (y64 - a.double() / 2 ** 0.75).abs().max() > 1e-2  # the normalisation acts on these values


def test_bf16_large_values_do_not_overflow():
    a = torch.full((1, 16, 2, 2), 3e4).bfloat16().contiguous(memory_format=torch.channels_last)
    out = lrn_op(a, 5, 1e-4, 0.75, 2.0)  # squares overflow fp16; alpha*sum is lost next to k in bf16 arithmetic
    assert torch.isfinite(out).all()
    assert ((out.double() - lrn_direct(a.double())).abs() <= BF16_REL * out.double().abs()).all()


@pytest.mark.parametrize("fmt", FORMATS, ids=list(FORMATS))
def test_gradcheck_float64(fmt):
    for c, (h, w) in ((7, (3, 2)), (1, (2, 2)), (12, (1, 1))):
        a, _ = _inputs(c, h, w, FORMATS[fmt], torch.float64)
        x = a.requires_grad_()
        assert torch.autograd.gradcheck(lambda t: lrn_op(t, 5, 1e-4, 0.75, 2.0), (x,))
        assert torch.autograd.gradcheck(lambda t: lrn_op(t, 3, 1e-3, 0.5, 1.0), (x,))  # any n, alpha, beta, k


def test_other_parameters_equal_the_formula():
    a, g = _inputs(13, 4, 4, torch.channels_last, torch.float32)
    x = a.clone().requires_grad_()
    y = lrn_op(x, 7, 2e-3, 0.6, 1.5)
    (ga,) = torch.autograd.grad(y, x, g)
    a64 = a.double().requires_grad_()
    y64 = lrn_direct(a64, 7, 2e-3, 0.6, 1.5)
    (ga64,) = torch.autograd.grad(y64, a64, g.double())
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=0)
    torch.testing.assert_close(ga.double(), ga64, rtol=1e-5, atol=1e-6 * float(ga64.abs().max()))


def test_the_cpu_default_keeps_only_the_input_for_backward():
    """model.lrn_impl=auto on the CPU is the op with the numba kernels, and under bf16 autocast +
    channels-last it saves one tensor: its bf16 input (the backward recomputes the rest)."""
    assert resolve_impl("auto", torch.device("cpu")) == "triton"
    a, _ = _inputs(96, 9, 9, torch.channels_last, torch.bfloat16)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = LocalResponseNorm()(a.requires_grad_())
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    assert [(t.dtype, t.shape) for t in saved] == [(torch.bfloat16, a.shape)]
