"""Checks of the CUDA-only code paths, for a session with a GPU (CI has none, so tests cannot):

1. the loader's CUDA path (pinned staging buffers, side-stream copies, events) delivers exactly
   the CPU path's batches, also when the model's stream is busy while batches arrive;
2. data.decode=device (nvJPEG through torchvision.io.decode_jpeg) vs Pillow on the same bytes:
   how far the pixels differ;
3. a few training steps with each decode mode: finite and close;
4. data.device_share=0.5 (half of each batch on nvJPEG, half on CPU threads) and data.backend=dali
   (if alexnet[dali] is installed) vs the CPU decoder: how far the pixels differ;
5. no host sync in training steps (torch.cuda.set_sync_debug_mode("error") around them);
6. torch.compile traces the paper net with the Triton LRN op without a graph break, and its
   output equals the reference LRN net's;
7. training steps under CUDA graphs (train.compile_mode=reduce-overhead) with the loader's
   side-stream batches: finite and close to eager.

    python benchmarks/gpu_checks.py --raw STORE_RAW --jpeg STORE_JPEG [--json-out FILE] [--no-cudagraphs]

Prints one line per check and exits 1 if a check fails.
"""
import argparse
import json
import sys
import traceback

import torch

from alexnet.bench.curve import train_losses
from alexnet.config import ModelConfig, build_config
from alexnet.data.loader import BatchLoader
from alexnet.data.store import open_store
from alexnet.nets.model import AlexNet
from alexnet.runtime import configure_torch, resolve_device
from alexnet.train import Trainer, build_parts

DETAILS: dict[str, str] = {}  # check name -> the line it printed


def loader_matches_cpu(store, batch: int = 64, batches: int = 30) -> bool:
    reader = store.split("train")
    cpu = BatchLoader(reader, batch, shuffle=True, seed=1, threads=4, max_batches=batches)
    gpu = BatchLoader(reader, batch, shuffle=True, seed=1, threads=4, max_batches=batches, device="cuda")
    busy = torch.randn(4096, 4096, device="cuda")
    ok = True
    for (xc, yc), (xg, yg) in zip(cpu.batches(0), gpu.batches(0)):
        for _ in range(8):  # keep the consumer stream busy so copies and reads overlap
            busy = torch.tanh(busy @ busy * 1e-4)
        ok &= torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)
    _say("loader", f"loader cuda == cpu on {store.format} store ({batches} batches of {batch}): {ok}")
    return bool(ok)


def nvjpeg_vs_pillow(store, batch: int = 64, batches: int = 10, what: str = "nvJPEG", **device_kw) -> bool:
    """Device decoding vs the CPU decoder (simplejpeg = Pillow's pixels: tests/test_jpeg.py). Tolerance:
    mean |diff| < 1 level (4:2:0 chroma upsampling may differ between libraries; §4.1's colour noise
    moves pixels by about 5 levels)."""
    reader = store.split("train")
    cpu = BatchLoader(reader, batch, shuffle=False, threads=4, max_batches=batches)
    dev = BatchLoader(reader, batch, shuffle=False, max_batches=batches, device="cuda", decode="device",
                      threads=4, **device_kw)
    diffs = [((xc.int() - xd.cpu().int()).abs()) for (xc, _), (xd, _) in zip(cpu.batches(0), dev.batches(0))]
    d = torch.cat([x.flatten() for x in diffs]).float()
    _say(what, f"{what} vs Pillow pixels ({store.meta.get('jpeg_subsampling')}): mean |diff| {d.mean():.3f}, "
         f"max {d.max():.0f}, share differing {(d > 0).float().mean():.3f}")
    return bool(d.mean() < 1.0)


def dali_installed() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        print("DALI not installed (pip install 'alexnet[dali]'): data.backend=dali not checked")
        return False
    return True


def training_steps(store, steps: int = 5) -> bool:
    losses = {}
    for decode in ("cpu", "device"):
        cfg = build_config("imagenette", [f"data.store={store.path}", f"data.decode={decode}",
                                          f"model.num_classes={store.num_classes}", f"data.size={store.size}",
                                          "train.progress=false"])
        losses[decode] = train_losses(cfg, steps, None)["losses"]  # the same seed: the same weights and draws
    _say("decode", f"training steps, decode cpu: {losses['cpu']}; decode device: {losses['device']}")
    close = all(abs(a - b) < 0.05 * abs(a) for a, b in zip(losses["cpu"], losses["device"]))
    return close and all(torch.isfinite(torch.tensor(v)).all() for v in losses.values())


