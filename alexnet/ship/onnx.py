"""ONNX export (dynamic batch) and running ONNX files in onnxruntime.

The exported graph takes the views the net takes, (B, 3, crop, crop) float32 pixels minus the mean
image, and returns (B, num_classes) logits. What changes on the way (inference_net):
- LRN (§3.3) becomes ONNX's LRN operator (LocalResponseNormalization). ONNX divides alpha by size,
  like torch's nn.LocalResponseNorm, so the paper's alpha is written as alpha * n.
- dropout (§4.2) is folded for inference (fold_dropout): the paper's test-time x0.5 goes into the
  next layer's weights; torch's inverted dropout is already the identity at test time.
- the adaptive average pool after pool5 becomes fixed matrices for the exported crop size (the
  identity at the paper's 224).
The description (checkpoint.Record.description) and the mean image travel in the model's
metadata_props, so an .onnx file also describes itself; reading one gives back its Record. onnx and onnxruntime are the optional
extra `alexnet[onnx]`.
"""
from __future__ import annotations

import base64
import copy
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import InputMeta, Record
from ..errors import CheckpointError, UserError
from ..fsutil import write_atomic
from ..nets.lrn import LocalResponseNorm

OPSET = 17
PARITY_LIMIT = 1e-4  # max |logit difference| between onnxruntime and PyTorch in fp32


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise UserError(f"{module} is not installed: pip install 'alexnet[onnx]' (onnx and onnxruntime)") from None


# ---- the inference form of the net -----------------------------------------------------------


class _LRNOp(torch.autograd.Function):
    """The paper's LRN as one ONNX LRN node (the reference computation when run in PyTorch)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        return F.local_response_norm(x, n, alpha=alpha * n, beta=beta, k=k)  # torch divides alpha by n

    @staticmethod
    def symbolic(g, x, n: int, alpha: float, beta: float, k: float):
        y = g.op("LRN", x, alpha_f=alpha * n, beta_f=beta, bias_f=k, size_i=n)  # ONNX divides alpha by size too
        y.setType(x.type())  # same shape as x: keeps the shapes known downstream
        return y


class OnnxLRN(nn.Module):
    def __init__(self, lrn: LocalResponseNorm):
        super().__init__()
        self.n, self.alpha, self.beta, self.k = lrn.n, lrn.alpha, lrn.beta, lrn.k  # alpha: paper convention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LRNOp.apply(x, self.n, self.alpha, self.beta, self.k)


def pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) averaging weights of adaptive average pooling along one axis (PyTorch's bins)."""
    m = torch.zeros(n_out, n_in)
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[i, a:b] = 1.0 / (b - a)
    return m


class FixedAvgPool(nn.Module):
    """AdaptiveAvgPool2d for one known input size, as two matrix products (exportable for any size)."""

    def __init__(self, h: int, w: int, out: tuple[int, int]):
        super().__init__()
        self.register_buffer("rows", pool_matrix(h, out[0]))  # (out_h, h)
        self.register_buffer("cols", pool_matrix(w, out[1]).T.contiguous())  # (w, out_w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.rows, x), self.cols)  # (B, C, h, w) -> (B, C, out_h, out_w)


def is_dropout(m: nn.Module) -> bool:
    return isinstance(m, nn.Dropout) or "dropout" in type(m).__name__.lower()


def test_time_scale(m: nn.Module) -> float:
    """At test time a dropout layer is x -> s x: s = 1 for torch's inverted dropout, 1 - p for the
    paper's (§4.2 "multiply their outputs by 0.5"). Measured, so either implementation folds."""
    with torch.no_grad():
        return float(m.eval()(torch.ones(1, 1)).item())


