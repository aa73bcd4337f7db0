"""The LRN custom op alexnet::lrn (model.lrn_impl=triton): its CPU kernel against the formula,
its registration (fake, autograd) checked by torch.library.opcheck, and torch.compile tracing the
whole net through it without a graph break, with the reference net's values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from alexnet.config import ModelConfig
from alexnet.nets.lrn import LocalResponseNorm, local_response_norm, lrn_backward_op, lrn_direct, lrn_op, resolve_impl
from alexnet.nets.model import AlexNet


def _post_relu(*shape, seed=0):
    return torch.relu(torch.randn(*shape, generator=torch.Generator().manual_seed(seed))) * 30


@pytest.mark.parametrize("channels_last", [False, True])
def test_op_matches_the_formula_values_and_gradients(channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    a = _post_relu(2, 13, 5, 4).contiguous(memory_format=fmt).requires_grad_()
    g = torch.randn(2, 13, 5, 4).contiguous(memory_format=fmt)
    y = local_response_norm(a, impl="triton")
    (ga,) = torch.autograd.grad(y, a, g)
    a64 = a.detach().double().requires_grad_()
    y64 = lrn_direct(a64)
    (ga64,) = torch.autograd.grad(y64, a64, g.double())
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ga.double(), ga64, rtol=1e-5, atol=1e-5 * float(ga64.abs().max()))
    assert y.is_contiguous(memory_format=fmt) and ga.is_contiguous(memory_format=fmt)
    assert (y64 - a64 / 2 ** 0.75).abs().max() > 1e-3  # the normalisation really acts on these values


def test_op_bf16_computes_in_float32():
    a = torch.full((1, 16, 2, 2), 3e4).bfloat16()  # squares overflow fp16, and bf16 loses alpha*sum next to k
    out = local_response_norm(a, impl="triton")
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), lrn_direct(a.float()), rtol=1e-2, atol=1e-2)


def test_opcheck_fake_and_autograd_registrations():
    """torch.library.opcheck: schema, fake (meta) implementation and autograd registration agree
    with the real kernel, as torch.compile and AOTAutograd rely on."""
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = _post_relu(2, 7, 3, 3, seed=1).contiguous(memory_format=fmt).requires_grad_()
        torch.library.opcheck(lrn_op, (x, 5, 1e-4, 0.75, 2.0))
        g = torch.randn(2, 7, 3, 3).contiguous(memory_format=fmt)
        torch.library.opcheck(lrn_backward_op, (x.detach(), g, 5, 1e-4, 0.75, 2.0))


def test_auto_is_the_op_on_cuda_and_on_cpu():
    assert resolve_impl("auto", torch.device("cpu")) == "triton"  # numba is a dependency: its CPU kernels
    import triton  # noqa: F401 - in the test extra on Linux x86-64 (pyproject.toml): missing fails, never skips
    assert resolve_impl("auto", torch.device("cuda")) == "triton"
    assert resolve_impl("reference", torch.device("cuda")) == "reference"
    assert LocalResponseNorm().impl == "auto"


def _nets():
    torch.manual_seed(0)
    cfg = dict(num_classes=10, width=0.125, dropout=0.0)
    op, ref = AlexNet(ModelConfig(lrn_impl="triton", **cfg)), AlexNet(ModelConfig(lrn_impl="reference", **cfg))
    ref.load_state_dict(op.state_dict())
    return op, ref


def test_compile_traces_the_whole_net_without_graph_breaks():
    op, ref = _nets()
    x, y = torch.randn(2, 3, 64, 64) * 50, torch.tensor([1, 7])
    torch._dynamo.reset()
    try:
        explained = torch._dynamo.explain(op)(x)
        assert explained.graph_break_count == 0 and explained.graph_count == 1
        # forward + backward through AOTAutograd (the op's fake and autograd formula); fullgraph
        # raises on any graph break
        compiled = torch.compile(op, fullgraph=True, backend="aot_eager")
        loss = F.cross_entropy(compiled(x), y)
        loss.backward()
    finally:
        torch._dynamo.reset()
    loss_ref = F.cross_entropy(ref(x), y)
    loss_ref.backward()
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(op.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5 * float(q.grad.abs().max()), msg=name)
