"""The explosion on the classifier head alone: the paper's fc6-fc8 at full width (4096 units) with
the §5 init (weights N(0, 0.01), biases 1 in fc6/fc7, 0 in fc8) and the §5 SGD (lr 0.01, momentum
0.9, weight decay 5e-4, batch 128), fed 256-d ReLU features of separable classes instead of pool5.
Each dropout mode sees the same weights, batches and masks. It isolates what benchmarks/explosion.py
measures on the whole net: fc8's input is nearly the same vector h for every image, so fc8 acts as
a class-prior bias with rate lr |h|^2, and the dropout mode sets |h|^2.

    python benchmarks/explosion_head.py --classes 10 1000 --steps 8 --json benchmarks/explosion-head-cpu.json

prints, per (classes, mode), the loss of each step and fc8's mean squared input norm at step 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alexnet.config import ModelConfig, OptimConfig  # noqa: E402
from alexnet.nets.model import PaperDropout  # noqa: E402
from alexnet.train.optim import build_optimizer  # noqa: E402

FEATURES = 256  # stand-in for pool5's 9216: the head's behaviour is set by fc7's width and biases


def make_head(classes: int, mode: str, width: int) -> nn.Sequential:
    def drop() -> nn.Module:
        return {"paper": PaperDropout(0.5), "inverted": nn.Dropout(0.5), "none": nn.Identity()}[mode]
    head = nn.Sequential(nn.Linear(FEATURES, width), nn.ReLU(), drop(), nn.Linear(width, width), nn.ReLU(), drop(),
                         nn.Linear(width, classes))
    for layer, bias in ((head[0], 1.0), (head[3], 1.0), (head[6], 0.0)):  # §5
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.constant_(layer.bias, bias)
    return head


def run(classes: int, mode: str, steps: int, batch: int, width: int, lr: float) -> dict:
    torch.manual_seed(0)
    head = make_head(classes, mode, width)
    opt = build_optimizer(head, OptimConfig(lr=lr))  # the paper's rule
    data = torch.Generator().manual_seed(1)
    centers = torch.randn(classes, FEATURES, generator=data)
    sq: list[float] = []
    head[6].register_forward_pre_hook(lambda m, inp: sq.append(inp[0].pow(2).sum(1).mean().item()))
    losses = []
    for step in range(steps):
        y = torch.randint(0, classes, (batch,), generator=data)
        x = torch.relu(centers[y] + torch.randn(batch, FEATURES, generator=data))  # (B, 256)
        torch.manual_seed(100 + step)  # the same dropout masks in every mode
        loss = F.cross_entropy(head(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 3))
    return dict(classes=classes, mode=mode, losses=losses, fc8_input_sq=round(sq[0], 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, nargs="+", default=[10, 1000], help="fc8 outputs (labels drawn from all)")
    p.add_argument("--modes", nargs="+", default=["inverted", "none", "paper"], help="dropout modes to compare")
    p.add_argument("--steps", type=int, default=8, help="SGD steps per run")
    p.add_argument("--batch-size", type=int, default=128, help="§5 batch")
    p.add_argument("--width", type=int, default=4096, help="fc6/fc7 units (4096 in the paper)")
    p.add_argument("--lr", type=float, default=0.01, help="§5 learning rate")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--json", default="", help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = dict(command=" ".join(["python"] + sys.argv), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               torch=torch.__version__, device="cpu", runs=[])
    for classes in args.classes:
        for mode in args.modes:
            r = run(classes, mode, args.steps, args.batch_size, args.width, args.lr)
            out["runs"].append(r)
            print(f"{classes:5d} classes  {mode:8s}  |h|^2 {r['fc8_input_sq']:8.0f}  losses {' '.join(f'{v:.2f}' for v in r['losses'])}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
