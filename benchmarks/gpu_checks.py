"""Checks of the CUDA-only code paths, for a session with a GPU (CI has none, so tests cannot).
Each compares what must be equal, with the tolerance it states, and fails on an empty loader:

  loader-raw, loader-jpeg  the loader's CUDA path (pinned buffers, side-stream copies, events,
                           the consumer stream kept busy) delivers exactly the CPU path's batches;
  pixels-nvjpeg            data.decode=device (nvJPEG) vs the CPU decoder on the same bytes:
                           identical pixels on a 4:4:4 store (the suite's), mean |diff| < 1 level
                           otherwise (chroma upsampling may differ between libraries);
  pixels-mixed             data.device_share=0.5 (half nvJPEG, half CPU threads): as pixels-nvjpeg;
  pixels-dali              data.backend=dali (when alexnet[dali] is installed): as pixels-nvjpeg;
  logits-decode            the same weights (fp32) on the first batch of decode cpu and of decode
                           device: logits equal within 1e-5 of their largest;
  no-sync                  no host sync in training steps (torch.cuda.set_sync_debug_mode("error"));
  triton-compile           torch.compile traces the net with the Triton LRN op without a graph
                           break, and its output is the reference LRN net's within 1e-3;
  logits-cudagraphs        torch.compile mode reduce-overhead (CUDA graphs) on a batch from the
                           loader's side stream vs eager, same weights (fp32): within 1e-3.

    python benchmarks/gpu_checks.py --raw STORE_RAW --jpeg STORE_JPEG [--json-out FILE] [--device cuda|cpu]

--device cpu (the suite's dry run) runs what a CPU can (the loader, decoder and logits comparisons
with CPU paths on both sides: decode=device is torchvision's CPU decoder there) and lists the
CUDA-only checks as skipped. Prints one line per check and
exits 1 if a check fails.
"""
import argparse
import json
import sys
import traceback

import torch

from alexnet.config import ModelConfig, build_config
from alexnet.data.loader import BatchLoader
from alexnet.data.store import open_store
from alexnet.nets.model import AlexNet
from alexnet.runtime import configure_torch, resolve_device
from alexnet.train import Trainer, build_parts

LOGITS_TOL = {"logits-decode": 1e-5, "logits-cudagraphs": 1e-3, "triton-compile": 1e-3}


class Check:
    """One check's verdict and the line it prints."""

    def __init__(self, ok: bool, detail: str):
        self.ok, self.detail = bool(ok), detail


def paired(a, b) -> list[tuple]:
    """The batches of two loaders side by side; an empty loader or unequal counts is an error, not a pass."""
    la, lb = list(a), list(b)
    if not la or len(la) != len(lb):
        raise AssertionError(f"{len(la)} vs {len(lb)} batches: want equal counts > 0")
    return list(zip(la, lb))


def loader_matches_cpu(store, device: str, batch: int = 64, batches: int = 30) -> Check:
    reader = store.split("train")
    ref = BatchLoader(reader, batch, shuffle=True, seed=1, threads=1, max_batches=batches)
    dev = BatchLoader(reader, batch, shuffle=True, seed=1, threads=4, max_batches=batches, device=device)
    busy = torch.randn(2048, 2048, device=device)
    pairs, equal = 0, True
    for (xc, yc), (xg, yg) in paired(ref.batches(0), _busy(dev.batches(0), busy)):
        equal &= torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)
        pairs += 1
    return Check(equal, f"{device} loader (4 threads) == CPU loader (1 thread) on the {store.format} store, "
                        f"{pairs} batches of {batch}: {equal}")


def _busy(batches, busy):
    """Keep the consumer stream busy while batches arrive, so copies and reads overlap."""
    for item in batches:
        for _ in range(4):
            busy = torch.tanh(busy @ busy * 1e-4)
        yield item


