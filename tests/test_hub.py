"""torch.hub: hubconf.py's entry points load from this checkout (source='local'), with weights from
a local file and from a file:// URL (nothing downloaded from outside), and give the nets and
outputs that `alexnet.load` gives; http(s) URLs from a server on this host."""
import functools
import http.server
import threading

import pytest
import torch

import alexnet
from alexnet import Weights, build_config, build_model
from alexnet.checkpoint import InputMeta, Record
from alexnet.errors import UserError
from alexnet.ship import save_safetensors

from conftest import REPO


def hub(entry: str, **kwargs):
    return torch.hub.load(str(REPO), entry, source="local", trust_repo=True, **kwargs)


def saved(tmp_path, arch: str, classes=("ant", "bee", "cat"), name: str = ""):
    """A small net of `arch` with random weights, saved as self-describing weights (alexnet export's format)."""
    cfg = build_config(None, [f"model.arch={arch}", f"model.num_classes={len(classes)}", "model.width=0.125",
                              "data.size=72", "data.crop=64"])
    torch.manual_seed(len(classes))
    net = build_model(cfg.model).eval()
    weights = Weights(Record(cfg, {}, list(classes), input=InputMeta(72, torch.rand(3, 72, 72) * 255)))
    return net, save_safetensors(net, weights, tmp_path / (name or f"{arch}.safetensors"))


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
    assert not (tmp_path / "torch-home" / "hub" / "checkpoints").exists()  # a file:// URL is read where it is


def test_two_files_of_one_name_are_two_nets(tmp_path, monkeypatch):
    """file:// and http:// URLs that end in the same file name load each file's own net."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _, a = saved(tmp_path / "a", "paper", ["ant", "bee", "cat"], "quick.safetensors")
    _, b = saved(tmp_path / "b", "paper", [str(i) for i in range(10)], "quick.safetensors")
    assert [len(hub("alexnet", weights=p.as_uri()).weights.classes) for p in (a, b)] == [3, 10]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        nets = [hub("alexnet", weights=f"{url}/{d}/quick.safetensors", progress=False) for d in ("a", "b", "a")]
    finally:
        server.shutdown()
    assert [len(n.weights.classes) for n in nets] == [3, 10, 3]
    assert len(list((tmp_path / "torch-home" / "hub" / "checkpoints").iterdir())) == 2  # each downloaded once


def test_wrong_entry_or_settings_with_weights_are_refused(tmp_path):
    _, path = saved(tmp_path, "owt")
    with pytest.raises(UserError, match="model.arch=owt net: load it with 'alexnet_owt'"):
        hub("alexnet", weights=str(path))
    with pytest.raises(UserError, match="width: the weights file describes its net"):
        hub("alexnet_owt", weights=str(path), width=0.5)
    with pytest.raises(UserError, match="no model file"):
        hub("alexnet", weights=str(tmp_path / "missing.pt"))
