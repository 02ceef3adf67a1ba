"""The server's copy of the fitted tabular transform matches the data stage's ``Preprocessor.transform``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.core.errors import ArtifactError
from modelyard.data.preprocess import fit_preprocessor
from modelyard.data.schema import DatasetSchema
from modelyard.serve.errors import ServeError
from modelyard.serve.features import FeatureTransform
from modelyard.serve.inputs import InputSpec, Limits, TensorIn, decode_instances, decode_tensor

FEATURES = ["size", "weight", "colour"]


def _fitted(normalize: str, outliers: dict) -> tuple[object, pd.DataFrame]:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    train = pd.DataFrame({
        "size": np.append(rng.normal(10, 2, 200), [np.nan, 500.0]),        # a gap and an outlier
        "weight": np.append(rng.normal(-3, 0.5, 200), [1.0, np.nan]),
        "colour": [*rng.choice(["red", "green", "3"], 200), None, "red"],
    })
    schema = DatasetSchema(task="classification", modality="tabular", features=FEATURES, categorical=["colour"],
                           label_names=["a", "b"],
                           fitting={"normalize": normalize, "missing": "median", "outliers": outliers})
    return fit_preprocessor(lambda: [train], schema, rows=len(train)), train


@pytest.mark.parametrize(("normalize", "outliers"), [
    ("standardize", {"method": "iqr", "action": "clip"}),
    ("minmax", {"method": "zscore", "threshold": 2.0, "action": "clip"}),
    ("none", {"method": "none"}),
])
def test_server_transform_equals_the_data_stage(normalize: str, outliers: dict) -> None:
    pre, _train = _fitted(normalize, outliers)
    rows = [{"size": 9.5, "weight": -2.0, "colour": "green"}, {"size": None, "weight": 40.0, "colour": None},
            {"size": -1e6, "weight": -3.0, "colour": "purple"}, {"size": 11, "weight": None, "colour": 3}]
    expected = pre.transform(pd.DataFrame(rows, columns=FEATURES))     # type: ignore[attr-defined]
    mine = FeatureTransform(pre.to_dict(), where="test")               # type: ignore[attr-defined]
    got = np.stack([mine.row(r, f"instances[{i}]") for i, r in enumerate(rows)])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # colour 3 (a JSON number) is the category "3", as the data stage writes numbers read as categories.
    assert got[3, 2] == expected[3, 2] and got[2, 2] == 3.0             # 'purple' is unseen: code len(categories)


def test_decoding_applies_the_transform_to_objects_lists_and_tensors() -> None:
    pre, _train = _fitted("standardize", {"method": "none"})
    spec = InputSpec(modality="tabular", task="classification", features=FEATURES, label_names=["a", "b"],
                     transform=FeatureTransform(pre.to_dict(), where="test"))  # type: ignore[attr-defined]
    limits = Limits()
    from_objects = decode_instances(spec, [{"size": 12, "weight": -3, "colour": "red"}], limits)
    from_lists = decode_instances(spec, [[12, -3, "red"]], limits)
    np.testing.assert_array_equal(from_objects, from_lists)
    tensor = decode_tensor(spec, TensorIn("input", [1, 3], "FP32", data=[12, -3, np.nan]), limits)
    null_colour = decode_instances(spec, [[12, -3, None]], limits)
    np.testing.assert_array_equal(tensor, null_colour)                 # NaN in a tensor = null = filled
    with pytest.raises(ServeError) as caught:
        decode_instances(spec, [{"size": "big", "weight": 1, "colour": "red"}], limits)
    assert caught.value.field == "instances[0].size"
    with pytest.raises(ServeError) as caught:
        decode_instances(spec, [{"size": 1, "weight": 1}], limits)
    assert "send null" in caught.value.message


def test_unknown_preprocessor_versions_are_refused() -> None:
    with pytest.raises(ArtifactError, match="version 2"):
        FeatureTransform({"version": 2, "features": []}, where="x")
    with pytest.raises(ArtifactError, match="new_step"):
        FeatureTransform({"version": 1, "features": [], "new_step": {}}, where="x")
