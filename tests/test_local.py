"""The locally connected layer against a loop over output positions, and §3.3's CIFAR net."""
import pytest
import torch
import torch.nn.functional as F

from alexnet.config import ModelConfig
from alexnet.nets.local import LocallyConnected2d
from alexnet.nets.model import CifarLocal, build_model


def loop_reference(layer: LocallyConnected2d, x: torch.Tensor) -> torch.Tensor:
    """Each output position is its own small dense layer over its receptive field."""
    k, s, n = layer.kernel_size, layer.stride, layer.out_size
    xp = F.pad(x, [layer.padding] * 4)
    out = torch.empty(x.shape[0], layer.out_channels, n, n, dtype=x.dtype)
    for i in range(n):
        for j in range(n):
            patch = xp[:, :, i * s : i * s + k, j * s : j * s + k].reshape(x.shape[0], -1)  # (B, C*k*k)
            out[:, :, i, j] = patch @ layer.weight[i * n + j].T + layer.bias[:, i, j]
    return out


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0), (1, 0)])
def test_matches_the_loop_forward_and_backward(stride, padding):
    torch.manual_seed(0)
    layer = LocallyConnected2d(3, 4, 7, 3, stride=stride, padding=padding).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64, requires_grad=True)
    fast, ref = layer(x), loop_reference(layer, x)
    torch.testing.assert_close(fast, ref)
    g = torch.randn_like(fast)
    grads_fast = torch.autograd.grad(fast, (x, layer.weight, layer.bias), g)
    grads_ref = torch.autograd.grad(loop_reference(layer, x), (x, layer.weight, layer.bias), g)
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b)


def test_weights_are_not_shared():
    layer = LocallyConnected2d(1, 1, 4, 3, padding=1)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[5].fill_(1.0)  # only position (1, 1) of the 4x4 grid sees anything
    out = layer(torch.ones(1, 1, 4, 4))
    assert out[0, 0, 1, 1] == 9 and out.abs().sum() == 9


def test_wrong_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match="expects 6x6"):
        LocallyConnected2d(2, 2, 6, 3)(torch.zeros(1, 2, 5, 5))


@pytest.mark.parametrize("lrn", [False, True])
def test_cifar_local_net_shapes_and_params(lrn):
    net = build_model(ModelConfig(arch="cifar_local", num_classes=10, lrn=lrn))
    assert isinstance(net, CifarLocal)
    assert net(torch.randn(2, 3, 24, 24)).shape == (2, 10)
    # conv 64-5 (3 -> 64), conv 64-5, local 3x3 64 -> 32 and 32 -> 32 at 36 positions with unshared biases, fc10
    expect = (64 * 75 + 64) + (64 * 64 * 25 + 64) + 36 * (32 * 64 * 9 + 32) + 36 * (32 * 32 * 9 + 32) + (32 * 36 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == expect
    assert ("lrn1" in dict(net.features.named_children())) == lrn
