"""The one runtime interface the server talks to, and the runtimes behind it.

The server never touches torch directly: it holds a :class:`Predictor` per model version
and calls ``predict(batch) -> (N, K) float32 outputs`` on decoded batches (see
``serve/inputs.py``) from one inference thread per version. :func:`runtime_name` picks the
runtime from the artifact; the routes, batcher, cache and metrics are the same for all:

==============  ==========================================================================
runtime         artifact
==============  ==========================================================================
``torch-fp32``  ``weights.safetensors`` + ``spec.json`` (+ ``tokenizer/`` for text): eager
                PyTorch on CPU or CUDA; attributions by gradient × input.
``torch-int8``  the same files with ``"runtime": "torch-int8"`` in ``spec.json``: the fp32
                weights load, then ``nn.Linear`` layers become dynamic int8 (``serve/int8.py``);
                or an int8 variant made by ``yard compress`` (``"format": "torch-int8-dynamic"``
                or ``"torch-int8-static"``), loaded as saved. CPU only; no attributions (int8
                layers have no gradients).
``onnxruntime`` ``model.onnx`` + ``spec.json`` (or ``"runtime": "onnxruntime"``): ONNX
                Runtime with the worker's thread count; one input (``input``, or
                ``input_ids`` + ``attention_mask`` for text); no attributions.
==============  ==========================================================================

A text model's strings are tokenized with the tokenizer saved in its artifact, exactly
as at training time and in evaluation (``runtime/text.py``: eager fp32 batches padded to
their longest text, compressed variants to ``max_length``). Language models are not
served (they generate, not predict).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelyard.core.errors import ArtifactError, ConfigError
from modelyard.core.manifest import looks_like_pickle
from modelyard.core.refs import ModelRef
from modelyard.serve.errors import ServeError
from modelyard.serve.features import find_preprocessor
from modelyard.serve.inputs import Batch, InputSpec
from modelyard.store.project import Store

TORCH_FP32 = "torch-fp32"
TORCH_INT8 = "torch-int8"
ONNXRUNTIME = "onnxruntime"
ONNX_FILE = "model.onnx"
SERVED_TASKS = ("classification", "regression")
# Inputs per forward pass inside one batch: bounds activation memory for a large max_batch_size.
_CHUNK = 256


class ExplainUnsupported(ServeError):
    """This runtime or modality gives no attributions (400)."""

    def __init__(self, why: str) -> None:
        super().__init__(400, "explain_unsupported", f"explanations are not available here: {why}",
                         field="explain")


class Predictor(Protocol):
    """A loaded model version that turns decoded batches into raw outputs."""

    runtime: str
    """Runtime name, part of cache keys and metadata (``torch-fp32``, ``torch-int8``, ``onnxruntime``)."""
    spec: InputSpec
    """What the model takes and gives."""

    def predict(self, batch: Batch) -> np.ndarray:
        """Outputs for a decoded batch: logits ``(N, classes)`` or values ``(N, 1)``, float32."""
        ...

    def attribute(self, batch: Batch, targets: np.ndarray) -> np.ndarray:
        """Attributions of each input towards output ``targets[i]``, shaped like the batch."""
        ...


class TorchPredictor:
    """Eager PyTorch in fp32 on CPU or CUDA; the module, spec (and tokenizer) from the model artifact.

    Attributions are gradient × input: exact for a linear model, cheap (one backward pass
    per batch), and needing nothing beyond torch.
    """

    runtime = TORCH_FP32

    def __init__(self, path: Path, ref: ModelRef, *, device: str = "cpu") -> None:
        from modelyard.runtime import load_model_dir
        from modelyard.runtime.text import TextEncoder, text_encoder

        self.loaded = load_model_dir(path, ref, device=device)
        self.spec = InputSpec.from_spec(self.loaded.spec)
        _check_task(self.loaded.spec, path)
        self.device = device
        self.encoder: TextEncoder | None = text_encoder(self.loaded) if self.spec.modality == "text" else None

    def predict(self, batch: Batch) -> np.ndarray:
        """Logits (or regression values) as float32, in chunks of at most 256 inputs."""
        import torch

        outputs = []
        with torch.inference_mode():
            for start in range(0, len(batch), _CHUNK):
                chunk = batch[start:start + _CHUNK]
                if self.encoder is None:
                    out = self.loaded.module(torch.as_tensor(chunk, device=self.device))  # (B, K)
                else:
                    ids, mask = self.encoder.encode(list(chunk))                            # (B, T) each
                    out = self.loaded.module(torch.as_tensor(ids, device=self.device),
                                             torch.as_tensor(mask, device=self.device))   # (B, K)
                outputs.append(out.float().cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, self.spec.num_outputs), np.float32)

    def attribute(self, batch: Batch, targets: np.ndarray) -> np.ndarray:
        """Gradient × input of output ``targets[i]`` for input ``i``."""
        import torch

        if self.encoder is not None:
            raise ExplainUnsupported("text models (token ids have no gradient)")
        assert isinstance(batch, np.ndarray)
        module = self.loaded.module
        x = torch.as_tensor(batch, device=self.device).clone().requires_grad_(True)  # (N, *item)
        with torch.enable_grad():
            outputs = module(x)                                                       # (N, K)
            picked = outputs.gather(1, torch.as_tensor(targets, device=self.device).long().view(-1, 1))
            (grad,) = torch.autograd.grad(picked.sum(), x)
        return (grad * x).detach().float().cpu().numpy()


class TorchInt8Predictor(TorchPredictor):
    """int8 on the CPU: a compressed int8 variant as saved, or an fp32 artifact whose ``nn.Linear``
    layers are quantized to dynamic int8 at load."""

    runtime = TORCH_INT8

    def __init__(self, path: Path, ref: ModelRef, *, device: str = "cpu") -> None:
        from modelyard.serve.int8 import quantize_linear_layers

        # The int8 matmul runs on the CPU; on a GPU machine this variant still runs there.
        super().__init__(path, ref, device="cpu")
        if _compressed_int8(self.loaded.spec):
            return  # already int8 (yard compress)
        if quantize_linear_layers(self.loaded.module) == 0:
            raise ArtifactError("torch-int8 variant of a model without linear layers", where=str(path))

    def attribute(self, batch: Batch, targets: np.ndarray) -> np.ndarray:
        """Not available: int8 layers have no gradients (serve the fp32 version to explain)."""
        raise ExplainUnsupported("the torch-int8 runtime (int8 layers have no gradients)")


class OnnxPredictor:
    """ONNX Runtime on ``model.onnx``, with the thread count torch was given for this worker."""

    runtime = ONNXRUNTIME

    def __init__(self, path: Path, ref: ModelRef, *, device: str = "cpu") -> None:
        import json

        from modelyard.plugins.tokenizers.base import load_tokenizer
        from modelyard.runtime.onnx import session_for
        from modelyard.runtime.package import SPEC, TOKENIZER_DIR
        from modelyard.runtime.text import spec_max_length

        model_file = path / ONNX_FILE
        if not model_file.is_file():
            raise ArtifactError(f"onnxruntime artifact has no {ONNX_FILE}", where=str(path))
        if looks_like_pickle(model_file):
            raise ArtifactError("model.onnx is a pickle: refused", where=str(model_file))
        raw_spec = json.loads((path / SPEC).read_text("utf-8"))
        _check_task(raw_spec, path)
        self.spec = InputSpec.from_spec(raw_spec)
        self.session = session_for(model_file, device=device, cpu_fallback=True)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = None
        self.max_length = 0
        if self.spec.modality == "text":
            folder = path / TOKENIZER_DIR
            if not folder.is_dir():
                raise ArtifactError("text model artifact has no tokenizer/ folder", where=str(path))
            self.tokenizer = load_tokenizer(folder)
            self.max_length = spec_max_length(raw_spec, where=str(path))
        expected = 2 if self.tokenizer is not None else 1
        if len(self.input_names) != expected:
            raise ArtifactError(f"model.onnx takes {len(self.input_names)} inputs, expected {expected}",
                                where=str(model_file))

    def predict(self, batch: Batch) -> np.ndarray:
        """Outputs as float32, in chunks of at most 256 inputs."""
        outputs = []
        for start in range(0, len(batch), _CHUNK):
            chunk = batch[start:start + _CHUNK]
            if self.tokenizer is not None:
                ids, mask = self.tokenizer.encode_batch(list(chunk), self.max_length)
                feeds = dict(zip(self.input_names, (ids, mask)))
            else:
                feeds = {self.input_names[0]: np.ascontiguousarray(chunk, dtype=np.float32)}
            (out, *_rest) = self.session.run(None, feeds)
            outputs.append(np.asarray(out, dtype=np.float32))
        return np.concatenate(outputs) if outputs else np.zeros((0, self.spec.num_outputs), np.float32)

    def attribute(self, batch: Batch, targets: np.ndarray) -> np.ndarray:
        """Not available: an ONNX graph is run forward only (serve the torch version to explain)."""
        raise ExplainUnsupported("the onnxruntime runtime (forward only)")


def _check_task(spec: dict[str, Any], path: Path) -> None:
    task = spec.get("task", "classification")
    if task not in SERVED_TASKS:
        raise ArtifactError(f"serving {task} models is not supported (served: {', '.join(SERVED_TASKS)})",
                            where=str(path))


def _compressed_int8(spec: dict[str, Any]) -> bool:
    """True for the int8 variants ``yard compress`` writes (``format`` in ``spec.json``)."""
    from modelyard.runtime.quantized import INT8_DYNAMIC, INT8_STATIC

    return spec.get("format") in (INT8_DYNAMIC, INT8_STATIC)


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("serve.device is 'cuda' but no CUDA device is available", where="serve.device")
    return name


def runtime_name(spec: dict[str, Any], files: set[str]) -> str:
    """Which runtime serves an artifact: ``spec["runtime"]`` when set, else by its files and format."""
    if "runtime" in spec:
        return str(spec["runtime"])
    if ONNX_FILE in files:
        return ONNXRUNTIME
    if _compressed_int8(spec):
        return TORCH_INT8
    return TORCH_FP32


# Runtime name -> factory(verified artifact folder, ref, device=...).
RUNTIMES: dict[str, Callable[..., Predictor]] = {TORCH_FP32: TorchPredictor, TORCH_INT8: TorchInt8Predictor,
                                                 ONNXRUNTIME: OnnxPredictor}


def load_predictor(store: Store, ref: ModelRef, *, device: str = "cpu") -> Predictor:
    """Verify and load the artifact ``ref`` with the runtime its content asks for.

    A tabular model gets the preprocessing it was trained with (``serve/features.py``).

    Raises:
        ArtifactError: tampered or pickle-based artifacts, or a runtime this server lacks.
    """
    import json

    path = store.artifacts.path(ref)  # verifies every hash before anything is read
    spec_file = path / "spec.json"
    spec = json.loads(spec_file.read_text("utf-8")) if spec_file.is_file() else {}
    name = runtime_name(spec, {p.name for p in path.iterdir()})
    factory = RUNTIMES.get(name)
    if factory is None:
        raise ArtifactError(f"no serving runtime {name!r} (available: {', '.join(sorted(RUNTIMES))})",
                            where=str(path))
    predictor = factory(path, ref, device=device)
    if predictor.spec.modality == "tabular":
        transform = find_preprocessor(store, ref, path)
        if transform is not None:
            if transform.features != predictor.spec.features:
                raise ArtifactError(f"preprocessor features {transform.features} differ from the model's "
                                    f"{predictor.spec.features}", where=str(path))
            predictor.spec = replace(predictor.spec, transform=transform)
    return predictor


def smoke_check(predictor: Predictor) -> None:
    """Predict on one neutral input and check the outputs' shape and finiteness.

    Raises:
        ArtifactError: the model fails to run, or gives outputs of the wrong shape or NaN.
    """
    spec = predictor.spec
    batch: Batch = ["smoke test"] if spec.modality == "text" else np.zeros((1, *spec.item_shape), np.float32)
    try:
        outputs = np.asarray(predictor.predict(batch))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ArtifactError(f"smoke prediction failed: {type(exc).__name__}: {exc}") from exc
    if outputs.shape != (1, spec.num_outputs):
        raise ArtifactError(f"smoke prediction gave shape {list(outputs.shape)}, expected [1, {spec.num_outputs}]")
    if not np.isfinite(outputs).all():
        raise ArtifactError("smoke prediction gave NaN or infinite outputs")


__all__ = ["ONNXRUNTIME", "RUNTIMES", "TORCH_FP32", "TORCH_INT8", "ExplainUnsupported", "OnnxPredictor",
           "Predictor", "TorchInt8Predictor", "TorchPredictor", "load_predictor", "resolve_device", "runtime_name",
           "smoke_check"]
