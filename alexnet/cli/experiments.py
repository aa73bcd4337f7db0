"""`alexnet experiment NAME`: the paper's experiments, each writing results/<name>/."""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from ..errors import UserError
from .args import NON_NEGATIVE, Number, check_output


def cmd_experiment(args) -> int:
    if args.name == "claims":
        return cmd_claims(args)
    if args.results is not None:
        raise UserError("--results is read by `alexnet experiment claims` only; the others write to --out")
    from ..data.store import open_store
    from ..experiments import EXPERIMENTS, run_experiment
    from ..experiments.common import Context
    from ..runtime import configure_torch, resolve_device
    if args.seeds < 0 or (args.threads or 0) < 0 or args.hours < 0:
        raise UserError("--seeds, --threads and --hours must be >= 0")
    if not args.data:
        raise UserError(f"experiment {args.name} needs --data STORE (a {EXPERIMENTS[args.name][1]} store)")
    on_cuda = resolve_device(args.device, "--device").type == "cuda"
    threads = args.threads if args.threads is not None else (0 if on_cuda else 1)
    open_store(args.data)  # clear errors now rather than after the first unit of work
    # the threads the units run with, also when every unit is cached and none configures torch: the
    # result's device field says them (a rerun from the cache used to record torch's default)
    configure_torch(threads, deterministic=False)
    out = Path(args.out or (f"results/{args.name}" if args.size == "cpu" else f"results/{args.size}/{args.name}"))
    check_output(str(out / "result.json"), "--out")
    check_output(str(Path(args.work) / args.name / args.size / "x"), "--work")
    ctx = Context(name=args.name, data=Path(args.data).resolve(), out=out,
                  work=Path(args.work) / args.name / args.size, size=args.size, device=args.device,
                  threads=threads, seeds=args.seeds, progress=not args.quiet,
                  command=command_line(), deadline=time.monotonic() + 3600 * args.hours if args.hours else 0.0)
    print(f"{args.name}: {EXPERIMENTS[args.name][2]}", file=sys.stderr)
    if not run_experiment(args.name, ctx):
        print(f"{args.name}: no seed complete within --hours {args.hours:g}; finished units are cached under "
              f"{ctx.work}: rerun the same command to continue", file=sys.stderr)
        return 0
    print((ctx.out / "table.md").read_text())
    print(f"written: {ctx.out}/result.json, {ctx.out}/{args.name}.png, {ctx.out}/table.md")
    return 0


def cmd_claims(args) -> int:
    """results/claims.md and claims.json from the result files (nothing is trained)."""
    from ..experiments import claims
    results = Path(args.results or "results")
    if not results.is_dir():
        raise UserError(f"{results} is not a folder of results: give --results RESULTS")
    claims.write(results)
    print((results / "claims.md").read_text())
    print(f"written: {results}/claims.md, {results}/claims.json")
    return 0


def register(sub) -> None:
    from ..experiments import EXPERIMENTS, SIZES  # not .common: it imports torch, and every command builds this parser
    names = "; ".join(f"{k}: {v[2]} (a {v[1]} store)" for k, v in EXPERIMENTS.items())
    p = sub.add_parser("experiment", help="run one of the paper's experiments into results/NAME/",
                       description=f"Experiments: {names}.")
    p.add_argument("name", choices=[*EXPERIMENTS, "claims"],
                   help="which experiment; claims: the table of the paper's claims from the results (no training)")
    p.add_argument("--data", help="store folder it trains on (CIFAR-10 or Imagenette, see the list above)")
    p.add_argument("--results",
                   help="claims: the folder of results it reads and where claims.md goes (default: results)")
    p.add_argument("--size", choices=SIZES, default="cpu",
                   help="tiny: seconds (tests); cpu: the README's 2-core CPU run; full: the paper-sized run (a GPU)")
    p.add_argument("--out", help="result folder (default: results/NAME at the cpu size, results/SIZE/NAME at the others: "
                                 "the claims table reads results/full/NAME for the full size)")
    p.add_argument("--work", default="runs/experiments",
                   help="checkpoints and finished units go to WORK/NAME/SIZE; a rerun reuses them (default: runs/experiments)")
    p.add_argument("--seeds", type=NON_NEGATIVE, default=0, help="seeds per setting (default: the size's); a larger --seeds in a later session adds seeds, reusing the "
                        "finished units")
    p.add_argument("--hours", type=Number(float, 0.0), default=0.0,
                   help="stop starting new units after this many hours (0: no limit); finished units stay cached and "
                        "the same command continues, adding seeds, in a later session; the result holds the seeds "
                        "complete so far")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=NON_NEGATIVE, default=None,
                   help="torch and decode threads; 0: torch's default and every core for decoding (default: 1 on a "
                        "CPU, where one thread is fastest on a shared 2-core machine; 0 on CUDA)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_experiment)


def command_line() -> str:
    """The command as typed (`alexnet ...` or `python -m alexnet ...`), to write beside a result;
    without --quiet, which changes what is printed, not the result."""
    if Path(sys.argv[0]).name in ("alexnet", "__main__.py"):
        return "alexnet " + shlex.join(a for a in sys.argv[1:] if a != "--quiet")
    return ""
