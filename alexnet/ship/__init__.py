"""Using a trained net (the `ship` room): predict on image files, weights that describe themselves
(safetensors + metadata, `load`), ONNX export and onnxruntime, fine-tuning (§6)."""
from .weights import ImageTransform, Weights, load, save_safetensors

__all__ = ["ImageTransform", "Weights", "load", "save_safetensors"]
