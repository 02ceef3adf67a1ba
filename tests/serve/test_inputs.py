"""Decoding raw inputs per modality: the accepted forms give the same arrays, bad ones a 400 naming the field."""

from __future__ import annotations

import base64
import io
import struct

import numpy as np
import pytest
from PIL import Image

from modelyard.serve.errors import ServeError
from modelyard.serve.inputs import InputSpec, Limits, TensorIn, decode_instances, decode_tensor

TABULAR = InputSpec(modality="tabular", task="classification", features=["a", "b", "c"], label_names=["x", "y"])
IMAGE = InputSpec(modality="image", task="classification", image_shape=(1, 4, 4), label_names=["0", "1"])
RGB = InputSpec(modality="image", task="classification", image_shape=(3, 2, 2), label_names=["0", "1"])
TEXT = InputSpec(modality="text", task="classification", label_names=["neg", "pos"])
LIMITS = Limits(max_instances=5, max_string_length=200)


def _error(fn, *args, **kwargs) -> ServeError:  # type: ignore[no-untyped-def]
    with pytest.raises(ServeError) as caught:
        fn(*args, **kwargs)
    return caught.value


def _png(array: np.ndarray, mode: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_tabular_objects_and_lists_decode_to_the_same_rows() -> None:
    batch = decode_instances(TABULAR, [{"c": 3, "a": 1.5, "b": -2}, [1.5, -2, 3]], LIMITS)
    assert isinstance(batch, np.ndarray) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, [[1.5, -2, 3], [1.5, -2, 3]])  # objects are put in feature order


@pytest.mark.parametrize(("instances", "field", "needle"), [
    ([{"a": 1, "b": 2}], "instances[0].c", "missing feature 'c'"),
    ([{"a": 1, "b": 2, "c": 3, "d": 4}], "instances[0].d", "unknown feature 'd'"),
    ([[1, 2]], "instances[0]", "expected 3 feature values"),
    ([[1, "2", 3]], "instances[0][1]", "expected a number"),
    ([[1, True, 3]], "instances[0][1]", "expected a number"),
    ([[1, None, 3]], "instances[0][1]", "expected a number"),
    ([[1, 2, float("nan")]], "instances[0][2]", "finite"),
    ([[1, 2, 1e39]], "instances[0][2]", "float32 range"),
    ([[1, 2, 3], "abc"], "instances[1]", "not str"),
    ([], "instances", "empty"),
    ([[1, 2, 3]] * 6, "instances", "at most 5"),
])
def test_bad_tabular_inputs_name_the_field(instances: list, field: str, needle: str) -> None:
    error = _error(decode_instances, TABULAR, instances, LIMITS)
    assert (error.status, error.field) == (400, field)
    assert needle in error.message


def test_image_forms_nested_flat_and_base64_agree() -> None:
    pixels = (np.arange(16, dtype=np.uint8) * 16).reshape(4, 4)
    as_floats = (pixels / 255.0).astype(np.float32)
    batch = decode_instances(IMAGE, [as_floats.tolist(), [as_floats.tolist()], as_floats.ravel().tolist(),
                                     _png(pixels, "L"), {"b64": _png(pixels, "L")}], LIMITS)
    assert batch.shape == (5, 1, 4, 4)
    for row in batch:  # PNG is lossless: base64 decodes to exactly the values (pixel / 255)
        np.testing.assert_allclose(row[0], as_floats, atol=1e-7)


def test_base64_images_are_resized_and_converted_to_the_models_channels() -> None:
    photo = np.zeros((8, 6, 3), dtype=np.uint8)
    photo[..., 0] = 255  # pure red, 8 high x 6 wide
    batch = decode_instances(RGB, [_png(photo, "RGB")], LIMITS)
    assert batch.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(batch[0, 0], 1.0)  # red channel full after the bilinear resize to 2x2
    np.testing.assert_allclose(batch[0, 1:], 0.0)
    grey = decode_instances(IMAGE, [_png(photo, "RGB")], LIMITS)
    # Pillow's L conversion: L = R * 299/1000 → 255 * 0.299 = 76.245, rounded to 76.
    np.testing.assert_allclose(grey[0, 0], 76 / 255.0, atol=1e-6)


