"""The networks: the 2012 AlexNet (§3, Figure 2), its ablations, torchvision's "one weird
trick" variant (state-dict compatible with torchvision), and Figure 1's four-layer CIFAR net.

Public surface as in torchvision: `features` / `avgpool` / `classifier`.

224 vs 227 (§3.5): cuda-convnet computes conv1's output size as 1 + ceil((in - 11) / 4), so a
224 crop behaves as if zero-padded by 3 pixels on the right and bottom. We pad exactly that
(ZeroPad2d((0, 3, 0, 3)) is the same rule for every input size): 224 -> 55x55, and a
Caffe-style 227 input also gives 55x55.
"""
from __future__ import annotations

import math
import zlib
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from .local import LocallyConnected2d
from .lrn import LocalResponseNorm

# §3.5 kernels per layer (both columns together) and fully-connected units
PAPER_CONV = (96, 256, 384, 384, 256)
PAPER_FC = 4096


def _scaled(n: int, width: float) -> int:
    """Kernel count under the width multiplier, kept even so two columns split evenly."""
    return max(2, 2 * round(n * width / 2))


def _activation(cfg: ModelConfig) -> nn.Module:
    return nn.ReLU(inplace=True) if cfg.activation == "relu" else nn.Tanh()  # §3.1


def _lrn(cfg: ModelConfig) -> nn.Module:
    return LocalResponseNorm(5, cfg.lrn_alpha, 0.75, 2.0, alpha_per_n=cfg.lrn_alpha_per_n, impl=cfg.lrn_impl)


def _pool(cfg: ModelConfig) -> nn.Module:
    return nn.MaxPool2d(kernel_size=cfg.pool_kernel, stride=2)  # §3.4 z=3, s=2 overlapping


def out_classes(cfg: ModelConfig) -> int:
    """The last layer's outputs: model.num_classes, or ImageNet's 1000 while it is 0 (no store read)."""
    return cfg.num_classes or 1000
class PaperDropout(nn.Module):
    """§4.2 dropout as the paper and the 2012 code (`HiddenSexLayer`, src/layer.cu): in training each
    unit is zeroed with probability p and the kept ones pass UNSCALED; at test every unit passes,
    multiplied by 1 - p. Masks are drawn as nn.Dropout draws them (F.dropout, then x(1-p) undoes its
    1/(1-p); exact for p = 0.5), so the two modes differ only by that scale. No parameters."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return x
        if self.training:
            return F.dropout(x, self.p, training=True) * (1.0 - self.p)
        return x * (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, paper (unscaled in training, x(1-p) at test)"


def _dropout(cfg: ModelConfig) -> nn.Module:
    """docs/paper.md "dropout": the paper's semantics, or torch's inverted nn.Dropout (a named option)."""
    return PaperDropout(cfg.dropout) if cfg.dropout_mode == "paper" else nn.Dropout(cfg.dropout)


def scale_input(x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Multiply the (0..255 minus mean) input by model.input_scale; the paper's 1 is a no-op."""
    return x * cfg.input_scale if cfg.input_scale != 1.0 else x


class ColumnConv2d(nn.Conv2d):
    """§3.2 a convolution whose kernels see only their own column's maps (groups = columns).
    The same weights and function either way; impl says how it is computed:
      "grouped"  one grouped convolution (cuDNN's grouped kernels on CUDA)
      "split"    one convolution per column on its half of the channels, outputs concatenated
    Which is faster depends on the GPU, dtype and memory format: benchmarks/grouped_conv_bench.py."""

    def __init__(self, *args, impl: str = "grouped", **kwargs):
        super().__init__(*args, **kwargs)
        self.impl = impl

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.impl == "grouped" or self.groups == 1:
            return super()._conv_forward(x, weight, bias)
        g = self.groups
        biases = bias.chunk(g) if bias is not None else [None] * g
        outs = [F.conv2d(xi, wi, bi, self.stride, self.padding, self.dilation)  # (B, C_out / g, H, W) each
                for xi, wi, bi in zip(x.chunk(g, dim=1), weight.chunk(g, dim=0), biases)]
        return torch.cat(outs, dim=1)


