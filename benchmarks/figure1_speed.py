"""Figure 1's training speed on a CPU: the experiment's path (`alexnet experiment figure1`:
trainer_on + Trainer.run_steps on the store) against a plain torch loop of the same net (the
same cifar4 module, SGD with momentum, batches already in memory as float tensors), side by side
in one process, at a given number of torch threads and with N busy processes competing for the
cores (what the 2-core host looks like while other jobs run).

    PYTHONPATH=. python benchmarks/figure1_speed.py --data stores/cifar10-24 --threads 1 2 --load 0 2

Result: benchmarks/figure1_speed.md. One JSON line per (threads, load) on stdout.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from alexnet.data.store import open_store
from alexnet.experiments.common import Context, experiment_config, trainer_on
from alexnet.experiments.figure1 import overrides
from alexnet.nets.model import build_model


def busy() -> None:
    while True:
        pass


def experiment_rate(cfg, steps: int) -> float:
    trainer = trainer_on(cfg, 300)
    trainer.run_steps(2)  # warm-up
    t = time.perf_counter()
    trainer.run_steps(steps)
    return steps * cfg.optim.batch_size / (time.perf_counter() - t)


def plain_rate(cfg, store, steps: int) -> float:
    split = store.split("train")
    b = cfg.optim.batch_size
    x = torch.as_tensor(split.read(torch.arange(4 * b).numpy())).float() - torch.as_tensor(store.mean).float()
    y = torch.as_tensor(split.labels[:4 * b]).long()
    model = build_model(cfg.model)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=0.9)

    def step(i: int) -> None:
        xb, yb = x[(i % 4) * b:(i % 4 + 1) * b], y[(i % 4) * b:(i % 4 + 1) * b]
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for i in range(2):
        step(i)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * b / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="a 24px CIFAR-10 store")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--load", type=int, nargs="+", default=[0, 2], help="busy processes competing for the cores")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    data = Path(args.data).resolve()
    store = open_store(data)
    for load in args.load:
        hogs = [mp.Process(target=busy, daemon=True) for _ in range(load)]
        for h in hogs:
            h.start()
        try:
            for threads in args.threads:
                ctx = Context(name="figure1", data=data, out=Path("."), work=Path("."), threads=threads, progress=False)
                cfg = experiment_config(ctx, None, overrides(store.size, "relu", 0.004, 0, 128))
                exp = experiment_rate(cfg, args.steps)  # sets torch's threads (configure_torch)
                plain = plain_rate(cfg, store, args.steps)
                print(json.dumps({"threads": threads, "busy_processes": load, "steps": args.steps,
                                  "experiment_img_s": round(exp), "plain_loop_img_s": round(plain),
                                  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}), flush=True)
        finally:
            for h in hogs:
                h.terminate()


if __name__ == "__main__":
    main()
