"""Request and response bodies of the HTTP API, as pydantic models (they feed ``/openapi.json``).

The ``/v2`` models follow the Open Inference Protocol (KServe v2 / Triton REST); the
``/v1`` models are the plain JSON API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_SHAPE = Field(description="Tensor shape; the first dimension is the batch.", max_length=8)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- Open Inference Protocol v2


class TensorMetadata(BaseModel):
    """Name, datatype and shape of a model input or output (-1: any size)."""

    name: str = Field(description="Tensor name.")
    datatype: str = Field(description="FP32, INT64, BYTES, …")
    shape: list[int] = Field(description="Shape; -1 for the batch dimension.")


class ServerMetadata(BaseModel):
    """``GET /v2``."""

    name: str = Field(description="Server name.")
    version: str = Field(description="modelyard version.")
    extensions: list[str] = Field(description="Protocol extensions supported.")


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}``."""

    name: str = Field(description="Model name in the registry.")
    versions: list[str] = Field(description="Versions being served (primary first, then a canary).")
    platform: str = Field(description="Runtime serving it, e.g. modelyard_torch-fp32.")
    inputs: list[TensorMetadata] = Field(description="The model's input tensor.")
    outputs: list[TensorMetadata] = Field(description="The output tensors it can return.")
    parameters: dict[str, Any] = Field(default_factory=dict,
                                       description="modelyard extras: labels, alias, canary share, last reload.")


class LiveResponse(BaseModel):
    """``GET /v2/health/live``."""

    live: bool = Field(description="The process answers.")


class ReadyResponse(BaseModel):
    """``GET /v2/health/ready`` and ``…/ready`` of a model."""

    ready: bool = Field(description="Models are loaded and requests are taken.")
    name: str | None = Field(default=None, description="Model name (model readiness only).")


class InferInput(_Body):
    """One input tensor of an inference request."""

    name: str = Field(max_length=256, description="Input name from the model's metadata (input, or text).")
    shape: list[int] = _SHAPE
    datatype: str = Field(max_length=16, description="FP32 (or another numeric type) for features and images, "
                                                     "BYTES for text.")
    parameters: dict[str, Any] | None = Field(default=None, description="binary_data_size for the binary "
                                                                        "tensor extension.")
    data: list[Any] | None = Field(default=None, description="Values, flat (row-major) or nested in the shape.")


class InferRequestedOutput(_Body):
    """An output the client wants back."""

    name: str = Field(max_length=256, description="Output name from the model's metadata.")
    parameters: dict[str, Any] | None = Field(default=None, description="binary_data: true for binary output.")


class InferRequest(_Body):
    """``POST /v2/models/{name}/infer``."""

    id: str | None = Field(default=None, max_length=256, description="Echoed in the response.")
    parameters: dict[str, Any] | None = Field(default=None, description="binary_data_output: true for binary "
                                                                        "outputs.")
    inputs: list[InferInput] = Field(min_length=1, max_length=16, description="Input tensors (one for our models).")
    outputs: list[InferRequestedOutput] | None = Field(default=None, max_length=16,
                                                       description="Outputs wanted (default: all).")


class InferOutput(BaseModel):
    """One output tensor of an inference response."""

    name: str = Field(description="Output name.")
    shape: list[int] = Field(description="Shape.")
    datatype: str = Field(description="Datatype.")
    parameters: dict[str, Any] | None = Field(default=None, description="binary_data_size when sent as binary.")
    data: list[Any] | None = Field(default=None, description="Values, flat in row-major order.")


class InferResponse(BaseModel):
    """The answer to an inference request."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str = Field(description="Model name.")
    model_version: str = Field(description="The version that answered (the canary's when it did).")
    id: str | None = Field(default=None, description="The request's id.")
    outputs: list[InferOutput] = Field(description="Output tensors.")


# ---------------------------------------------------------------- plain JSON v1


class PredictRequest(_Body):
    """``POST /v1/models/{name}:predict``."""

    instances: list[Any] = Field(
        description="Raw inputs: feature objects ({name: number}) or lists for tabular models; nested lists or "
                    "base64 PNG/JPEG strings (or {\"b64\": …}) for image models; strings for text models.")
    explain: bool = Field(default=False, strict=True,
                          description="Also return attributions (gradient × input) per input.")


class Prediction(BaseModel):
    """The prediction for one instance."""

    label: str | None = Field(default=None, description="Most probable class (classification).")
    probabilities: dict[str, float] | None = Field(default=None, description="Class → probability.")
    value: float | None = Field(default=None, description="Predicted value (regression).")
    attributions: Any = Field(default=None, description="With explain: feature → attribution (tabular) or an "
                                                        "array shaped like the input (images).")


class PredictResponse(BaseModel):
    """The answer to a predict request."""

    model: str = Field(description="Model name.")
    version: int = Field(description="The version that answered.")
    predictions: list[Prediction] = Field(description="One per instance, in order.")


class CanaryRequest(_Body):
    """``PUT /v1/models/{name}/canary``."""

    version: int = Field(ge=1, description="Version that takes the canary share.")
    share: float = Field(gt=0.0, lt=1.0, description="Fraction of traffic, e.g. 0.1.")


class AdminResponse(BaseModel):
    """The result of an admin action."""

    model: str = Field(description="Model name.")
    outcome: str = Field(description="unchanged, swapped, failed, canary_set, canary_removed.")
    serving: list[str] = Field(description="Versions served afterwards (primary first).")
    detail: dict[str, Any] = Field(default_factory=dict, description="More about the outcome.")


class RepositoryEntry(BaseModel):
    """One model in ``POST /v2/repository/index``."""

    name: str = Field(description="Model name.")
    version: str = Field(description="Primary version served.")
    state: str = Field(description="READY.")
    reason: str = Field(default="", description="Last reload failure, if any.")


__all__ = [
    "AdminResponse",
    "CanaryRequest",
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferRequestedOutput",
    "InferResponse",
    "LiveResponse",
    "ModelMetadata",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "ReadyResponse",
    "RepositoryEntry",
    "ServerMetadata",
    "TensorMetadata",
]