def _column_conv(cfg: ModelConfig, c_in: int, c_out: int, kernel: int) -> ColumnConv2d:
    return ColumnConv2d(c_in, c_out, kernel, padding=kernel // 2, groups=cfg.columns, impl=cfg.grouped_impl)


def _conv_widths(cfg: ModelConfig) -> list[int]:
    widths = [_scaled(n, cfg.width) for n in PAPER_CONV]
    if cfg.columns == 1:  # §3.2 footnote: one column has half the kernels, but conv5 keeps its size
        widths = [max(1, w // 2) for w in widths[:4]] + [widths[4]]
    return widths


class Crossing:
    """Where §3.2's two columns exchange activations: into conv3, fc6 and fc7, the LRN's maps
    across the column boundary, and fc8's two halves of the logits. On one device both columns
    are here and nothing crosses (this class); train/columns.py's ColumnNet crosses between the
    two processes that hold them."""

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def lrn(self, lrn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return lrn(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x


ONE_DEVICE = Crossing()


def paper_forward(x: torch.Tensor, cfg: ModelConfig, features, avgpool: nn.Module, classifier,
                  crossing: Crossing = ONE_DEVICE) -> torch.Tensor:
    """The paper net's forward (§3.5, Figure 2), written once: `features` and `classifier` are the
    (name, layer) pairs in order (AlexNet's, or one column's shares); `crossing` says where the
    columns meet (§3.2). (B, 3, 224, 224) -> (B, num_classes) logits; softmax lives in the loss."""
    x = scale_input(x, cfg)
    for name, layer in features:
        if name == "conv3":  # §3.2 "the kernels of layer 3 take input from all kernel maps in layer 2"
            x = crossing.gather(x)
        x = crossing.lrn(layer, x) if name.startswith("lrn") else layer(x)
    x = torch.flatten(avgpool(crossing.gather(x)), 1)  # (B, 256, 6, 6) -> (B, 9216), both columns
    for name, layer in classifier:
        if name == "fc7":  # fc7 sees all of fc6's units
            x = crossing.gather(x)
        x = layer(x)
    return crossing.logits(x)


class AlexNet(nn.Module):
    """The paper's network. With the defaults: 60,965,224 parameters for 1000 classes."""

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg = cfg
        c1, c2, c3, c4, c5 = _conv_widths(cfg)
        layers: list[tuple[str, nn.Module]] = [
            ("pad1", nn.ZeroPad2d((0, 3, 0, 3))),  # cuda-convnet's output-size rule, see module docstring
            ("conv1", nn.Conv2d(3, c1, 11, stride=4)),  # (B, 96, 55, 55)
            ("relu1", _activation(cfg)),
        ]
        layers += [("lrn1", _lrn(cfg))] if cfg.lrn else []
        layers += [("pool1", _pool(cfg))]  # (B, 96, 27, 27)
        # §3.2 conv2, conv4, conv5 see only their own column's maps
        layers += [("conv2", _column_conv(cfg, c1, c2, 5)), ("relu2", _activation(cfg))]
        layers += [("lrn2", _lrn(cfg))] if cfg.lrn else []
        layers += [("pool2", _pool(cfg))]  # (B, 256, 13, 13)
        in_ch = c2
        if cfg.remove_conv != 3:  # conv3 connects across columns
            layers += [("conv3", nn.Conv2d(in_ch, c3, 3, padding=1)), ("relu3", _activation(cfg))]
            in_ch = c3
        if cfg.remove_conv != 4:
            layers += [("conv4", _column_conv(cfg, in_ch, c4, 3)), ("relu4", _activation(cfg))]
            in_ch = c4
        layers += [("conv5", _column_conv(cfg, in_ch, c5, 3)), ("relu5", _activation(cfg))]
        layers += [("pool5", _pool(cfg))]  # (B, 256, 6, 6)
        if cfg.extra_conv:  # §6 a sixth conv layer over the last pooling layer (256 3x3 kernels: our choice)
            layers += [("conv6", nn.Conv2d(c5, c5, 3, padding=1)), ("relu6c", _activation(cfg))]
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # identity for a 224 crop; lets smaller crops through
        fc = _scaled(PAPER_FC, cfg.width)
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(c5 * 36, fc)), ("relu6", _activation(cfg)), ("drop6", _dropout(cfg)),  # §4.2
            ("fc7", nn.Linear(fc, fc)), ("relu7", _activation(cfg)), ("drop7", _dropout(cfg)),
            ("fc8", nn.Linear(fc, out_classes(cfg))),
        ]))
        init_paper(self, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return paper_forward(x, self.cfg, self.features.named_children(), self.avgpool,
                             self.classifier.named_children())  # (B, 3, 224, 224) -> (B, num_classes)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (fc7 after ReLU, 4096-d), used for nearest neighbours (§6.1)."""
        x = scale_input(x, self.cfg)
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:5](x)  # fc6, relu6, drop6, fc7, relu7: (B, 4096)


BIAS_ONE = ("conv2", "conv4", "conv5", "conv6", "fc6", "fc7")  # §5 (conv6 is ours: same rule as conv4/5)


def layer_generator(seed: int, name: str) -> torch.Generator:
    """The generator of one layer's initial weights in a paired init: (seed, layer name) alone decide
    them, so nets that differ elsewhere (a layer removed or added, other widths) draw the same numbers
    in every layer they share (experiments/common.py paired_trainer pairs its arms with it)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def _draw(weight: torch.Tensor, fill, gen: torch.Generator | None) -> None:
    """fill(tensor, generator) on `weight`; with a generator, drawn on the CPU in fp32 and copied, so the
    numbers are the same on every device and memory format."""
    if gen is None:
        fill(weight, None)
        return
    with torch.no_grad():
        weight.copy_(fill(torch.empty(weight.shape), gen))


def init_kaiming(model: nn.Module, seed: int | None = None) -> None:
    """He-normal weights and zero biases. He init assumes unit-variance inputs: pair it with
    model.input_scale = 1/58 (the std of mean-subtracted 0..255 photos); on raw pixels it diverges.
    seed: each layer from layer_generator(seed, its name) (paired); None: torch's global stream."""
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            gen = None if seed is None else layer_generator(seed, name)
            _draw(m.weight, lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g), gen)
            nn.init.zeros_(m.bias)


