"""§3.2 the paper's model parallelism: the two columns of the net on two devices.

"We employ ... the GPUs communicate only in certain layers. This means that, for example, the
kernels of layer 3 take input from all kernel maps in layer 2. However, kernels in layer 4 take
input only from those kernel maps in layer 3 which reside on the same GPU." Each of the two
processes of a replica holds half of every layer's kernels and units; they exchange activations
only into conv3 and into the fully-connected layers:

    conv1-conv2 (own column)  -> gather -> conv3 (half its kernels, both columns' maps)
    conv4-conv5 (own column)  -> gather -> fc6 (half its units)
                                 gather -> fc7 (half its units)
                                           fc8 (its columns' half of the inputs) -> sum -> logits

A gather's backward sums the two columns' gradients and keeps this column's share (a
reduce-scatter); the final sum's backward is the identity, since both processes compute the same
loss from the same logits. One more exchange is not in the paper: the project's LRN normalises
across all maps of a layer (docs/paper.md "lrn"; the 2012 code normalised each column alone), so
the two maps on each side of the column boundary (n = 5) cross before lrn1 and lrn2. With it the
pair computes exactly the single-device grouped net's function (tests/test_distributed.py).

Checkpoints hold the whole net, as on one device: `ColumnShards` gathers the halves of every
weight and optimiser tensor to save, and cuts a whole-net checkpoint into halves to resume, so a
run moves freely between one device, data parallelism and model parallelism.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ..nets.model import AlexNet, Crossing, paper_forward
from .distributed import Layout, SharedDropout

# how the columns share each layer: 0 = its output units (kernels) are split, 1 = its inputs are
# (fc8: each column multiplies its own half of fc7; the bias stays with column 0)
SPLIT_DIM = {"conv1": 0, "conv2": 0, "conv3": 0, "conv4": 0, "conv5": 0, "fc6": 0, "fc7": 0, "fc8": 1}


class _Gather(torch.autograd.Function):
    """All-gather along `dim` forward; backward: every rank's gradient summed, own slice kept."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int, group) -> torch.Tensor:
        ctx.dim, ctx.group = dim, group
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        chunks = [c.contiguous() for c in grad.chunk(dist.get_world_size(ctx.group), ctx.dim)]
        out = torch.empty_like(chunks[0])
        dist.reduce_scatter(out, chunks, group=ctx.group)
        return out, None, None


class _Sum(torch.autograd.Function):
    """All-reduce (sum) forward; backward the identity: the loss after it is the same on every rank."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def _share(layer: nn.Module, dim: int, column: int) -> nn.Module:
    """A new layer holding `column`'s half of `layer` (weights copied)."""
    w = layer.weight.detach().chunk(2, dim)[column]
    bias = dim == 0 or column == 0
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(w.shape[1], w.shape[0], layer.kernel_size, layer.stride, layer.padding, bias=bias)
    else:
        new = nn.Linear(w.shape[1], w.shape[0], bias=bias)
    with torch.no_grad():
        new.weight.copy_(w)
        if bias:
            new.bias.copy_(layer.bias.detach().chunk(2)[column] if dim == 0 else layer.bias.detach())
    return new.to(layer.weight.device)


