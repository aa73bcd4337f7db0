"""The fast path computes the reference path's function (issue 4), and `alexnet bench` runs."""
import json

import numpy as np
import pytest
import torch

from alexnet.cli import main
from alexnet.config import ModelConfig
from alexnet.data.loader import BatchLoader, epoch_order, shard
from alexnet.model import AlexNet


def _pair(**kw):
    torch.manual_seed(0)
    ref = AlexNet(ModelConfig(lrn_impl="reference", dropout=0.0, num_classes=10, width=0.5, **kw))
    fast = AlexNet(ModelConfig(lrn_impl="fast", dropout=0.0, num_classes=10, width=0.5, **kw))
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def _grads(model, x, y):
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_fast_lrn_and_channels_last_equal_reference_on_same_weights():
    ref, fast = _pair()
    fast = fast.to(memory_format=torch.channels_last)
    x, y = torch.randn(4, 3, 224, 224) * 50, torch.randint(0, 10, (4,))
    loss_r, g_r = _grads(ref, x, y)
    loss_f, g_f = _grads(fast, x.contiguous(memory_format=torch.channels_last), y)
    torch.testing.assert_close(loss_f, loss_r, rtol=1e-5, atol=1e-5)
    for name in g_r:
        torch.testing.assert_close(g_f[name], g_r[name], rtol=1e-3, atol=1e-6, msg=name)


def test_bf16_autocast_stays_within_bf16_tolerance():
    ref, fast = _pair()
    x = torch.randn(4, 3, 224, 224) * 50
    with torch.no_grad():
        out_r = ref(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_f = fast(x).float()
    rel = (out_f - out_r).norm() / out_r.norm()
    assert rel < 2e-2  # bf16 operands: METHOD.md expects 1e-3..1e-2


@pytest.mark.parametrize("n, world", [(100, 2), (101, 3), (7, 3)])
def test_sharding_covers_every_index_once(n, world):
    order = epoch_order(n, epoch=3, seed=1)
    evals = [shard(order, r, world, even=False) for r in range(world)]  # evaluation: every sample exactly once
    assert sorted(np.concatenate(evals).tolist()) == list(range(n))
    trains = [shard(order, r, world, even=True) for r in range(world)]  # training: equal shares, disjoint
    assert len({len(t) for t in trains}) == 1
    flat = np.concatenate(trains)
    assert len(set(flat.tolist())) == len(flat) == n - n % world


class _Reader:
    def __init__(self, n):
        self.labels = np.arange(n) % 10

    def __len__(self):
        return len(self.labels)

    def read(self, idx):
        return torch.as_tensor(idx)[:, None, None, None].expand(-1, 3, 2, 2).to(torch.uint8)


def test_loader_resumes_mid_epoch_and_differs_between_epochs():
    loader = BatchLoader(_Reader(50), 8, shuffle=True, seed=4, prefetch=2)
    full = [y.tolist() for _, y in loader.batches(1)]
    assert [y.tolist() for _, y in loader.batches(1, start=3)] == full[3:]
    assert full != [y.tolist() for _, y in loader.batches(2)]
    assert len(full) == len(loader) == 6  # drop_last: 50 // 8


def test_bench_model_emits_json(capsys):
    assert main(["bench", "model", "--device", "cpu", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in result["rows"]] == ["torchvision", "paper-ref", "paper-fast"]
    assert all(r["train_img_s"] > 0 and r["infer_img_s"] > 0 for r in result["rows"])
    assert set(result["ratios"]) == {"fast_vs_paper_fp32_eager", "fast_vs_torchvision_examples"}
