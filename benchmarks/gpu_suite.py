"""The GPU suite: one command that measures everything in this project that needs a GPU, given
only a folder with imagenette-224.tar.gz (and cifar10-jpeg.tar.gz if present).

    PYTHONPATH=. python benchmarks/gpu_suite.py DATA_DIR OUT [--budget 480] [--work DIR] [--only NAME ...] [--pack F]
    PYTHONPATH=. python benchmarks/gpu_suite.py DATA_DIR OUT --dry-run      # tiny sizes, CPU, minutes
    python benchmarks/gpu_suite.py --list                                   # the steps, in priority order

Made for one H100 or H200 with 16 cores and no internet, from a checkout (PYTHONPATH=. or
`pip install --no-deps -e .`), with only torch, torchvision, triton, numpy, Pillow, tqdm,
tensorboard, safetensors and matplotlib installed; a step that needs an optional package
(simplejpeg, faiss, DALI) is reported skipped where it is missing.

Each step is a subprocess with its own time limit (on time-out: SIGINT, which a training run
answers by saving and reporting, then SIGKILL), so one failure loses nothing else. Steps run in
the order of STEPS, most important first; a step whose estimate would not fit in what is left of
--budget is dropped (and reported), and one whose prerequisite did not succeed is skipped.

OUT receives results.json (every step: status, seconds, command, its JSON result), summary.md
(the headline numbers and a table per step), logs/NAME.log, steps/NAME.json and figures/ (Figures
3 and 4, the run report, the LRN experiment: small files). Large files (stores, runs,
checkpoints) go to --work (default /tmp/alexnet-gpu-suite), not to OUT. --pack F rewrites OUT as
the archive F after every step, so a session that can carry back only a few files gets one, and
gets what was done even if the suite is stopped.

Adding a step is one entry in STEPS: a name, an estimate and a limit in seconds, the shell command
with {placeholders} (see `placeholders`), and what it needs:

    Step("my-check", 30, 60, "{py} benchmarks/my_check.py --raw {work}/raw-{size} --json-out {json}",
         needs=("prepare-raw",)),

A step that writes a JSON object to {json} (or one per line, for a command run several times)
gets it into results.json and, when it has the shape of a known result (bench train / model /
data, gpu_checks, dist_bench, viz kernels, experiment lrn-cifar), into summary.md; `text=True`
quotes the end of its log there instead (scripts that print tables). `requires` names optional
modules (missing: skipped). `dry` is the command for --dry-run (default: the same command, whose
placeholders shrink to tiny sizes); None skips the step in a dry run (compilation on CPU, or work
that only means something on a GPU).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAME = ""  # Step.dry: the same command in a dry run


@dataclass
class Step:
    name: str
    estimate: int  # seconds on one H100/H200 (what --budget counts)
    limit: int  # seconds before the step is stopped
    cmd: str  # shell command; {placeholders} filled by `placeholders`
    needs: tuple[str, ...] = ()  # steps that must have succeeded first
    dry: str | None = SAME  # the command in a dry run ("" = cmd); None: not run in a dry run
    cuda: bool = False  # needs a CUDA device
    when: str | None = None  # a file that must exist in DATA_DIR
    requires: tuple[str, ...] = ()  # optional modules it needs (missing: skipped, not failed)
    text: bool = False  # its result is the text it prints: summary.md quotes the end of its log


# a fresh run folder each time (a run folder with a checkpoint is never overwritten)
TRAIN = "rm -rf {work}/runs/{name} && {alexnet} bench train --data {work}/raw-{size} --json-out {json} --final-eval 10crop"
FAST = f"{TRAIN} --preset imagenette-fast --epochs 0 --out {{work}}/runs/{{name}}"
# bench data's generated ImageNet-like JPEGs and their jpeg store (made by bench-data-synthetic)
SYN = "{work}/bench-data/synthetic-{synthetic}"
SYN_JPEG = "{work}/bench-data/stores/synthetic-{synthetic}-jpeg-{data_size}"
DATA = "{alexnet} bench data --data-dir {data} --work {work}/bench-data {data_args}"
ROWS = "--rows torchvision store-raw store-jpeg-cpu store-jpeg-pillow store-jpeg-gpu store-jpeg-mixed store-jpeg-dali"
# the training step fed from the synthetic jpeg store vs from a batch on the device (issue 13 item 5)
FED = "{alexnet} bench model --no-compile {model_args} --data " + SYN_JPEG + " --data-threads {workers} --json"
# the net the figures show: the paper's recipe (tta-imagenette), else the fast preset's
RUN = ("R={work}/runs/tta-imagenette; [ -f $R/best.pt ] || R={work}/runs/tta-fast; [ -f $R/best.pt ] || "
       "{{ echo 'no best.pt in runs/tta-imagenette or runs/tta-fast'; exit 1; }}; echo \"figures of $R\"; ")

# Most important first: a tight --budget keeps the top of this table. Estimates are seconds on one
# H100/H200 with 16 cores (the H200's timings of 2026-11-26 in ../shared/gpu/ where a step ran then).
STEPS: list[Step] = [
    Step("env", 5, 60, "{py} benchmarks/gpu_suite.py --env > {json}"),
    Step("prepare-raw", 20, 180, "{timed} prepare {imagenette} {work}/raw-{size} --size {size} --workers {workers} "
         "--quiet {limit} > {json}"),
    # issue 10 item 6, the headline: the paper's net and pipeline to >= 80% (ten patches) in <= 30 s
    Step("tta-fast", 55, 150, FAST + " {tiny_train}", needs=("prepare-raw",)),
    # the paper's recipe (§4.2 dropout by default, lr 0.01) to its best within 90 epochs: does it learn?
    Step("tta-imagenette", 115, 240, TRAIN + " --preset imagenette --epochs 0 --max-seconds 120 --out {work}/runs/{name} "
         "{tiny_train}", needs=("prepare-raw",)),
    Step("model-eager", 25, 120, "{alexnet} bench model --no-compile --lrn-impl reference fast triton {model_args} "
         "--json > {json}"),
    Step("prepare-jpeg", 20, 180, "{timed} prepare {imagenette} {work}/jpeg-{size} --size {size} --format jpeg "
         "--workers {workers} --quiet {limit} > {json}"),
    # issue 13: every loader row on 10,000 ImageNet-like JPEGs (generating and preparing them included)
    Step("bench-data-synthetic", 80, 300, DATA + " --source synthetic --synthetic-images {synthetic} " + ROWS
         + " --json > {json}"),
    Step("gpu-checks", 100, 300, "{py} benchmarks/gpu_checks.py --raw {work}/raw-{size} --jpeg {work}/jpeg-{size} "
         "--json-out {json}", needs=("prepare-raw", "prepare-jpeg"), dry=None, cuda=True),
    # issue 15: Figure 3 and Figure 4 left of the trained net, into OUT/figures
    Step("figures", 20, 90, RUN + "{alexnet} viz kernels $R/best.pt -o {fig}/figure3 && {alexnet} viz predictions "
         "$R/best.pt -o {fig}/figure4-left && cp {fig}/figure3/result.json {json}", needs=("prepare-raw",)),
    # issue 14: DDP's own cost on one GPU (NCCL, world size 1), plain and DDP steps alternating
    Step("ddp-overhead", 30, 120, "{py} -m torch.distributed.run --standalone --nproc-per-node 1 "
         "benchmarks/dist_bench.py --worker --ddp-overhead --data {work}/raw-{size} {ddp_args} > {json}",
         needs=("prepare-raw",)),
    # issue 15: the run report (and Figure 4 right); nearest-neighbour search needs faiss
    Step("report", 25, 120, RUN + "{alexnet} report $R -o {fig}/report.html && {alexnet} viz neighbours $R/best.pt "
         "-o {fig}/figure4-right --db-per-class 100", needs=("prepare-raw",), requires=("faiss",)),
    Step("model-jpeg-fed", 50, 200, FED + " > {json} && " + FED + " --decode device >> {json} && " + FED
         + " --decode device --device-share 0.7 >> {json}", needs=("bench-data-synthetic",)),
    Step("data-device-share", 40, 180, "for s in {shares}; do " + DATA + " --source synthetic --synthetic-images "
         "{synthetic} --rows store-jpeg-gpu store-jpeg-mixed --device-share $s --json || exit 1; done > {json}",
         needs=("bench-data-synthetic",)),
    Step("decode-scaling", 40, 180, "{py} benchmarks/decode_scaling.py " + SYN_JPEG + " {scaling_args}",
         needs=("bench-data-synthetic",), requires=("simplejpeg",), text=True),
    # the real loop (per-epoch validation and checkpoints) vs the model's step
    Step("bench-train", 25, 120, TRAIN + " --preset imagenette --epochs 3 --out {work}/runs/{name} {tiny_train}",
         needs=("prepare-raw",)),
    Step("model-compiled", 70, 300, "{alexnet} bench model --lrn-impl triton {model_args} --json > {json}", dry=None),
    Step("tta-fast-compiled", 80, 300, FAST + " --set train.compile=true", needs=("prepare-raw",), dry=None),
    Step("model-cudagraphs", 80, 300, "{alexnet} bench model --lrn-impl triton --compile-mode reduce-overhead "
         "{model_args} --json > {json}", dry=None, cuda=True),
    Step("tta-fast-e20", 35, 120, FAST + " --set schedule.epochs=20", needs=("prepare-raw",), dry=None),
    Step("tta-fast-e40", 65, 150, FAST + " --set schedule.epochs=40", needs=("prepare-raw",), dry=None),
    # prepare's rate on 16 cores, start-up apart (issue 13 item 4)
    Step("prepare-bench", 80, 300, "{py} benchmarks/prepare_bench.py " + SYN + " --format jpeg "
         "--workers {prepare_workers} {prepare_args} --work {work}/prepare-bench && {py} benchmarks/prepare_bench.py "
         + SYN + " --format raw --workers {workers} {prepare_args} --work {work}/prepare-bench",
         needs=("bench-data-synthetic",), text=True),
    Step("bench-data-imagenette", 40, 180, DATA + " --source imagenette " + ROWS + " --json > {json}",
         dry=None),
    Step("model-store-fed", 30, 180, "{alexnet} bench model --no-compile {model_args} --data {work}/raw-{size} --json "
         "> {json}", needs=("prepare-raw",), dry=None),
    Step("model-jpeg-dali", 20, 120, FED + " --decode device --backend dali > {json}", needs=("bench-data-synthetic",),
         requires=("nvidia.dali",), cuda=True),
    Step("model-compiled-others", 120, 400, "{alexnet} bench model --lrn-impl fast reference {model_args} --json > {json}",
         dry=None),
    Step("lrn-bench", 25, 120, "{py} benchmarks/lrn_bench.py {lrn_args}", text=True),
    Step("prepare-cifar", 15, 180, "{timed} prepare {data}/cifar10-jpeg.tar.gz {work}/cifar10-32 --size 32 "
         "--workers {workers} --quiet {cifar_limit} > {json}", when="cifar10-jpeg.tar.gz"),
    # issue 15 §3.3: one seed of each net at the paper's size (2 x 45,000 steps): a call of its own
    Step("lrn-cifar", 400, 560, "{alexnet} experiment lrn-cifar --data {work}/cifar10-32 --size {exp_size} "
         "--seeds 1 --out {fig}/lrn-cifar --work {work}/experiments && "
         "cp {fig}/lrn-cifar/result.json {json}", needs=("prepare-cifar",)),
]


def placeholders(data: Path, out: Path, work: Path, dry: bool) -> dict[str, str]:
    """What the {names} in a command mean; a dry run shrinks every size (CPU, minutes)."""
    py = sys.executable
    tiny = ("model.width=0.125 data.size=72 data.crop=64 optim.batch_size=16 eval.batch_size=64 "
            "schedule.warmup_epochs=0 train.max_steps_per_epoch=2 train.log_every_steps=1")
    return {
        "py": py, "alexnet": f"{py} -m alexnet", "timed": f"{py} benchmarks/gpu_suite.py --timed", "data": str(data), "imagenette": str(data / "imagenette-224.tar.gz"),
        "work": str(work), "out": str(out), "fig": str(out / "figures"),
        "size": "72" if dry else "256", "workers": "2" if dry else "16", "limit": "--limit-per-class 4" if dry else "",
        "tiny_train": f"--epochs 2 --synthetic-steps 2 --warmup 0 --set {tiny}" if dry else "",
        "model_args": "--device cpu --batch-size 2 --steps 1 --warmup 0" if dry else "--batch-size 256 --steps 50 --warmup 5",
        "data_size": "80" if dry else "256",  # bench data's stores (bench model's feed crops 7/8 of it: >= 64 px)
        "data_args": ("--batch-size 4 --batches 2 --workers 2 --size 80 --crop 64" if dry
                      else "--batch-size 256 --batches 50 --workers 16"),
        "synthetic": "20" if dry else "10000",
        "shares": "0.5" if dry else "0.5 0.6 0.8 0.9",
        "scaling_args": ("--threads 2 --batch-size 4 --batches 2 --rounds 1" if dry
                         else "--threads 2 4 8 16 --batch-size 256 --batches 8 --rounds 3"),
        "prepare_workers": "2" if dry else "8 16",
        "prepare_args": "--per-class 1 2 --rounds 1" if dry else "--per-class 100 1000 --rounds 2",
        "ddp_args": (f"--preset quick --steps 1 --warmup 1 --rounds 1 --set {tiny} train.threads=1 data.threads=1"
                     if dry else "--preset imagenette --steps 30 --warmup 5 --rounds 3 "
                          "--set train.precision=bf16 train.channels_last=true model.lrn_impl=triton"),
        "lrn_args": "--small" if dry else "",
        "cifar_limit": "--limit-per-class 16" if dry else "",
        "exp_size": "tiny" if dry else "full",
    }


# ---- running ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    status: str  # ok | failed | timeout | dropped | skipped
    seconds: float = 0.0
    rc: int | None = None
    cmd: str = ""
    reason: str = ""
    result: dict | None = None
    log: str = ""
    excerpt: str = ""  # a text step's result: the end of its log
    fields: dict = field(default_factory=dict)


def run_steps(steps: list[Step], values: dict[str, str], out: Path, budget: float, dry: bool, cuda: bool,
              data: Path, only: list[str] | None = None, grace: float = 20.0,
              pack: Path | None = None) -> list[Outcome]:
    """Run `steps` in order within `budget` seconds; results.json (and `pack`) are rewritten after each step."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "steps").mkdir(parents=True, exist_ok=True)
    start, outcomes = time.monotonic(), []
    done: dict[str, str] = {}
    for step in steps:
        o = _decide(step, done, only, dry, cuda, data, budget - (time.monotonic() - start))
        if o is None:  # never past the budget by more than the grace times: the limit shrinks to what is left
            left = budget - (time.monotonic() - start)
            o = _run(step, values, out, dry, grace, limit=step.limit if dry else min(step.limit, max(left, 0) + 30))
        outcomes.append(o)
        done[step.name] = o.status
        print(f"[gpu-suite] {o.name:<22} {o.status:<8} {o.seconds:7.1f} s  {o.reason}", flush=True)
        write_results(out, outcomes, budget, dry)
        if pack:
            pack_folder(out, pack)
    return outcomes


