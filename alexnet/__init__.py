"""alexnet: the 2012 network of Krizhevsky, Sutskever and Hinton, faithful and fast."""
from importlib import import_module

from .config import Config, ModelConfig, build_config

__all__ = ["AlexNet", "AlexNetOWT", "Cifar4", "Config", "ModelConfig", "Weights", "build_config", "build_model",
           "count_parameters", "load"]
__version__ = "0.1.0"

# name -> the room that defines it. They import torch (seconds); importing them on first use keeps
# torch out of processes that never touch a net, such as prepare's worker processes (PEP 562).
_LAZY = {"AlexNet": ".nets", "AlexNetOWT": ".nets", "Cifar4": ".nets", "build_model": ".nets",
         "count_parameters": ".nets", "Weights": ".ship", "load": ".ship"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
