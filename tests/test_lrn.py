"""§3.3 LRN: the fast and reference implementations against the formula written out."""
import pytest
import torch

from alexnet.nets.lrn import LocalResponseNorm, _FastLRN, local_response_norm, lrn_direct


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_matches_the_formula(impl):
    torch.manual_seed(0)
    a = torch.relu(torch.randn(2, 13, 5, 4, dtype=torch.float64)) * 30  # post-ReLU, large enough for alpha to matter
    expect = lrn_direct(a, n=5, alpha=1e-4, beta=0.75, k=2.0)
    got = local_response_norm(a.float(), 5, 1e-4, 0.75, 2.0, impl=impl).double()
    torch.testing.assert_close(got, expect, rtol=1e-5, atol=1e-6)
    assert (expect - a / 2 ** 0.75).abs().max() > 1e-3  # the normalisation really acts on these values


def test_fast_equals_reference_values_and_gradients():
    torch.manual_seed(1)
    a = (torch.relu(torch.randn(3, 96, 11, 11)) * 40).requires_grad_()
    g = torch.randn(3, 96, 11, 11)
    ref = local_response_norm(a, impl="reference")
    (ga_ref,) = torch.autograd.grad(ref, a, g)
    fast = local_response_norm(a, impl="fast")
    (ga_fast,) = torch.autograd.grad(fast, a, g)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ga_fast, ga_ref, rtol=1e-4, atol=1e-6)


def test_gradcheck_float64():
    torch.manual_seed(2)
    a = (torch.rand(2, 7, 3, 3, dtype=torch.float64) * 20).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: _FastLRN.apply(x, 5, 1e-3, 0.75, 2.0), (a,))


def test_alpha_per_n_is_the_2012_code_convention():
    a = torch.rand(1, 8, 2, 2) * 50
    m = LocalResponseNorm(alpha_per_n=True)
    torch.testing.assert_close(m(a), lrn_direct(a, alpha=2e-5))
    torch.testing.assert_close(m(a), torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(a))


def test_paper_alpha_is_torch_alpha_times_n():
    a = torch.rand(1, 8, 2, 2) * 50
    torch.testing.assert_close(LocalResponseNorm()(a), torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)(a))


def test_bf16_autocast_no_overflow():
    a = torch.full((1, 16, 2, 2), 3e4)  # squares of 3e4 overflow fp16 (max 65504)
    m = LocalResponseNorm()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(a.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), lrn_direct(a), rtol=1e-2, atol=1e-2)
    half = m(a.half())
    assert torch.isfinite(half).all()
