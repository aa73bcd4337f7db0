"""`alexnet bench ...`: throughput and loss curves, each beside its baseline in one process."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .args import add_config_args


def cmd_bench_model(args) -> int:
    from ..bench.model import bench_model, format_model
    from ..data.store import open_store
    from ..runtime import resolve_device
    device = resolve_device(args.device)
    batch = args.batch_size or (256 if device.type == "cuda" else 16)
    steps = args.steps or (50 if device.type == "cuda" else 3)
    compile_ = device.type == "cuda" and not args.no_compile
    store = open_store(args.data) if args.data else None
    result = bench_model(device, batch, steps, warmup=args.warmup, compile_=compile_, store=store,
                         threads=args.data_threads, decode=args.decode, compile_mode=args.compile_mode)
    print(json.dumps(result) if args.json else format_model(result))
    return 0


def cmd_bench_data(args) -> int:
    from ..bench.data import bench_data, format_data
    from ..runtime import resolve_device
    device = resolve_device(args.device)
    result = bench_data(args.source, Path(args.work), device, args.batch_size, args.batches, args.workers,
                        crop=args.crop, size=args.size, data_dir=args.data_dir,
                        synthetic_images=args.synthetic_images, progress=not args.json)
    print(json.dumps(result) if args.json else format_data(result))
    return 0


def cmd_bench_curve(args) -> int:
    from ..bench.curve import bench_curve, check_out, format_curve, to_json, write_json
    check_out(args.out)
    result = bench_curve(args.data, args.preset, args.overrides, steps=args.steps, device=args.device,
                         precision=args.precision, compile_=not args.no_compile, window=args.window)
    if args.out:
        write_json(to_json(result), args.out)
    print(to_json(result) if args.json else format_curve(result))
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure throughput side by side with a baseline")
    bench = p.add_subparsers(dest="what", required=True)
    p = bench.add_parser("model", help="train/inference img/s: paper net (reference, fast) vs torchvision")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="default 256 on CUDA, 16 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 50 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation, allocator, caches)")
    p.add_argument("--no-compile", action="store_true", help="fast path without torch.compile")
    p.add_argument("--compile-mode", choices=["default", "reduce-overhead", "max-autotune"], default="default",
                   help="torch.compile mode of the fast path (reduce-overhead: CUDA graphs)")
    p.add_argument("--data", default=None, metavar="STORE",
                   help="also time the training step fed from this store vs from a synthetic batch")
    p.add_argument("--data-threads", type=int, default=0, help="loader decode threads (0: one per core)")
    p.add_argument("--decode", choices=["cpu", "device"], default="cpu", help="jpeg stores: where to decode")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_bench_model)

    p = bench.add_parser("data", help="img/s delivered to the model: torchvision ImageFolder/PIL/DataLoader vs the store")
    p.add_argument("--source", choices=["imagenette", "synthetic"], default="synthetic",
                   help="synthetic: generated ImageNet-like JPEGs (~500x375, ~105 KB); imagenette: the bundled archive")
    p.add_argument("--work", default="bench-data", help="folder for extracted/generated images and stores (reused)")
    p.add_argument("--data-dir", default=None, help="folder holding imagenette-224.tar.gz (default: as quickstart)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch")
    p.add_argument("--batches", type=int, default=50, help="timed batches per row")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers / decode threads")
    p.add_argument("--synthetic-images", type=int, default=2000, help="how many JPEGs --source synthetic generates")
    p.add_argument("--crop", type=int, default=224, help="crop side fed to the model (§4.1)")
    p.add_argument("--size", type=int, default=256, help="stored side S of the stores it builds (§2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_bench_data)

    p = bench.add_parser("curve", help="loss curves of the fast and reference paths vs run-to-run noise")
    add_config_args(p)
    p.add_argument("--data", required=True, help="store folder (same as --set data.store=...)")
    p.add_argument("--steps", type=int, default=200, help="SGD steps per run")
    p.add_argument("--window", type=int, default=20, help="moving-average window in steps")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="fast path autocast (default: bf16 on CUDA, fp32 on CPU); the reference path is fp32")
    p.add_argument("--no-compile", action="store_true", help="fast path without torch.compile (CUDA)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", help="also write the JSON result to this file")
    p.set_defaults(func=cmd_bench_curve)
