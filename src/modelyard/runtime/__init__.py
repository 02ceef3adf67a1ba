"""Load a packaged model artifact and run inference (torch eager today; int8 and ONNX later)."""

from __future__ import annotations

from modelyard.runtime.package import LoadedModel, build_from_spec, load_model, load_model_dir, save_model
from modelyard.runtime.predict import predict_outputs, probabilities

__all__ = ["LoadedModel", "build_from_spec", "load_model", "load_model_dir", "predict_outputs",
           "probabilities", "save_model"]
