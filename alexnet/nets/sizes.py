"""Which input sizes a net takes: the side of every layer's output, walked from the layers'
kernel, stride and padding (no forward pass), the smallest input a net accepts, and the check
that a crop fits the configured net (§3.5: 224 -> conv1 55 -> pool5 6x6)."""
from __future__ import annotations

import dataclasses
import math
import warnings

from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError, InputWarning

LARGEST = 8192  # inputs are searched up to this side


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _window(n: int, kernel, stride, padding, dilation, ceil: bool) -> int:
    """Output side of a convolution or pooling window over a side-n input (PyTorch's formula,
    with its rule that a ceil-mode pooling window must start inside the input)."""
    k, s, p, d = _pair(kernel)[0], _pair(stride)[0], _pair(padding)[0], _pair(dilation)[0]
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def feature_side(net: nn.Module, side: int) -> int:
    """Side of `net.features`' output for a side x side input; 0 when a layer has no output."""
    for m in net.features.modules():
        if isinstance(m, nn.ZeroPad2d):
            side += m.padding[2] + m.padding[3]  # (left, right, top, bottom); our nets pad square
        elif isinstance(m, nn.Conv2d):
            side = _window(side, m.kernel_size, m.stride, m.padding, m.dilation, False)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            side = _window(side, m.kernel_size, m.stride or m.kernel_size, m.padding,
                           getattr(m, "dilation", 1), m.ceil_mode)
        if side < 1:
            return 0
    return side


def smallest_input(net: nn.Module, features: int = 1) -> int:
    """The smallest input side for which the features come out at least `features` wide."""
    low, high = 1, LARGEST
    while low < high:
        mid = (low + high) // 2
        if feature_side(net, mid) >= features:
            high = mid
        else:
            low = mid + 1
    return low


def sizing_net(cfg: ModelConfig) -> nn.Module:
    """The configured net at a tiny width: the same layer geometry, built in milliseconds."""
    from .model import build_model
    return build_model(dataclasses.replace(cfg, width=1 / 64, num_classes=1))


def pooled_side(net: nn.Module) -> int:
    """The side the classifier expects (the paper net's 6x6 after pool5; the adaptive pooling's output)."""
    return _pair(net.avgpool.output_size)[0]


def check_crop(cfg: ModelConfig, crop: int, key: str = "data.crop", warn: bool = True) -> None:
    """ConfigError when `crop` is too small for the configured net; an InputWarning (if `warn`)
    when its last pooling layer comes out smaller than the classifier expects (the adaptive
    pooling then copies each value into several of fc6's inputs, a net unlike the paper's)."""
    net = sizing_net(cfg)
    side, want = feature_side(net, crop), pooled_side(net)
    given = f"{key} {crop}" if key.startswith("-") else f"{key}={crop}"  # a flag or a config key
    if side < 1:
        raise ConfigError(f"{given} is too small for the {cfg.arch} net: its smallest input is "
                          f"{smallest_input(net)}px ({smallest_input(net, want)}px for the {want}x{want} "
                          f"the classifier expects)")
    if side < want and warn:
        warnings.warn(f"{given}: the last pooling layer is {side}x{side}, smaller than the {want}x{want} the "
                      f"classifier expects, so its values are repeated; {key} >= {smallest_input(net, want)} "
                      f"gives {want}x{want}", InputWarning, stacklevel=2)


def crop_for(cfg: ModelConfig, side: int) -> str:
    """Advice for side x side images: a crop with the paper's margin (224 of 256) that the net
    takes, or the store size the net needs."""
    net = sizing_net(cfg)
    low = smallest_input(net)
    if side < low:
        return f"the {cfg.arch} net needs inputs of at least {low}px: prepare a store with --size {low} or more"
    return f"use data.crop={max(low, side * 7 // 8)} (the paper's margin, 224 of 256) or any crop up to {side}"
