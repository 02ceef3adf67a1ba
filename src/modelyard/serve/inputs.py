"""Raw request inputs → the arrays a model takes, per modality, from the model's ``spec.json``.

=========  ====================================================  =====================
modality   one input (``/v1 … :predict`` instance)                 decoded batch
=========  ====================================================  =====================
tabular    ``{"feature": number, …}`` or ``[number, …]`` (F)      ``(N, F)`` float32
image      nested list ``(C, H, W)`` / ``(H, W)`` / flat,         ``(N, C, H, W)`` float32
           or base64 PNG/JPEG (a string or ``{"b64": …}``)
text       a string                                              ``list[str]`` (N)
=========  ====================================================  =====================

Open Inference Protocol tensors (``/v2``) decode through :func:`decode_tensor` to the
same batches. Every rule is checked before a request is queued, so a bad input is a 400
naming the field (``instances[3].petal width (cm)``) and never reaches a batch of others.

Images from base64 are decoded as the data stage decodes image folders: Pillow, grey (L)
or RGB, bilinear resize to the model's (H, W), scaled to [0, 1].
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.serve.errors import ServeError, bad_input, shorten

if TYPE_CHECKING:
    from modelyard.serve.features import FeatureTransform

Batch = np.ndarray | list[str]

# Open Inference Protocol datatypes we accept for numeric inputs, with their little-endian numpy types.
NUMERIC_DATATYPES = {
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
}
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Pixels one base64 image may have before decoding (a 4096 x 4096 photo); beyond it: 400, not a decompression bomb.
MAX_IMAGE_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Limits:
    """Per-request bounds (from the ``serve:`` config)."""

    max_instances: int = 1024
    max_string_length: int = 65_536


@dataclass(frozen=True)
class InputSpec:
    """What a model takes and gives, read from its ``spec.json``."""

    modality: str
    task: str
    features: list[str] = field(default_factory=list)
    image_shape: tuple[int, int, int] | None = None
    label_names: list[str] = field(default_factory=list)
    # Tabular models trained on preprocessed features: the fitted transform raw values go through.
    transform: FeatureTransform | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> InputSpec:
        """Read the fields the server needs from a model spec."""
        inputs = spec.get("inputs") or {}
        shape = inputs.get("image_shape")
        return cls(modality=str(spec.get("modality", "tabular")), task=str(spec.get("task", "classification")),
                   features=list(inputs.get("features") or []),
                   image_shape=tuple(int(s) for s in shape) if shape else None,  # type: ignore[arg-type]
                   label_names=[str(n) for n in spec.get("label_names") or []])

    @property
    def input_name(self) -> str:
        """The input tensor's name in the Open Inference Protocol."""
        return "text" if self.modality == "text" else "input"

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one decoded input (``()`` for text)."""
        if self.modality == "image":
            assert self.image_shape is not None
            return self.image_shape
        if self.modality == "tabular":
            return (len(self.features),)
        return ()

    @property
    def num_outputs(self) -> int:
        """Width of the model's output row: classes, or 1 for regression."""
        return len(self.label_names) if self.task == "classification" else 1

    @property
    def classification(self) -> bool:
        """True when outputs are class logits."""
        return self.task == "classification"


def batch_len(batch: Batch) -> int:
    """Number of inputs in a batch."""
    return len(batch)


def take(batch: Batch, index: Sequence[int]) -> Batch:
    """The inputs at ``index``, in that order."""
    if isinstance(batch, np.ndarray):
        return batch[np.asarray(index, dtype=np.int64)]
    return [batch[i] for i in index]


def concat(batches: Sequence[Batch]) -> Batch:
    """One batch of all inputs, in order."""
    if isinstance(batches[0], np.ndarray):
        return np.concatenate(batches) if len(batches) > 1 else batches[0]
    return [item for b in batches for item in b]


def items(batch: Batch) -> list[np.ndarray] | list[str]:
    """The inputs one by one (for cache keys)."""
    return list(batch)


# ---------------------------------------------------------------- /v1 instances


def decode_instances(spec: InputSpec, instances: Any, limits: Limits) -> Batch:
    """Decode the ``instances`` list of a ``/v1 … :predict`` request.

    Raises:
        ServeError: 400 naming the first bad instance and field.
    """
    if not isinstance(instances, list):
        raise bad_input(f"instances must be a list, not {type(instances).__name__}", "instances")
    if not instances:
        raise bad_input("instances is empty: send at least one input", "instances")
    if len(instances) > limits.max_instances:
        raise bad_input(f"{len(instances)} instances in one request; at most {limits.max_instances}", "instances")
    if spec.modality == "tabular":
        return np.stack([_tabular_instance(spec, v, f"instances[{i}]") for i, v in enumerate(instances)])
    if spec.modality == "image":
        return np.stack([_image_instance(spec, v, f"instances[{i}]", limits) for i, v in enumerate(instances)])
    if spec.modality == "text":
        return [_text_instance(v, f"instances[{i}]", limits) for i, v in enumerate(instances)]
    raise ServeError(500, "unsupported_model", f"models of modality {spec.modality!r} cannot be served yet")


