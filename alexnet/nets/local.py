"""A locally connected layer: a convolution whose kernels are not shared across positions, each
output position has its own weights (cuda-convnet's `type=local`, used by the CIFAR-10 net of
§3.3's LRN claim, docs/paper.md "cifar").

Computed as unfold + one batched contraction: the (C*k*k)-vector of every receptive field
meets the weights of its own position."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LocallyConnected2d(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H_out, W_out), H_out = (H + 2p - k) // s + 1.
    weight: (H_out * W_out, C_out, C_in * k * k); bias: (C_out, H_out, W_out), also unshared."""

    def __init__(self, in_channels: int, out_channels: int, in_size: int, kernel_size: int,
                 stride: int = 1, padding: int = 0):
        super().__init__()
        self.in_channels, self.out_channels, self.in_size = in_channels, out_channels, in_size
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.out_size = (in_size + 2 * padding - kernel_size) // stride + 1
        positions, fan_in = self.out_size ** 2, in_channels * kernel_size ** 2
        self.weight = nn.Parameter(torch.empty(positions, out_channels, fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels, self.out_size, self.out_size))
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))  # as nn.Conv2d's default

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.in_size, self.in_size):
            raise ValueError(f"LocallyConnected2d expects {self.in_size}x{self.in_size} inputs, got {tuple(x.shape[-2:])}")
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # (B, C_in*k*k, L)
        out = torch.einsum("bil,loi->bol", cols, self.weight)  # (B, C_out, L)
        return out.view(x.shape[0], self.out_channels, self.out_size, self.out_size) + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
