"""Issue 14: beyond one device, on the CPU with gloo (2-4 processes).

- torchrun data parallelism equals one process with the same global batch (to float32 rounding);
- a worker killed under `torchrun --max-restarts 1` restarts from the last checkpoint and the run
  ends bitwise equal to an uninterrupted one;
- a run resumes on another number of processes (and says when it cannot);
- distributed evaluation counts every image once, for 1-3 processes and uneven splits;
- §3.2 model parallelism (two columns on two processes) equals the grouped one-device net, and
  combines with data parallelism;
- SharedDropout draws nn.Dropout's masks; LARS and warm-up follow their formulas."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

import dist_workers
from alexnet.checkpoint import load_checkpoint
from alexnet.cli import main
from alexnet.config import ScheduleConfig, build_config
from alexnet.data.store import open_store
from alexnet.evaluate import evaluate_checkpoints
from alexnet.nets.model import PaperDropout
from alexnet.errors import ConfigError
from alexnet.train import build_parts, open_trainer
from alexnet.train.distributed import Layout, SharedDropout, from_env
from alexnet.train.ensemble import train_seeds
from alexnet.train.optim import PaperSGD, trust_ratios
from alexnet.train.schedule import PlateauSchedule

from conftest import REPO, tiny_overrides

# 7 steps per epoch (120 images, global batch 16); 3 epochs; a checkpoint every 2 steps
RUN = ["schedule.epochs=3", "train.deterministic=true", "train.ckpt_every_steps=2", "data.threads=1", "train.threads=1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nproc: int, args: list[str], restarts: int = 0, command: str = "train") -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           f"--max-restarts={restarts}", "-m", "alexnet", command, *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if restarts:  # restarted workers must not find the killed ones' addresses (pytorch/pytorch#135712)
        env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the torchrun we started, and its workers
        raise
    assert proc.returncode == 0, err[-3000:]
    return out, err


def _sets(store: Path, out: Path, *extra: str) -> list[str]:
    return ["--preset", "quick", "--set", *tiny_overrides(store, out, *RUN, *extra)]


def _equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def one_process(tiny_store, tmp_path_factory):
    """The reference: one process, global batch 16."""
    out = tmp_path_factory.mktemp("one") / "run"
    open_trainer(build_config("quick", tiny_overrides(tiny_store, out, *RUN))).fit()
    return load_checkpoint(out / "last.pt")


@pytest.fixture(scope="module")
def two_processes(tiny_store, tmp_path_factory):
    """`torchrun --nproc-per-node 2 -m alexnet train ...`: 2 x 8 of the same global batch."""
    out = tmp_path_factory.mktemp("two") / "run"
    stdout, _ = _finish(_torchrun(2, _sets(tiny_store, out)))
    return out, stdout


def test_torchrun_two_processes_equal_one(two_processes, one_process):
    out, stdout = two_processes
    summary = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]
    assert len(summary) == 1 and summary[0]["status"] == "finished" and summary[0]["step"] == 21  # rank 0 speaks
    two = load_checkpoint(out / "last.pt")
    assert two["progress"]["world"] == 2 and two["progress"]["step"] == one_process["progress"]["step"]
    # the same images, crops, flips, colour noise and dropout masks: only the order of float sums differs
    assert _max_diff(two["model"], one_process["model"]) < 1e-6
    v1, v2 = one_process["optimizer"]["state"], two["optimizer"]["state"]
    assert max((v1[i]["velocity"] - v2[i]["velocity"]).abs().max().item() for i in v1) < 1e-6
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines if l["kind"] == "train"] == list(range(1, 22))  # written once, by rank 0
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    (start,) = json.loads((out / "run.json").read_text())["starts"]  # the run folder says how it ran, once
    assert (start["world_size"], start["torch_device"], start["precision"]) == (2, "cpu", "fp32")
    assert start["command"].startswith("alexnet train ")  # what each process runs (torchrun starts it)


def _worker_pids(parent: int, rank: int) -> list[int]:
    """The processes under `parent` (torchrun, which this test started) that run rank `rank`."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (d / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in env:
            found.append(int(d.name))
    return found


def _steps_logged(out: Path) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return max((json.loads(l)["step"] for l in lines if l.endswith("}") and '"train"' in l), default=0)


