"""The GPU suite in three parts, each one command of at most 7 minutes on one H100/H200 with 16
cores, its own data preparation included, in priority order:

    python benchmarks/gpu_suite.py --part tta   DATA OUT [--pack F.tar.gz]   # DATA: .devdata/imagenette
    python benchmarks/gpu_suite.py --part speed DATA OUT [--pack F.tar.gz]   # DATA: .devdata/imagenette
    python benchmarks/gpu_suite.py --part paper DATA OUT [--resume PREV_OUT] # DATA: .devdata/cifar (or imagenette)
    python benchmarks/gpu_suite.py --part P DATA OUT --dry-run               # tiny sizes on the CPU (the tests)
    python benchmarks/gpu_suite.py --list                                    # the steps of each part

DATA is a folder made here by `python benchmarks/gpu_data.py pack ../shared/data .devdata` and
checked by its SHA-256 manifest on the GPU host before anything uses it. benchmarks/README.md
says what to carry and in which order to run the parts.

Trust rules (issue 19):
- Without a CUDA device the suite stops at once with one line (exit 2); the first step of every
  part proves the GPU (name, compute capability, a CUDA matmul against the CPU's) and every GPU
  step refuses to run unless it succeeded. --dry-run runs the same commands on the CPU, tiny.
- A step is ok only when it exited 0, wrote its result file and the result holds the numbers
  the step promises (Step.check). Fallbacks (Pillow for simplejpeg) are named in the result.
- A part has a wall-clock --budget (default 400 s): a step whose estimate does not fit what is
  left is dropped, a running step is stopped (SIGINT, then SIGKILL) before the budget ends and
  reported with what it had. Dropped, skipped and stopped steps make the exit code 3; a failed
  one 1.
- Figures and the report use the checkpoint of a time-to-accuracy step that succeeded and
  learned (ten-patch top-1 error <= LEARNED), the better of them; the step says which.
- `paper` is resumable: the finished units of its experiments (small JSON files) are copied into
  OUT/cache/ after every step; --resume PREV_OUT puts them back, so nothing is recomputed.

OUT receives results.json (every step: status, seconds, command, its result), summary.md,
commands.sh (the exact commands, in order), logs/, steps/, figures/ and runs/ (metrics files; no
checkpoints); --pack F writes OUT as one archive after every step. Large files (stores, runs,
checkpoints) go to --work (default /tmp/alexnet-gpu-suite).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_data  # noqa: E402

SAME = ""  # Step.dry: the same command in a dry run
BUDGET = 400.0  # default wall seconds of a part: 7 minutes less start-up, wheels and the pack
LEARNED = 0.8  # a run "learned" when its ten-patch top-1 error is at most this (chance on 10 classes: 0.9)
RESERVE = 8.0  # seconds of the budget kept for writing the results and the pack after the last step
MIN_RESUMABLE = 45.0  # a resumable step still starts with this much left (its finished units are kept)
CHECK = Callable[[dict | None, str, bool], str | None]  # (result, log, dry) -> why it is not ok, or None


@dataclass
class Step:
    name: str
    estimate: int  # seconds on one H100/H200 with 16 cores (what the budget counts)
    limit: int  # seconds before the step is stopped
    cmd: str  # shell command; {placeholders} filled by `placeholders`
    check: CHECK  # the numbers the step promises are in its result
    source: str = "guess"  # where the estimate comes from ("H200 2026-11-26: ..." where measured)
    needs: tuple[str, ...] = ()  # steps that must have succeeded first
    gpu: bool = True  # refuses to run unless the gpu step proved a GPU (in a dry run: the CPU)
    dry: str = SAME  # the command in a dry run ("" = cmd, with tiny placeholders)
    when: str | None = None  # a file that must be in DATA
    requires: tuple[str, ...] = ()  # optional modules it needs (missing: skipped, and said so)
    resumable: bool = False  # finished units survive a stop: runs with what is left, cached into OUT
    picks: bool = False  # uses the best learned time-to-accuracy run: {run}, {ckpt}
    compiles: bool = False  # torch.compile: a dry run sets TORCH_COMPILE_DISABLE=1 (no C++ toolchain needed)
    keep: tuple[str, ...] = ()  # files under --work copied into OUT/runs/ afterwards (globs)
    adapt: int = 0  # > 0: {tta_seconds} shrinks to what the budget leaves after the later steps' estimates
    #                and this many seconds of the step's own start-up, evaluation and reporting
    text: bool = False  # summary.md quotes the end of its log (scripts that print tables)


# ---- what each step promises ------------------------------------------------------------------


def _get(r, path: str):
    for k in path.split("."):
        r = r[int(k)] if isinstance(r, list) else r[k]
    return r


def has(*paths: str, positive: tuple[str, ...] = ()) -> CHECK:
    """The result holds every dotted path (and those in `positive` are numbers > 0)."""
    def check(r, log, dry):
        if not isinstance(r, dict):
            return "no result file (or not JSON)"
        for p in (*paths, *positive):
            try:
                v = _get(r, p)
            except (KeyError, IndexError, TypeError, ValueError):
                return f"result lacks {p}"
            if p in positive and not (isinstance(v, (int, float)) and v > 0):
                return f"result's {p} is {v!r}, not a number > 0"
        return None
    return check


def both(*checks: CHECK) -> CHECK:
    def check(r, log, dry):
        return next((why for c in checks if (why := c(r, log, dry))), None)
    return check


def gpu_proved(r, log, dry):
    if why := has("device", "matmul_max_rel_diff")(r, log, dry):
        return why
    if not r.get("matmul_ok"):
        return f"the matmul on {r['device']} differs from the CPU's by {r['matmul_max_rel_diff']:.1e}"
    if not dry and (r.get("device_type") != "cuda" or not r.get("capability")):
        return f"no CUDA device proved ({r['device']})"
    return None


def data_verified(r, log, dry):
    return has("files.0.sha256")(r, log, dry) or (None if r.get("ok") else "the manifest check did not pass")


def prepared(r, log, dry):
    return (has("images", "store", positive=("images", "images_per_s"))(r, log, dry)
            or (None if r.get("fresh") else "not timed into a fresh folder"))


def trained(r, log, dry):
    return has("status", "phases.step", "final_eval.top1_error", positive=("wall_s", "img_s", "epochs"))(r, log, dry)


def looped(r, log, dry):
    return has("status", "phases.step", positive=("wall_s", "img_s", "synthetic_img_s", "epochs"))(r, log, dry)


def model_rows(*names: str) -> CHECK:
    def check(r, log, dry):
        runs = r.get("repeated", [r]) if isinstance(r, dict) else []
        for run in runs:
            got = {x.get("name"): x for x in run.get("rows", [])} if isinstance(run, dict) else {}
            for n in names:
                if not (got.get(n) or {}).get("train_img_s"):
                    return f"no train img/s for {n} (rows: {', '.join(map(str, got)) or 'none'})"
        return None if runs else "no result file (or not JSON)"
    return check


def fed(r, log, dry):
    runs = r.get("repeated", [r]) if isinstance(r, dict) else []
    bad = [i for i, x in enumerate(runs) if not (x.get("feed") or {}).get("store_vs_synthetic")]
    return "no result file" if not runs else (f"run(s) {bad} lack feed.store_vs_synthetic" if bad else None)


def data_rows(gpu_rows: tuple[str, ...]) -> CHECK:
    """Every row measured or skipped with a reason; on a GPU the GPU rows are measured."""
    def check(r, log, dry):
        runs = r.get("repeated", [r]) if isinstance(r, dict) else []
        for run in runs:
            rows = run.get("rows") if isinstance(run, dict) else None
            if not rows:
                return "no rows"
            for x in rows:
                if not x.get("img_s") and not x.get("skipped"):
                    return f"row {x.get('name')}: neither img/s nor a reason for skipping it"
                if not dry and x.get("name") in gpu_rows and not x.get("img_s"):
                    return f"row {x['name']} skipped on a GPU: {x.get('skipped')}"
        return None if runs else "no result file (or not JSON)"
    return check


def checks_passed(r, log, dry):
    if why := has("checks.0.name")(r, log, dry):
        return why
    names = [c["name"] for c in r["checks"]]
    if len(set(names)) != len(names):
        return f"check names repeat: {names}"
    failed = [c["name"] for c in r["checks"] if not c["ok"]]
    return f"failed: {', '.join(failed)}" if failed else None


def ddp_measured(r, log, dry):
    return has("world", "ddp_over_plain.0", positive=("plain_img_per_s", "ddp_img_per_s"))(r, log, dry) or (
        None if r["world"] == 1 else f"world size {r['world']}, not 1")


def lrn_timed(r, log, dry):
    if why := has("rows.0.ms_fwd_bwd")(r, log, dry):
        return why
    impls = {x["impl"] for x in r["rows"]}
    return None if dry or "triton" in impls else f"no Triton rows (implementations: {sorted(impls)})"


def log_has(pattern: str, at_least: int = 1) -> CHECK:
    """Text steps: at least `at_least` log lines match `pattern` (the table rows they promise)."""
    def check(r, log, dry):
        n = len(re.findall(pattern, log, flags=re.M))
        return None if n >= at_least else f"{n} lines of its table in the log, want >= {at_least} ({pattern!r})"
    return check


def experiment(name: str, key: str) -> CHECK:
    return both(has("experiment", key), lambda r, log, dry: None if r["experiment"] == name else
                f"result of {r['experiment']}, not {name}")


# ---- the steps --------------------------------------------------------------------------------

PY = "{py}"
AX = "{alexnet}"
TIMED = "{py} benchmarks/gpu_suite.py --timed prepare"
RAW, JPEG, CIFAR = "{work}/raw-{size}", "{work}/jpeg-{size}", "{work}/cifar10-32"
# a fresh run folder each time (a run folder with a checkpoint is never overwritten)
TRAIN = ("rm -rf {work}/runs/{name} && " + AX + " bench train --data " + RAW + " --device {device} --json-out {json} "
         "--out {work}/runs/{name}")
SYN = "{work}/bench-data/synthetic-{synthetic}"
SYN_JPEG = "{work}/bench-data/stores/synthetic-{synthetic}-jpeg-{data_size}"
DATA_ROWS = ("store-jpeg-gpu", "store-jpeg-mixed")
FED = AX + " bench model --no-compile --device {device} {model_args} --data " + SYN_JPEG + " --data-threads {workers} --json"
H200 = "H200 2026-11-26 (shared/gpu)"

HEAD = [
    Step("gpu", 10, 60, PY + " benchmarks/gpu_suite.py --env {device} > {json}", gpu_proved, gpu=False,
         source="python + torch import + CUDA init; not timed alone"),
    Step("data", 3, 60, PY + " benchmarks/gpu_data.py verify {data} > {json}", data_verified, gpu=False,
         source="SHA-256 of <= 60 MiB"),
]
PREPARE_RAW = Step("prepare-raw", 20, 120, TIMED + " {imagenette} " + RAW + " --size {size} --workers {workers} --quiet > {json}",
                   prepared, needs=("data",), gpu=False, when=gpu_data.IMAGENETTE_PACK,
                   source=f"{H200}: 13,394 images in 16 s with 16 workers (from JPEG)")

TTA = [*HEAD, PREPARE_RAW,
       # issue 10 item 6, the headline: the imagenette-fast preset to >= 80% top-1 (ten patches) in <= 30 s
       Step("tta-fast", 55, 150, TRAIN + " --preset imagenette-fast --epochs 0 --final-eval 10crop {tiny_train}", trained,
            needs=("prepare-raw",), keep=("runs/{name}/metrics.jsonl",),
            source=f"{H200}: loop ~7,500 img/s in-epoch -> 30 epochs x 9,469 in ~38 s, + start-up and evaluation"),
       # the paper's recipe (§4.2 dropout, lr 0.01) to its best: does it learn, how fast, where the time goes
       Step("tta-imagenette", 215, 260, TRAIN + " --preset imagenette --epochs 0 --final-eval 10crop --max-seconds "
            "{tta_seconds} {tiny_train}", trained, needs=("prepare-raw",), keep=("runs/{name}/metrics.jsonl",), adapt=35,
            source=f"{H200}: 2.4 s per epoch; stopped cleanly after 180 s of training (~75 of 90 epochs), + ~30 s"),
       # issue 15: Figure 3 and Figure 4 left of the better learned net
       Step("figures", 20, 90, AX + " viz kernels {ckpt} --device {device} -o {fig}/figure3 && " + AX + " viz predictions "
            "{ckpt} --device {device} -o {fig}/figure4-left && cp {fig}/figure3/result.json {json}",
            has("columns.0.mean_chroma"), picks=True, source="two processes loading a 240 MB checkpoint"),
       # the run report (its best.pt, else last.pt); Figure 4 right only with faiss (the report says so without it)
       Step("report", 25, 120, AX + " report {run} --device {device} -o {fig}/report.html && " + PY
            + " benchmarks/gpu_suite.py --describe-report {fig}/report.html > {json}", has("neighbours", positive=("bytes",)),
            picks=True, source="guess: one process, the kernels, predictions and neighbour panels"),
       ]

SPEED = [*HEAD, PREPARE_RAW,
         Step("model-eager", 30, 120, AX + " bench model --no-compile --device {device} --lrn-impl reference fast triton "
              "{model_args} --json > {json}", model_rows("paper-fast-fast", "paper-fast-triton", "torchvision"),
              source=f"{H200}: 5 rows of 55 steps of 256 at 8-23k img/s ~ 15 s + start-up"),
         Step("model-compiled", 70, 240, AX + " bench model --device {device} --lrn-impl triton {model_args} --json > {json}",
              model_rows("paper-fast", "torchvision"), compiles=True, source="guess: compiling the net twice (train, eval)"),
         # the real loop (per-epoch validation and checkpoints) vs the model's step
         Step("bench-train", 25, 120, TRAIN + " --preset imagenette --epochs 3 {tiny_train}", looped, needs=("prepare-raw",),
              source=f"{H200}: 2.4 s per imagenette epoch x 3 + start-up"),
         Step("prepare-jpeg", 20, 120, TIMED + " {imagenette} " + JPEG + " --size {size} --format jpeg --quality 95 "
              "--subsampling 4:4:4 --workers {workers} --quiet > {json}", prepared, needs=("data",), gpu=False,
              when=gpu_data.IMAGENETTE_PACK, source=f"{H200}: 16 s with 16 workers"),
         Step("gpu-checks", 90, 300, PY + " benchmarks/gpu_checks.py --device {device} --raw " + RAW + " --jpeg " + JPEG
              + " {checks_args} --json-out {json}", checks_passed, needs=("prepare-raw", "prepare-jpeg"), compiles=True,
              source="guess: two compilations (Triton op, CUDA graphs)"),
         # issue 13: every loader row on ImageNet-like JPEGs generated here (their stores included)
         Step("bench-data-synthetic", 40, 240, AX + " bench data --device {device} --work {work}/bench-data --source synthetic "
              "--synthetic-images {synthetic} --rows torchvision store-raw store-jpeg-cpu store-jpeg-pillow store-jpeg-gpu "
              "store-jpeg-mixed store-jpeg-dali {data_args} --json > {json}", data_rows(DATA_ROWS),
              source="guess: generating and preparing 2,000 JPEGs, 7 rows of 50 batches"),
         Step("decode-scaling", 25, 120, PY + " benchmarks/decode_scaling.py " + SYN_JPEG + " {scaling_args}",
              log_has(r"^simplejpeg\s+\d+\s+\d+"), needs=("bench-data-synthetic",), requires=("simplejpeg",), text=True,
              gpu=False),
         Step("prepare-bench", 30, 240, PY + " benchmarks/prepare_bench.py " + SYN + " --format jpeg --workers {workers} "
              "{prepare_args} --work {work}/prepare-bench", log_has(r"^this\s+\d+\s+[\d.]+\s+[\d.]+\s+\d+"),
              needs=("bench-data-synthetic",), text=True, gpu=False, source="guess: prepares of 50 and 200 JPEGs per class"),
         # issue 14: DDP's own cost on one GPU (NCCL, world size 1), plain and DDP steps alternating
         Step("ddp-overhead", 30, 120, PY + " -m torch.distributed.run --standalone --nproc-per-node 1 "
              "benchmarks/dist_bench.py --worker --ddp-overhead --data " + RAW + " {ddp_args} > {json}", ddp_measured,
              needs=("prepare-raw",)),
         Step("model-jpeg-fed", 45, 200, FED + " > {json} && " + FED + " --decode device >> {json} && " + FED
              + " --decode device --device-share 0.7 >> {json}", fed, needs=("bench-data-synthetic",)),
         Step("lrn-bench", 25, 120, PY + " benchmarks/lrn_bench.py --device {device} {lrn_args} --json-out {json}", lrn_timed),
         ]

EXP = AX + " experiment {exp} --data {store} --size {exp_size} --device {device} --out {fig}/{exp} --work {work}/experiments"
PAPER = [*HEAD,
         Step("prepare-cifar", 15, 120, TIMED + " {data}/" + gpu_data.CIFAR + " " + CIFAR + " --size 32 --workers {workers} "
              "--quiet > {json}", prepared, needs=("data",), gpu=False, when=gpu_data.CIFAR),
         Step("figure1", 300, 400, (EXP + " && cp {fig}/{exp}/result.json {json}").replace("{exp}", "figure1")
              .replace("{store}", CIFAR), experiment("figure1", "epochs_to_target"), needs=("prepare-cifar",),
              resumable=True, source="guess: 2 x (6 lrs x 5 epochs + 3 seeds x <= 60 epochs) of 50,000 CIFAR images"),
         Step("lrn-cifar", 400, 400, (EXP + " && cp {fig}/{exp}/result.json {json}").replace("{exp}", "lrn-cifar")
              .replace("{store}", CIFAR), experiment("lrn-cifar", "test_error"), needs=("prepare-cifar",), resumable=True,
              source="guess: 2 nets x 3 seeds x 45,000 steps"),
         Step("prepare-imagenette", 20, 120, TIMED + " {imagenette} " + RAW + " --size {size} --workers {workers} --quiet > {json}",
              prepared, needs=("data",), gpu=False, when=gpu_data.IMAGENETTE_PACK, source=PREPARE_RAW.source),
         Step("ablations", 400, 400, (EXP + " && cp {fig}/{exp}/result.json {json}").replace("{exp}", "ablations")
              .replace("{store}", RAW), experiment("ablations", "rows"), needs=("prepare-imagenette",), resumable=True,
              source="guess: 10 variants x 2 seeds x 2,960 steps of 128"),
         ]

PARTS: dict[str, list[Step]] = {"tta": TTA, "speed": SPEED, "paper": PAPER}
TTA_RUNS = ("tta-fast", "tta-imagenette")
ALWAYS = ("gpu", "data")  # every call proves its GPU and checks its data, whatever --only says


def placeholders(data: Path, out: Path, work: Path, dry: bool, workers: int | None = None) -> dict[str, str]:
    """What the {names} in a command mean; a dry run shrinks every size (CPU, seconds)."""
    py = sys.executable
    workers = workers or os.cpu_count() or 1
    tiny = ("model.width=0.125 data.size=72 data.crop=64 optim.batch_size=16 eval.batch_size=64 "
            "schedule.warmup_epochs=0 train.max_steps_per_epoch=2 train.log_every_steps=1")
    return {
        "py": py, "alexnet": f"{py} -m alexnet", "data": str(data), "imagenette": str(data / gpu_data.IMAGENETTE_PACK),
        "work": str(work), "out": str(out), "fig": str(out / "figures"), "device": "cpu" if dry else "cuda",
        "size": "72" if dry else "256", "workers": "2" if dry else str(workers),
        "tiny_train": f"--epochs 2 --synthetic-steps 2 --warmup 0 --set {tiny} train.threads=1" if dry else "",
        "tta_seconds": "60" if dry else "180",
        "model_args": "--batch-size 2 --steps 1 --warmup 0 --width 0.125" if dry else "--batch-size 256 --steps 50 --warmup 5",
        "data_size": "80" if dry else "256",  # bench data's stores (bench model's feed crops 7/8 of it: >= 64 px)
        "data_args": ("--batch-size 4 --batches 2 --workers 2 --size 80 --crop 64" if dry
                      else f"--batch-size 256 --batches 50 --workers {workers}"),
        "synthetic": "20" if dry else "2000",
        "scaling_args": ("--threads 2 --batch-size 4 --batches 2 --rounds 1" if dry else
                         f"--threads {' '.join(str(t) for t in (2, 4, 8, 16) if t <= workers)} --batch-size 256 "
                         "--batches 4 --rounds 2"),
        "prepare_args": "--per-class 1 2 --rounds 1" if dry else "--per-class 50 200 --rounds 1",
        "ddp_args": (f"--preset quick --steps 1 --warmup 1 --rounds 1 --set {tiny} train.device=cpu train.threads=1 "
                     "data.threads=1" if dry else "--preset imagenette --steps 30 --warmup 5 --rounds 3 --set "
                     "train.device=cuda train.precision=bf16 train.channels_last=true model.lrn_impl=triton"),
        "lrn_args": "--small" if dry else "",
        "checks_args": "--batch-size 4 --batches 3" if dry else "",
        "exp_size": "tiny" if dry else "full",
    }


# ---- running ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    status: str  # ok | failed | invalid | timeout | stopped | dropped | skipped
    seconds: float = 0.0
    rc: int | None = None
    cmd: str = ""
    reason: str = ""
    result: dict | None = None
    log: str = ""
    excerpt: str = ""  # a text step's result: the end of its log
    uses: str = ""  # a step that picks a checkpoint: which one, and why
    estimate: int = 0
    source: str = ""


NOT_RUN = ("dropped", "skipped", "stopped")  # incomplete: exit code 3
BAD = ("failed", "invalid", "timeout")  # exit code 1
CHOSEN = ("not in --only",)  # skips the caller asked for: not incomplete


@dataclass
class Run:
    """How a part runs: where, within which budget, and what it does around each step."""

    values: dict[str, str]
    out: Path
    budget: float
    dry: bool = False
    data: Path = Path(".")
    only: list[str] | None = None
    grace: float = 20.0
    pack: Path | None = None
    part: str = "?"
    outcomes: list[Outcome] = field(default_factory=list)


def run_steps(steps: list[Step], run: Run) -> list[Outcome]:
    """Run `steps` in order within run.budget seconds; results (and the pack) are rewritten after each step."""
    out = run.out
    for sub in ("logs", "steps", "figures", "runs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    (out / "commands.sh").write_text("#!/bin/bash\n# the exact commands of this part, in order\n")
    for i, step in enumerate(steps):
        left = run.budget - (time.monotonic() - start) - RESERVE
        o = _decide(step, run, left)
        if o is None:
            limit = float(step.limit) if run.dry else max(1.0, min(step.limit, left))
            extra = {}
            if step.adapt and not run.dry:  # leave the later steps their estimates: train for less, end cleanly
                after = sum(s.estimate for s in steps[i + 1:] if not (run.only and s.name not in run.only))
                cap = float(run.values["tta_seconds"])
                extra["tta_seconds"] = str(int(max(20.0, min(cap, left - after - step.adapt))))
            o = _run(step, run, limit, cut=not run.dry and limit < step.limit, extra=extra)
        o.estimate, o.source = step.estimate, step.source
        run.outcomes.append(o)
        print(f"[gpu-suite] {o.name:<22} {o.status:<8} {o.seconds:7.1f} s  {o.reason}", flush=True)
        _after(step, run)
    return run.outcomes


def _after(step: Step, run: Run) -> None:
    if step.resumable:
        save_cache(Path(run.values["work"]), run.out)
    write_results(run)
    if run.pack:
        pack_folder(run.out, run.pack)


def _decide(step: Step, run: Run, left: float) -> Outcome | None:
    """Why `step` is not run (an Outcome), or None to run it."""
    def no(status: str, reason: str) -> Outcome:
        return Outcome(step.name, status, reason=reason)
    done = {o.name: o.status for o in run.outcomes}
    if run.only and step.name not in run.only and step.name not in ALWAYS:
        return no("skipped", "not in --only")
    if step.gpu and done.get("gpu") != "ok":
        return no("skipped", "refused: the gpu step did not prove a GPU" + (" (the CPU in a dry run)" if run.dry else ""))
    if step.when and not (run.data / step.when).exists():
        return no("skipped", f"no {step.when} in {run.data}")
    if missing := [m for m in step.requires if not _importable(m)]:
        return no("skipped", f"needs {', '.join(missing)} (not installed; carry its wheel)")
    if missing := [n for n in step.needs if done.get(n) != "ok"]:
        return no("skipped", f"needs {', '.join(missing)}")
    if step.picks and pick_run(run.outcomes, run.dry)[0] is None:
        return no("skipped", pick_run(run.outcomes, run.dry)[1])
    if not run.dry and step.estimate > left and not (step.resumable and left >= MIN_RESUMABLE):
        return no("dropped", f"estimate {step.estimate} s > {max(0, left):.0f} s left of --budget")
    return None


def pick_run(outcomes: list[Outcome], dry: bool) -> tuple[Outcome | None, str]:
    """The time-to-accuracy step that succeeded and learned with the lowest ten-patch top-1 error,
    and a line saying why it (or none) was chosen. A dry run's nets cannot learn in four steps:
    there any finished run counts."""
    seen, good = [], []
    for o in outcomes:
        if o.name not in TTA_RUNS:
            continue
        err = ((o.result or {}).get("final_eval") or {}).get("top1_error")
        seen.append(f"{o.name} {o.status}" + ("" if err is None else f" at {100 * err:.1f}% error"))
        complete = o.status == "ok" or (o.status == "stopped" and o.reason.endswith("(what it had when stopped)"))
        if complete and err is not None and (dry or err <= LEARNED):
            good.append((err, o))
    if not good:
        return None, (f"no time-to-accuracy run succeeded and learned (<= {100 * LEARNED:.0f}% ten-patch top-1 error): "
                      + ("; ".join(seen) or "none ran"))
    err, best = min(good, key=lambda g: g[0])
    return best, f"{best.name} ({100 * err:.1f}% ten-patch top-1 error; of: {'; '.join(seen)})"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False


def _run(step: Step, run: Run, limit: float, cut: bool, extra: dict | None = None) -> Outcome:
    out = run.out
    json_path, log_path = out / "steps" / f"{step.name}.json", out / "logs" / f"{step.name}.log"
    json_path.unlink(missing_ok=True)
    extra, uses = dict(extra or {}), ""
    if step.picks:
        best, uses = pick_run(run.outcomes, run.dry)
        extra.update(run=best.result["run"], ckpt=str(Path(best.result["run"]) / "last.pt"))
        uses = f"{extra['ckpt']}: {uses}"
    cmd = (step.dry or step.cmd if run.dry else step.cmd).format(**{**run.values, **extra}, name=step.name, json=json_path)
    with open(out / "commands.sh", "a") as f:
        f.write(f"# {step.name}\n{cmd}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1", **({"TORCH_COMPILE_DISABLE": "1"} if run.dry and step.compiles else {})}
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        log.write(f"$ {cmd}\n")
        log.flush()
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc, timed_out = proc.wait(timeout=limit), False
        except subprocess.TimeoutExpired:
            rc, timed_out = _stop(proc, run.grace), True
    seconds = time.monotonic() - t0
    result = annotate(step.name, _read_json(json_path))
    text = log_path.read_text(errors="replace")
    if timed_out:
        status = "stopped" if cut else "timeout"
        reason = (f"stopped at {limit:.0f} s to keep the part within --budget" if cut else f"time limit {limit:.0f} s")
        if cut and step.check(result, text, run.dry) is None:
            reason += "; its result is complete (what it had when stopped)"
    elif rc != 0:
        status, reason = "failed", _last_line(log_path)
    elif why := step.check(result, text, run.dry):
        status, reason = "invalid", f"exit 0 but {why}"
    else:
        status, reason = "ok", ""
    for pattern in step.keep:
        _keep(Path(run.values["work"]), pattern.format(name=step.name), out / "runs")
    excerpt = _tail(log_path, 60) if step.text else ""
    return Outcome(step.name, status, seconds, rc, cmd, reason, result, str(log_path.relative_to(out)), excerpt, uses)


def _keep(work: Path, pattern: str, dest: Path) -> None:
    for f in work.glob(pattern):
        shutil.copy2(f, dest / "-".join(f.relative_to(work).parts[1:]))


def annotate(name: str, result: dict | None) -> dict | None:
    """Name the fallbacks a result hides: bench data's store-jpeg-cpu row decodes with Pillow when
    simplejpeg is missing (the same process environment as the step's)."""
    if not isinstance(result, dict):
        return result
    decoder = "simplejpeg" if _importable("simplejpeg") else "pillow"
    for run in result.get("repeated", [result]):
        rows = run.get("rows") if isinstance(run, dict) else None
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("name") == "store-jpeg-cpu" and not row.get("skipped"):
                row["decoder"] = decoder
                if decoder == "pillow":
                    row["fallback"] = "Pillow: simplejpeg is not installed (the same as store-jpeg-pillow)"
    return result


def _stop(proc: subprocess.Popen, grace: float) -> int:
    """SIGINT to the step's process group (a training run saves and reports), then SIGKILL."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def _read_json(path: Path) -> dict | None:
    """The JSON object the step wrote: the whole file, else its JSON lines (several: {"repeated": [...]})."""
    try:
        text = path.read_text()
        value = json.loads(text)
        return value if isinstance(value, dict) else None
    except OSError:
        return None
    except ValueError:
        pass
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    found = [f for f in found if isinstance(f, dict)]
    return {"repeated": found} if len(found) > 1 else (found[0] if found else None)


def _last_line(path: Path) -> str:
    return _tail(path, 1)[:200]


def _tail(path: Path, n: int) -> str:
    """The last n non-empty lines of a step's log, without the command line at its top."""
    lines = [line for line in path.read_text(errors="replace").splitlines()[1:] if line.strip()]
    return "\n".join(lines[-n:])


def pack_folder(folder: Path, archive: Path) -> None:
    """FOLDER as ARCHIVE (.tar.gz), replaced whole (a reader never sees half of it)."""
    import tarfile
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    os.replace(tmp, archive)


# ---- paper: the experiments' cache across calls -------------------------------------------------


def save_cache(work: Path, out: Path) -> int:
    """The experiments' finished units (JSON: results of training and evaluation, settings) into
    OUT/cache/; checkpoints stay behind (too large to come back)."""
    src, n = work / "experiments", 0
    for f in sorted(src.rglob("*.json")) if src.is_dir() else []:
        dest = out / "cache" / "experiments" / f.relative_to(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
        n += 1
    return n


def restore_cache(prev_out: Path, work: Path) -> int:
    """A previous call's OUT/cache/ back into --work (units already there are kept)."""
    src, n = prev_out / "cache" / "experiments", 0
    if not src.is_dir():
        return 0
    for f in sorted(src.rglob("*.json")):
        dest = work / "experiments" / f.relative_to(src)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
            n += 1
    return n


# ---- results ----------------------------------------------------------------------------------


def exit_code(outcomes: list[Outcome]) -> int:
    if any(o.status in BAD for o in outcomes):
        return 1
    return 3 if any(o.status in NOT_RUN and o.reason not in CHOSEN for o in outcomes) else 0


def write_results(run: Run) -> None:
    outcomes = run.outcomes
    data = {"part": run.part, "date": datetime.datetime.now().isoformat(timespec="seconds"), "budget_s": run.budget,
            "dry_run": run.dry, "total_s": sum(o.seconds for o in outcomes), "exit_code": exit_code(outcomes),
            "steps": [vars(o) for o in outcomes]}
    (run.out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (run.out / "summary.md").write_text(summary_markdown(run))


def summary_markdown(run: Run) -> str:
    outcomes, out = run.outcomes, run.out
    env = next((o.result for o in outcomes if o.name == "gpu" and o.result), {})
    optional = ", ".join(f"{k} {v or 'missing'}" for k, v in env.get("optional", {}).items())
    lines = [f"# GPU suite, part {run.part}{' (dry run: tiny sizes on the CPU, numbers mean nothing)' if run.dry else ''}",
             "", f"{env.get('device', '?')} (capability {env.get('capability')}), {env.get('host_cores', '?')} CPUs, torch "
             f"{env.get('torch', '?')}, triton {env.get('triton', '?')}, commit {env.get('commit', '?')}, "
             f"{env.get('date', '?')}; budget {run.budget:.0f} s, used {sum(o.seconds for o in outcomes):.0f} s; "
             f"exit code {exit_code(outcomes)}" + (f"; optional packages: {optional}" if optional else ""), ""]
    data = next((o.result for o in outcomes if o.name == "data" and o.result), {})
    lines += [f"DATA: {f['name']} ({f['bytes'] / 2**20:.1f} MiB, SHA-256 {f['sha256'][:16]}...)" for f in data.get("files", [])]
    lines += [""] if data.get("files") else []
    tta = [o for o in outcomes if o.name in TTA_RUNS and o.result]
    if tta:
        lines += ["## Time to accuracy (Imagenette val, ten patches)", "",
                  "| run | top-1 acc (10 patches) | training wall s | first step - median step s | img/s end to end "
                  "| epochs | status | >= 80% in <= 30 s |", "|---|---:|---:|---:|---:|---:|---|---|"]
        lines += [_tta_row(o) for o in tta] + [""]
    lines += ["## Steps", "", "| step | status | seconds | estimate s | note |", "|---|---|---:|---:|---|"]
    lines += [f"| {o.name} | {o.status} | {o.seconds:.1f} | {o.estimate} | {(o.reason or o.uses).replace('|', '/')} |"
              for o in outcomes]
    not_run = [o for o in outcomes if (o.status in NOT_RUN or o.status in BAD) and o.reason not in CHOSEN]
    if not_run:
        lines += ["", "Not complete: " + "; ".join(f"{o.name} {o.status} ({o.reason})" for o in not_run)]
    for o in outcomes:
        if o.name not in ("gpu", "data") and o.result and (table := _summarised(o.result)):
            lines += ["", f"### {o.name}", "", *([f"checkpoint: {o.uses}", ""] if o.uses else []), *table]
        elif o.excerpt:
            lines += ["", f"### {o.name}", "", "```", o.excerpt, "```"]
    files = sorted(f for f in (out / "figures").rglob("*") if f.is_file()) if (out / "figures").is_dir() else []
    if files:
        lines += ["", "## Files", "", *[f"- `{f.relative_to(out)}` ({f.stat().st_size / 1e3:.0f} KB)" for f in files]]
    return "\n".join(lines) + "\n"


def _tta_row(o: Outcome) -> str:
    r = o.result
    acc = 1 - r["final_eval"]["top1_error"] if r.get("final_eval") else None
    goal = acc is not None and acc >= 0.8 and r.get("wall_s", 1e9) <= 30
    excess = r.get("first_step_excess_s")
    return (f"| {o.name} | {_pct(acc)} | {r.get('wall_s', 0):.1f} | {'' if excess is None else f'{excess:.1f}'} | "
            f"{r.get('img_s', 0):.0f} | {r.get('epochs')} | {r.get('status')} | {'yes' if goal else 'no'} |")


def _rate(x) -> str:
    return "skipped" if x is None else f"{x:.0f}"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _summarised(r: dict) -> list[str]:
    """_result_table, or one line saying why not: a result of an unexpected shape never stops the suite."""
    try:
        return _result_table(r)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return [f"(a result of an unexpected shape: {type(e).__name__} {e}; see results.json)"]


def _result_table(r: dict) -> list[str]:
    if "repeated" in r and all(x.get("feed") for x in r["repeated"]):  # bench model --data, several loaders
        return ["The training step fed from the store vs from a batch already on the device (goal >= 0.90):", "",
                "| loader | store img/s | device batch img/s | ratio |", "|---|---:|---:|---:|",
                *[_feed_row(x["feed"]) for x in r["repeated"]]]
    if "repeated" in r:  # one command run several times
        return [line for run in r["repeated"] for line in [*_result_table(run), ""]][:-1]
    if "phases" in r:  # bench train
        rows = [f"| {k} | {v['seconds']:.2f} | {100 * v['share']:.1f}% |" for k, v in r["phases"].items()]
        return [f"{r['img_s']:.0f} img/s end to end vs {r['synthetic_img_s']:.0f} img/s for the model's step on a "
                f"device batch (ratio {r['end_to_end_vs_synthetic']:.2f}); {r['epochs']} epochs, batch {r['batch']}, "
                f"wall {r['wall_s']:.1f} s", "", "| part | seconds | share |", "|---|---:|---:|", *rows]
    if r.get("rows") and "train_img_s" in r["rows"][0]:  # bench model
        rows = [f"| {x['name']} | {x['precision']} | {x['train_img_s']:.0f} | {x['infer_img_s']:.0f} | "
                f"{x.get('tencrop_img_s') or 0:.0f} |" for x in r["rows"]]
        return [f"batch {r['batch']}, compile {r['compile']} ({r.get('compile_mode')})", "",
                "| setup | precision | train img/s | infer img/s | 10-patch img/s |", "|---|---|---:|---:|---:|", *rows,
                *([_feed_line(r["feed"])] if r.get("feed") else [])]
    if r.get("rows") and "img_s" in r["rows"][0]:  # bench data
        rows = [f"| {x['name']} | {_rate(x['img_s'])} | {x.get('decoder', '')} | {x.get('fallback') or x['skipped'] or ''} |"
                for x in r["rows"]]
        return [f"source {r['source']}, {r['images']} JPEGs, batch {r['batch']}, {r['workers']} workers, "
                f"device_share {r.get('device_share')}", "", "| row | img/s | decoder | fallback / skipped |",
                "|---|---:|---|---|", *rows]
    if r.get("rows") and "ms_fwd_bwd" in r["rows"][0]:  # lrn_bench.py
        return [f"byte floor at {r['bandwidth_tb_s']:.2f} TB/s ({r['bandwidth_source']})", "",
                "| shape | dtype | layout | impl | fwd+bwd ms | floor ms |", "|---|---|---|---|---:|---:|",
                *[f"| {x['shape']} | {x['dtype']} | {x['layout']} | {x['impl']} | {x['ms_fwd_bwd']:.3f} | "
                  f"{x['floor_ms']:.3f} |" for x in r["rows"]]]
    if "checks" in r:  # gpu_checks
        return [f"- {c['name']}: {'pass' if c['ok'] else 'FAIL'} ({c['detail']})" for c in r["checks"]]
    if "images_per_s" in r:  # a timed prepare
        return [f"{r['images']} images in {r['seconds']:.1f} s: {r['images_per_s']:.0f} img/s ({r['store']}, fresh folder)"]
    if "ddp_img_per_s" in r:  # dist_bench.py --ddp-overhead
        return [f"one process, {r['device']}, global batch {r['global_batch']}: "
                f"plain {r['plain_img_per_s']:.0f} img/s, DDP {r['ddp_img_per_s']:.0f} img/s; DDP step time / plain, per round: "
                + ", ".join(f"{x:.3f}" for x in r["ddp_over_plain"])]
    if r.get("figure") == "figure3":  # alexnet viz kernels
        return [f"conv1 column {c['column']}: {c['kernels']} kernels, mean chroma {c['mean_chroma']:.3f}, "
                f"{c['colour_kernels']} mostly colour (random kernels: {r['random_chroma']:.3f}; {r['checkpoint']})"
                for c in r["columns"]]
    if r.get("experiment") == "lrn-cifar":
        e, paper = r["test_error"], r["paper"]
        return [f"CIFAR-10 test error ({r['size']} size, {r['settings']['seeds']} seed(s)): without LRN "
                f"{_pct(e['without_lrn'])}, with LRN {_pct(e['with_lrn'])} (paper: {_pct(paper['without_lrn'])}, "
                f"{_pct(paper['with_lrn'])})"]
    if r.get("experiment") in ("figure1", "ablations"):
        return [f"{r['experiment']} ({r['size']} size): see figures/{r['experiment']}/table.md"]
    if "report" in r:
        return [f"{r['report']} ({r['bytes'] / 1e3:.0f} KB); Figure 4 right: "
                + ("in it" if r["neighbours"] else f"left out ({r['neighbours_left_out']})")]
    return [f"(no summary for this result: see results.json) keys: {', '.join(list(r)[:12])}"]


def _loader(f: dict) -> str:
    how = ", ".join(f"{k} {f[k]}" for k in ("decode", "cpu_decoder", "device_share", "backend") if f.get(k) is not None)
    return f"{Path(f['store']).name} ({f['threads']} threads, {how})"


def _feed_line(f: dict) -> str:
    return (f"\nfed from {_loader(f)}: {f['store_img_s']:.0f} img/s vs {f['synthetic_img_s']:.0f} from a batch on the "
            f"device: **{f['store_vs_synthetic']:.2f}** (goal >= 0.90)")


def _feed_row(f: dict) -> str:
    return f"| {_loader(f)} | {f['store_img_s']:.0f} | {f['synthetic_img_s']:.0f} | **{f['store_vs_synthetic']:.2f}** |"


# ---- small helpers run as steps -----------------------------------------------------------------


def env_info(device: str) -> dict:
    """The machine, and proof of its device: name, compute capability and a matmul on it against
    the same matmul on the CPU (fp32, TF32 off). Missing git only leaves the commit out."""
    import torch
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    from alexnet.runtime import run_facts
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"gpu_suite: error: no CUDA GPU: torch {torch.__version__} sees none")
    info = {**run_facts(dev), "triton": triton_version, "cuda": torch.version.cuda, "device_type": dev.type, "capability": None,
            "gpu_memory_gib": None, "optional": {m: _version(m) for m in ("simplejpeg", "nvidia.dali", "faiss",
                                                                           "matplotlib")}}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(device=props.name, capability=f"{props.major}.{props.minor}", gpu_memory_gib=props.total_memory / 2**30)
        torch.backends.cuda.matmul.allow_tf32 = False
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=gen), torch.randn(1024, 1024, generator=gen)
    want, got = a @ b, (a.to(dev) @ b.to(dev)).cpu()
    rel = float((got - want).abs().max() / want.abs().max())
    info.update(matmul_max_rel_diff=rel, matmul_ok=rel < 1e-4)
    return info


def _version(module: str) -> str | None:
    """The version of an optional module, None when it is not installed."""
    if not _importable(module):
        return None
    try:
        return str(getattr(importlib.import_module(module), "__version__", "installed"))
    except Exception:  # installed but broken: say so rather than fail the step
        return "broken"


def timed_prepare(args: list[str]) -> dict:
    """`alexnet prepare ARGS` in this process, timed into a fresh folder (an existing store there
    is removed first: prepare returns at once on a complete store), with the images stored."""
    import contextlib

    from alexnet.cli import main as alexnet_main
    store = Path(args[2])
    existed = store.exists()
    if existed:
        shutil.rmtree(store)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        rc = alexnet_main(args)
    seconds = time.perf_counter() - start
    meta = json.loads((store / "store.json").read_text()) if rc == 0 else {}
    images = meta.get("summary", {}).get("stored")
    return {"command": "alexnet " + " ".join(args), "rc": rc, "store": str(store), "format": meta.get("format"),
            "images": images, "seconds": seconds, "images_per_s": images / seconds if images else None,
            "fresh": True, "removed_existing": existed}


def describe_report(path: Path) -> dict:
    """What the HTML report holds: its size, and whether Figure 4 right is in it or why not."""
    page = path.read_text()
    left_out = re.search(r"Left out: ([^<]*)", page)
    return {"report": str(path), "bytes": path.stat().st_size, "neighbours": left_out is None,
            "neighbours_left_out": left_out.group(1) if left_out else None}


def list_parts() -> str:
    lines = []
    for part, steps in PARTS.items():
        total = 0
        lines.append(f"part {part}:")
        for s in steps:
            total += s.estimate
            lines.append(f"  {s.name:<22} ~{s.estimate:>4} s (limit {s.limit:>3} s, ~{total:>4} s so far)"
                         f"{'  GPU' if s.gpu else ''}{'  resumable' if s.resumable else ''}"
                         f"{'  needs ' + ' '.join(s.requires) if s.requires else ''}  [{s.source}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", type=Path, help="a folder made by `gpu_data.py pack` (.devdata/imagenette, .devdata/cifar)")
    p.add_argument("out", nargs="?", type=Path, help="folder for results.json, summary.md, commands.sh, logs/, steps/")
    p.add_argument("--part", choices=list(PARTS), help="which part (priority: tta, speed, paper)")
    p.add_argument("--budget", type=float, default=BUDGET, help=f"wall seconds for the part (default {BUDGET:.0f}: 7 min with margin)")
    p.add_argument("--work", type=Path, default=Path("/tmp/alexnet-gpu-suite"), help="stores and runs (large; not OUT)")
    p.add_argument("--only", nargs="+", default=None, metavar="STEP",
                   help="run only these steps of the part (and gpu and data, always)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: does every step still run?")
    p.add_argument("--resume", type=Path, default=None, metavar="PREV_OUT",
                   help="a previous call's OUT (its cache/): the experiments' finished units are not recomputed")
    p.add_argument("--list", action="store_true", help="print the steps of each part and exit")
    p.add_argument("--pack", type=Path, default=None, metavar="TAR_GZ",
                   help="after every step, also write OUT as this .tar.gz (one file to carry back, complete so far)")
    p.add_argument("--env", metavar="DEVICE", help=argparse.SUPPRESS)  # a step: print env_info() as JSON
    p.add_argument("--timed", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # a step: `--timed prepare ARGS`
    p.add_argument("--describe-report", type=Path, help=argparse.SUPPRESS)  # a step: the report's size and panels
    a = p.parse_args(argv)
    if a.describe_report:
        print(json.dumps(describe_report(a.describe_report)))
        return 0
    if a.env:
        print(json.dumps(env_info(a.env)))
        return 0
    if a.timed:
        result = timed_prepare(a.timed)
        print(json.dumps(result))
        return result["rc"]
    if a.list:
        print(list_parts())
        return 0
    if a.part is None or a.data is None or a.out is None:
        p.error("--part, DATA and OUT are required")
    steps = PARTS[a.part]
    if unknown := set(a.only or []) - {s.name for s in steps}:
        return _error(f"unknown step(s) {', '.join(sorted(unknown))} in part {a.part}: see --list")
    if not a.data.is_dir():
        return _error(f"{a.data} is not a folder: make it with `python benchmarks/gpu_data.py pack ../shared/data .devdata`")
    if not a.dry_run:
        import torch
        if not torch.cuda.is_available():
            return _error(f"no CUDA GPU here (torch {torch.__version__} sees none): the suite measures a GPU; "
                          "--dry-run runs its steps on the CPU")
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    if a.resume:
        print(f"[gpu-suite] resumed {restore_cache(a.resume, a.work.resolve())} finished units from {a.resume}", flush=True)
    run = Run(placeholders(a.data.resolve(), a.out.resolve(), a.work.resolve(), a.dry_run), a.out.resolve(), a.budget,
              a.dry_run, a.data.resolve(), a.only, pack=a.pack.resolve() if a.pack else None, part=a.part)
    outcomes = run_steps(steps, run)
    code = exit_code(outcomes)
    bad = [f"{o.name} {o.status}" for o in outcomes if (o.status in BAD or o.status in NOT_RUN) and o.reason not in CHOSEN]
    print(f"[gpu-suite] part {a.part}: {a.out / 'summary.md'}; exit {code}; " + ("; ".join(bad) if bad else "every step ok"))
    return code


def _error(message: str) -> int:
    print(f"gpu_suite: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