def init_paper(model: nn.Module, cfg: ModelConfig, seed: int | None = None) -> None:
    """§5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7, else 0.
    code2012: std 0.03 in conv3-5. kaiming: He-normal weights, zero biases (for short runs:
    the paper's init sits at chance for ~1500 steps, docs/paper.md "init").
    seed None: drawn from torch's global stream in layer order (what `build_model` does); an int:
    each layer from layer_generator(seed, its name), the same distribution (the paired init)."""
    if cfg.init == "kaiming":
        return init_kaiming(model, seed)
    for seq_name, seq in (("features", model.features), ("classifier", model.classifier)):
        for name, m in seq.named_children():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            std = 0.03 if (cfg.init == "code2012" and name in ("conv3", "conv4", "conv5")) else 0.01
            gen = None if seed is None else layer_generator(seed, f"{seq_name}.{name}")
            _draw(m.weight, lambda t, g, std=std: nn.init.normal_(t, 0.0, std, generator=g), gen)
            nn.init.constant_(m.bias, cfg.init_bias if name in BIAS_ONE else 0.0)


def init_paired(model: nn.Module, seed: int) -> None:
    """Re-draw the initial weights of a just-built net (any arch) layer by layer from
    layer_generator(seed, layer name): the arms of a paired experiment share every layer's weights
    whose shape they share. Only AlexNet's arms differ in which layers they build; the other
    arches' arms (figure1, lrn-cifar) already draw the same numbers."""
    if isinstance(model, AlexNet):
        init_paper(model, model.cfg, seed)


class AlexNetOWT(nn.Module):
    """torchvision's `alexnet` ("one weird trick", Krizhevsky 2014): 64-192-384-256-256 kernels, no LRN,
    no columns, dropout before fc6/fc7. Same state-dict keys as torchvision, so its weight files load;
    its dropout is torchvision's inverted nn.Dropout whatever model.dropout_mode says (those weights
    were trained with it)."""

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig(arch="owt")
        self.cfg = cfg
        c1, c2, c3, c4, c5 = (_scaled(n, cfg.width) for n in (64, 192, 384, 256, 256))
        fc = _scaled(PAPER_FC, cfg.width)
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 11, stride=4, padding=2), _activation(cfg), nn.MaxPool2d(3, 2),
            nn.Conv2d(c1, c2, 5, padding=2), _activation(cfg), nn.MaxPool2d(3, 2),
            nn.Conv2d(c2, c3, 3, padding=1), _activation(cfg),
            nn.Conv2d(c3, c4, 3, padding=1), _activation(cfg),
            nn.Conv2d(c4, c5, 3, padding=1), _activation(cfg), nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(cfg.dropout), nn.Linear(c5 * 36, fc), _activation(cfg),
            nn.Dropout(cfg.dropout), nn.Linear(fc, fc), _activation(cfg),
            nn.Linear(fc, out_classes(cfg)),
        )
        if cfg.init == "kaiming":  # otherwise PyTorch's default init, as torchvision
            init_kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = scale_input(x, self.cfg)
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