def test_killed_worker_restarts_and_finishes_bitwise_equal(tiny_store, tmp_path, two_processes):
    out = tmp_path / "run"
    proc = _torchrun(2, _sets(tiny_store, out), restarts=1)
    deadline = time.time() + 240
    while _steps_logged(out) < 9 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    victims = _worker_pids(proc.pid, rank=1)
    assert victims, "rank 1 was not found running"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    _finish(proc)
    events = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    restarts = [e for e in events if e["kind"] == "restart"]
    assert len(restarts) == 1 and restarts[0]["attempt"] == 1 and 0 < restarts[0]["step"] < 21
    recovered, reference = load_checkpoint(out / "last.pt"), load_checkpoint(two_processes[0] / "last.pt")
    assert _equal(recovered["model"], reference["model"])
    v1, v2 = recovered["optimizer"]["state"], reference["optimizer"]["state"]
    assert all(torch.equal(v1[i]["velocity"], v2[i]["velocity"]) for i in v1)
    assert recovered["progress"] == reference["progress"] and recovered["schedule"] == reference["schedule"]


def test_resume_on_another_world_size(tiny_store, tmp_path, one_process):
    out = tmp_path / "run"
    sets = tiny_overrides(tiny_store, out, *RUN, "schedule.epochs=1")
    open_trainer(build_config("quick", sets)).fit()  # epoch 1 on one process
    _, err = _finish(_torchrun(2, ["--resume", str(out), "--set", "schedule.epochs=3"]))  # epochs 2-3 on two
    assert "saved by 1 process(es) on 2: the global batch stays 16" in err
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["progress"]["step"] == 21 and resumed["progress"]["world"] == 2
    assert _max_diff(resumed["model"], one_process["model"]) < 1e-6


def test_world_size_that_does_not_split_the_global_batch_is_refused(tiny_store, tmp_path):
    cfg = build_config("quick", tiny_overrides(tiny_store, tmp_path / "run"))
    with pytest.raises(ConfigError, match="optim.batch_size=16 .* does not split over 3 replicas"):
        build_parts(cfg, torch.device("cpu"), Layout(rank=0, world=3))


def _spawn(fn, world: int, *args, timeout: float = 300) -> list[dict]:
    """Run fn(rank, world, port, results, *args) on `world` processes; what each saved."""
    import tempfile
    with tempfile.TemporaryDirectory() as results:
        ctx = mp.start_processes(fn, args=(world, _free_port(), results, *args), nprocs=world, join=False,
                                 start_method="spawn")
        deadline = time.time() + timeout
        while not ctx.join(timeout=max(1.0, deadline - time.time())):
            if time.time() > deadline:
                for p in ctx.processes:
                    p.kill()
                raise TimeoutError(f"{fn.__name__} did not finish in {timeout} s")
        return [torch.load(Path(results) / f"rank-{r}.pt") for r in range(world)]


def test_distributed_eval_counts_every_image_once():
    found = _spawn(dist_workers.eval_once, 3)
    for n in (7, 2):  # 7 images: 4 + 3 and 3 + 2 + 2; 2 images: a process with none
        reader = dist_workers.IndexReader(n)
        x = reader.read(torch.arange(n).numpy()).float()
        # the ensemble's softmax averaged by hand (every view of a constant image is the same)
        expect = (F.softmax(dist_workers.IndexNet(n)(x), -1) + F.softmax(dist_workers.IndexNet(n, shift=1)(x), -1)) / 2
        for world in (2, 3):
            for views in ("center", "10crop"):
                for rank in range(world):
                    probs = found[rank][(world, n, views)]
                    assert probs.shape == (n, n)
                    torch.testing.assert_close(probs, expect, rtol=1e-6, atol=1e-7)


def test_model_parallel_columns_equal_grouped_net_and_combine_with_data_parallelism(tiny_store, tmp_path):
    """4 processes: 2 replicas x 2 columns (§3.2)."""
    run = tmp_path / "run"
    sets = tiny_overrides(tiny_store, run, "train.deterministic=true", "data.threads=1", "data.prefetch=0",
                          "train.model_parallel=true")
    found = _spawn(dist_workers.columns, 4, sets, timeout=400)
    for f in found:
        assert f["out_err"] < 1e-5 * f["out_scale"]  # training mode: same dropout masks
        assert f["grad_err"] < 1e-5  # relative to each tensor's largest gradient
        assert f["eval_err"] < 1e-5 * f["out_scale"]
        assert f["sent_bytes"] == f["predicted_bytes"]  # the cost model counts what crosses
        assert f["round_trip"]  # whole-net checkpoint -> columns -> whole net, bit for bit
        assert f["first_bad"] == [3, -1]  # the earliest non-finite step of any rank, or none
    # 3 steps on 2 x 2 processes = 3 steps on one process (float32 rounding)
    one = open_trainer(build_config("quick", tiny_overrides(tiny_store, tmp_path / "one", "train.deterministic=true",
                                                            "data.threads=1", "data.prefetch=0")))
    one.run_steps(3)
    model, optim = one.parts.state_dicts()
    split = load_checkpoint(run / "last.pt")
    assert _max_diff(split["model"], model) < 1e-6
    assert max((optim["state"][i]["velocity"] - split["optimizer"]["state"][i]["velocity"]).abs().max().item()
               for i in optim["state"]) < 1e-6
    one.close()


