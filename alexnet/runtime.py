"""Where and how computation runs: the device a config names, autocast for a precision, host
synchronisation, and a readable device name. Every room that runs a net uses these."""
from __future__ import annotations

import contextlib
import platform

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