def _say(name: str, line: str) -> None:
    DETAILS[name] = line
    print(line, flush=True)


def _fast_config(store, *extra: str):
    return build_config("imagenette-fast", [f"data.store={store.path}", f"model.num_classes={store.num_classes}",
                                            f"data.size={store.size}", "train.progress=false", *extra])


def no_sync_in_steps(store, steps: int = 10) -> bool:
    """Training steps (imagenette-fast: bf16, channels-last, Triton LRN) on batches fetched
    beforehand, with CUDA's sync debug mode set to raise on any synchronising call."""
    cfg = _fast_config(store)
    configure_torch(0, False, cfg.train.cudnn_benchmark)
    trainer = Trainer(cfg, build_parts(cfg, resolve_device("cuda")))
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
    _say("no_sync", f"host syncs in {steps} training steps (sync debug mode 'error'): {detail}")
    return ok


def triton_op_compiles(batch: int = 8) -> bool:
    """The whole net with the Triton LRN op under torch.compile: no graph break, the reference's values."""
    torch.manual_seed(0)
    op = AlexNet(ModelConfig(lrn_impl="triton", num_classes=10, dropout=0.0)).cuda()
    ref = AlexNet(ModelConfig(lrn_impl="reference", num_classes=10, dropout=0.0)).cuda()
    ref.load_state_dict(op.state_dict())
    x = torch.randn(batch, 3, 224, 224, device="cuda") * 50
    breaks = torch._dynamo.explain(op)(x).graph_break_count
    torch._dynamo.reset()
    with torch.no_grad():
        got, want = torch.compile(op)(x), ref(x)
    rel = float((got - want).abs().max() / want.abs().max())
    _say("triton_compile", f"torch.compile with the Triton LRN op: {breaks} graph breaks, max rel diff vs reference "
                           f"{rel:.2e}")
    return breaks == 0 and rel < 1e-3


def cudagraph_steps(store, steps: int = 8) -> bool:
    """train.compile_mode=reduce-overhead (CUDA graphs) fed by the loader's side stream vs eager."""
    losses = {}
    for name, extra in (("eager", []), ("cudagraphs", ["train.compile=true", "train.compile_mode=reduce-overhead"])):
        losses[name] = train_losses(_fast_config(store, *extra), steps, None)["losses"]
    _say("cudagraphs", f"training steps eager: {[round(v, 4) for v in losses['eager']]}; "
                       f"cuda graphs: {[round(v, 4) for v in losses['cudagraphs']]}")
    close = all(abs(a - b) < 0.05 * abs(a) for a, b in zip(losses["eager"], losses["cudagraphs"]))
    return close and all(torch.isfinite(torch.tensor(v)).all() for v in losses.values())


def _run(name: str, check, *args, **kwargs) -> dict:
    try:
        ok = bool(check(*args, **kwargs))
    except Exception as e:  # noqa: BLE001 - one check's crash must not hide the others
        traceback.print_exc()
        ok = False
        DETAILS[name] = f"crashed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return {"name": name, "ok": ok, "detail": DETAILS.get(name, "")}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True, help="raw store (256px Imagenette)")
    p.add_argument("--jpeg", required=True, help="jpeg store of the same images")
    p.add_argument("--json-out", default=None, help="also write the checks as JSON to this file")
    p.add_argument("--no-cudagraphs", action="store_true", help="skip the CUDA-graph training check (it compiles the net)")
    a = p.parse_args()
    raw, jpeg = open_store(a.raw), open_store(a.jpeg)
    checks = [_run("loader", loader_matches_cpu, raw), _run("loader", loader_matches_cpu, jpeg),
              _run("nvJPEG", nvjpeg_vs_pillow, jpeg), _run("decode", training_steps, jpeg),
              _run("nvJPEG half + CPU half", nvjpeg_vs_pillow, jpeg, 64, 10, "nvJPEG half + CPU half", device_share=0.5),
              _run("no_sync", no_sync_in_steps, raw), _run("triton_compile", triton_op_compiles)]
    if dali_installed():
        checks.append(_run("DALI", nvjpeg_vs_pillow, jpeg, 64, 10, "DALI", backend="dali"))
    if not a.no_cudagraphs:
        checks.append(_run("cudagraphs", cudagraph_steps, raw))
    ok = all(c["ok"] for c in checks)
    print("all checks passed" if ok else f"FAILED: {[c['name'] for c in checks if not c['ok']]}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"checks": checks, "ok": ok}, f)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
