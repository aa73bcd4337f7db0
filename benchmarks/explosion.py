"""Why the paper's recipe explodes at full width on 10 classes: per-layer measurements of the
first SGD steps of the whole net on real Imagenette crops, one candidate change at a time.
Results and reading: benchmarks/explosion.md (the head alone: explosion_head.py).

Every candidate starts from the same weights (seed) and sees the same batches, crops, flips, PCA
draws and dropout masks (the package's PaperDropout draws its masks as nn.Dropout does), so paired
runs differ only by the candidate. Per step and per weight layer (conv1..conv5, fc6, fc7, fc8):
  act   RMS of the layer's output before its ReLU
  dead  share of the layer's units (channel x position) that are zero after the ReLU for every
        image of the batch (fc8 has no ReLU)
  grad  L2 norm of the weight's gradient of the batch-mean cross-entropy
  upd   |dw| / |w| of the weight in this step (dw = the velocity v of the §5 rule w <- w + v)
and the loss, the batch accuracy, the logits' RMS split into the part every image shares (the
batch mean per class, a class prior) and the per-image rest, and fc8's input: mean |h|^2 and
|h̄|^2 (h̄ = the batch-mean input). Before training (`--gain-batch`), the gain G of the class-prior
mode by layer (see prior_gain_by_layer); `--steps 0` measures G alone.

The net (alexnet.nets.model.AlexNet), the §5 SGD rule (alexnet.train.optim.PaperSGD, one group
per tensor) and the §2/§4.1 pipeline (alexnet.data: random 224 crops of the 256 store, flips, PCA
noise, mean image) are the package's. Candidates are atoms joined with '+':
  baseline  the `imagenette` preset as it was before §4.2 dropout became the default: paper init
            N(0, 0.01), biases 1 in conv2/4/5/fc6/fc7, model.dropout_mode=inverted (torch's
            nn.Dropout: kept units x2 in training), lr 0.01, 10-way fc8
  paperdrop model.dropout_mode=paper (§4.2: kept units unscaled in training, x0.5 at test)
  nodrop    model.dropout=0
  std03     model.init=code2012 (2012 code: std 0.03 in conv3-5)
  biaslr2   2012 code: biases lr x2, no weight decay
  code2012  std03 + biaslr2
  fc1000    a 1000-way fc8 (labels stay 0..9)
  bias01    model.init_bias=0.1 (Caffe)
  lrn2e-5   model.lrn_alpha_per_n=true (alpha / n as in the 2012 code and Caffe)
  kaiming   model.init=kaiming, model.input_scale=1/58
  lr=X, fc8lr=X (fc8's lr multiplier), bias=X (init bias), wd=X, mom=X

    python benchmarks/explosion.py --store /work/stores/imagenette-256 --steps 10 \\
        --candidates baseline paperdrop --json out.json --verbose
    python benchmarks/explosion.py --summarize benchmarks/explosion-cpu.json --layers baseline

Full width and batch 128 on a 2-core CPU: about 10 s per step and 1-3 minutes per G.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alexnet.config import ModelConfig  # noqa: E402
from alexnet.data.augment import draw, eval_views, pca_lambda, train_batch  # noqa: E402
from alexnet.data.loader import epoch_order  # noqa: E402
from alexnet.data.store import open_store  # noqa: E402
from alexnet.errors import UserError  # noqa: E402
from alexnet.nets.model import AlexNet  # noqa: E402
from alexnet.train.optim import PaperSGD  # noqa: E402

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
RELU_OF = {"conv1": "relu1", "conv2": "relu2", "conv3": "relu3", "conv4": "relu4", "conv5": "relu5",
           "fc6": "relu6", "fc7": "relu7"}
NUMBER_KEYS = ("lr", "fc8lr", "bias", "wd", "mom")


# ------------------------------------------------------------------------------------------ candidates
def parse_candidate(name: str) -> dict:
    """The candidate's options (the keys recorded in every result's "options")."""
    o = dict(dropout="inverted", init="paper", bias=1.0, biaslr2=False, classes_out=10, lr=0.01, fc8lr=1.0,
             input_scale=1.0, lrn_per_n=False, wd=5e-4, mom=0.9)
    atoms = {"baseline": {}, "paperdrop": dict(dropout="paper"), "nodrop": dict(dropout="none"),
             "std03": dict(init="code2012"), "biaslr2": dict(biaslr2=True),
             "code2012": dict(init="code2012", biaslr2=True), "fc1000": dict(classes_out=1000),
             "bias01": dict(bias=0.1), "lrn2e-5": dict(lrn_per_n=True), "kaiming": dict(init="kaiming", input_scale=1 / 58)}
    for atom in name.split("+"):
        key, _, value = atom.partition("=")
        if atom in atoms:
            o.update(atoms[atom])
        elif value and key in NUMBER_KEYS:
            o[key] = float(value)
        else:
            raise ValueError(f"unknown candidate atom {atom!r} in {name!r}; see --help")
    return o


def build(o: dict, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(num_classes=o["classes_out"], init=o["init"], init_bias=o["bias"], input_scale=o["input_scale"],
                      lrn_alpha_per_n=o["lrn_per_n"], dropout=0.0 if o["dropout"] == "none" else 0.5,
                      dropout_mode="paper" if o["dropout"] == "paper" else "inverted")
    return AlexNet(cfg)


def optimizer(model: nn.Module, o: dict) -> PaperSGD:
    """§5's rule with one group per tensor: lr x2 and no decay on biases (biaslr2), fc8's multiplier."""
    groups = []
    for name, p in model.named_parameters():  # e.g. "classifier.fc8.bias"
        bias = p.ndim == 1
        mult = (2.0 if bias and o["biaslr2"] else 1.0) * (o["fc8lr"] if name.split(".")[1] == "fc8" else 1.0)
        groups.append(dict(params=[p], name=name, lr=o["lr"] * mult, weight_decay=0.0 if bias and o["biaslr2"] else o["wd"]))
    return PaperSGD(groups, lr=o["lr"], momentum=o["mom"], weight_decay=o["wd"])


# ------------------------------------------------------------------------------------------ data
class StoreData:
    """A store's train split through the package's §4.1 augmentation, batch by step; centre-crop val."""

    def __init__(self, root: str, crop: int = 224, seed: int = 0, limit: int = 0):
        self.store = open_store(root)
        self.train, self.crop, self.seed = self.store.split("train"), crop, seed
        n = len(self.train)
        self.index = np.arange(n) if not limit else np.random.default_rng(seed).permutation(n)[:limit]
        self.lam = pca_lambda(self.store.pca_eigvals)

    def batch(self, step: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, k = divmod(step, len(self.index) // b)
        idx = self.index[epoch_order(len(self.index), epoch, self.seed)][k * b:(k + 1) * b]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)  # the same draws for every candidate
        d = draw(b, self.store.size, self.crop, g)
        x = train_batch(self.train.read(idx), d, self.crop, self.store.mean, self.store.pca_eigvecs, self.lam)
        return x, torch.from_numpy(self.train.labels[idx].astype(np.int64))  # (B, 3, 224, 224), (B,)

    def val(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        split = self.store.split("val")
        idx = np.sort(np.random.default_rng(self.seed).permutation(len(split))[:n])
        x = eval_views(split.read(idx), self.crop, self.store.mean, "center")[0]  # (n, 3, 224, 224)
        return x, torch.from_numpy(split.labels[idx].astype(np.int64))


# ------------------------------------------------------------------------------------------ measuring
class Probe:
    """Forward hooks while grad is on: pre-ReLU RMS per weight layer, dead share after its ReLU,
    and fc8's input norms."""

    def __init__(self, model: nn.Module):
        self.stats: dict[str, dict] = {}
        mods = dict(model.features.named_children()) | dict(model.classifier.named_children())
        for layer in LAYERS:
            mods[layer].register_forward_hook(self._pre(layer))
            if layer in RELU_OF:
                mods[RELU_OF[layer]].register_forward_hook(self._post(layer))
        mods["fc8"].register_forward_pre_hook(self._fc8_input)

    def _fc8_input(self, _m, inputs):
        if torch.is_grad_enabled():  # h after fc7's ReLU and dropout: mean |h|^2 and |mean h|^2
            h = inputs[0].detach()  # (B, 4096)
            self.stats["fc8_in"] = dict(sq=h.pow(2).sum(1).mean().item(), common_sq=h.mean(0).pow(2).sum().item())

    def _pre(self, layer):
        def hook(_m, _i, out):  # runs before the in-place ReLU
            if torch.is_grad_enabled():
                self.stats.setdefault(layer, {})["act"] = out.detach().pow(2).mean().sqrt().item()
        return hook

    def _post(self, layer):
        def hook(_m, _i, out):
            if torch.is_grad_enabled():
                alive = (out.detach() > 0).any(dim=0)  # per unit, over the batch
                self.stats.setdefault(layer, {})["dead"] = 1.0 - alive.float().mean().item()
        return hook


