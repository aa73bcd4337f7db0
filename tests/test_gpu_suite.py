"""benchmarks/gpu_suite.py and its helpers (gpu_data.py, gpu_checks.py, lrn_bench.py): the runner
with stand-in steps, what each step promises, the budget guard, the refusals without a GPU, the
data pack and its manifest, and a dry run (tiny sizes, CPU) of every step of every part, so that
no command can rot. Each of issue 19's defects has a test here that would have caught it."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
import torch

from conftest import DATA, REPO


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


suite = _load("gpu_suite")
gpu_data = sys.modules["gpu_data"]  # imported by the suite
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}  # no GPU, whatever the host


_N = iter(range(10**6))


def _writes(result: dict) -> str:
    """A step command that writes `result` as its JSON (the command holds no braces of its own)."""
    src = Path(tempfile.mkdtemp()) / f"result-{next(_N)}.json"
    src.write_text(json.dumps(result))
    return f"cp {src} {{json}}"


GPU_OK = dict(device="NVIDIA H200", device_type="cuda", capability="9.0", matmul_ok=True, matmul_max_rel_diff=1e-7)
PREPARED = dict(images=10, images_per_s=5.0, seconds=2.0, store="s", fresh=True)


def _run(steps, tmp_path, budget=100.0, dry=False, **kw):
    run = suite.Run({"work": str(tmp_path / "work")}, tmp_path / "out", budget, dry, tmp_path, grace=1, part="test", **kw)
    return run, {o.name: o for o in suite.run_steps(steps, run)}


def test_runner_ok_needs_the_promised_result_and_reports_every_other_status(tmp_path):
    twice = "import json; [print(json.dumps(dict(images_per_s=r, images=10, seconds=2.0, store='s', fresh=True))) for r in (1.0, 2.0)]"
    steps = [
        suite.Step("gpu", 1, 30, _writes(GPU_OK), suite.gpu_proved, gpu=False),
        suite.Step("writes-json", 1, 30, _writes(PREPARED), suite.prepared),
        suite.Step("no-json", 1, 30, "true", suite.prepared),  # defect 4: exit 0 without its result is not ok
        suite.Step("not-fresh", 1, 30, _writes({**PREPARED, "fresh": False}), suite.prepared),
        suite.Step("fails", 1, 30, f"{PY} -c \"import sys; print('broken input'); sys.exit(3)\"", suite.prepared),
        suite.Step("needs-failed", 1, 30, "true", suite.prepared, needs=("fails",)),
        suite.Step("hangs", 1, 1, "sleep 60", suite.prepared),
        suite.Step("too-big", 10_000, 30, "true", suite.prepared),
        suite.Step("no-file", 1, 30, "true", suite.prepared, when="nothing-here.tar.gz"),
        suite.Step("no-module", 1, 30, "true", suite.prepared, requires=("json", "no_such_module.sub")),
        suite.Step("twice", 1, 30, f"{PY} -c \"{twice}\" > {{json}}", suite.prepared),
        suite.Step("prints-text", 1, 30, "echo noise; echo 'this 16 1.0 2.0 120'", suite.log_has(r"^this\s+16"),
                   text=True),
    ]
    pack = tmp_path / "suite.tar.gz"
    run, by = _run(steps, tmp_path, pack=pack)
    status = {n: (o.status, o.reason) for n, o in by.items()}
    assert status["gpu"] == ("ok", "") and status["writes-json"] == ("ok", "") and status["prints-text"] == ("ok", "")
    assert status["no-json"] == ("invalid", "exit 0 but no result file (or not JSON)")
    assert status["not-fresh"] == ("invalid", "exit 0 but not timed into a fresh folder")
    assert status["fails"] == ("failed", "broken input")
    assert status["needs-failed"] == ("skipped", "needs fails")
    assert status["hangs"][0] == "timeout"
    assert status["too-big"][0] == "dropped" and "--budget" in status["too-big"][1]
    assert status["no-file"][0] == "skipped"
    assert status["no-module"] == ("skipped", "needs no_such_module.sub (not installed; carry its wheel)")
    assert [r["images_per_s"] for r in by["twice"].result["repeated"]] == [1.0, 2.0]
    assert suite.exit_code(run.outcomes) == 1
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["steps"]] == [s.name for s in steps] and results["exit_code"] == 1
    assert (out / "logs" / "fails.log").read_text().endswith("broken input\n")
    summary = (out / "summary.md").read_text()
    assert "| hangs | timeout |" in summary and "10 images in 2.0 s: 5 img/s" in summary
    assert "Not complete: " in summary and "no-json invalid" in summary and "too-big dropped" in summary
    assert "```\nnoise\nthis 16 1.0 2.0 120\n```" in summary
    commands = (out / "commands.sh").read_text()
    assert "# writes-json\n" in commands and "sleep 60" in commands and "# too-big" not in commands
    with tarfile.open(pack) as tar:  # --pack: OUT as one file, rewritten after each step
        assert tar.extractfile("out/summary.md").read().decode() == summary


def test_every_gpu_step_refuses_unless_the_gpu_step_proved_a_gpu(tmp_path):
    """Defect 1: a CPU where a GPU was promised (outside a dry run) fails the gpu step, and every GPU step refuses."""
    cpu = dict(GPU_OK, device="cpu (x86_64)", device_type="cpu", capability=None)
    steps = [suite.Step("gpu", 1, 30, _writes(cpu), suite.gpu_proved, gpu=False),
             suite.Step("model", 1, 30, "touch {work}/ran", suite.prepared),
             suite.Step("prepare", 1, 30, _writes(PREPARED), suite.prepared, gpu=False)]
    (tmp_path / "work").mkdir()
    run, by = _run(steps, tmp_path)
    assert by["gpu"].status == "invalid" and "no CUDA device proved" in by["gpu"].reason
    assert by["model"].status == "skipped" and by["model"].reason.startswith("refused")
    assert not (tmp_path / "work" / "ran").exists() and by["prepare"].status == "ok"
    assert suite.exit_code(run.outcomes) == 1
    bad = dict(GPU_OK, matmul_ok=False, matmul_max_rel_diff=0.5)
    assert "differs from the CPU's" in suite.gpu_proved(bad, "", False)
    assert suite.gpu_proved(cpu, "", True) is None  # a dry run proves the CPU


def test_a_cpu_only_host_exits_non_zero_with_one_line(tmp_path):
    """Defect 1, done-when: no GPU -> exit 2 and one line, before any step runs; so do the GPU-only scripts."""
    proc = subprocess.run([PY, "benchmarks/gpu_suite.py", "--part", "tta", str(tmp_path), str(tmp_path / "out")], cwd=REPO,
                          env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no CUDA GPU here" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
    for cmd in (["benchmarks/gpu_suite.py", "--env", "cuda"], ["benchmarks/gpu_checks.py", "--raw", "x", "--jpeg", "y"],
                ["benchmarks/lrn_bench.py", "--device", "cuda"]):
        proc = subprocess.run([PY, *cmd], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0, cmd
        assert re.search(r"no CUDA|sees no", proc.stderr), (cmd, proc.stderr)


def test_exit_code_counts_dropped_skipped_and_stopped_steps():
    o = suite.Outcome
    assert suite.exit_code([o("a", "ok"), o("b", "skipped", reason="not in --only")]) == 0
    for status in ("dropped", "skipped", "stopped"):
        assert suite.exit_code([o("a", "ok"), o("b", status, reason="why")]) == 3
    for status in ("failed", "invalid", "timeout"):
        assert suite.exit_code([o("a", status), o("b", "dropped", reason="why")]) == 1


def test_the_budget_guard_stops_a_step_before_the_budget_ends(tmp_path, monkeypatch):
    """Defect 6: a step that would overrun is stopped cleanly (SIGINT) with the part's time; later steps are dropped."""
    monkeypatch.setattr(suite, "RESERVE", 1.0)
    trap = f"{PY} -c \"import time,sys\ntry: time.sleep(60)\nexcept KeyboardInterrupt: print('saved what it had'); sys.exit(1)\""
    steps = [suite.Step("gpu", 1, 30, _writes(GPU_OK), suite.gpu_proved, gpu=False),
             suite.Step("long", 2, 500, trap, suite.prepared),
             suite.Step("after", 2, 30, "true", suite.prepared)]
    t0 = time.monotonic()
    run, by = _run(steps, tmp_path, budget=8.0)
    assert time.monotonic() - t0 < 8.0 + 3.0  # the grace (1 s) and the results
    assert by["long"].status == "stopped" and "--budget" in by["long"].reason
    assert "saved what it had" in (tmp_path / "out" / by["long"].log).read_text()
    assert by["after"].status == "dropped" and suite.exit_code(run.outcomes) == 3


