"""§5 update rule: v <- 0.9 v - 0.0005 lr w - lr g ; w <- w + v."""
import torch

from alexnet.config import OptimConfig
from alexnet.train.optim import PaperSGD, build_optimizer, param_groups, apply_lr


def test_hand_computed_steps_with_lr_change():
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    opt = PaperSGD([w], lr=0.01, momentum=0.9, weight_decay=0.0005)
    g1, g2 = torch.tensor([0.3, -0.1, 2.0], dtype=torch.float64), torch.tensor([-1.0, 0.5, 0.25], dtype=torch.float64)
    w.grad = g1.clone()
    opt.step()
    # step 1 by hand: v1 = -0.0005*0.01*w0 - 0.01*g1
    w0 = [1.0, -2.0, 0.5]
    v1 = [-0.0005 * 0.01 * w0[i] - 0.01 * g1[i].item() for i in range(3)]
    w1 = [w0[i] + v1[i] for i in range(3)]
    assert torch.allclose(w.detach(), torch.tensor(w1, dtype=torch.float64), rtol=0, atol=1e-15)
    for group in opt.param_groups:
        group["lr"] = 0.001  # the lr cut stays inside the velocity under the paper's rule
    w.grad = g2.clone()
    opt.step()
    v2 = [0.9 * v1[i] - 0.0005 * 0.001 * w1[i] - 0.001 * g2[i].item() for i in range(3)]
    w2 = [w1[i] + v2[i] for i in range(3)]
    assert torch.allclose(w.detach(), torch.tensor(w2, dtype=torch.float64), rtol=0, atol=1e-15)


def _trajectory(rule: str, lrs: list[float]) -> torch.Tensor:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double()
    opt = build_optimizer(model, OptimConfig(rule=rule))
    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    for lr in lrs:
        apply_lr(opt, lr)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_equals_torch_sgd_at_constant_lr():
    torch.testing.assert_close(_trajectory("paper", [0.01] * 6), _trajectory("torch", [0.01] * 6), rtol=1e-12, atol=1e-12)


def test_differs_from_torch_sgd_after_an_lr_cut():
    lrs = [0.01] * 3 + [0.001] * 3
    assert (_trajectory("paper", lrs) - _trajectory("torch", lrs)).abs().max() > 1e-6


def test_bias_groups_by_shape():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 2))
    groups = param_groups(model, OptimConfig(lr=0.01, bias_lr_mult=2.0, bias_decay=False))
    weights, biases = groups
    assert all(p.ndim > 1 for p in weights["params"]) and all(p.ndim == 1 for p in biases["params"])
    assert biases["lr"] == 0.02 and biases["weight_decay"] == 0.0 and weights["weight_decay"] == 5e-4
    opt = build_optimizer(model, OptimConfig(lr=0.01, bias_lr_mult=2.0))
    apply_lr(opt, 0.001)
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.002]