def pixels_match(store, device: str, batch: int = 64, batches: int = 10, **device_kw) -> Check:
    """Device decoding vs the CPU decoder on the same bytes."""
    reader = store.split("train")
    cpu = BatchLoader(reader, batch, shuffle=False, threads=4, max_batches=batches)
    dev = BatchLoader(reader, batch, shuffle=False, max_batches=batches, device=device, decode="device", threads=4,
                      **device_kw)
    d = torch.cat([(xc.int() - xd.cpu().int()).abs().flatten() for (xc, _), (xd, _) in
                   paired(cpu.batches(0), dev.batches(0))]).float()
    exact = store.meta.get("jpeg_subsampling") == "4:4:4"
    ok = bool(d.max() == 0) if exact else bool(d.mean() < 1.0)
    want = "identical pixels (4:4:4)" if exact else "mean |diff| < 1"
    how = ", ".join(f"{k}={v}" for k, v in device_kw.items())
    return Check(ok, f"decode=device on {device}{' (' + how + ')' if how else ''} vs {cpu.cpu_decoder} on {d.numel()} values "
                     f"({store.meta.get('jpeg_subsampling')}): mean |diff| {d.mean():.3f}, max {d.max():.0f}, "
                     f"share differing {(d > 0).float().mean():.4f}; want {want}")


def _net(store, device: str, lrn_impl: str = "auto") -> tuple[torch.nn.Module, int]:
    """A net of He-initialised weights (logits that depend on the pixels), fp32, eval mode, and its crop."""
    small = store.size < 224
    cfg = ModelConfig(num_classes=store.num_classes, init="kaiming", input_scale=0.01724, lrn_impl=lrn_impl,
                      width=0.125 if small else 1.0)
    torch.manual_seed(0)
    return AlexNet(cfg).to(device).eval(), 64 if small else 224


def _centre(x: torch.Tensor, crop: int) -> torch.Tensor:
    s = (x.shape[-1] - crop) // 2
    return (x[..., s:s + crop, s:s + crop].float() - 128.0).contiguous()


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).abs().max() / want.float().abs().max().clamp_min(1e-30))


def logits_decode(store, device: str, batch: int = 64) -> Check:
    """The same weights on the first batch decoded on the CPU and on the device."""
    reader = store.split("train")
    cpu = BatchLoader(reader, batch, shuffle=False, threads=4, max_batches=1, device=device)
    dev = BatchLoader(reader, batch, shuffle=False, threads=4, max_batches=1, device=device, decode="device")
    ((xc, _), (xd, _)), = paired(cpu.batches(0), dev.batches(0))
    net, crop = _net(store, device)
    with torch.no_grad():
        a, b = net(_centre(xc, crop)), net(_centre(xd, crop))
    rel, tol = _rel(b, a), LOGITS_TOL["logits-decode"]
    return Check(rel <= tol, f"logits, decode device vs cpu, same weights (fp32), batch {batch}: max rel diff {rel:.2e} "
                             f"(<= {tol:g}; logits' spread {float(a.std()):.3f})")


