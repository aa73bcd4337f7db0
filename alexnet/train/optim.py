"""§5 SGD exactly as the paper writes it:

    v <- 0.9 v - 0.0005 * lr * w - lr * grad ;  w <- w + v

torch.optim.SGD keeps lr outside the velocity (v <- m v + g + wd w; w <- w - lr v), so the two
differ whenever lr changes; `optim.rule=torch` selects torch's for comparison.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import FinetuneConfig, OptimConfig
from ..nets.layers import head


class PaperSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if "velocity" not in self.state[p]:
                    self.state[p]["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            v = [self.state[p]["velocity"] for p in params]
            grads = [p.grad for p in params]
            lr, wd = group["lr"], group["weight_decay"]
            # one fused pass per term over all tensors (foreach) instead of a loop of small kernels
            torch._foreach_mul_(v, group["momentum"])
            if wd != 0.0:
                torch._foreach_add_(v, params, alpha=-wd * lr)
            torch._foreach_add_(v, grads, alpha=-lr)
            torch._foreach_add_(params, v)
        return None


def param_groups(model: nn.Module, cfg: OptimConfig, finetune: FinetuneConfig | None = None) -> list[dict]:
    """Weights and biases apart (selected by shape: biases are 1-d), for the 2012 code's
    bias options (lr x2, no decay). Each group carries `lr_mult` so schedules set lr = base * mult.
    Fine-tuning (§6, finetune.source set): the pretrained layers learn at finetune.pretrained_lr_mult
    times the new classifier's rate; frozen parameters (requires_grad=False) are left out."""
    new = list(head(model).parameters()) if finetune is not None and finetune.source else list(model.parameters())
    pretrained = [p for p in model.parameters() if id(p) not in {id(q) for q in new}]
    groups = []
    for layer_mult, params in ((1.0, new), (finetune.pretrained_lr_mult if finetune else 1.0, pretrained)):
        params = [p for p in params if p.requires_grad]
        weights, biases = [p for p in params if p.ndim > 1], [p for p in params if p.ndim <= 1]
        groups += [
            dict(params=weights, lr=cfg.lr * layer_mult, weight_decay=cfg.weight_decay, lr_mult=layer_mult),
            dict(params=biases, lr=cfg.lr * layer_mult * cfg.bias_lr_mult,
                 weight_decay=cfg.weight_decay if cfg.bias_decay else 0.0, lr_mult=layer_mult * cfg.bias_lr_mult),
        ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: OptimConfig, finetune: FinetuneConfig | None = None) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg, finetune)
    if cfg.rule == "paper":
        return PaperSGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The one place a learning rate reaches the optimiser: every group gets lr x its lr_mult."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