class Cifar4(nn.Module):
    """Figure 1's four-weight-layer CNN (cuda-convnet's layers-18pct shape): conv32-5, pool,
    conv32-5, pool, conv64-5, pool, fc. ReLU or tanh (§3.1); LRN after conv1/conv2 if enabled."""

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig(arch="cifar4", num_classes=10)
        self.cfg = cfg
        c1, c2, c3 = (_scaled(n, cfg.width) for n in (32, 32, 64))
        layers: list[tuple[str, nn.Module]] = [("conv1", nn.Conv2d(3, c1, 5, padding=2)), ("relu1", _activation(cfg))]
        layers += [("pool1", nn.MaxPool2d(3, 2, ceil_mode=True))] + ([("lrn1", _lrn(cfg))] if cfg.lrn else [])
        layers += [("conv2", nn.Conv2d(c1, c2, 5, padding=2)), ("relu2", _activation(cfg))]
        layers += [("pool2", nn.MaxPool2d(3, 2, ceil_mode=True))] + ([("lrn2", _lrn(cfg))] if cfg.lrn else [])
        layers += [("conv3", nn.Conv2d(c2, c3, 5, padding=2)), ("relu3", _activation(cfg))]
        layers += [("pool3", nn.MaxPool2d(3, 2, ceil_mode=True))]
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))  # 32 -> 16 -> 8 -> 4; identity for 32x32 input
        self.classifier = nn.Sequential(OrderedDict([("fc", nn.Linear(c3 * 16, out_classes(cfg)))]))
        if cfg.init == "kaiming":
            init_kaiming(self)
        else:  # §5 N(0, 0.01) weights, zero biases
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = scale_input(x, self.cfg)
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class CifarLocal(nn.Module):
    """§3.3's CIFAR-10 net (cuda-convnet's layers-conv-local-13pct / -11pct): conv64-5, max-pool 3/2,
    conv64-5, max-pool 3/2, two locally connected 3x3 layers of 32 (unshared weights), fc10, on
    24x24 crops. With model.lrn, LRN after pool1 and after conv2 (the -11pct placement).
    Init "paper": cuda-convnet's stds (conv1 1e-4, conv2 0.01, local 0.04, fc 0.01), zero biases."""

    GRID = 6  # the locally connected layers' grid: 24 -> 12 -> 6 (pooling with cuda-convnet's ceil rule)

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = cfg or ModelConfig(arch="cifar_local", num_classes=10)
        self.cfg = cfg
        c1, c3 = _scaled(64, cfg.width), _scaled(32, cfg.width)
        layers: list[tuple[str, nn.Module]] = [("conv1", nn.Conv2d(3, c1, 5, padding=2)), ("relu1", _activation(cfg)),
                                               ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True))]  # (B, 64, 12, 12)
        layers += [("lrn1", _lrn(cfg))] if cfg.lrn else []
        layers += [("conv2", nn.Conv2d(c1, c1, 5, padding=2)), ("relu2", _activation(cfg))]
        layers += [("lrn2", _lrn(cfg))] if cfg.lrn else []
        layers += [("pool2", nn.MaxPool2d(3, 2, ceil_mode=True))]  # (B, 64, 6, 6)
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = nn.AdaptiveAvgPool2d(self.GRID)  # identity for 24x24 crops; lets other sizes through
        self.local = nn.Sequential(OrderedDict([
            ("local3", LocallyConnected2d(c1, c3, self.GRID, 3, padding=1)), ("relu3", _activation(cfg)),  # (B, 32, 6, 6)
            ("local4", LocallyConnected2d(c3, c3, self.GRID, 3, padding=1)), ("relu4", _activation(cfg)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([("fc", nn.Linear(c3 * self.GRID ** 2, cfg.num_classes))]))
        if cfg.init == "kaiming":
            init_kaiming(self)
            for m in self.local.modules():
                if isinstance(m, LocallyConnected2d):
                    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.weight.shape[-1]))
        else:
            stds = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc": 0.01}
            for name, m in self.named_modules():
                if name.split(".")[-1] in stds:
                    nn.init.normal_(m.weight, 0.0, stds[name.split(".")[-1]])
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.local(self.avgpool(self.features(scale_input(x, self.cfg))))  # (B, 32, 6, 6)
        return self.classifier(torch.flatten(x, 1))


def build_model(cfg: ModelConfig) -> nn.Module:
    return {"paper": AlexNet, "owt": AlexNetOWT, "cifar4": Cifar4, "cifar_local": CifarLocal}[cfg.arch](cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
