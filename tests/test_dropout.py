"""§4.2 dropout as the paper (docs/paper.md "dropout"): kept units unscaled in training, x(1-p) at
test; torch's inverted dropout as the named option; checkpoints saved before the option existed
keep the inverted dropout they were trained with."""
import pytest
import torch
from torch import nn

from alexnet.checkpoint import load_checkpoint, save_checkpoint
from alexnet.config import Config, ModelConfig, OptimConfig, from_dict, to_dict
from alexnet.evaluate import load_model
from alexnet.nets.model import AlexNet, AlexNetOWT, PaperDropout, _dropout
from alexnet.train.optim import build_optimizer
from alexnet.train.resume import net_differences, same_net


def test_paper_mode_is_the_default():
    assert Config().model.dropout_mode == "paper"
    m = AlexNet(ModelConfig(num_classes=10, width=0.125))
    assert isinstance(m.classifier.drop6, PaperDropout) and isinstance(m.classifier.drop7, PaperDropout)


def test_training_keeps_units_unscaled_and_test_multiplies_by_one_minus_p():
    drop = PaperDropout(0.5)
    x = torch.rand(64, 4096) + 0.5  # (B, 4096), no zeros of its own
    torch.manual_seed(0)
    y = drop.train()(x)
    kept = y != 0
    assert torch.equal(y[kept], x[kept])  # unscaled
    assert 0.45 < kept.float().mean() < 0.55  # each unit dropped with probability 0.5
    assert torch.equal(drop.eval()(x), x * 0.5)


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_training_expectation_equals_the_test_output(p):
    """E over masks of the training output is the test-time output, for the layer and for the
    linear layer after it (fc7's pre-activation sees E[drop6(h)] = (1 - p) h)."""
    torch.manual_seed(1)
    h = torch.rand(8, 256)  # (B, 256) ReLU outputs
    fc = nn.Linear(256, 32)
    drop = PaperDropout(p)
    n = 2000
    hs = h.expand(n, *h.shape)  # (n, B, 256): n independent masks in one call
    with torch.no_grad():
        out = drop.train()(hs)  # (n, B, 256)
        mean_out, mean_fc = out.mean(0), fc(out).mean(0)
        test_out, test_fc = drop.eval()(h), fc(drop.eval()(h))
        mean_inv = nn.Dropout(p).train()(hs).mean(0)
    # Monte-Carlo error of a mean of n masked values: std <= max|h| sqrt(p(1-p)/n) ~ 0.011
    assert (mean_out - test_out).abs().max() < 0.06
    assert (mean_fc - test_fc).abs().max() < 0.06
    assert (mean_out - test_out).abs().mean() < 0.01
    # inverted dropout's training expectation is the identity instead (1/(1-p) times the paper's)
    assert (mean_inv - h).abs().mean() < 0.02 and (mean_inv - test_out).abs().mean() > 0.1


def test_inverted_option_is_torchs_dropout_with_the_same_masks():
    cfg = ModelConfig(num_classes=10, width=0.125, dropout_mode="inverted")
    m = AlexNet(cfg)
    assert type(m.classifier.drop6) is nn.Dropout and m.classifier.drop6.p == 0.5
    x = torch.rand(16, 512) + 0.1
    torch.manual_seed(3)
    inv = nn.Dropout(0.5).train()(x)
    torch.manual_seed(3)
    paper = PaperDropout(0.5).train()(x)
    assert torch.equal(paper * 2, inv)  # the same units dropped; only the scale differs


def test_modes_share_state_dict_keys_and_owt_stays_torchvisions():
    paper = AlexNet(ModelConfig(num_classes=10, width=0.125))
    inverted = AlexNet(ModelConfig(num_classes=10, width=0.125, dropout_mode="inverted"))
    assert list(paper.state_dict()) == list(inverted.state_dict())
    assert not any("drop" in k for k in paper.state_dict())
    owt = AlexNetOWT(ModelConfig(arch="owt", num_classes=10, width=0.125))
    assert all(type(m) is nn.Dropout for m in owt.classifier if "Dropout" in type(m).__name__)


def test_paper_net_at_test_equals_inverted_net_with_fc7_fc8_weights_halved():
    torch.manual_seed(0)
    paper = AlexNet(ModelConfig(num_classes=10, width=0.125)).eval()
    inverted = AlexNet(ModelConfig(num_classes=10, width=0.125, dropout_mode="inverted")).eval()
    state = paper.state_dict()
    state["classifier.fc7.weight"] = state["classifier.fc7.weight"] * 0.5
    state["classifier.fc8.weight"] = state["classifier.fc8.weight"] * 0.5
    inverted.load_state_dict(state)
    x = torch.randn(2, 3, 64, 64) * 50
    with torch.no_grad():
        torch.testing.assert_close(paper(x), inverted(x), rtol=1e-5, atol=1e-5)


