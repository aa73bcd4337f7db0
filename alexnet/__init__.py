"""alexnet: the 2012 network of Krizhevsky, Sutskever and Hinton, faithful and fast."""
from .config import Config, ModelConfig, build_config
from .nets import AlexNet, AlexNetOWT, Cifar4, build_model, count_parameters
from .ship import Weights, load

__all__ = ["AlexNet", "AlexNetOWT", "Cifar4", "Config", "ModelConfig", "Weights", "build_config", "build_model",
           "count_parameters", "load"]
__version__ = "0.1.0"
