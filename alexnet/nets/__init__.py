"""The networks (§3): the paper's AlexNet and its ablations, torchvision's "one weird trick"
variant, Figure 1's CIFAR net; the LRN layer and its kernels; the layer table."""
from .model import AlexNet, AlexNetOWT, Cifar4, build_model, count_parameters

__all__ = ["AlexNet", "AlexNetOWT", "Cifar4", "build_model", "count_parameters"]
