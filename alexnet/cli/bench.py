"""`alexnet bench ...`: throughput and loss curves, each beside its baseline in one process."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import choices
from .args import NON_NEGATIVE, POSITIVE, SHARE, Number, add_config_args, check_agree, check_output


def cmd_bench_model(args) -> int:
    from ..bench.model import bench_model, format_model
    from ..data.store import open_store
    from ..runtime import resolve_device
    device = resolve_device(args.device, "--device")
    batch = args.batch_size or (256 if device.type == "cuda" else 16)
    steps = args.steps or (50 if device.type == "cuda" else 3)
    compile_ = device.type == "cuda" and not args.no_compile
    store = open_store(args.data) if args.data else None
    result = bench_model(device, batch, steps, warmup=args.warmup, compile_=compile_, store=store,
                         threads=args.data_threads, decode=args.decode, compile_mode=args.compile_mode,
                         loader_kw={"cpu_decoder": args.cpu_decoder, "device_share": args.device_share,
                                    "backend": args.backend},
                         lrn_impls=tuple(args.lrn_impl), width=args.width, crop=args.crop)
    print(json.dumps(result) if args.json else format_model(result))
    return 0


def cmd_bench_data(args) -> int:
    from ..bench.data import bench_data, format_data
    from ..runtime import resolve_device
    device = resolve_device(args.device, "--device")
    result = bench_data(args.source, Path(args.work), device, args.batch_size, args.batches, args.workers,
                        crop=args.crop, size=args.size, data_dir=args.data_dir,
                        synthetic_images=args.synthetic_images, progress=not args.json, rows=args.rows,
                        device_share=args.device_share)
    print(json.dumps(result) if args.json else format_data(result))
    return 0


def cmd_bench_curve(args) -> int:
    from ..bench.curve import bench_curve, format_curve, to_json, write_json
    check_output(args.out, "--out")
    check_agree([f"data.store={args.data}"], args.overrides)
    result = bench_curve(args.data, args.preset, args.overrides, steps=args.steps, device=args.device,
                         precision=args.precision, compile_=not args.no_compile, window=args.window)
    if args.out:
        write_json(to_json(result), args.out)
    print(to_json(result) if args.json else format_curve(result))
    return 0


def cmd_bench_train(args) -> int:
    from ..bench.curve import to_json, write_json
    from ..bench.train import bench_train, format_train
    check_output(args.json_out, "--json-out")
    result = bench_train(args.data, args.preset, args.overrides, epochs=args.epochs, out=args.out, device=args.device,
                         sync_phases=not args.no_sync, synthetic_steps=args.synthetic_steps, warmup=args.warmup,
                         final_eval=args.final_eval, max_seconds=args.max_seconds)
    if args.json_out:
        write_json(to_json(result), args.json_out)
    print(to_json(result) if args.json else format_train(result))
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure throughput side by side with a baseline")
    bench = p.add_subparsers(dest="what", required=True)
    p = bench.add_parser("model", help="train/inference img/s: paper net (reference, fast) vs torchvision")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=POSITIVE, default=None, help="default 256 on CUDA, 16 on CPU")
    p.add_argument("--steps", type=POSITIVE, default=None, help="timed steps (default 50 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=2, help="untimed steps first (compilation, allocator, caches)")
    p.add_argument("--no-compile", action="store_true", help="fast path without torch.compile")
    p.add_argument("--compile-mode", choices=choices("train.compile_mode"), default="default",
                   help="torch.compile mode of the fast path (reduce-overhead: CUDA graphs)")
    p.add_argument("--lrn-impl", nargs="+", choices=choices("model.lrn_impl"), default=["auto"],
                   help="LRN implementation(s) of the fast path, one row each (auto: the op alexnet::lrn, Triton on "
                   "CUDA, numba on the CPU)")
    p.add_argument("--crop", type=POSITIVE, default=224, help="input side in pixels (the quick preset's net: 128)")
    p.add_argument("--width", type=Number(float, 0.01, 1.0), default=1.0,
                   help="model.width of the paper nets (default 1: the paper's; smaller for smoke tests on a CPU)")
    p.add_argument("--data", default=None, metavar="STORE",
                   help="also time the training step fed from this store vs from a synthetic batch")
    p.add_argument("--data-threads", type=NON_NEGATIVE, default=0, help="loader decode threads (0: one per core)")
    p.add_argument("--decode", choices=choices("loader.decode"), default="cpu", help="jpeg stores: where to decode")
    p.add_argument("--cpu-decoder", choices=choices("loader.cpu_decoder"), default="auto",
                   help="jpeg stores, CPU decoding: loader.cpu_decoder")
    p.add_argument("--device-share", type=SHARE, default=1.0,
                   help="--decode device: share of each batch decoded on the device, the rest on CPU threads")
    p.add_argument("--backend", choices=choices("loader.backend"), default="torchvision",
                   help="--decode device: the decoding library (dali: pip install 'alexnet[dali]')")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_bench_model)

    p = bench.add_parser("data", help="img/s delivered to the model: torchvision ImageFolder/PIL/DataLoader vs the store")
    p.add_argument("--source", choices=["imagenette", "synthetic"], default="synthetic",
                   help="synthetic: ImageNet-like JPEGs (~500x375, ~105 KB) made from the photos of the "
                        "bundled Imagenette archive (both need imagenette-224.tar.gz, see --data-dir); imagenette: "
                        "that archive's own 224px images")
    p.add_argument("--work", default="bench-data", help="folder for extracted/generated images and stores (reused)")
    p.add_argument("--data-dir", default=None, help="folder holding imagenette-224.tar.gz (default: as quickstart)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=POSITIVE, default=256, help="images per batch")
    p.add_argument("--batches", type=POSITIVE, default=50, help="timed batches per row")
    p.add_argument("--workers", type=NON_NEGATIVE, default=os.cpu_count() or 1, help="DataLoader workers / decode threads")
    p.add_argument("--synthetic-images", type=Number(int, 10), default=2000,
                   help="how many JPEGs --source synthetic generates (at least one per class: 10)")
    p.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                   help="rows to run (default: torchvision store-raw store-jpeg-cpu store-jpeg-gpu); also "
                        "store-jpeg-pillow, store-jpeg-mixed, store-jpeg-dali")
    p.add_argument("--device-share", type=SHARE, default=0.7,
                   help="store-jpeg-mixed: share of each batch decoded on the GPU (the rest on CPU threads)")
    p.add_argument("--crop", type=POSITIVE, default=224, help="crop side fed to the model (§4.1)")
    p.add_argument("--size", type=POSITIVE, default=256, help="stored side S of the stores it builds (§2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_bench_data)

    p = bench.add_parser("curve", help="loss curves of the fast and reference paths vs run-to-run noise")
    add_config_args(p)
    p.add_argument("--data", required=True, help="store folder (same as --set data.store=...)")
    p.add_argument("--steps", type=POSITIVE, default=200, help="SGD steps per run")
    p.add_argument("--window", type=POSITIVE, default=20, help="moving-average window in steps")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", choices=choices("train.precision"), default=None,
                   help="fast path autocast (default: bf16 on CUDA, fp32 on CPU); the reference path is fp32")
    p.add_argument("--no-compile", action="store_true", help="fast path without torch.compile (CUDA)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", help="also write the JSON result to this file")
    p.set_defaults(func=cmd_bench_curve)

    p = bench.add_parser("train", help="the real training loop end to end vs the model's step on a device batch, "
                                       "and where the wall time goes")
    add_config_args(p)
    p.add_argument("--data", required=True, help="store folder (same as --set data.store=...)")
    p.add_argument("--epochs", type=NON_NEGATIVE, default=2, help="epochs to train (0: the preset's own schedule.epochs)")
    p.add_argument("--out", default=None, help="run folder to create (default: a temporary one, removed afterwards)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-sync", action="store_true",
                   help="do not synchronise the device between parts (parts become host time; the total is unchanged)")
    p.add_argument("--synthetic-steps", type=POSITIVE, default=20, help="timed steps of the model on a device batch")
    p.add_argument("--warmup", type=NON_NEGATIVE, default=3, help="untimed synthetic steps before those")
    p.add_argument("--final-eval", choices=["none", *choices("eval.views")], default="none",
                   help="evaluate the run's last.pt afterwards (not timed): the centre patch or the ten patches")
    p.add_argument("--max-seconds", type=Number(float, 0), default=0.0,
                   help="stop training cleanly after this long (last.pt saved, status stopped); 0: no limit")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--json-out", default=None, help="also write the JSON result to this file")
    p.set_defaults(func=cmd_bench_train)