def pack_folder(folder: Path, archive: Path) -> None:
    """FOLDER as ARCHIVE (.tar.gz), replaced whole (a reader never sees half of it)."""
    import tarfile
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    os.replace(tmp, archive)


def _decide(step: Step, done: dict, only, dry: bool, cuda: bool, data: Path, left: float) -> Outcome | None:
    """Why `step` is not run (an Outcome), or None to run it."""
    def no(status: str, reason: str) -> Outcome:
        return Outcome(step.name, status, reason=reason)
    if only and step.name not in only:
        return no("skipped", "not in --only")
    if dry and step.dry is None:
        return no("skipped", "not part of a dry run")
    if step.cuda and not cuda:
        return no("skipped", "needs a CUDA device")
    if step.when and not (data / step.when).exists():
        return no("skipped", f"no {step.when} in {data}")
    if missing := [m for m in step.requires if not _importable(m)]:
        return no("skipped", f"needs {', '.join(missing)} (not installed)")
    if missing := [n for n in step.needs if done.get(n) != "ok"]:
        return no("skipped", f"needs {', '.join(missing)}")
    if not dry and step.estimate > left:
        return no("dropped", f"estimate {step.estimate} s > {max(0, left):.0f} s left of --budget")
    return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False


def _run(step: Step, values: dict[str, str], out: Path, dry: bool, grace: float, limit: float) -> Outcome:
    json_path, log_path = out / "steps" / f"{step.name}.json", out / "logs" / f"{step.name}.log"
    json_path.unlink(missing_ok=True)
    cmd = (step.dry or step.cmd if dry else step.cmd).format(**values, name=step.name, json=json_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        log.write(f"$ {cmd}\n")
        log.flush()
        proc = subprocess.Popen(["bash", "-c", cmd], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        status = "ok"
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            status, rc = "timeout", _stop(proc, grace)
    seconds = time.monotonic() - t0
    if status == "ok" and rc != 0:
        status = "failed"
    result = _read_json(json_path)
    reason = f"time limit {limit:.0f} s" if status == "timeout" else (_last_line(log_path) if status == "failed" else "")
    excerpt = _tail(log_path, 60) if step.text else ""
    return Outcome(step.name, status, seconds, rc, cmd, reason, result, str(log_path.relative_to(out)), excerpt)


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
    """The JSON object the step wrote: the whole file, else its last JSON line; several JSON lines (a
    step that runs a command several times) become {"repeated": [...]}."""
    try:
        text = path.read_text()
        return json.loads(text)
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


def write_results(out: Path, outcomes: list[Outcome], budget: float, dry: bool) -> None:
    data = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "budget_s": budget, "dry_run": dry,
            "total_s": sum(o.seconds for o in outcomes),
            "steps": [{k: v for k, v in vars(o).items() if k != "fields"} for o in outcomes]}
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (out / "summary.md").write_text(summary_markdown(outcomes, budget, dry, out))


# ---- the summary ------------------------------------------------------------------------------


def summary_markdown(outcomes: list[Outcome], budget: float, dry: bool, out: Path | None = None) -> str:
    env = next((o.result for o in outcomes if o.name == "env" and o.result), {})
    optional = ", ".join(f"{k} {v or 'missing'}" for k, v in env.get("optional", {}).items())
    lines = [f"# GPU suite{' (dry run: tiny sizes, numbers mean nothing)' if dry else ''}", "",
             f"{env.get('device', '?')}, {env.get('cpus', '?')} CPUs, torch {env.get('torch', '?')}, "
             f"triton {env.get('triton', '?')}, commit {env.get('commit', '?')}, {env.get('date', '?')}; "
             f"budget {budget:.0f} s, used {sum(o.seconds for o in outcomes):.0f} s"
             + (f"; optional packages: {optional}" if optional else ""), ""]
    tta = [o for o in outcomes if o.name.startswith("tta-") and o.result]
    if tta:
        lines += ["## Time to accuracy (Imagenette val, ten patches)", "",
                  "| run | top-1 acc (10 patches) | training wall s | first step - median step s | img/s end to end "
                  "| epochs | status | >= 80% in <= 30 s |", "|---|---:|---:|---:|---:|---:|---|---|"]
        lines += [_tta_row(o) for o in tta] + [""]
    lines += ["## Steps", "", "| step | status | seconds | note |", "|---|---|---:|---|"]
    lines += [f"| {o.name} | {o.status} | {o.seconds:.1f} | {o.reason.replace('|', '/')} |" for o in outcomes]
    for o in outcomes:
        if o.name != "env" and o.result and (table := _summarised(o.result)):
            lines += ["", f"### {o.name}", "", *table]
        elif o.excerpt:
            lines += ["", f"### {o.name}", "", "```", o.excerpt, "```"]
    files = sorted(f for f in (out / "figures").rglob("*") if f.is_file()) if out else []
    if files:
        lines += ["", "## Files", "", *[f"- `{f.relative_to(out)}` ({f.stat().st_size / 1e3:.0f} KB)" for f in files]]
    return "\n".join(lines) + "\n"


def _tta_row(o: Outcome) -> str:
    r = o.result
    acc = 1 - r["final_eval"]["top1_error"] if r.get("final_eval") else None
    goal = acc is not None and acc >= 0.8 and r["wall_s"] <= 30
    excess = r.get("first_step_excess_s")
    return (f"| {o.name} | {_pct(acc)} | {r['wall_s']:.1f} | {'' if excess is None else f'{excess:.1f}'} | "
            f"{r['img_s']:.0f} | {r['epochs']} | {r['status']} | {'yes' if goal else 'no'} |")


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
        rows = [f"| {x['name']} | {_rate(x['img_s'])} | {x['skipped'] or ''} |" for x in r["rows"]]
        return [f"source {r['source']}, {r['images']} JPEGs, batch {r['batch']}, {r['workers']} workers, "
                f"device_share {r.get('device_share')}", "", "| row | img/s | skipped |", "|---|---:|---|", *rows]
    if "checks" in r:  # gpu_checks
        return [f"- {c['name']}: {'pass' if c['ok'] else 'FAIL'} ({c['detail']})" for c in r["checks"]]
    if "images_per_s" in r:  # a timed prepare
        return [f"{r['images']} images in {r['seconds']:.1f} s: {r['images_per_s']:.0f} img/s ({r['store']})"]
    if "ddp_img_per_s" in r:  # dist_bench.py --ddp-overhead
        return [f"one process, {r['device']}, global batch {r['global_batch']}: "
                f"plain {r['plain_img_per_s']:.0f} img/s, DDP {r['ddp_img_per_s']:.0f} img/s; DDP step time / plain, per round: "
                + ", ".join(f"{x:.3f}" for x in r["ddp_over_plain"])]
    if r.get("figure") == "figure3":  # alexnet viz kernels
        return [f"conv1 column {c['column']}: {c['kernels']} kernels, mean chroma {c['mean_chroma']:.3f}, "
                f"{c['colour_kernels']} mostly colour (random kernels: {r['random_chroma']:.3f}; {r['checkpoint']})"
                for c in r["columns"]]
    if r.get("experiment") == "lrn-cifar":  # alexnet experiment lrn-cifar
        e, paper = r["test_error"], r["paper"]
        return [f"CIFAR-10 test error ({r['size']} size, {r['settings']['seeds']} seed(s)): without LRN "
                f"{_pct(e['without_lrn'])}, with LRN {_pct(e['with_lrn'])} (paper: {_pct(paper['without_lrn'])}, "
                f"{_pct(paper['with_lrn'])})"]
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


def env_info() -> dict:
    import platform

    import torch
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    commit = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    cuda = torch.cuda.is_available()
    return {"date": datetime.date.today().isoformat(), "commit": commit or None, "python": platform.python_version(),
            "torch": torch.__version__, "triton": triton_version, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.machine()})",
            "cpus": os.cpu_count(), "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None,
            "optional": {m: _version(m) for m in ("simplejpeg", "nvidia.dali", "faiss", "matplotlib")}}