def test_step_checks_reject_results_without_their_numbers():
    """Defect 4: a step is ok only when its result holds the numbers it promises."""
    ok_train = {"status": "finished", "phases": {"step": {}}, "final_eval": {"top1_error": 0.2}, "wall_s": 3.0,
                "img_s": 9.0, "epochs": 3, "synthetic_img_s": 10.0}
    assert suite.trained(ok_train, "", False) is None and suite.looped(ok_train, "", False) is None
    assert suite.trained({**ok_train, "final_eval": None}, "", False) == "result lacks final_eval.top1_error"
    assert "not a number > 0" in suite.trained({**ok_train, "img_s": 0}, "", False)
    rows = {"rows": [{"name": "store-raw", "img_s": 5.0, "skipped": None},
                     {"name": "store-jpeg-gpu", "img_s": None, "skipped": "needs a CUDA device (GPU decode)"}]}
    check = suite.data_rows(suite.DATA_ROWS)
    assert check(rows, "", True) is None and "skipped on a GPU" in check(rows, "", False)
    assert "neither img/s nor a reason" in check({"rows": [{"name": "x", "img_s": None, "skipped": None}]}, "", True)
    twice = {"checks": [{"name": "loader", "ok": True, "detail": ""}, {"name": "loader", "ok": True, "detail": ""}]}
    assert "repeat" in suite.checks_passed(twice, "", False)  # defect 5: two checks shared the name "loader"
    assert suite.checks_passed({"checks": [{"name": "a", "ok": False, "detail": ""}]}, "", False) == "failed: a"
    assert suite.checks_passed({"checks": []}, "", False) == "result lacks checks.0.name"
    no_triton = {"rows": [{"impl": "torch nn.LocalResponseNorm", "ms_fwd_bwd": 1.0}]}
    assert suite.lrn_timed(no_triton, "", True) is None and "no Triton rows" in suite.lrn_timed(no_triton, "", False)
    model = suite.model_rows("paper-fast-triton")
    assert "no train img/s for paper-fast-triton" in model({"rows": [{"name": "paper-fast", "train_img_s": 3.0}]}, "", 0)
    assert suite.log_has(r"^simplejpeg\s+\d+", 2)(None, "simplejpeg 1 100\n", False).startswith("1 lines")


