"""§5 SGD exactly as the paper writes it:

    v <- 0.9 v - 0.0005 * lr * w - lr * grad ;  w <- w + v

torch.optim.SGD keeps lr outside the velocity (v <- m v + g + wd w; w <- w - lr v), so the two
differ whenever lr changes; `optim.rule=torch` selects torch's for comparison.

LARS (`optim.lars`, off by default; You, Gitman & Ginsburg 2017, "Large Batch Training of
Convolutional Networks", arXiv:1708.03888, Algorithm 1, which trained AlexNet at batch 8K-32K):
each weight tensor's step is scaled by its own trust ratio

    lam = eta * ||w|| / (||grad|| + wd * ||w||) ;  v <- m v - lr * lam * (grad + wd * w) ;  w <- w + v

(the paper's rule with lr * lam for lr). Biases keep the global lr, as in common LARS
implementations (the LARS paper does not single them out). The schedule still owns `lr`, warm-up
included (schedule.warmup_epochs); lam is part of the update rule, like the momentum.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import FinetuneConfig, OptimConfig
from ..nets.layers import head


class PaperSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                 lars_eta: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, lars_eta=lars_eta))

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
            if group.get("lars_eta", 0.0):
                _lars_step(params, grads, v, lr, wd, group["momentum"], group["lars_eta"])
                continue
            # one fused pass per term over all tensors (foreach) instead of a loop of small kernels
            torch._foreach_mul_(v, group["momentum"])
            if wd != 0.0:
                torch._foreach_add_(v, params, alpha=-wd * lr)
            torch._foreach_add_(v, grads, alpha=-lr)
            torch._foreach_add_(params, v)
        return None


def trust_ratios(params: list[torch.Tensor], grads: list[torch.Tensor], eta: float, wd: float) -> torch.Tensor:
    """LARS's lam = eta ||w|| / (||g|| + wd ||w||) per tensor, 1 where a norm is 0: (len(params),) on the device."""
    w = torch.stack(torch._foreach_norm(params))
    g = torch.stack(torch._foreach_norm(grads))
    return torch.where((w > 0) & (g > 0), eta * w / (g + wd * w), torch.ones_like(w))


def _lars_step(params, grads, v, lr: float, wd: float, momentum: float, eta: float) -> None:
    lam = trust_ratios(params, grads, eta, wd)  # no host sync: lam stays on the device
    update = torch._foreach_add(grads, params, alpha=wd)  # grad + wd * w
    for u, scale in zip(update, lam.unbind()):
        u.mul_(scale)
    torch._foreach_mul_(v, momentum)
    torch._foreach_add_(v, update, alpha=-lr)
    torch._foreach_add_(params, v)


def param_groups(model: nn.Module, cfg: OptimConfig, finetune: FinetuneConfig | None = None) -> list[dict]:
    """Weights and biases apart (selected by shape: biases are 1-d), for the 2012 code's
    bias options (lr x2, no decay). Each group carries `lr_mult` so schedules set lr = base * mult,
    and `lars_eta` (optim.lars: weights only, as You et al. 2017 leave biases out).
    Fine-tuning (§6, finetune.source set): the pretrained layers learn at finetune.pretrained_lr_mult
    times the new classifier's rate; frozen parameters (requires_grad=False) are left out."""
    new = list(head(model).parameters()) if finetune is not None and finetune.source else list(model.parameters())
    pretrained = [p for p in model.parameters() if id(p) not in {id(q) for q in new}]
    groups = []
    for layer_mult, params in ((1.0, new), (finetune.pretrained_lr_mult if finetune else 1.0, pretrained)):
        params = [p for p in params if p.requires_grad]
        weights, biases = [p for p in params if p.ndim > 1], [p for p in params if p.ndim <= 1]
        groups += [
            dict(params=weights, lr=cfg.lr * layer_mult, weight_decay=cfg.weight_decay, lr_mult=layer_mult,
                 lars_eta=cfg.lars_eta if cfg.lars else 0.0),
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
