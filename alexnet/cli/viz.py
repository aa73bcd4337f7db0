"""`alexnet viz ...` (§6.1: Figure 3, Figure 4 left and right, binary codes) and `alexnet report`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import UserError
from .args import NON_NEGATIVE, POSITIVE, Number, check_output


def _open(args):
    """The net, its config and the store (--data, else the store it was trained on)."""
    from ..data.store import open_store
    from ..runtime import configure_torch, resolve_device
    from ..ship.weights import load, net_file
    check_output(str(Path(args.out) / "result.json"), "-o")  # before the work, not after it
    if net_file(args.checkpoint).suffix == ".onnx":
        raise UserError(f"{args.checkpoint} is an ONNX graph: viz reads the net's layers, give the checkpoint (.pt) "
                        "or weights (.safetensors) it was exported from")
    configure_torch(args.threads, False)
    device = resolve_device(args.device, "--device")
    model, weights = load(args.checkpoint, device)
    store = open_store(args.data or weights.config.data.store) if hasattr(args, "data") else None
    if store is not None and store.size != weights.size:
        raise UserError(f"store {store.path} holds {store.size}px images but {args.checkpoint} takes {weights.size}px "
                        f"ones: give --data a store prepared with --size {weights.size} (alexnet eval rescales, viz does not)")
    return model, weights.config, store, device


def _net_file(args) -> Path:
    from ..ship.weights import net_file
    return net_file(args.checkpoint)


def _save(args, name: str, result: dict, fig, table: str, device) -> int:
    from ..viz.results import environment, write_result
    from .experiments import command_line
    out = Path(args.out)
    env = environment(device, command_line())
    write_result(out, name, {"figure": name, **env, "checkpoint": str(args.checkpoint), **result}, fig, table)
    print(table)
    print(f"written: {out}/result.json, {out}/{name}.png, {out}/table.md")
    return 0


def cmd_kernels(args) -> int:
    from ..viz.kernels import RANDOM_CHROMA, LOW_CUTOFF, figure3, kernel_stats
    model, _, _, device = _open(args)
    measures = kernel_stats(model)
    stats = measures["columns"]
    table = "| column | kernels | mean chroma | median chroma | mostly colour (chroma > 0.5) |\n|---|---|---|---|---|\n"
    table += "\n".join(f"| {s['column']} | {s['kernels']} | {s['mean_chroma']:.3f} | {s['median_chroma']:.3f} | "
                       f"{s['colour_kernels']} |" for s in stats)
    table += (f"\n\nChroma = share of a kernel's mean-free weights that is not grey (random kernels: {RANDOM_CHROMA:.3f}). "
              "Paper: column 1 mostly colour-agnostic, column 2 mostly colour-specific. "
              f"Share of the kernels' energy within {LOW_CUTOFF:g} cycles/pixel: {measures['low_frequency_share']:.3f} "
              f"(i.i.d. random kernels: {measures['random_low_frequency_share']:.3f}).")
    return _save(args, "figure3", measures, figure3(model), table, device)


def cmd_predictions(args) -> int:
    from ..viz.panels import predictions_figure
    model, cfg, store, device = _open(args)
    split = args.split or cfg.data.val_split
    fig = predictions_figure(model, cfg, store, split, args.n, device)
    table = f"Figure 4 left: {args.n} images of {split}, spread over the split, with their five most probable labels."
    return _save(args, "figure4-left", {"split": split, "images": args.n}, fig, table, device)


def cmd_neighbours(args) -> int:
    from ..viz.panels import neighbours_figure
    model, cfg, store, device = _open(args)
    split = args.split or cfg.data.val_split
    fig = neighbours_figure(_net_file(args), model, cfg, store, cfg.data.train_split, split, args.queries, args.k,
                            args.db_per_class, device, Path(args.out) / "features")
    table = (f"Figure 4 right: {args.queries} images of {split} and the {args.k} training images nearest in fc7 space "
             f"(Euclidean); database: {args.db_per_class or 'all'} training images per class.")
    return _save(args, "figure4-right", {"split": split, "queries": args.queries, "k": args.k,
                                         "db_per_class": args.db_per_class}, fig, table, device)


def cmd_codes(args) -> int:
    from ..data.subset import SubsetReader, balanced_indices
    from ..viz.features import import_faiss
    from ..viz.retrieval import plot, study, table
    if any(b <= 0 or b % 8 for b in args.bits):
        raise UserError(f"--bits {args.bits}: each code length must be a positive multiple of 8")
    import_faiss().omp_set_num_threads(max(1, args.threads))
    model, cfg, store, device = _open(args)

    def part(split: str, per_class: int):
        r = store.split(split)
        return SubsetReader(r, balanced_indices(r.labels, per_class)) if per_class else r
    result = study(_net_file(args), model, cfg, store, part(cfg.data.train_split, args.db_per_class),
                   part(args.split or cfg.data.val_split, args.query_per_class), device, tuple(args.bits), args.steps,
                   log=lambda m: print(m, file=sys.stderr), cache=Path(args.out) / "features")
    return _save(args, "codes", result, plot(result), table(result), device)


def cmd_report(args) -> int:
    from ..runtime import configure_torch, resolve_device
    from ..viz.report import build_report
    check_output(args.out, "-o")
    check_output(args.screenshot, "--screenshot")
    configure_torch(args.threads, False)
    page = build_report(Path(args.run), Path(args.data) if args.data else None, resolve_device(args.device, "--device"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    print(f"written: {out} ({len(page) // 1024} KiB)")
    if args.check or args.screenshot:
        from ..viz.browser import check_page
        result = check_page(out, args.screenshot)
        print(json.dumps({k: v for k, v in result.items() if k != "images"} | {"images": len(result["images"])}))
        if not result["ok"]:
            raise UserError(f"{out} did not render cleanly in Chromium (see the JSON above)")
    return 0


def _figure(vsub, name: str, func, help: str, out: str, data: bool = True, split: str = ""):
    """A `viz` subcommand: CKPT, [--data], [--split], --device, --threads, -o."""
    q = vsub.add_parser(name, help=help)
    q.add_argument("checkpoint", metavar="CKPT", help="the net: a checkpoint (best.pt, last.pt; a run folder: its "
                   "best.pt), weights (.safetensors) or a torchvision .pth (not ONNX: a graph has no layers to read)")
    if data:
        q.add_argument("--data", help="store folder (default: the store the checkpoint was trained on)")
    if split:
        q.add_argument("--split", help=f"split of the {split} (default: the checkpoint's validation split)")
    q.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    q.add_argument("--threads", type=NON_NEGATIVE, default=1, help="torch (and faiss) threads (default 1; 0: torch's default)")
    q.add_argument("-o", "--out", default=f"results/{out}", help=f"result folder (default: results/{out})")
    q.set_defaults(func=func)
    return q


def register(sub) -> None:
    p = sub.add_parser("viz", help="look inside a trained net (§6.1): kernels, predictions, neighbours, binary codes")
    vsub = p.add_subparsers(dest="figure", required=True)
    _figure(vsub, "kernels", cmd_kernels, "Figure 3: conv1's kernels, the two columns apart, and their chroma",
            "figure3", data=False)
    q = _figure(vsub, "predictions", cmd_predictions, "Figure 4 left: images with their top-5 labels and "
                "probability bars", "figure4-left", split="images shown")
    q.add_argument("-n", type=POSITIVE, default=8, help="how many images (default 8)")
    q = _figure(vsub, "neighbours", cmd_neighbours, "Figure 4 right: nearest training images in fc7 space "
                "(features cached in OUT/features)", "figure4-right", split="query images")
    q.add_argument("--queries", type=POSITIVE, default=6, help="query images (default 6)")
    q.add_argument("-k", type=POSITIVE, default=6, help="neighbours per query (default 6, as the paper)")
    q.add_argument("--db-per-class", type=NON_NEGATIVE, default=0, help="training images per class searched (default 0: all)")
    q = _figure(vsub, "codes", cmd_codes, "binary codes: auto-encoded fc7 vs exact Euclidean vs pixel codes, "
                "Hamming search (features cached in OUT/features)", "codes", split="queries")
    q.add_argument("--bits", type=Number(int, 8, 4096), nargs="+", default=[64, 128, 256], help="code lengths (default 64 128 256)")
    q.add_argument("--db-per-class", type=NON_NEGATIVE, default=0, help="training images per class in the database (0: all)")
    q.add_argument("--query-per-class", type=NON_NEGATIVE, default=0, help="query images per class (0: the whole split)")
    q.add_argument("--steps", type=POSITIVE, default=2000, help="auto-encoder training steps (default 2000)")

    p = sub.add_parser("report", help="one self-contained HTML page about a run: curves, metrics, figures, config "
                       "(fc7 features cached in $XDG_CACHE_HOME/alexnet/features, ~/.cache/alexnet/features: delete at will)")
    p.add_argument("run", metavar="RUN", help="a run folder made by `alexnet train`")
    p.add_argument("-o", "--out", default="report.html", help="HTML file to write (default report.html)")
    p.add_argument("--data", help="store folder (default: the one in the run's config)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=NON_NEGATIVE, default=1, help="torch threads (default 1; 0: torch's default)")
    p.add_argument("--check", action="store_true",
                   help="open the page in headless Chromium: it must render with no console error and every image loaded")
    p.add_argument("--screenshot", metavar="PNG", help="also save a full-page screenshot from Chromium (implies --check)")
    p.set_defaults(func=cmd_report)