def _version(module: str) -> str | None:
    """The version of an optional module, None when it is not installed."""
    if not _importable(module):
        return None
    try:
        return str(getattr(importlib.import_module(module), "__version__", "installed"))
    except Exception:  # installed but broken: say so rather than fail the env step
        return "broken"


def timed_prepare(args: list[str]) -> dict:
    """`alexnet prepare ARGS` in this process, timed (its own output goes to stderr), with the
    number of images the store holds."""
    import contextlib

    from alexnet.cli import main as alexnet_main
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        rc = alexnet_main(args)
    seconds = time.perf_counter() - start
    store = Path(args[2])
    meta = json.loads((store / "store.json").read_text()) if rc == 0 else {}
    images = meta.get("summary", {}).get("stored")
    return {"command": "alexnet " + " ".join(args), "rc": rc, "store": str(store), "format": meta.get("format"),
            "images": images, "seconds": seconds, "images_per_s": images / seconds if images else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", type=Path, help="folder holding imagenette-224.tar.gz (and cifar10-jpeg.tar.gz)")
    p.add_argument("out", nargs="?", type=Path, help="folder for results.json, summary.md, logs/ and steps/")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for all steps; steps that would not fit are dropped")
    p.add_argument("--work", type=Path, default=Path("/tmp/alexnet-gpu-suite"), help="stores and runs (large; not OUT)")
    p.add_argument("--only", nargs="+", default=None, metavar="STEP", help="run only these steps (and report the rest skipped)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on whatever device there is: does every step still run?")
    p.add_argument("--list", action="store_true", help="print the steps in priority order and exit")
    p.add_argument("--pack", type=Path, default=None, metavar="TAR_GZ",
                   help="after every step, also write OUT as this .tar.gz (one file to carry back, complete so far)")
    p.add_argument("--env", action="store_true", help=argparse.SUPPRESS)  # a step: print env_info() as JSON
    p.add_argument("--timed", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # a step: `--timed prepare ARGS`
    a = p.parse_args(argv)
    if a.env:
        print(json.dumps(env_info()))
        return 0
    if a.timed:
        result = timed_prepare(a.timed)
        print(json.dumps(result))
        return result["rc"]
    if a.list:
        total = 0
        for s in STEPS:
            total += s.estimate
            print(f"{s.name:<22} ~{s.estimate:>4} s (limit {s.limit:>3} s, ~{total:>4} s so far)"
                  f"{'  CUDA' if s.cuda else ''}{'  needs ' + ' '.join(s.requires) if s.requires else ''}"
                  f"{'  not in dry runs' if s.dry is None else ''}")
        return 0
    if a.data is None or a.out is None:
        p.error("DATA_DIR and OUT are required")
    if not (a.data / "imagenette-224.tar.gz").is_file():
        print(f"gpu_suite: error: {a.data / 'imagenette-224.tar.gz'} does not exist: DATA_DIR must hold it", file=sys.stderr)
        return 2
    if unknown := set(a.only or []) - {s.name for s in STEPS}:
        print(f"gpu_suite: error: unknown step(s) {', '.join(sorted(unknown))}: see --list", file=sys.stderr)
        return 2
    import torch
    cuda = torch.cuda.is_available()
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    values = placeholders(a.data.resolve(), a.out.resolve(), a.work.resolve(), a.dry_run)
    outcomes = run_steps(STEPS, values, a.out.resolve(), a.budget, a.dry_run, cuda, a.data.resolve(), a.only,
                         pack=a.pack.resolve() if a.pack else None)
    bad = [o.name for o in outcomes if o.status in ("failed", "timeout")]
    print(f"[gpu-suite] {a.out / 'summary.md'}; " + (f"failed: {', '.join(bad)}" if bad else "no step failed"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
