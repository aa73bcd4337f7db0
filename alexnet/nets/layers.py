"""The weight layers of a net by the paper's names, for choosing layers to freeze or replace (§6
fine-tuning): conv1..convK over `features`, then fc(K+1).. over `classifier`, in order. For the
paper's net and torchvision's that is conv1..conv5, fc6..fc8; for Figure 1's net conv1..conv3,
fc4. (The ablations that drop or add a conv layer shift the numbers: they count, not label.)"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
    names = [f"conv{i + 1}" for i in range(len(convs))] + [f"fc{len(convs) + i + 1}" for i in range(len(fcs))]
    return dict(zip(names, convs + fcs))


def head(model: nn.Module) -> nn.Linear:
    """The last layer: the one fine-tuning replaces for the new classes."""
    return list(weight_layers(model).values())[-1]


def select(model: nn.Module, spec: str, key: str = "finetune.freeze") -> list[str]:
    """Layer names of `spec`: "" (none), "conv1..conv5" (a range), "conv1,fc6" or a mix."""
    names = list(weight_layers(model))
    chosen: list[str] = []
    for item in filter(None, spec.split(",")):
        first, _, last = item.partition("..")
        for name in (first, last or first):
            if name not in names:
                raise ConfigError(f"{key}={spec!r}: this net has no layer {name!r} (its layers: {', '.join(names)})")
        i, j = names.index(first), names.index(last or first)
        if i > j:
            raise ConfigError(f"{key}={spec!r}: {item} runs backwards; write {last}..{first}")
        chosen += [n for n in names[i : j + 1] if n not in chosen]
    return chosen


def freeze(model: nn.Module, spec: str) -> list[str]:
    """Stop gradients into the layers of `spec` (their weights stay as loaded); returns their names."""
    layers = weight_layers(model)
    chosen = select(model, spec)
    if layers and list(layers)[-1] in chosen:
        raise ConfigError(f"finetune.freeze={spec!r} includes {list(layers)[-1]}, the new classifier: it must learn")
    for name in chosen:
        layers[name].requires_grad_(False)
    return chosen
