"""The network against the paper's numbers (§3.5, Figure 2) and torchvision's weights layout."""
import pytest
import torch
import torchvision

from alexnet.config import ModelConfig
from alexnet.nets.model import AlexNet, AlexNetOWT, Cifar4, build_model, count_parameters
from alexnet.nets.summary import layer_table

# §3.5 by hand: weights + biases of conv1..conv5 (conv2/4/5 see 48/192/192 input maps), fc6..fc8
PAPER_PARAMS = [96 * 3 * 11 * 11 + 96, 256 * 48 * 25 + 256, 384 * 256 * 9 + 384, 384 * 192 * 9 + 384,
                256 * 192 * 9 + 256, 9216 * 4096 + 4096, 4096 * 4096 + 4096, 4096 * 1000 + 1000]


def test_parameter_count_is_the_papers():
    assert sum(PAPER_PARAMS) == 60_965_224
    assert count_parameters(AlexNet()) == 60_965_224


def test_every_layer_shape_neurons_and_params():
    rows = {r["layer"]: r for r in layer_table(AlexNet(), 224)["layers"]}
    expect = {"conv1": [96, 55, 55], "pool1": [96, 27, 27], "conv2": [256, 27, 27], "pool2": [256, 13, 13],
              "conv3": [384, 13, 13], "conv4": [384, 13, 13], "conv5": [256, 13, 13], "pool5": [256, 6, 6],
              "fc6": [4096], "fc7": [4096], "fc8": [1000]}
    for name, shape in expect.items():
        assert rows[name]["output"] == shape, name
    neurons = [rows[n]["neurons"] for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")]
    assert neurons == [290_400, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]  # docs/paper.md "network": conv1 is 55x55x96 (Figure 2 prints 253,440)
    params = [rows[n]["params"] for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")]
    assert params == PAPER_PARAMS


def test_two_columns_are_groups():
    m = AlexNet()
    f = m.features
    assert (f.conv2.groups, f.conv3.groups, f.conv4.groups, f.conv5.groups) == (2, 1, 2, 2)


@pytest.mark.parametrize("side", [224, 227])
def test_conv1_gives_55_from_224_and_227(side):
    m = AlexNet()
    x = m.features.conv1(m.features.pad1(torch.zeros(1, 3, side, side)))
    assert x.shape[-2:] == (55, 55)


def test_224_padding_is_right_and_bottom():
    # cuda-convnet's 1 + ceil((224 - 11) / 4): the last window overhangs by 3 zero pixels right/bottom,
    # so the top-left window covers pixels 0..10 exactly.
    m = AlexNet(ModelConfig(num_classes=10))
    conv = m.features.conv1
    x = torch.randn(1, 3, 224, 224)
    out = m.features.conv1(m.features.pad1(x))
    first = (conv.weight * x[:, :, :11, :11]).sum(dim=(1, 2, 3)) + conv.bias
    torch.testing.assert_close(out[0, :, 0, 0], first, rtol=1e-4, atol=1e-4)


def test_paper_init():
    torch.manual_seed(0)
    m = AlexNet()
    for name in ("conv1", "conv3"):
        layer = getattr(m.features, name)
        assert abs(layer.weight.std().item() - 0.01) < 5e-4 and abs(layer.weight.mean().item()) < 1e-3
        assert torch.all(layer.bias == 0)
    for name in ("conv2", "conv4", "conv5"):
        assert torch.all(getattr(m.features, name).bias == 1)
    assert torch.all(m.classifier.fc6.bias == 1) and torch.all(m.classifier.fc7.bias == 1)
    assert torch.all(m.classifier.fc8.bias == 0)
    assert abs(m.classifier.fc6.weight.std().item() - 0.01) < 1e-4


def test_one_column_has_half_the_kernels_but_full_conv5_and_fc():
    m = AlexNet(ModelConfig(columns=1))
    f = m.features
    assert [f.conv1.out_channels, f.conv2.out_channels, f.conv3.out_channels, f.conv4.out_channels,
            f.conv5.out_channels] == [48, 128, 192, 192, 256]
    assert f.conv2.groups == 1 and m.classifier.fc6.in_features == 9216
    expect = (48 * 363 + 48) + (128 * 48 * 25 + 128) + (192 * 128 * 9 + 192) + (192 * 192 * 9 + 192) \
        + (256 * 192 * 9 + 256) + sum(PAPER_PARAMS[5:])
    assert count_parameters(m) == expect


ABLATIONS = [dict(lrn=False), dict(lrn_alpha_per_n=True), dict(pool_kernel=2), dict(columns=1), dict(remove_conv=3),
             dict(remove_conv=4), dict(activation="tanh"), dict(dropout=0.0), dict(extra_conv=True),
             dict(init="code2012"), dict(init="kaiming"), dict(width=0.25)]


@pytest.mark.parametrize("kw", ABLATIONS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_ablation_switches_train(kw):
    torch.manual_seed(0)
    m = AlexNet(ModelConfig(num_classes=7, **kw))
    out = m(torch.randn(2, 3, 224, 224) * 50)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())


def test_ablations_change_what_they_say():
    assert not any("lrn" in n for n, _ in AlexNet(ModelConfig(lrn=False)).features.named_children())
    assert AlexNet(ModelConfig(pool_kernel=2)).features.pool1.kernel_size == 2
    assert not hasattr(AlexNet(ModelConfig(remove_conv=3)).features, "conv3")
    assert isinstance(AlexNet(ModelConfig(activation="tanh")).features.relu1, torch.nn.Tanh)
    assert hasattr(AlexNet(ModelConfig(extra_conv=True)).features, "conv6")
    assert AlexNet(ModelConfig(lrn_alpha_per_n=True)).features.lrn1.alpha == pytest.approx(2e-5)


def test_hidden_layer_is_fc7_after_relu():
    m = AlexNet(ModelConfig(width=0.25, num_classes=10)).eval()
    x = torch.randn(2, 3, 224, 224)
    h = m.hidden(x)
    assert h.shape == (2, 1024) and (h >= 0).all()
    torch.testing.assert_close(m.classifier.fc8(0.5 * h), m(x))  # §4.2 fc8 sees fc7's outputs x0.5 at test


def test_owt_loads_torchvision_state_dict_and_matches():
    torch.manual_seed(0)
    tv = torchvision.models.alexnet(weights=None, num_classes=1000).eval()
    ours = AlexNetOWT(ModelConfig(arch="owt")).eval()
    ours.load_state_dict(tv.state_dict())  # strict: same keys, same shapes
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(ours(x), tv(x))


def test_cifar4_is_four_weight_layers():
    m = Cifar4(ModelConfig(arch="cifar4", num_classes=10))
    weights = [p for p in m.parameters() if p.ndim > 1]
    assert len(weights) == 4
    assert m(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert build_model(ModelConfig(arch="cifar4", num_classes=10))(torch.randn(1, 3, 28, 28)).shape == (1, 10)


def test_split_columns_equal_grouped_convolution():
    """model.grouped_impl=split computes conv2/4/5 as two half convolutions: same weights, same function."""
    torch.manual_seed(0)
    grouped = AlexNet(ModelConfig(num_classes=10, width=0.25, dropout=0.0))
    split = AlexNet(ModelConfig(num_classes=10, width=0.25, dropout=0.0, grouped_impl="split"))
    split.load_state_dict(grouped.state_dict())  # the same keys and shapes
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64) * 50
    grouped, split = grouped.double(), split.double()
    out_g, out_s = grouped(x), split(x)
    torch.testing.assert_close(out_s, out_g, rtol=1e-12, atol=1e-12)
    out_g.square().sum().backward()
    out_s.square().sum().backward()
    for (name, pg), (_, ps) in zip(grouped.named_parameters(), split.named_parameters()):
        torch.testing.assert_close(ps.grad, pg.grad, rtol=1e-10, atol=1e-12, msg=name)
    assert split.features.conv4.impl == "split" and split.features.conv4.groups == 2