def test_configs_saved_before_the_field_keep_inverted_dropout(tmp_path):
    saved = to_dict(Config())
    del saved["model"]["dropout_mode"]  # a checkpoint written before model.dropout_mode existed
    assert from_dict(saved).model.dropout_mode == "inverted"
    assert from_dict(to_dict(Config())).model.dropout_mode == "paper"
    new = Config()
    assert not same_net(saved, new)  # its net is another function than today's default
    assert net_differences(saved, new) == "model.dropout_mode: saved 'inverted', now 'paper'"  # the resume error says so
    new.model.dropout_mode = "inverted"
    assert same_net(saved, new)


def test_an_old_checkpoint_loads_with_inverted_dropout(tmp_path):
    cfg = Config()
    cfg.model.num_classes, cfg.model.width = 10, 0.125
    model = AlexNet(cfg.model)
    saved = to_dict(cfg)
    del saved["model"]["dropout_mode"]
    save_checkpoint({"config": saved, "model": model.state_dict()}, tmp_path / "old.pt")
    loaded, loaded_cfg, _ = load_model(tmp_path / "old.pt", torch.device("cpu"))
    assert loaded_cfg.model.dropout_mode == "inverted" and type(loaded.classifier.drop6) is nn.Dropout
    x = torch.randn(2, 3, 64, 64) * 50
    with torch.no_grad():  # at test inverted dropout is the identity: the net the old code evaluated
        model.eval()
        model.classifier.drop6, model.classifier.drop7 = nn.Identity(), nn.Identity()
        torch.testing.assert_close(loaded(x), model(x))
    assert "dropout_mode" not in load_checkpoint(tmp_path / "old.pt")["config"]["model"]


def _head_losses(mode: str, steps: int = 4, batch: int = 128) -> tuple[list[float], float]:
    """The paper's classifier head at full width (fc 4096, 10 classes) with the §5 init (N(0, 0.01),
    biases 1 in fc6/fc7) and the §5 SGD at lr 0.01 on a batch of 128, fed 256-d ReLU features of
    ten separable classes (a cheap stand-in for pool5). Returns the losses and fc8's mean squared
    input norm at the first step."""
    cfg = ModelConfig(num_classes=10, dropout_mode=mode)
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(256, 4096), nn.ReLU(), _dropout(cfg), nn.Linear(4096, 4096), nn.ReLU(),
                         _dropout(cfg), nn.Linear(4096, 10))
    for layer, bias in ((head[0], 1.0), (head[3], 1.0), (head[6], 0.0)):
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.constant_(layer.bias, bias)
    opt = build_optimizer(head, OptimConfig())
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(10, 256, generator=g)
    losses, fc8_in = [], []
    head[6].register_forward_pre_hook(lambda m, inp: fc8_in.append(inp[0].pow(2).sum(1).mean().item()))
    for step in range(steps):
        y = torch.randint(0, 10, (batch,), generator=g)
        x = torch.relu(centers[y] + torch.randn(batch, 256, generator=g))  # (B, 256)
        torch.manual_seed(100 + step)  # the same dropout masks in both modes
        loss = nn.functional.cross_entropy(head(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, fc8_in[0]


def test_the_explosion_is_inverted_dropout_on_a_wide_biased_head():
    """benchmarks/explosion.md: fc7's outputs start near 1 (bias 1) in all 4096 units, so an fc8 step
    moves every logit by about lr x |h|^2 x (class share in the batch - predicted probability): fc8
    acts as a bias with a huge rate. Inverted dropout doubles h in training (|h|^2 more than four
    times the paper's): with 10 classes the loss blows up within four steps, as on the GPU (3.2, 10.5, 19.0,
    26.9); with the paper's dropout it does not."""
    inverted, inverted_sq = _head_losses("inverted")
    paper, paper_sq = _head_losses("paper")
    assert inverted_sq / paper_sq > 4  # E|2 m h|^2 / E|m h|^2 = 4, and h itself grows (fc7 sees 2 m h6 too)
    assert max(inverted) > 8.0 and inverted[-1] > inverted[0] * 2
    assert max(paper) < 3.0