def test_seeds_train_an_ensemble_that_torchrun_evaluates(tiny_store, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ens"
    sets = tiny_overrides(tiny_store, out, "schedule.epochs=1", "train.max_steps_per_epoch=2")
    assert main(["train", "--seeds", "1", "2", "--preset", "quick", "--set", *sets]) == 0
    first = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [(r["run"], r["status"], r["step"]) for r in first] == [(str(out / f"seed-{s}"), "finished", 2) for s in (1, 2)]
    assert main(["train", "--seeds", "1", "2", "--preset", "quick", "--set", *sets]) == 0  # again: nothing to do
    assert [json.loads(l)["step"] for l in capsys.readouterr().out.splitlines()] == [2, 2]
    for env in (("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1")):  # process 1 of 2 under torchrun
        monkeypatch.setenv(*env)
    assert [r["run"] for r in train_seeds(build_config("quick", sets), [3, 4])] == [str(out / "seed-4")]
    for env in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(env)
    # `torchrun ... alexnet eval A B`: two processes, each half of the images, same answer as one
    members = [str(out / f"seed-{s}" / "last.pt") for s in (1, 2)]
    stdout, _ = _finish(_torchrun(2, [*members, "--data", str(tiny_store), "--views", "10crop", "--json"], command="eval"))
    (shared,) = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")]  # rank 0 alone prints
    alone = evaluate_checkpoints(members, open_store(tiny_store), None, "10crop")
    assert shared == alone and shared["images"] == 120


def test_shared_dropout_draws_torch_masks_for_the_global_batch():
    x = torch.randn(8, 6)
    for paper, layer in ((True, PaperDropout(0.5)), (False, torch.nn.Dropout(0.5))):  # §4.2, or torch's inverted
        torch.manual_seed(3)
        whole = layer(x)
        for replicas in (1, 2, 4):
            for r in range(replicas):
                for c in range(2):  # a column's half of the units
                    torch.manual_seed(3)
                    shared = SharedDropout(0.5, Layout(rank=2 * r + c, world=2 * replicas, columns=2), paper)
                    mine = shared(x[r::replicas, 3 * c:3 * c + 3])
                    assert torch.equal(mine, whole[r::replicas, 3 * c:3 * c + 3])
                    assert torch.equal(shared.eval()(x), layer.eval()(x))  # x0.5 at test, or the identity
                    layer.train()


def test_lars_step_follows_you_et_al():
    torch.manual_seed(0)
    w = torch.randn(5, 4, requires_grad=True)
    w.grad = torch.randn(5, 4)
    w0, g = w.detach().clone(), w.grad.clone()
    opt = PaperSGD([dict(params=[w], lars_eta=0.001)], lr=2.0, momentum=0.9, weight_decay=5e-4)
    opt.step()
    lam = 0.001 * w0.norm() / (g.norm() + 5e-4 * w0.norm())
    v = -2.0 * lam * (g + 5e-4 * w0)
    torch.testing.assert_close(w.detach(), w0 + v)
    assert trust_ratios([torch.zeros(3)], [torch.ones(3)], 0.001, 5e-4).item() == 1.0  # zero weights: global lr


def test_warmup_ramps_the_lr_then_hands_it_to_the_plateau_schedule():
    s = PlateauSchedule(ScheduleConfig(warmup_epochs=0.5), 0.1, steps_per_epoch=8)  # 4 warm-up steps
    assert [s.lr_at(i) for i in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    assert PlateauSchedule(ScheduleConfig(), 0.1, steps_per_epoch=8).lr_at(0) == 0.1  # off by default


def test_options_that_cannot_work_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="optim.lars=true needs optim.rule=paper"):
        build_config(None, ["optim.lars=true", "optim.rule=torch"])
    with pytest.raises(ConfigError, match="needs model.arch=paper, model.columns=2"):
        build_config(None, ["train.model_parallel=true", "model.columns=1"])
    with pytest.raises(ConfigError, match="launch with torchrun --nproc-per-node 2"):
        from_env("cpu", model_parallel=True)  # one process: no second device for the other column