class ColumnNet(nn.Module, Crossing):
    """One column of the paper's net (§3.2), for one of the two processes of a replica. Built from
    a whole AlexNet (same weights): its weight layers are this column's halves, the layers without
    weights are the whole net's; `forward` is the whole net's (nets/model.py paper_forward) with
    this column's crossings, and returns the whole logits on both processes."""

    def __init__(self, full: AlexNet, layout: Layout):
        super().__init__()
        self.cfg, self.group, self.column = full.cfg, layout.pair, layout.column
        f, k = full.features, full.classifier
        for name, dim in SPLIT_DIM.items():
            setattr(self, name, _share(getattr(f, name, None) or getattr(k, name), dim, self.column))
        paper = full.cfg.dropout_mode == "paper"  # §4.2
        self.drop6 = SharedDropout(k.drop6.p, layout, paper)
        self.drop7 = SharedDropout(k.drop7.p, layout, paper)
        self.avgpool = full.avgpool
        self.stateless = nn.ModuleDict({n: m for n, m in [*f.named_children(), *k.named_children()]
                                        if n not in SPLIT_DIM and n not in ("drop6", "drop7")})  # no weights
        self.feature_names, self.classifier_names = list(f._modules), list(k._modules)

    def _layers(self, names: list[str]):
        return ((n, self.stateless[n] if n in self.stateless else getattr(self, n)) for n in names)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Both columns' maps or units, this column's first when it is column 0 (the one-device order)."""
        return _Gather.apply(x, 1, self.group)

    def lrn(self, lrn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """LRN across all maps of the layer: the n//2 maps beyond the column boundary come from the other column."""
        h = lrn.n // 2
        edges = self.gather(x[:, -h:] if self.column == 0 else x[:, :h])  # (B, 2h, H, W): col 0's last, col 1's first
        if self.column == 0:
            return lrn(torch.cat([x, edges[:, h:]], 1))[:, : x.shape[1]]
        return lrn(torch.cat([edges[:, :h], x], 1))[:, h:]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_classes): both halves of fc8's inputs summed."""
        return _Sum.apply(x, self.group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return paper_forward(x, self.cfg, self._layers(self.feature_names), self.avgpool,
                             self._layers(self.classifier_names), self)  # the replica's whole batch, on both columns


def full_name(shard_name: str) -> str:
    """'conv3.weight' -> 'features.conv3.weight' (the whole net's state-dict key)."""
    layer = shard_name.split(".")[0]
    return ("features." if layer.startswith("conv") else "classifier.") + shard_name


class ColumnShards:
    """Converts state between the whole net's checkpoints and one column's ColumnNet and optimiser.
    `template` is the optimiser of a whole net (param_groups as a one-device run would save them)."""

    def __init__(self, layout: Layout, full: AlexNet, full_optimizer: torch.optim.Optimizer):
        self.layout = layout
        self.shapes = {name: p.shape for name, p in full.named_parameters()}
        self.full_names = _names_in_optimizer_order(full_optimizer, full)
        self.template_groups = full_optimizer.state_dict()["param_groups"]

    def _take(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """This column's share of the whole net's tensor `name` (a weight or its optimiser state)."""
        layer, kind = name.split(".")[-2:]
        dim = SPLIT_DIM[layer]
        if kind == "bias" and dim == 1:
            return t
        return t.chunk(2, dim)[self.layout.column]

    def _gather(self, name: str, t: torch.Tensor) -> torch.Tensor | None:
        """The whole tensor `name` from both columns' shares (on column 0; collective over the pair)."""
        layer, kind = name.split(".")[-2:]
        dim = SPLIT_DIM[layer]
        if kind == "bias" and dim == 1:
            return t  # column 0 holds it whole (None on column 1)
        parts = [torch.empty_like(t) for _ in range(2)]
        dist.all_gather(parts, t.contiguous(), group=self.layout.pair)
        return torch.cat(parts, dim)

    def state_dicts(self, model: ColumnNet, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """The whole net's model and optimiser state dicts, complete on the replica-0, column-0 rank
        (which writes checkpoints). Collective over each replica's pair; other replicas skip it."""
        if self.layout.replica != 0:
            return {}, {}
        own = dict(model.named_parameters())
        weights = {}
        for shard in own:
            weights[full_name(shard)] = self._gather(shard, own[shard].detach())
        shard_names = _names_in_optimizer_order(optimizer, model)
        saved = optimizer.state_dict()
        state = {}
        for j, shard in enumerate(shard_names):
            i = self.full_names.index(full_name(shard))
            state[i] = {k: self._gather(full_name(shard), v) if _is_param_like(v, own[shard]) else v
                        for k, v in sorted(saved["state"].get(j, {}).items())}
        groups = [{**g, "params": t["params"]} for g, t in zip(saved["param_groups"], self.template_groups)]
        order = [full_name(n) for n in own]
        return {k: weights[k] for k in self.shapes if k in order}, {"state": state, "param_groups": groups}

    def load_state_dicts(self, model: ColumnNet, optimizer: torch.optim.Optimizer, weights: dict, optim: dict) -> None:
        """Take this column's share of a whole-net checkpoint."""
        own = dict(model.named_parameters())
        model.load_state_dict({s: self._take(full_name(s), weights[full_name(s)]) for s in own})
        shard_names = _names_in_optimizer_order(optimizer, model)
        state = {}
        for j, shard in enumerate(shard_names):
            saved = optim["state"].get(self.full_names.index(full_name(shard)), {})
            state[j] = {k: self._take(full_name(shard), v) if _is_param_like(v, weights[full_name(shard)]) else v
                        for k, v in saved.items()}
        mine = optimizer.state_dict()["param_groups"]
        groups = [{**g, "params": m["params"]} for g, m in zip(optim["param_groups"], mine)]
        optimizer.load_state_dict({"state": state, "param_groups": groups})


def _is_param_like(v, param: torch.Tensor) -> bool:
    return isinstance(v, torch.Tensor) and v.shape == param.shape


def _names_in_optimizer_order(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[str]:
    """The parameter names in the order optimizer.state_dict() numbers them."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for g in optimizer.param_groups for p in g["params"]]


def bytes_per_step(full: AlexNet, batch: int, crop: int, bytes_per_value: int = 4) -> dict[str, int]:
    """Bytes one column sends to the other in a training step (forward and backward), by exchange,
    as ColumnNet's collectives move them for `batch` images (the replica's batch) of `crop` pixels."""
    shapes, x = {}, torch.zeros(1, 3, crop, crop)
    with torch.no_grad():
        for name, layer in full.features.named_children():
            x = layer(x)
            shapes[name] = x.shape[1:]  # (C, H, W), both columns together
    h = full.features.lrn1.n // 2 if full.cfg.lrn else 0
    values = {  # per image: forward, plus as many backward (the gradient of the other column's share)
        "lrn1 edge maps": 2 * h * shapes["relu1"][1] * shapes["relu1"][2],
        "lrn2 edge maps": 2 * h * shapes["relu2"][1] * shapes["relu2"][2],
        "into conv3": 2 * shapes["pool2"].numel() // 2,
        "into fc6": 2 * shapes["pool5"].numel() // 2,
        "into fc7": 2 * full.classifier.fc6.out_features // 2,
        "into fc8 (partial logits; forward only)": full.classifier.fc8.out_features,  # 2-rank ring all-reduce
    }
    return {k: v * batch * bytes_per_value for k, v in values.items()}