def test_a_fallback_is_named_in_its_row(monkeypatch):
    """Defect 4: without simplejpeg the store-jpeg-cpu row decodes with Pillow; the row says so."""
    result = {"rows": [{"name": "store-jpeg-cpu", "img_s": 5.0, "skipped": None}, {"name": "store-raw", "img_s": 9.0}]}
    monkeypatch.setattr(suite, "_importable", lambda m: m != "simplejpeg")
    row = suite.annotate("bench-data", result)["rows"][0]
    assert row["decoder"] == "pillow" and "simplejpeg is not installed" in row["fallback"]
    assert "fallback" not in result["rows"][1]
    monkeypatch.setattr(suite, "_importable", lambda m: True)
    assert "fallback" not in suite.annotate("x", {"rows": [{"name": "store-jpeg-cpu", "img_s": 5.0}]})["rows"][0]


def test_figures_use_only_a_run_that_succeeded_and_learned():
    """Defect 2: a dead run, a failed one or one at chance is never the figures' checkpoint; the better one is."""
    def tta(name, status, err):
        return suite.Outcome(name, status, result={"run": f"/w/runs/{name}", "final_eval": {"top1_error": err}})
    chance = [tta("tta-fast", "ok", 0.9), tta("tta-imagenette", "failed", 0.1)]
    best, why = suite.pick_run(chance, dry=False)
    assert best is None and "tta-fast ok at 90.0% error" in why and "tta-imagenette failed" in why
    best, why = suite.pick_run([tta("tta-fast", "ok", 0.25), tta("tta-imagenette", "ok", 0.18)], dry=False)
    assert best.name == "tta-imagenette" and why.startswith("tta-imagenette (18.0%")
    steps = [suite.Step("gpu", 1, 30, "true", suite.gpu_proved, gpu=False)] + [s for s in suite.TTA if s.picks]
    run = suite.Run({}, None, 100, False, outcomes=chance)
    assert all(suite._decide(s, run, 100).reason.startswith("refused") for s in steps[1:])  # no gpu step here
    run.outcomes = [suite.Outcome("gpu", "ok"), *chance]
    assert all(suite._decide(s, run, 100).reason.startswith("no time-to-accuracy run") for s in steps[1:])