def _number(value: Any, where: str) -> float:
    # bool is an int in Python, but `true` is not a feature value anyone means.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_input(f"expected a number, got {shorten(value)}", where)
    number = float(value)
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise bad_input(f"expected a finite number within float32 range, got {number}", where)
    return number


def _tabular_instance(spec: InputSpec, value: Any, where: str) -> np.ndarray:
    features = spec.features
    if isinstance(value, dict):
        known = set(features)
        unknown = [k for k in value if k not in known]
        if unknown:
            raise bad_input(f"unknown feature {shorten(unknown[0])} (features: {', '.join(features)})",
                            f"{where}.{str(unknown[0])[:60]}")
        missing = [f for f in features if f not in value]
        if missing:
            hint = " (send null for a missing value)" if spec.transform is not None else ""
            raise bad_input(f"missing feature {missing[0]!r}{hint}", f"{where}.{missing[0]}")
        if spec.transform is not None:
            return spec.transform.row(value, where)
        row = [_number(value[f], f"{where}.{f}") for f in features]
    elif isinstance(value, list):
        if len(value) != len(features):
            raise bad_input(f"expected {len(features)} feature values ({', '.join(features)}), got {len(value)}",
                            where)
        if spec.transform is not None:
            return spec.transform.row(dict(zip(features, value)), where)
        row = [_number(v, f"{where}[{j}]") for j, v in enumerate(value)]
    else:
        raise bad_input(f"a tabular input is an object of features or a list of {len(features)} numbers, "
                        f"not {type(value).__name__}", where)
    return np.asarray(row, dtype=np.float32)


def _image_instance(spec: InputSpec, value: Any, where: str, limits: Limits) -> np.ndarray:
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise bad_input('an image object must be {"b64": "<base64 PNG or JPEG>"}', where)
        return decode_base64_image(spec, value["b64"], f"{where}.b64", limits)
    if isinstance(value, str):
        return decode_base64_image(spec, value, where, limits)
    if isinstance(value, list):
        return _image_array(spec, value, where)
    raise bad_input(f"an image is a nested list of numbers or a base64 string, not {type(value).__name__}", where)


def _numeric_array(value: Any, where: str, *, allow_nan: bool = False) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RecursionError):
        raise bad_input("not a rectangular array of numbers", where) from None
    if array.dtype.kind not in "iuf" or array.dtype == np.bool_:
        raise bad_input("expected numbers only (no strings, booleans, nulls or ragged rows)", where)
    return _finite_float32(array, where, allow_nan=allow_nan)