@pytest.mark.parametrize(("instance", "needle"), [
    ("not base64!!", "not valid base64"),
    (base64.b64encode(b"GIF89a but not really").decode(), "not a decodable image"),
    ({"b64": 3}, "must be a string"),
    ({"png": "x"}, '{"b64"'),
    ("A" * 300, "at most 200"),
    ([[0.0] * 4] * 3, "does not fit the model's (C, H, W)"),
    ([[0.0, 1.0], [1.0]], "rectangular"),
    ([["a"] * 4] * 4, "numbers only"),
    (7, "nested list"),
])
def test_bad_images_are_400s(instance: object, needle: str) -> None:
    error = _error(decode_instances, IMAGE, [instance], LIMITS)
    assert error.status == 400 and needle in error.message, error.message
    assert error.field is not None and error.field.startswith("instances[0]")


def test_text_inputs_are_checked_for_length_nul_and_surrogates() -> None:
    assert decode_instances(TEXT, ["good", "ünïcode ✓"], LIMITS) == ["good", "ünïcode ✓"]
    assert "NUL" in _error(decode_instances, TEXT, ["a\x00b"], LIMITS).message
    assert "at most 200" in _error(decode_instances, TEXT, ["x" * 201], LIMITS).message
    assert "surrogate" in _error(decode_instances, TEXT, ["\ud800"], LIMITS).message
    assert _error(decode_instances, TEXT, [3], LIMITS).field == "instances[0]"


def test_v2_tensors_json_nested_flat_and_binary_agree() -> None:
    values = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    nested = decode_tensor(TABULAR, TensorIn("input", [2, 3], "FP32", data=values.tolist()), LIMITS)
    flat = decode_tensor(TABULAR, TensorIn("input", [2, 3], "INT64", data=values.ravel().astype(int).tolist()), LIMITS)
    binary = decode_tensor(TABULAR, TensorIn("input", [2, 3], "FP64", raw=values.astype("<f8").tobytes()), LIMITS)
    for batch in (nested, flat, binary):
        np.testing.assert_array_equal(batch, values)


@pytest.mark.parametrize(("tensor", "field", "needle"), [
    (TensorIn("x", [1, 3], "FP32", data=[1, 2, 3]), "inputs[0].name", "named 'input'"),
    (TensorIn("input", [1, 4], "FP32", data=[1, 2, 3, 4]), "inputs[0].shape", "expected [1, 3]"),
    (TensorIn("input", [0, 3], "FP32", data=[]), "inputs[0].shape", "at least 1"),
    (TensorIn("input", [6, 3], "FP32", data=[0] * 18), "inputs[0].shape", "at most 5"),
    (TensorIn("input", [1, 3], "BOOL", data=[True, False, True]), "inputs[0].datatype", "not accepted"),
    (TensorIn("input", [2, 3], "FP32", data=[1, 2, 3]), "inputs[0].data", "holds 3 values"),
    (TensorIn("input", [1, 3], "FP32", data=[[1, 2], [3]]), "inputs[0].data", "rectangular"),
    (TensorIn("input", [1, 3], "FP32", raw=b"\x00" * 11), "inputs[0].parameters.binary_data_size", "11 bytes"),
    (TensorIn("input", [1, 3], "FP32", raw=np.array([1, np.inf, 2], "<f4").tobytes()), "inputs[0].data", "finite"),
])
def test_bad_v2_tensors_name_the_field(tensor: TensorIn, field: str, needle: str) -> None:
    error = _error(decode_tensor, TABULAR, tensor, LIMITS)
    assert (error.status, error.field) == (400, field)
    assert needle in error.message, error.message


def test_v2_bytes_tensors_json_and_binary() -> None:
    raw = b"".join(struct.pack("<I", len(s)) + s for s in (b"hello", "wörld".encode()))
    assert decode_tensor(TEXT, TensorIn("text", [2], "BYTES", raw=raw), LIMITS) == ["hello", "wörld"]
    assert decode_tensor(TEXT, TensorIn("text", [2, 1], "BYTES", data=[["a"], ["b"]]), LIMITS) == ["a", "b"]
    assert "not UTF-8" in _error(decode_tensor, TEXT, TensorIn("text", [1], "BYTES", raw=b"\x02\0\0\0\xff\xfe"),
                                 LIMITS).message
    assert "cut short" in _error(decode_tensor, TEXT, TensorIn("text", [1], "BYTES", raw=b"\x09\0\0\0ab"),
                                 LIMITS).message
    assert "BYTES" in _error(decode_tensor, TEXT, TensorIn("text", [1], "FP32", data=[1.0]), LIMITS).message
