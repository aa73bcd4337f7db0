"""Where and how computation runs: the device a config names, autocast for a precision, host
synchronisation, a readable device name, and the facts of a process (its command line, the
package's commit, versions) that a run folder or a result records. Every room that runs a net uses these."""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from .errors import ConfigError


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """auto: CUDA when present, else CPU. `key` is the setting named in errors (a config key or a flag)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}={name} but no CUDA device is available: use {key}=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{key}={name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None


def autocast(device: torch.device, precision: str):
    """bf16 autocast on `device`, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device` without making the host wait: on CUDA through pinned memory with
    a non-blocking copy (a plain .to() from pageable memory synchronises the stream)."""
    if device.type != "cuda" or t.is_cuda:
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU, which runs eagerly)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def configure_torch(threads: int, deterministic: bool, cudnn_benchmark: bool = False) -> None:
    """Process-wide torch settings of a run (train.threads, train.deterministic,
    train.cudnn_benchmark): set once by the program that runs, never as a side effect of building
    something."""
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic


def command_line(argv: list[str] | None = None) -> str:
    """The command this process runs, as typed: `alexnet ...` for the console script and for
    `python -m alexnet`, else the arguments as they are."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("alexnet", "__main__.py"):
        return shlex.join(["alexnet", *argv[1:]])
    return shlex.join(argv)


def source_commit() -> str | None:
    """The git commit of the checkout this package runs from, with "+changes" when tracked files
    differ from it; None when the package is not in a git checkout (an installed wheel) or git is missing."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:  # a repository around site-packages is not this package's
        return None
    commit = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no")
    return None if commit is None else commit + ("+changes" if changed else "")


def run_facts(device: torch.device, command: str | None = None) -> dict:
    """How this process runs, the one record of it that run folders (run.json), results
    (result.json) and benchmarks write: the command line (`command`, else this process's), date,
    device (its readable name) and torch_device (as torch names it), host and its cores, platform,
    versions, and the package's commit."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        package = version("alexnet")
    except PackageNotFoundError:  # run from a checkout that was never installed
        package = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"command": command or command_line(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": device_name(device), "torch_device": str(device), "host": platform.node(), "host_cores": cores,
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "alexnet": package, "commit": source_commit()}