def prior_gain_by_layer(model: nn.Module, opt: PaperSGD, x: torch.Tensor, seed: int) -> dict:
    """The stability number G of the class-prior mode, split by layer, at the current weights.

    u = the batch-mean logits minus their mean over classes (what every image shares). One SGD
    step on the mean cross-entropy moves u by about -J L J^T (p_mean - f) (J = du/dtheta, L = the
    per-tensor lr, f = the batch's class shares) while the images' hidden vectors are nearly the
    same, as at the paper's init. On zero-sum shifts J L J^T ~ c I and the loss has curvature 1/K
    at a uniform softmax, so the mode is a heavy-ball iteration with step G = c / K: stable only
    for G < 2 (1 + momentum) = 3.8 at momentum 0.9. Returns G per layer (weights + bias), from
    min(K, 10) backward passes on the images x, dropout masks fixed by seed."""
    params = [(g["name"].split(".")[1], g["params"][0], g["lr"]) for g in opt.param_groups]
    torch.manual_seed(seed)
    model.train()
    z = model(x)  # (b, K)
    u = z.mean(0) - z.mean()
    k_all, ks = z.shape[1], range(min(z.shape[1], 10))
    acc = {layer: 0.0 for layer in LAYERS}
    for k in ks:
        grads = torch.autograd.grad(u[k], [p for _, p, _ in params], retain_graph=k != ks[-1])
        for (layer, _, lr), g in zip(params, grads):
            acc[layer] += lr * g.pow(2).sum().item()
    return {layer: v / len(ks) / (1 - 1 / k_all) / k_all for layer, v in acc.items()}