def no_sync_in_steps(store, device: str, steps: int = 10) -> Check:
    """Training steps (imagenette-fast: bf16, channels-last, Triton LRN) on batches fetched
    beforehand, with CUDA's sync debug mode set to raise on any synchronising call."""
    cfg = build_config("imagenette-fast", [f"data.store={store.path}", f"model.num_classes={store.num_classes}",
                                           f"data.size={store.size}", "train.progress=false"])
    configure_torch(0, False, cfg.train.cudnn_benchmark)
    parts = build_parts(cfg, resolve_device(device))
    trainer = Trainer(parts.cfg, parts)
    batches = trainer.parts.loader.batches(0)
    data = [next(batches) for _ in range(steps + 3)]
    batches.close()
    for images, labels in data[:3]:  # warm-up: cuDNN autotuning, the allocator, the pinned pool
        trainer.train_step(images, labels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for images, labels in data[3:]:
            trainer.train_step(images, labels)
        ok, detail = True, "none"
    except RuntimeError as e:
        ok, detail = False, str(e).splitlines()[0][:200]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return Check(ok, f"host syncs in {steps} training steps (sync debug mode 'error'): {detail}")


def triton_op_compiles(store, device: str, batch: int = 8) -> Check:
    """The whole net with the Triton LRN op under torch.compile: no graph break, the reference's values."""
    torch.manual_seed(0)
    op = AlexNet(ModelConfig(lrn_impl="triton", num_classes=10, dropout=0.0)).to(device)
    ref = AlexNet(ModelConfig(lrn_impl="reference", num_classes=10, dropout=0.0)).to(device)
    ref.load_state_dict(op.state_dict())
    x = torch.randn(batch, 3, 224, 224, device=device) * 50
    breaks = torch._dynamo.explain(op)(x).graph_break_count
    torch._dynamo.reset()
    with torch.no_grad():
        got, want = torch.compile(op)(x), ref(x)
    rel, tol = _rel(got, want), LOGITS_TOL["triton-compile"]
    return Check(breaks == 0 and rel <= tol, f"torch.compile with the Triton LRN op: {breaks} graph breaks, max rel diff "
                                            f"vs reference {rel:.2e} (<= {tol:g})")


def logits_cudagraphs(store, device: str, batch: int = 64) -> Check:
    """torch.compile(mode="reduce-overhead") on a batch from the loader's side stream vs eager, same weights."""
    loader = BatchLoader(store.split("train"), batch, shuffle=True, seed=2, threads=4, max_batches=3, device=device)
    items = list(loader.batches(0))
    if len(items) != 3:
        raise AssertionError(f"{len(items)} batches, want 3")
    net, crop = _net(store, device, "triton")
    compiled = torch.compile(net, mode="reduce-overhead")
    worst = 0.0
    with torch.no_grad():
        for x, _ in items:  # the first calls record the graph; each replay reads a new side-stream batch
            inputs = _centre(x, crop)
            worst = max(worst, _rel(compiled(inputs).clone(), net(inputs)))
    tol = LOGITS_TOL["logits-cudagraphs"]
    return Check(worst <= tol, f"logits under CUDA graphs vs eager, same weights (fp32), {len(items)} loader batches: "
                               f"max rel diff {worst:.2e} (<= {tol:g})")


def dali_installed() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def _run(name: str, check, *args, **kwargs) -> dict:
    try:
        c = check(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - one check's crash must not hide the others
        traceback.print_exc()
        c = Check(False, f"crashed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    print(f"{name}: {'pass' if c.ok else 'FAIL'}: {c.detail}", flush=True)
    return {"name": name, "ok": c.ok, "detail": c.detail}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True, help="raw store (256px Imagenette)")
    p.add_argument("--jpeg", required=True, help="jpeg store of the same images (4:4:4 for exact pixel checks)")
    p.add_argument("--json-out", default=None, help="also write the checks as JSON to this file")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: the dry run's CPU-only subset")
    p.add_argument("--no-cudagraphs", action="store_true", help="skip the CUDA-graph check (it compiles the net)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch of the comparisons")
    p.add_argument("--batches", type=int, default=10, help="batches compared per loader check (the loader's: 3x)")
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu_checks: error: no CUDA device (torch sees none): these checks are for a GPU; --device cpu runs "
              "the CPU-only subset", file=sys.stderr)
        return 2
    raw, jpeg, dev = open_store(a.raw), open_store(a.jpeg), a.device
    b, n = a.batch_size, a.batches
    checks = [_run("loader-raw", loader_matches_cpu, raw, dev, b, 3 * n),
              _run("loader-jpeg", loader_matches_cpu, jpeg, dev, b, 3 * n)]
    skipped = []
    checks += [_run("pixels-nvjpeg", pixels_match, jpeg, dev, b, n),  # on a CPU: torchvision's decoder on both paths
               _run("pixels-mixed", pixels_match, jpeg, dev, b, n, device_share=0.5),
               _run("logits-decode", logits_decode, jpeg, dev, b)]
    cuda_only = [("no-sync", no_sync_in_steps, (raw, dev), {}),
                 ("triton-compile", triton_op_compiles, (raw, dev), {})]
    if dali_installed():
        cuda_only.insert(0, ("pixels-dali", pixels_match, (jpeg, dev, b, n), {"backend": "dali"}))
    else:
        skipped.append({"name": "pixels-dali", "why": "DALI not installed (pip install 'alexnet[dali]')"})
    if not a.no_cudagraphs:
        cuda_only.append(("logits-cudagraphs", logits_cudagraphs, (raw, dev, b), {}))
    for name, fn, args, kw in cuda_only:
        if dev == "cuda":
            checks.append(_run(name, fn, *args, **kw))
        else:
            skipped.append({"name": name, "why": "needs CUDA"})
    ok = all(c["ok"] for c in checks)
    print("all checks passed" if ok else f"FAILED: {[c['name'] for c in checks if not c['ok']]}")
    for s in skipped:
        print(f"{s['name']}: skipped: {s['why']}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"device": dev, "checks": checks, "skipped": skipped, "ok": ok}, f)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