def test_timed_prepare_always_times_a_fresh_folder(tmp_path):
    """Defect 3: on an existing complete store prepare returns at once; the timed step removes it first."""
    store = tmp_path / "store"
    args = ["prepare", str(DATA / "cifar10-jpeg.tar.gz"), str(store), "--size", "32", "--limit-per-class", "2",
            "--workers", "1", "--quiet"]
    first = suite.timed_prepare(args)
    (store / "marker").write_text("left from the first call")
    second = suite.timed_prepare(args)
    assert first["images"] == second["images"] == 40 and second["fresh"] and second["removed_existing"]
    assert not (store / "marker").exists() and suite.prepared(second, "", False) is None


def test_env_step_without_git(tmp_path, monkeypatch):
    """Defect 6: a host without git: the commit is unknown, the step still succeeds."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    info = suite.env_info("cpu")
    assert info["commit"] is None and info["host_cores"] == len(os.sched_getaffinity(0))
    assert suite.gpu_proved(info, "", True) is None


def test_workers_follow_the_cores_and_placeholders_are_all_filled(tmp_path):
    """Defect 6: worker counts come from os.cpu_count(), not a hard-coded 16; every command of
    every part fills its placeholders, in a dry run and not."""
    for dry in (False, True):
        values = suite.placeholders(tmp_path / "data", tmp_path / "out", tmp_path / "work", dry, workers=12)
        assert values["workers"] == ("2" if dry else "12") and (dry or "--threads 2 4 8 --batch" in values["scaling_args"])
        for part, steps in suite.PARTS.items():
            assert [s.name for s in steps[:2]] == ["gpu", "data"], part
            for s in steps:
                cmd = ((s.dry or s.cmd) if dry else s.cmd).format(**values, name=s.name, json="J", run="R", ckpt="C")
                assert not re.search(r"\{\w+\}", cmd), (part, s.name)  # none left over
                assert "16" not in re.findall(r"--workers (\S+)", cmd), (part, s.name)
    assert suite.placeholders(tmp_path, tmp_path, tmp_path, False)["workers"] == str(os.cpu_count())
    assert all(s.estimate <= s.limit for steps in suite.PARTS.values() for s in steps)


def test_the_tta_part_fits_its_budget_by_its_estimates():
    """Defect 6: the estimates of the tta part (most measured on the H200) leave room under the
    default budget, so nothing is dropped there on a card as fast as the last one."""
    total = sum(s.estimate for s in suite.TTA)
    assert total + suite.RESERVE <= suite.BUDGET - 30, total


def test_lrn_bench_triton_failure_is_a_failure_and_the_floor_is_the_cards():
    """Defect 4 and 6: a Triton RuntimeError propagates (not "unsupported here"); the bandwidth is measured."""
    lrn = _load("lrn_bench")

    def broken(x):
        raise RuntimeError("triton compilation failed")
    impls = {"triton": broken}
    with pytest.raises(RuntimeError, match="triton compilation"):
        lrn.run_case((2, 8, 5, 5), torch.float32, False, "cpu", impls, 0)
    _, rows = lrn.run_case((2, 8, 5, 5), torch.float32, False, "cpu", {"other": broken}, 0)
    assert rows[0][1].startswith("unsupported here")
    assert lrn.copy_bandwidth_tb_s("cpu") > 0


def test_gpu_checks_compare_exactly_and_fail_on_an_empty_loader(tiny_store):
    """Defect 5: zip over an empty loader passed; now equal counts > 0 are required, pixels compare exactly."""
    checks = _load("gpu_checks")
    with pytest.raises(AssertionError, match="0 vs 0"):
        checks.paired(iter([]), iter([]))
    with pytest.raises(AssertionError, match="1 vs 2"):
        checks.paired([1], [1, 2])
    from alexnet.data.store import open_store
    store = open_store(tiny_store)
    assert checks.loader_matches_cpu(store, "cpu", batch=8, batches=3).ok
    with pytest.raises(AssertionError):  # more images per batch than the store holds: no batches
        checks.loader_matches_cpu(store, "cpu", batch=10_000, batches=3)
    failed = checks._run("empty", checks.loader_matches_cpu, store, "cpu", 10_000, 3)
    assert failed["ok"] is False and "crashed: AssertionError" in failed["detail"]


# ---- the data -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory):
    """gpu_data.py pack of 16 images per class and split (the dry runs' DATA)."""
    out = tmp_path_factory.mktemp("devdata")
    gpu_data.pack(DATA, out, per_class=16, workers=2)
    return out


def test_pack_data_makes_each_parts_folder_with_a_manifest_checked_before_use(tiny_pack, tmp_path):
    """Defect 7: the data is made by one command, is small, and is checked by SHA-256."""
    for part, archive in (("imagenette", gpu_data.IMAGENETTE_PACK), ("cifar", gpu_data.CIFAR)):
        result = gpu_data.verify(tiny_pack / part)
        assert [f["name"] for f in result["files"]] == [archive] and result["ok"]
    with tarfile.open(tiny_pack / "imagenette" / gpu_data.IMAGENETTE_PACK) as tar:
        names = tar.getnames()
    assert len(names) == 320 and all(n.endswith(".webp") for n in names)
    assert {n.split("/")[1] for n in names} == {"train", "val"}
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in (tiny_pack / "cifar").iterdir():
        damaged.joinpath(f.name).write_bytes(f.read_bytes())
    blob = bytearray((damaged / gpu_data.CIFAR).read_bytes())
    blob[100] ^= 1
    (damaged / gpu_data.CIFAR).write_bytes(bytes(blob))
    proc = subprocess.run([PY, "benchmarks/gpu_data.py", "verify", str(damaged)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "SHA-256 differs" in proc.stderr and proc.stderr.count("\n") == 1
    (damaged / gpu_data.CIFAR).unlink()
    with pytest.raises(gpu_data.DataError, match="is missing"):
        gpu_data.verify(damaged)
    files = [("b/x.webp", b"12"), ("a/y.webp", b"3")]  # reproducible archives: the manifest of a rebuild matches
    gpu_data.write_tar_gz(tmp_path / "1.tar.gz", files)
    time.sleep(1.1)
    gpu_data.write_tar_gz(tmp_path / "2.tar.gz", files[::-1])
    assert gpu_data.sha256(tmp_path / "1.tar.gz") == gpu_data.sha256(tmp_path / "2.tar.gz")


def test_the_data_folder_is_ignored_by_git():
    """The data travels as a carried ignored path, never committed."""
    proc = subprocess.run(["git", "check-ignore", "-q", ".devdata/imagenette/x.tar.gz"], cwd=REPO)
    assert proc.returncode == 0


# ---- dry runs of every step of every part ---------------------------------------------------------


def _dry(part: str, data, out, work, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([PY, "benchmarks/gpu_suite.py", "--part", part, str(data), str(out), "--dry-run", "--work",
                           str(work), *extra], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    results = json.loads((out / "results.json").read_text())
    return proc, {s["name"]: s for s in results["steps"]}


def _all_ok(by: dict, out, part: str, expect_skipped: dict | None = None) -> None:
    expect_skipped = expect_skipped or {}
    assert set(by) == {s.name for s in suite.PARTS[part]}
    for name, step in by.items():
        if name in expect_skipped:
            assert step["status"] == "skipped" and expect_skipped[name] in step["reason"], step
        else:
            assert step["status"] == "ok", (name, step["reason"], (out / step["log"]).read_text()[-3000:])


def test_dry_run_of_the_tta_part(tiny_pack, tmp_path):
    out = tmp_path / "out"
    proc, by = _dry("tta", tiny_pack / "imagenette", out, tmp_path / "work", "--pack", str(tmp_path / "tta.tar.gz"))
    _all_ok(by, out, "tta")
    assert proc.returncode == 0, proc.stdout[-2000:]
    fast = by["tta-fast"]["result"]
    assert fast["status"] == "finished" and fast["final_eval"]["views"] == "10crop"
    assert set(fast["phases"]) >= {"data", "step", "validation", "checkpoint"}
    assert fast["config"]["schedule"]["kind"] == "linear"  # the imagenette-fast preset, shrunk
    assert by["tta-imagenette"]["result"]["config"]["model"]["init"] == "paper"
    assert by["figures"]["uses"].split(":")[0].endswith("/last.pt") and "of: tta-fast ok" in by["figures"]["uses"]
    assert (out / "figures" / "figure3" / "figure3.png").is_file() and (out / "figures" / "report.html").is_file()
    assert by["report"]["result"]["neighbours"] in (True, False)
    assert (out / "runs" / "tta-fast-metrics.jsonl").is_file() and not list(out.rglob("*.pt"))
    summary = (out / "summary.md").read_text()
    assert "## Time to accuracy" in summary and "| tta-imagenette |" in summary and "checkpoint: " in summary
    commands = (out / "commands.sh").read_text()
    assert all(f"# {s.name}\n" in commands for s in suite.TTA)
    with tarfile.open(tmp_path / "tta.tar.gz") as tar:
        assert "out/summary.md" in tar.getnames()


def test_dry_run_of_the_speed_part(tiny_pack, tmp_path):
    out = tmp_path / "out"
    optional = {} if importlib.util.find_spec("simplejpeg") else {"decode-scaling": "needs simplejpeg"}
    proc, by = _dry("speed", tiny_pack / "imagenette", out, tmp_path / "work")
    _all_ok(by, out, "speed", optional)
    assert proc.returncode == (3 if optional else 0), proc.stdout[-2000:]
    model = by["model-eager"]["result"]
    assert [r["name"] for r in model["rows"]] == ["torchvision", "paper-ref", "paper-fast-reference",
                                                  "paper-fast-fast", "paper-fast-triton",
                                                  "paper-fast-bf16",  # the CPU's own row: a dry run has it, a GPU none
                                                  "no-lrn", "no-lrn-bf16"]  # the floor: the same nets without LRN
    assert by["prepare-raw"]["result"]["fresh"] and by["prepare-jpeg"]["result"]["format"] == "jpeg"
    checks = by["gpu-checks"]["result"]
    assert {c["name"] for c in checks["checks"]} == {"loader-raw", "loader-jpeg", "pixels-nvjpeg", "pixels-mixed",
                                                      "logits-decode"}
    assert "identical pixels" in next(c["detail"] for c in checks["checks"] if c["name"] == "pixels-nvjpeg")
    assert {s["name"] for s in checks["skipped"]} >= {"no-sync", "triton-compile", "logits-cudagraphs"}
    rows = {r["name"]: r for r in by["bench-data-synthetic"]["result"]["rows"]}
    assert rows["store-jpeg-cpu"]["decoder"] in ("simplejpeg", "pillow") and rows["store-raw"]["img_s"] > 0
    assert by["ddp-overhead"]["result"]["world"] == 1 and len(by["model-jpeg-fed"]["result"]["repeated"]) == 3
    assert by["lrn-bench"]["result"]["bandwidth_source"].startswith("a nominal CPU")
    summary = (out / "summary.md").read_text()
    assert "### model-eager" in summary and "DDP step time / plain" in summary and "pixels-nvjpeg: pass" in summary


def test_dry_run_of_the_paper_part_resumes_without_recomputing(tiny_pack, tmp_path):
    """Call 1 trains figure1 and lrn-cifar; call 2, on a fresh --work (a fresh machine) with
    --resume, trains nothing; call 3 runs the ablations (Imagenette) and call 4 resumes them."""
    work = tmp_path / "work"
    proc, by = _dry("paper", tiny_pack / "cifar", tmp_path / "o1", work)
    no_imagenette = {"prepare-imagenette": "no imagenette", "ablations": "needs prepare-imagenette"}
    _all_ok(by, tmp_path / "o1", "paper", no_imagenette)
    assert proc.returncode == 3 and "ablations skipped" in proc.stdout
    assert by["lrn-cifar"]["result"]["experiment"] == "lrn-cifar"
    assert re.search(r"^\[lrn-cifar\] training", (tmp_path / "o1" / by["lrn-cifar"]["log"]).read_text(), re.M)
    assert list((tmp_path / "o1" / "cache" / "experiments" / "lrn-cifar" / "tiny").glob("lrn-*.json"))
    for call, data, prev in ((2, "cifar", 1), (3, "imagenette", 2), (4, "imagenette", 3)):
        subprocess.run(["rm", "-rf", str(work)], check=True)
        out = tmp_path / f"o{call}"
        proc, by = _dry("paper", tiny_pack / data, out, work, "--resume", str(tmp_path / f"o{prev}"))
        trained = [n for n in ("figure1", "lrn-cifar", "ablations") if by[n]["status"] == "ok" and
                   re.search(r"^\[\S+\] (training|\w+ lr .* epoch)", (out / by[n]["log"]).read_text(), re.M)]
        if call == 3:
            assert by["ablations"]["status"] == "ok" and trained == ["ablations"], by["ablations"]["reason"]
        else:
            assert trained == [] and all(by[n]["status"] == "ok" for n in (("figure1", "lrn-cifar") if call == 2
                                                                          else ("ablations",)))


def test_training_time_adapts_to_what_the_budget_leaves(tmp_path):
    """Defect 6: the paper run trains for what the budget leaves after the later steps' estimates, and ends by itself."""
    echo = f"{PY} -c \"import json,sys; json.dump(dict(seconds=float(sys.argv[1]), images=1, images_per_s=1.0, " \
           f"store='s', fresh=True), open(sys.argv[2], 'w'))\" {{tta_seconds}} {{json}}"
    steps = [suite.Step("gpu", 1, 30, _writes(GPU_OK), suite.gpu_proved, gpu=False),
             suite.Step("train", 10, 300, echo, suite.prepared, adapt=20),
             suite.Step("later", 50, 60, "true", suite.has(), gpu=False)]
    run = suite.Run({"work": str(tmp_path), "tta_seconds": "180"}, tmp_path / "out", 200.0, False, tmp_path, grace=1)
    by = {o.name: o for o in suite.run_steps(steps, run)}
    got = by["train"].result["seconds"]
    assert 200 - suite.RESERVE - 50 - 20 - 5 <= got <= 200 - suite.RESERVE - 50 - 20, got