def step_record(step: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> dict:
    z = logits.detach()  # (B, K)
    shared = z.mean(0) - z.mean()  # (K,) the input-independent part: a class prior shared by the batch
    return dict(step=step, loss=loss.item(), acc=(z.argmax(1) == y).float().mean().item(),
                logit_rms=z.pow(2).mean().sqrt().item(), logit_max=z.abs().max().item(),
                logit_common_rms=shared.pow(2).mean().sqrt().item(),
                logit_indiv_rms=(z - z.mean(0)).pow(2).mean().sqrt().item())


def run(o: dict, name: str, data: StoreData, args) -> dict:
    model = build(o, args.seed)
    opt = optimizer(model, o)
    probe = Probe(model)
    weight = {layer: p for layer in LAYERS for n, p in model.named_parameters() if n.endswith(f".{layer}.weight")}
    result = dict(candidate=name, options=o, steps=[])
    t0 = time.perf_counter()
    if args.gain_batch:
        x0, _ = data.batch(0, args.batch_size)
        gain = prior_gain_by_layer(model, opt, x0[:args.gain_batch], args.seed * 7919)
        result["prior_gain"] = dict(gain, total=sum(gain.values()), batch=args.gain_batch)
        print(f"[{name}] prior-mode gain G (stable < {2 * (1 + o['mom']):.1f}): total {sum(gain.values()):.2f}; "
              + " ".join(f"{k}={v:.3g}" for k, v in gain.items()), file=sys.stderr, flush=True)
    model.train()
    for step in range(args.steps):
        x, y = data.batch(step, args.batch_size)
        torch.manual_seed(args.seed * 7919 + step)  # the same dropout masks for every candidate
        probe.stats = {}
        logits = model(x)
        loss = F.cross_entropy(logits, y)  # batch mean, as the 2012 code and the package
        model.zero_grad(set_to_none=True)
        loss.backward()
        rec = step_record(step, loss, logits, y)
        detailed = step < args.detail_steps or step % args.every == 0 or step == args.steps - 1
        if detailed:
            rec["fc8_in"] = probe.stats.get("fc8_in")
            rec["layers"] = {layer: dict(probe.stats.get(layer, {}), grad=weight[layer].grad.norm().item(),
                                         wnorm=weight[layer].norm().item()) for layer in LAYERS}
        opt.step()
        if detailed:
            for layer in LAYERS:
                rec["layers"][layer]["upd"] = opt.state[weight[layer]]["velocity"].norm().item() / max(weight[layer].norm().item(), 1e-30)
        rec["finite"] = math.isfinite(rec["loss"])
        result["steps"].append(rec)
        if args.verbose:
            dead = " dead " + " ".join(f"{k}={rec['layers'][k].get('dead', 0):.2f}" for k in LAYERS[:-1]) if detailed else ""
            print(f"[{name}] step {step:4d} loss {rec['loss']:8.4f} acc {rec['acc']:.3f} logits shared "
                  f"{rec['logit_common_rms']:7.3f} per-image {rec['logit_indiv_rms']:7.3f}{dead}", file=sys.stderr, flush=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if args.val:
        model.eval()
        with torch.no_grad():
            vx, vy = data.val(args.val)
            pred = torch.cat([model(vx[i:i + 128]).argmax(1) for i in range(0, len(vx), 128)])
        result.update(val_top1_err=1 - (pred == vy).float().mean().item(), val_n=args.val,
                      val_pred_classes=int(len(torch.unique(pred))))
    tail = [s["loss"] for s in result["steps"][-20:]]
    result["last20_loss_mean"] = sum(tail) / len(tail) if tail else float("nan")
    return result


# ------------------------------------------------------------------------------------------ tables
def summary(runs: list[dict]) -> str:
    """One markdown row per training run: loss at steps 0-5, the largest loss and shared-logit RMS,
    fc8's update and |h̄|^2 at step 0, dead shares at the last detailed step."""
    lines = ["| candidate | steps | loss, steps 0-5 | max loss | max shared-logit RMS | fc8 upd, step 0 | "
             "\\|h̄\\|², step 0 | dead conv3 / conv5 / fc6 / fc7 at the last step |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for r in runs:
        st = r["steps"]
        last = [s for s in st if "layers" in s][-1]
        shared = [s["logit_common_rms"] for s in st if "logit_common_rms" in s]
        dead = " / ".join(f"{last['layers'][k]['dead']:.2f}" for k in ("conv3", "conv5", "fc6", "fc7"))
        lines.append(f"| {r['candidate']} | {len(st)} | {' '.join(format(s['loss'], '.2f') for s in st[:6])} | "
                     f"{max(s['loss'] for s in st):.2f} | {format(max(shared), '.2f') if shared else 'not recorded'} | "
                     f"{st[0]['layers']['fc8']['upd']:.3f} | {st[0]['fc8_in']['common_sq']:,.0f} | {dead} (step {last['step']}) |")
    return "\n".join(lines)


def gain_table(runs: list[dict]) -> str:
    """G by layer for every --steps 0 run."""
    cols = ("conv5", "fc6", "fc7", "fc8")
    lines = ["| candidate | G total | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for r in runs:
        g = r["prior_gain"]
        lines.append(f"| {r['candidate']} | {g['total']:.3g} | " + " | ".join(f"{g[c]:.3g}" for c in cols) + " |")
    return "\n".join(lines)


def layer_table(run: dict) -> str:
    """Per detailed step of one run: pre-ReLU RMS / dead share, then weight gradient norm / update."""
    head = "| step | loss | " + " | ".join(LAYERS) + " |\n|---:|---:|" + "---|" * len(LAYERS)
    act, grad = [head], [head]
    for s in (s for s in run["steps"] if "layers" in s):
        L = s["layers"]
        act.append(f"| {s['step']} | {s['loss']:.2f} | " + " | ".join(
            f"{L[k]['act']:.3g}" + (f" / {L[k]['dead']:.2f}" if "dead" in L[k] else "") for k in LAYERS) + " |")
        grad.append(f"| {s['step']} | {s['loss']:.2f} | " + " | ".join(f"{L[k]['grad']:.3g} / {L[k]['upd']:.2g}" for k in LAYERS) + " |")
    return "act RMS / dead share:\n" + "\n".join(act) + "\n\ngrad norm / update |dw|/|w|:\n" + "\n".join(grad)


LOG_LINE = re.compile(r"step +(\d+) loss +([\d.]+) acc ([\d.]+) logits shared +([\d.]+) per-image +([\d.]+)(?: dead (.*))?")


def log_table(path: str, every: int = 10) -> str:
    """Means per `every` steps of a --verbose log: loss, batch accuracy, shared and per-image logit RMS;
    dead shares at the window's first step (the log has them every 10th step)."""
    rows = [m.groups() for m in map(LOG_LINE.search, Path(path).read_text().splitlines()) if m]
    lines = ["| steps | mean loss | mean batch accuracy | mean shared-logit RMS | mean per-image logit RMS | dead conv5 / fc6 / fc7 at its first step |",
             "|---|---:|---:|---:|---:|---|"]
    for i in range(0, len(rows), every):
        w = rows[i:i + every]
        mean = [sum(float(r[j]) for r in w) / len(w) for j in (1, 2, 3, 4)]
        dead = dict(kv.split("=") for kv in (w[0][5] or "").split())
        lines.append(f"| {w[0][0]}-{w[-1][0]} | {mean[0]:.2f} | {mean[1]:.3f} | {mean[2]:.2f} | {mean[3]:.2f} | "
                     + " / ".join(dead.get(k, "-") for k in ("conv5", "fc6", "fc7")) + " |")
    return "\n".join(lines)


def load_runs(files: list[str]) -> list[dict]:
    """Runs of --json files (one command each) or of a merged file (the command kept per run). A
    training run without G takes it from a --steps 0 run of the same candidate and seed 0."""
    runs = []
    for f in files:
        d = json.loads(Path(f).read_text())
        runs += [dict(r, command=r.get("command", d.get("command")), date=r.get("date", d.get("date"))) for r in d["runs"]]
    gains = {r["candidate"]: r["prior_gain"] for r in runs if not r["steps"] and "prior_gain" in r}
    for r in runs:
        if r["steps"] and "prior_gain" not in r and r["candidate"] in gains and "--seed" not in r["command"]:
            r["prior_gain"] = dict(gains[r["candidate"]], from_steps0_run=True)
    return runs


def write_merged(runs: list[dict], path: str, torch_version: str) -> None:
    """One file, one run per line, numbers rounded to 4 significant digits."""
    def rounded(x):
        if isinstance(x, float):
            return float(f"{x:.4g}")
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return [rounded(v) for v in x] if isinstance(x, list) else x
    text = ",\n".join(json.dumps(rounded(r), separators=(",", ":")) for r in runs)
    Path(path).write_text('{"device":"2-core CPU","torch":"%s","runs":[\n%s]}\n' % (torch_version, text))


def summarize(args) -> None:
    runs = load_runs(args.summarize)
    print(summary([r for r in runs if r["steps"]]) + "\n\n" + gain_table([r for r in runs if not r["steps"]]))
    for name in args.layers:
        print(f"\n{name}, {next(r['command'] for r in runs if r['candidate'] == name and r['steps'])}:\n"
              + layer_table(max((r for r in runs if r["candidate"] == name), key=lambda r: len(r["steps"]))))
    if args.json:
        write_merged(runs, args.json, json.loads(Path(args.summarize[0]).read_text())["torch"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--store", default="stores/imagenette-256", help="a store made by `alexnet prepare` (256 px)")
    p.add_argument("--steps", type=int, default=10, help="SGD steps per candidate (0: only G)")
    p.add_argument("--batch-size", type=int, default=128, help="§5 batch")
    p.add_argument("--candidates", nargs="+", default=["baseline", "paperdrop"], help="see above")
    p.add_argument("--detail-steps", type=int, default=10, help="steps with per-layer numbers from the start")
    p.add_argument("--every", type=int, default=10, help="per-layer numbers every N steps after that")
    p.add_argument("--limit", type=int, default=0, help="train on a random subset of this many images (0: all)")
    p.add_argument("--val", type=int, default=0, help="centre-crop top-1 error on this many val images at the end")
    p.add_argument("--gain-batch", type=int, default=16, help="images of batch 0 for G by layer before training (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="weights, batches, draws and masks")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--json", default="", help="write the results here (with --summarize: the merged runs)")
    p.add_argument("--verbose", action="store_true", help="one line per step on stderr")
    p.add_argument("--summarize", nargs="+", default=[], metavar="JSON",
                   help="print the tables of runs saved by --json (merged with --json), and exit")
    p.add_argument("--layers", nargs="*", default=[], metavar="CANDIDATE",
                   help="with --summarize: per-layer tables of these candidates' longest runs")
    p.add_argument("--log-table", default="", metavar="LOG", help="print 10-step means of a --verbose log, and exit")
    args = p.parse_args()
    if args.log_table:
        return print(log_table(args.log_table))
    if args.summarize:
        return summarize(args)
    torch.set_num_threads(args.threads)
    try:  # bad names and stores fail before any work, with one line and exit 2
        candidates = [(name, parse_candidate(name)) for name in args.candidates]
        data = StoreData(args.store, seed=args.seed, limit=args.limit)
    except (ValueError, UserError) as e:
        p.error(str(e))
    out = dict(command=" ".join(["python"] + sys.argv), torch=torch.__version__, threads=args.threads,
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), runs=[])
    for name, o in candidates:
        res = run(o, name, data, args)
        out["runs"].append(res)
        val = f" val_err {res['val_top1_err']:.3f} ({res['val_pred_classes']} classes predicted)" if "val_top1_err" in res else ""
        print(f"{name:32s} {res['seconds']:6.0f}s  last20 {res['last20_loss_mean']:.4f}{val}  first: "
              + " ".join(f"{s['loss']:.2f}" for s in res["steps"][:12]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
