"""Checks of the CUDA-only code paths, for a session with a GPU (CI has none, so tests cannot):

1. the loader's CUDA path (pinned staging buffers, side-stream copies, events) delivers exactly
   the CPU path's batches, also when the model's stream is busy while batches arrive;
2. data.decode=device (nvJPEG through torchvision.io.decode_jpeg) vs Pillow on the same bytes:
   how far the pixels differ;
3. a few training steps with each decode mode: finite and close;
4. data.device_share=0.5 (half of each batch on nvJPEG, half on CPU threads) and data.backend=dali
   (if alexnet[dali] is installed) vs the CPU decoder: how far the pixels differ.

    python benchmarks/gpu_checks.py --raw STORE_RAW --jpeg STORE_JPEG

Prints one line per check and exits 1 if a check fails.
"""
import argparse
import sys

import torch

from alexnet.bench.curve import train_losses
from alexnet.config import build_config
from alexnet.data.loader import BatchLoader
from alexnet.data.store import open_store


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
    print(f"loader cuda == cpu on {store.format} store ({batches} batches of {batch}): {ok}")
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
    print(f"{what} vs Pillow pixels ({store.meta.get('jpeg_subsampling')}): mean |diff| {d.mean():.3f}, "
          f"max {d.max():.0f}, share differing {(d > 0).float().mean():.3f}")
    return bool(d.mean() < 1.0)


def other_device_decoders(store) -> list[bool]:
    results = [nvjpeg_vs_pillow(store, what="nvJPEG half + CPU half", device_share=0.5)]
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        print("DALI not installed (pip install 'alexnet[dali]'): data.backend=dali not checked")
        return results
    return results + [nvjpeg_vs_pillow(store, what="DALI", backend="dali")]


def training_steps(store, steps: int = 5) -> bool:
    losses = {}
    for decode in ("cpu", "device"):
        cfg = build_config("imagenette", [f"data.store={store.path}", f"data.decode={decode}",
                                          f"model.num_classes={store.num_classes}", f"data.size={store.size}",
                                          "train.progress=false"])
        losses[decode] = train_losses(cfg, steps, None)["losses"]  # the same seed: the same weights and draws
    print(f"training steps, decode cpu: {losses['cpu']}\n                decode device: {losses['device']}")
    close = all(abs(a - b) < 0.05 * abs(a) for a, b in zip(losses["cpu"], losses["device"]))
    return close and all(torch.isfinite(torch.tensor(v)).all() for v in losses.values())


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True)
    p.add_argument("--jpeg", required=True)
    a = p.parse_args()
    raw, jpeg = open_store(a.raw), open_store(a.jpeg)
    results = [loader_matches_cpu(raw), loader_matches_cpu(jpeg), nvjpeg_vs_pillow(jpeg), training_steps(jpeg),
               *other_device_decoders(jpeg)]
    print("all checks passed" if all(results) else f"FAILED: {results}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
