"""torch.hub: hubconf.py's entry points load from this checkout (source='local'), with weights from
a local file and from a file:// URL (nothing downloaded from outside), and give the nets and
outputs that `alexnet.load` gives."""
import pytest
import torch

import alexnet
from alexnet import Weights, build_config, build_model
from alexnet.errors import UserError
from alexnet.ship import save_safetensors

from conftest import REPO


def hub(entry: str, **kwargs):
    return torch.hub.load(str(REPO), entry, source="local", trust_repo=True, **kwargs)


def saved(tmp_path, arch: str):
    """A small net of `arch` with random weights, saved as self-describing weights (alexnet export's format)."""
    cfg = build_config(None, [f"model.arch={arch}", "model.num_classes=3", "model.width=0.125",
                              "data.size=72", "data.crop=64"])
    torch.manual_seed(0)
    net = build_model(cfg.model).eval()
    weights = Weights(cfg, ["ant", "bee", "cat"], 72, torch.rand(3, 72, 72) * 255)
    return net, save_safetensors(net, weights, tmp_path / f"{arch}.safetensors")


def test_fresh_nets_are_the_papers_and_torchvisions():
    paper, owt = hub("alexnet"), hub("alexnet_owt")
    assert sum(p.numel() for p in paper.parameters()) == 60_965_224  # §3.5, the paper's count
    import torchvision
    assert owt.state_dict().keys() == torchvision.models.alexnet().state_dict().keys()
    small = hub("alexnet", num_classes=10, width=0.25)
    assert small.classifier[-1].out_features == 10 and isinstance(small, alexnet.AlexNet)


@pytest.mark.parametrize("arch,entry", [("paper", "alexnet"), ("owt", "alexnet_owt")])
def test_weights_from_a_file_and_a_url_give_alexnet_loads_outputs(tmp_path, monkeypatch, arch, entry):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # the URL's copy lands here
    ref, path = saved(tmp_path, arch)
    x = torch.randn(2, 3, 64, 64)
    for source in (str(path), path.as_uri()):
        net = hub(entry, weights=source)
        assert not net.training and net.weights.meta["categories"] == ["ant", "bee", "cat"]
        loaded, _ = alexnet.load(path)
        with torch.no_grad():
            assert torch.equal(net(x), ref(x)) and torch.equal(net(x), loaded(x))
    assert (tmp_path / "torch-home" / "hub" / "checkpoints" / path.name).is_file()


def test_wrong_entry_or_settings_with_weights_are_refused(tmp_path):
    _, path = saved(tmp_path, "owt")
    with pytest.raises(UserError, match="model.arch=owt net: load it with 'alexnet_owt'"):
        hub("alexnet", weights=str(path))
    with pytest.raises(UserError, match="width: the weights file describes its net"):
        hub("alexnet_owt", weights=str(path), width=0.5)
    with pytest.raises(UserError, match="no model file"):
        hub("alexnet", weights=str(tmp_path / "missing.pt"))
