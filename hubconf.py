"""torch.hub entry points: `torch.hub.load(REPO_OR_DIR, 'alexnet', weights=PATH_OR_URL)`.

    alexnet       the paper's net (§3: two columns, LRN, overlapping pooling, dropout)
    alexnet_owt   torchvision's "one weird trick" net, torchvision's state-dict layout

`weights` is a file `alexnet.load` reads (a checkpoint of `alexnet train`, a `.safetensors` file
of `alexnet export`, or for `alexnet_owt` a torchvision AlexNet state dict) or an http(s)/file
URL of one, downloaded once into torch.hub's cache (a file:// URL is read where it is). The net
comes back in eval mode with its description as `net.weights` (`net.weights.transforms()` is its
eval transform of an image, `net.weights.meta["class_names"]` its class names, `["categories"]`
their ids). Without `weights`, a freshly initialised net of the paper's size (1000 classes, full
width): keyword arguments are ModelConfig fields (`num_classes=10`, `width=0.5`, ...).
"""
dependencies = ["torch", "torchvision", "numpy", "PIL", "safetensors"]


def alexnet(weights: str | None = None, device: str = "cpu", progress: bool = True, **model):
    """The paper's net (Krizhevsky et al. 2012, §3), fresh or with `weights` (a path or URL)."""
    return _net("paper", weights, device, progress, model)


def alexnet_owt(weights: str | None = None, device: str = "cpu", progress: bool = True, **model):
    """torchvision's AlexNet ("one weird trick"), fresh or with `weights` (a path or URL; torchvision's
    own AlexNet files load too)."""
    return _net("owt", weights, device, progress, model)


def _net(arch: str, weights: str | None, device: str, progress: bool, model: dict):
    from alexnet import ModelConfig, build_model, load
    from alexnet.errors import UserError
    if weights is None:
        return build_model(ModelConfig(arch=arch, **model)).to(device)
    if model:
        raise UserError(f"{', '.join(model)}: the weights file describes its net; give either weights= or net settings")
    net, described = load(_local(weights, progress), device)
    if described.config.model.arch != arch:
        entry = {"paper": "alexnet", "owt": "alexnet_owt"}.get(described.config.model.arch, described.config.model.arch)
        raise UserError(f"{weights} holds a model.arch={described.config.model.arch} net: load it with '{entry}'")
    net.weights = described
    return net


def _local(weights: str, progress: bool) -> str:
    """A path as it is; a file:// URL's path; an http(s) URL downloaded once into torch.hub's cache
    (TORCH_HOME/hub/checkpoints), under a name keyed by the whole URL: two URLs ending in the
    same file name are two files."""
    import hashlib
    import os
    from urllib.parse import unquote, urlparse

    import torch
    url = urlparse(weights)
    if url.scheme == "file":
        return unquote(url.path)
    if url.scheme not in ("http", "https"):
        return weights
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    os.makedirs(folder, exist_ok=True)
    key = hashlib.sha256(weights.encode()).hexdigest()[:16]
    path = os.path.join(folder, f"{key}-{os.path.basename(url.path)}")
    if not os.path.isfile(path):
        torch.hub.download_url_to_file(weights, path, progress=progress)
    return path
