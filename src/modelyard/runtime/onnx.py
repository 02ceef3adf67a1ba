"""ONNX Runtime behind the ``nn.Module`` call interface, so evaluation and serving need no branch.

An ONNX variant is an artifact with ``model.onnx`` + ``spec.json``; :class:`OnnxModule`
wraps an ``onnxruntime.InferenceSession``: ``forward(*tensors) -> tensor`` with the
graph's input names taken from the spec. Inputs are cast to the dtypes the graph
declares (a token model's ``attention_mask`` is int64 whatever the caller holds), and a
missing trailing ``attention_mask`` is filled with ones, as the torch models treat ``None``.

``onnxruntime`` (the ``compress`` extra) is imported only when a session is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelyard.core.errors import ArtifactError, ConfigError

ONNX_FILE = "model.onnx"
FORMAT_ONNX = "onnx"
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(float16)": np.float16}


def session_for(path: Path, *, device: str | torch.device = "cpu", threads: int | None = None,
                cpu_fallback: bool = False) -> Any:
    """An ONNX Runtime session for ``path`` on ``device`` (the CUDA provider first when asked).

    Args:
        path: the ``.onnx`` file.
        device: ``cpu`` or ``cuda``.
        threads: intra-op threads (default: torch's thread count for this process).
        cpu_fallback: with ``device`` cuda and an onnxruntime without the CUDA provider, run on the
            CPU (a serving worker on a GPU machine with the CPU wheel) instead of refusing.

    Raises:
        ConfigError: onnxruntime is missing, or cuda asked of a CPU-only onnxruntime without ``cpu_fallback``.
        ArtifactError: ONNX Runtime cannot load the graph.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - the compress extra is installed in CI
        raise ConfigError("ONNX variants need onnxruntime", hint="pip install 'modelyard[compress]'") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's warnings go to stderr, not to Python warnings
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            if cpu_fallback:
                return session_for(path, threads=threads)
            raise ConfigError("device is cuda but this onnxruntime has no CUDA provider",
                              hint="pip install onnxruntime-gpu, or run on cpu")
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:
        raise ArtifactError(f"ONNX Runtime cannot load the model: {exc}", where=str(path)) from exc


class OnnxModule(nn.Module):
    """An ONNX Runtime session that is called like the torch model it was exported from.

    Args:
        session: an ``onnxruntime.InferenceSession``.
        input_names: the graph's input names in the torch ``forward``'s argument order.
    """

    def __init__(self, session: Any, input_names: Sequence[str]) -> None:
        super().__init__()
        self.session = session
        self.input_names = list(input_names)
        declared = {item.name: item.type for item in session.get_inputs()}
        missing = [name for name in self.input_names if name not in declared]
        if missing:
            raise ArtifactError(f"the ONNX graph has no input(s) {missing}; it declares {sorted(declared)}")
        self.input_dtypes = {name: _ORT_TYPES.get(declared[name], np.float32) for name in self.input_names}
        self.output_name = session.get_outputs()[0].name

    def forward(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        feed: dict[str, np.ndarray] = {}
        first = inputs[0]
        assert first is not None
        for i, name in enumerate(self.input_names):
            value = inputs[i] if i < len(inputs) else None
            if value is None:
                if name != "attention_mask":
                    raise ConfigError(f"the ONNX model needs input {name!r}")
                array: np.ndarray = np.ones(tuple(first.shape[:2]), dtype=self.input_dtypes[name])
            else:
                array = value.detach().cpu().numpy().astype(self.input_dtypes[name], copy=False)
            feed[name] = np.ascontiguousarray(array)
        (out,) = self.session.run([self.output_name], feed)
        return torch.from_numpy(out)


def load_onnx(path: Path, spec: dict[str, Any], *, device: str | torch.device = "cpu") -> OnnxModule:
    """The :class:`OnnxModule` of the ONNX variant artifact at ``path``.

    Raises:
        ArtifactError: no ``model.onnx``, or a graph ONNX Runtime refuses.
    """
    graph = path / ONNX_FILE
    if not graph.is_file():
        raise ArtifactError("ONNX model artifact has no model.onnx", where=str(path))
    onnx_spec = spec.get("onnx") or {}
    return OnnxModule(session_for(graph, device=device), onnx_spec.get("input_names", ["inputs"])).eval()


__all__ = ["FORMAT_ONNX", "ONNX_FILE", "OnnxModule", "load_onnx", "session_for"]
