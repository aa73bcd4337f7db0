"""`alexnet summary`: the layer table of Figure 2 (output shape, neurons, parameters per layer)."""
from __future__ import annotations

import torch
from torch import nn

from .model import count_parameters


def layer_table(model: nn.Module, crop: int = 224) -> dict:
    """Run one image through the net and record every layer's output. Parameters are counted per
    module, so totals add up to count_parameters(model)."""
    rows: list[dict] = []
    hooks = []
    for section in ("features", "avgpool", "classifier"):
        part = getattr(model, section)
        children = list(part.named_children()) or [(section, part)]
        for name, module in children:
            label = f"{section}.{name}" if name.isdigit() else name  # torchvision-style nets have numbered layers

            def hook(mod, inp, out, label=label, mod_type=type(module).__name__):
                rows.append({"layer": label, "type": mod_type, "output": list(out.shape[1:]),
                             "neurons": int(out[0].numel()), "params": count_parameters(mod)})
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, crop, crop))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return {"input": [3, crop, crop], "layers": rows, "total_params": count_parameters(model)}


def format_table(table: dict) -> str:
    lines = [f"{'layer':<14} {'type':<18} {'output':>16} {'neurons':>10} {'params':>12}"]
    for r in table["layers"]:
        shape = "x".join(map(str, r["output"]))
        lines.append(f"{r['layer']:<14} {r['type']:<18} {shape:>16} {r['neurons']:>10,} {r['params']:>12,}")
    lines.append(f"{'total':<14} {'':<18} {'':>16} {'':>10} {table['total_params']:>12,}")
    lines.append(f"input {'x'.join(map(str, table['input']))}")
    return "\n".join(lines)