def fold_dropout(model: nn.Module) -> None:
    """Replace each dropout layer by the identity and multiply the next linear layer's weights by
    its test-time scale (only ReLUs, which commute with a positive scale, may stand between)."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i, layer in enumerate(list(seq)):
            if is_dropout(layer):
                scale = test_time_scale(layer)
                if scale != 1.0:
                    _next_linear(list(seq)[i + 1 :]).weight.data.mul_(scale)
                seq[i] = nn.Identity()


def _next_linear(rest: list[nn.Module]) -> nn.Linear:
    for m in rest:
        if isinstance(m, nn.Linear):
            return m
        if not isinstance(m, (nn.ReLU, nn.Identity)):
            break
    raise UserError("cannot fold a dropout layer: no linear layer follows it through ReLUs only")


def inference_net(model: nn.Module, crop: int) -> nn.Module:
    """A copy of `model` (eval, fp32, CPU) in the form the ONNX graph takes (module docstring)."""
    net = copy.deepcopy(model).float().cpu().eval()
    fold_dropout(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LocalResponseNorm):
                setattr(parent, name, OnnxLRN(child))
    if isinstance(getattr(net, "avgpool", None), nn.AdaptiveAvgPool2d):
        with torch.no_grad():
            h, w = net.features(torch.zeros(1, 3, crop, crop)).shape[-2:]
        out = net.avgpool.output_size
        out = (out, out) if isinstance(out, int) else tuple(out)
        net.avgpool = nn.Identity() if (h, w) == out else FixedAvgPool(h, w, out)
    return net


# ---- export ----------------------------------------------------------------------------------


def export_onnx(model: nn.Module, meta: dict, inp: InputMeta, path: str | Path, check_images: int = 4) -> float:
    """Write `path` (atomically, only if onnxruntime reproduces PyTorch within PARITY_LIMIT on
    `check_images` inputs of another batch size than the one traced) with the description `meta`
    (Weights.meta) and the input statistics `inp`. Returns the max |difference|."""
    onnx = _need("onnx")
    path, crop = Path(path), meta["crop"]
    net = inference_net(model, crop)
    x = sample_inputs(2, crop)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on constant folding
        torch.onnx.export(net, (x,), buf, dynamo=False, opset_version=OPSET, input_names=["images"],
                          output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in describe(meta, inp, path).items():
        proto.metadata_props.add(key=key, value=value)
    data = proto.SerializeToString()
    diff = parity(model, data, sample_inputs(check_images, crop, seed=1))
    if not diff <= PARITY_LIMIT:
        raise UserError(f"ONNX export of {meta['source']} differs from PyTorch by {diff:.2e} (> {PARITY_LIMIT:g}): "
                        f"not written to {path}")
    try:
        write_atomic(path, lambda f: f.write(data))
    except OSError as e:
        raise UserError(f"could not write {path}: {e.strerror or e}") from None
    return diff


def sample_inputs(n: int, crop: int, seed: int = 0) -> torch.Tensor:
    """Inputs on the scale the net sees: mean-subtracted 0..255 pixels (std about 58)."""
    return torch.randn(n, 3, crop, crop, generator=torch.Generator().manual_seed(seed)) * 58.0


def parity(model: nn.Module, onnx_bytes: bytes, x: torch.Tensor) -> float:
    """max |logits of onnxruntime - logits of the PyTorch net in eval mode| on x, in fp32."""
    session = _session(onnx_bytes)
    with torch.no_grad():
        expect = copy.deepcopy(model).float().cpu().eval()(x)
    got = session.run(["logits"], {"images": x.numpy()})[0]
    return float(np.abs(got - expect.numpy()).max())


def describe(meta: dict, inp: InputMeta, path: Path) -> dict[str, str]:
    """metadata_props: the JSON description, and each tensor as JSON {shape, base64 float32}."""
    tensors = {"mean": inp.mean, **{f"pca_{k}": v for k, v in inp.pca.items()}}
    props = {"alexnet": json.dumps({**meta, "source": str(path)})}
    for name, t in tensors.items():
        t = t.detach().cpu().float().contiguous()
        props[f"alexnet.{name}"] = json.dumps({"shape": list(t.shape),
                                               "float32": base64.b64encode(t.numpy().tobytes()).decode()})
    return props


# ---- running ---------------------------------------------------------------------------------


def _session(onnx_bytes: bytes | str):
    ort = _need("onnxruntime")
    return ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])


class OnnxNet(nn.Module):
    """An ONNX file run by onnxruntime behind the nn.Module interface (logits for a batch of views)."""

    def __init__(self, session):
        super().__init__()
        self.session = session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(["logits"], {"images": x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def read_onnx(path: Path) -> tuple[nn.Module, Record, int]:
    """An ONNX file written by `alexnet export --onnx`: the onnxruntime net (eval mode), its record
    (no tensors of the net: they are in the graph) and its parameter count."""
    onnx = _need("onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several kinds on a damaged file
        raise CheckpointError(f"{path} is not a readable ONNX file ({type(e).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if "alexnet" not in props:
        raise CheckpointError(f"{path} has no alexnet description: export it with `alexnet export CKPT --onnx OUT`")
    meta = json.loads(props["alexnet"])
    tensors = {k[len("alexnet."):]: _tensor(v) for k, v in props.items() if k.startswith("alexnet.")}
    record = Record.from_description(meta, {}, tensors, path)
    return OnnxNet(_session(proto.SerializeToString())).eval(), record, int(meta.get("num_params", 0))


def _tensor(text: str) -> torch.Tensor:
    d = json.loads(text)
    return torch.from_numpy(np.frombuffer(base64.b64decode(d["float32"]), np.float32).copy()).reshape(d["shape"])
