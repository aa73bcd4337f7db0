"""benchmarks/gpu_suite.py: the step runner (limits, budget, prerequisites, results) with stand-in
steps, and the suite's dry run (tiny sizes on the CPU) so that its commands cannot rot."""
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile

from conftest import DATA, REPO

spec = importlib.util.spec_from_file_location("gpu_suite", REPO / "benchmarks" / "gpu_suite.py")
suite = importlib.util.module_from_spec(spec)
sys.modules["gpu_suite"] = suite  # dataclasses look their module up
spec.loader.exec_module(suite)


def test_runner_limits_budget_prerequisites_and_results(tmp_path):
    py = sys.executable
    write = "import json,sys; json.dump(dict(images_per_s=5.0, images=10, seconds=2.0, store='s'), open(sys.argv[1], 'w'))"
    twice = "import json; [print(json.dumps(dict(images_per_s=r, images=10, seconds=2.0, store='s'))) for r in (1.0, 2.0)]"
    steps = [
        suite.Step("writes-json", 1, 30, f"{py} -c \"{write}\" {{json}}"),
        suite.Step("fails", 1, 30, f"{py} -c \"import sys; print('broken input'); sys.exit(3)\""),
        suite.Step("needs-failed", 1, 30, "true", needs=("fails",)),
        suite.Step("hangs", 1, 1, "sleep 60"),
        suite.Step("too-big", 10_000, 30, "true"),
        suite.Step("after", 1, 30, "true", needs=("writes-json",)),
        suite.Step("cuda-only", 1, 30, "true", cuda=True),
        suite.Step("no-file", 1, 30, "true", when="nothing-here.tar.gz"),
        suite.Step("no-module", 1, 30, "true", requires=("json", "no_such_module.sub")),
        suite.Step("twice", 1, 30, f"{py} -c \"{twice}\" > {{json}}"),
        suite.Step("prints-text", 1, 30, "echo noise; echo 'threads img/s'; echo '16 12000'", text=True),
    ]
    out = tmp_path / "out"
    outcomes = suite.run_steps(steps, {}, out, budget=100, dry=False, cuda=False, data=tmp_path, grace=1,
                               pack=tmp_path / "suite.tar.gz")
    status = {o.name: (o.status, o.reason) for o in outcomes}
    assert status["writes-json"] == ("ok", "")
    assert status["fails"] == ("failed", "broken input")
    assert status["needs-failed"] == ("skipped", "needs fails")
    assert status["hangs"][0] == "timeout"
    assert status["too-big"][0] == "dropped" and "--budget" in status["too-big"][1]
    assert status["after"] == ("ok", "")
    assert status["cuda-only"] == ("skipped", "needs a CUDA device")
    assert status["no-file"][0] == "skipped"
    assert status["no-module"] == ("skipped", "needs no_such_module.sub (not installed)")
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["steps"]] == [s.name for s in steps]
    assert results["steps"][0]["result"]["images_per_s"] == 5.0
    assert [r["images_per_s"] for r in results["steps"][-2]["result"]["repeated"]] == [1.0, 2.0]
    assert (out / "logs" / "fails.log").read_text().endswith("broken input\n")
    summary = (out / "summary.md").read_text()
    assert "| hangs | timeout |" in summary and "10 images in 2.0 s: 5 img/s" in summary
    assert "10 images in 2.0 s: 1 img/s" in summary and "10 images in 2.0 s: 2 img/s" in summary
    assert "```\nnoise\nthreads img/s\n16 12000\n```" in summary
    with tarfile.open(tmp_path / "suite.tar.gz") as tar:  # --pack: OUT as one file, rewritten after each step
        assert tar.extractfile("out/summary.md").read().decode() == summary


def test_every_command_fills_its_placeholders(tmp_path):
    for dry in (False, True):
        values = suite.placeholders(tmp_path / "data", tmp_path / "out", tmp_path / "work", dry)
        for s in suite.STEPS:
            cmd = (s.dry or s.cmd) if dry else s.cmd
            assert not re.search(r"\{\w+\}", cmd.format(**values, name=s.name, json="J")), s.name  # none left over


# one step of each kind (the others run the same commands with other presets or stores): a few minutes
DRY = ["env", "prepare-raw", "tta-fast", "model-eager", "bench-data-synthetic", "figures", "ddp-overhead",
       "decode-scaling"]


def test_dry_run_of_one_step_of_each_kind(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "benchmarks/gpu_suite.py", str(DATA), str(out), "--dry-run", "--work", str(work),
                           "--only", *DRY], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    results = json.loads((out / "results.json").read_text())
    by = {s["name"]: s for s in results["steps"]}
    assert set(by) == {s.name for s in suite.STEPS}
    for s in suite.STEPS:
        step = by[s.name]
        if s.name in DRY:
            assert step["status"] == "ok", (s.name, step["reason"], (out / step["log"]).read_text()[-3000:])
        else:
            assert step["status"] == "skipped", step
    assert proc.returncode == 0, proc.stdout[-2000:]
    fast = by["tta-fast"]["result"]
    assert fast["status"] == "finished" and fast["final_eval"]["views"] == "10crop"
    assert set(fast["phases"]) >= {"data", "step", "validation", "checkpoint"}
    assert fast["config"]["schedule"]["kind"] == "linear"  # the imagenette-fast preset, shrunk
    model = by["model-eager"]["result"]
    assert [r["name"] for r in model["rows"]] == ["torchvision", "paper-ref", "paper-fast-reference",
                                                  "paper-fast-fast", "paper-fast-triton"]
    assert by["ddp-overhead"]["result"]["world"] == 1 and by["ddp-overhead"]["result"]["ddp_img_per_s"] > 0
    assert (out / "figures" / "figure3" / "figure3.png").is_file() and (out / "figures" / "figure4-left").is_dir()
    summary = (out / "summary.md").read_text()
    assert "## Time to accuracy" in summary and "| tta-fast |" in summary and "### model-eager" in summary
    assert "conv1 column 2:" in summary and "DDP step time / plain" in summary and "simplejpeg / pillow" in summary