def _finite_float32(array: np.ndarray, where: str, *, allow_nan: bool = False) -> np.ndarray:
    """``array`` as float32; 400 for infinities and overflow, and for NaN unless it may mean "missing"."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf, refused just below
        array = array.astype(np.float32)
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if bad.any():
        allowed = " (NaN means missing here)" if allow_nan else " (no NaN or infinity)"
        raise bad_input(f"values must be finite and within float32 range{allowed}", where)
    return array


def _image_array(spec: InputSpec, value: list[Any], where: str) -> np.ndarray:
    assert spec.image_shape is not None
    c, h, w = spec.image_shape
    array = _numeric_array(value, where)
    if array.shape == (c, h, w):
        return array
    if array.shape == (h, w) and c == 1:
        return array.reshape(1, h, w)
    if array.shape == (c * h * w,):
        return array.reshape(c, h, w)
    raise bad_input(f"image shape {list(array.shape)} does not fit the model's (C, H, W) = {[c, h, w]} "
                    f"(send [C, H, W], [H, W] for one channel, or {c * h * w} flat values)", where)


def decode_base64_image(spec: InputSpec, text: Any, where: str, limits: Limits) -> np.ndarray:
    """Decode a base64 PNG/JPEG to the model's (C, H, W) in [0, 1].

    Raises:
        ServeError: 400 for bad base64, an undecodable or oversized image, or a model whose
            channel count is neither 1 nor 3.
    """
    from PIL import Image, UnidentifiedImageError

    assert spec.image_shape is not None
    c, h, w = spec.image_shape
    if not isinstance(text, str):
        raise bad_input("base64 image must be a string", where)
    if len(text) > limits.max_string_length:
        raise bad_input(f"base64 image of {len(text)} characters; at most {limits.max_string_length}", where)
    if c not in (1, 3):
        raise bad_input(f"base64 images need a 1- or 3-channel model; this one takes {c} channels", where)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_input("not valid base64", where) from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise bad_input(f"image of {width}x{height} pixels; at most {MAX_IMAGE_PIXELS} pixels", where)
            converted = image.convert("L" if c == 1 else "RGB")
            if (converted.height, converted.width) != (h, w):
                converted = converted.resize((w, h), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise bad_input("not a decodable image (send PNG or JPEG, base64-encoded)", where) from None
    return array.reshape(1, h, w) if c == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))


def _text_instance(value: Any, where: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise bad_input(f"a text input is a string, not {type(value).__name__}", where)
    return check_text(value, where, limits)


def check_text(text: str, where: str, limits: Limits) -> str:
    """Return ``text`` if it is within the length limit, valid Unicode and NUL-free, else 400."""
    if len(text) > limits.max_string_length:
        raise bad_input(f"text of {len(text)} characters; at most {limits.max_string_length}", where)
    if "\x00" in text:
        raise bad_input("text contains a NUL character", where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_input("text holds an unpaired surrogate (not valid Unicode)", where) from None
    return text


# ---------------------------------------------------------------- /v2 tensors


@dataclass
class TensorIn:
    """One Open Inference Protocol input tensor as received (JSON ``data`` or binary bytes)."""

    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    raw: bytes | None = None


def decode_tensor(spec: InputSpec, tensor: TensorIn, limits: Limits, *, where: str = "inputs[0]") -> Batch:
    """Decode a v2 input tensor to a batch.

    Raises:
        ServeError: 400 naming the field for a wrong name, datatype, shape, element count or value.
    """
    if tensor.name != spec.input_name:
        raise bad_input(f"unknown input {shorten(tensor.name)}; this model takes one input named "
                        f"{spec.input_name!r}", f"{where}.name")
    shape = tensor.shape
    if not shape or shape[0] < 1:
        raise bad_input("shape must start with the batch size (at least 1)", f"{where}.shape")
    if shape[0] > limits.max_instances:
        raise bad_input(f"batch of {shape[0]} inputs in one request; at most {limits.max_instances}",
                        f"{where}.shape")
    if spec.modality == "text":
        return _decode_bytes_tensor(tensor, limits, where)
    expected = [shape[0], *spec.item_shape]
    if list(shape) != expected:
        raise bad_input(f"shape {shape} does not fit the model: expected {expected}", f"{where}.shape")
    if tensor.datatype not in NUMERIC_DATATYPES:
        raise bad_input(f"datatype {shorten(tensor.datatype)} is not accepted here; use FP32 (or another numeric "
                        "type)", f"{where}.datatype")
    count = math.prod(shape)
    # With a fitted transform, NaN in a tensor is a missing value (filled as at training); JSON has no null here.
    missing_ok = spec.transform is not None
    if tensor.raw is not None:
        dtype = np.dtype(NUMERIC_DATATYPES[tensor.datatype])
        if len(tensor.raw) != count * dtype.itemsize:
            raise bad_input(f"binary data of {len(tensor.raw)} bytes; {shape} {tensor.datatype} needs "
                            f"{count * dtype.itemsize}", f"{where}.parameters.binary_data_size")
        array = _finite_float32(np.frombuffer(tensor.raw, dtype=dtype), f"{where}.data", allow_nan=missing_ok)
    else:
        array = _numeric_array(tensor.data, f"{where}.data", allow_nan=missing_ok)
        if array.size != count or (array.ndim > 1 and list(array.shape) != list(shape)):
            raise bad_input(f"data holds {array.size} values in shape {list(array.shape)}; shape {shape} needs "
                            f"{count} (flat, or nested in that shape)", f"{where}.data")
    array = array.reshape(shape)
    if spec.transform is not None:
        return spec.transform.matrix(array)
    return array


def _decode_bytes_tensor(tensor: TensorIn, limits: Limits, where: str) -> list[str]:
    shape = tensor.shape
    if tensor.datatype != "BYTES":
        raise bad_input(f"text input must have datatype BYTES, not {shorten(tensor.datatype)}", f"{where}.datatype")
    if list(shape) not in ([shape[0]], [shape[0], 1]):
        raise bad_input(f"text input shape must be [N] or [N, 1], not {shape}", f"{where}.shape")
    if tensor.raw is not None:
        values = _split_bytes(tensor.raw, shape[0], where)
    else:
        data = tensor.data
        if isinstance(data, list) and data and all(isinstance(d, list) and len(d) == 1 for d in data):
            data = [d[0] for d in data]
        if not isinstance(data, list) or len(data) != shape[0]:
            raise bad_input(f"data must hold {shape[0]} strings", f"{where}.data")
        values = data
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise bad_input(f"expected a string, got {shorten(value)}", f"{where}.data[{i}]")
        out.append(check_text(value, f"{where}.data[{i}]", limits))
    return out


def _split_bytes(raw: bytes, count: int, where: str) -> list[str]:
    """Triton's binary BYTES layout: each element is a 4-byte little-endian length, then the bytes."""
    out, offset = [], 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise bad_input(f"binary BYTES data ends before element {i}", f"{where}.parameters.binary_data_size")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        chunk = raw[offset:offset + length]
        if len(chunk) != length:
            raise bad_input(f"binary BYTES element {i} is cut short", f"{where}.parameters.binary_data_size")
        offset += length
        try:
            out.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            raise bad_input(f"BYTES element {i} is not UTF-8 text", f"{where}.data[{i}]") from None
    if offset != len(raw):
        raise bad_input("binary BYTES data has bytes after the last element", f"{where}.parameters.binary_data_size")
    return out


__all__ = ["NUMERIC_DATATYPES", "Batch", "InputSpec", "Limits", "TensorIn", "batch_len", "check_text", "concat",
           "decode_base64_image", "decode_instances", "decode_tensor", "items", "take"]
