"""alexnet: the 2012 network of Krizhevsky, Sutskever and Hinton, faithful and fast."""
from importlib import import_module

from .config import Config, ModelConfig, build_config

__all__ = ["AlexNet", "AlexNetOWT", "Cifar4", "Config", "ModelConfig", "build_config", "build_model", "count_parameters"]
__version__ = "0.1.0"

_NETS = ("AlexNet", "AlexNetOWT", "Cifar4", "build_model", "count_parameters")


def __getattr__(name: str):
    # The nets import torch (seconds); importing them on first use keeps torch out of processes
    # that never touch a net, such as prepare's worker processes (PEP 562).
    if name in _NETS:
        return getattr(import_module(".nets", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
