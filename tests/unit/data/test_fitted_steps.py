"""Preprocessor, balancing, splits, duplicate keys and profiles: the numbers, against a direct computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.config.data import SplitConfig
from modelyard.core.errors import DataError
from modelyard.data.balance import (
    balanced_class_weights,
    class_distribution,
    resample_indices,
    resampled_counts,
    synthesize,
)
from modelyard.data.preprocess import Preprocessor, fit_preprocessor
from modelyard.data.quality import ColumnProfile
from modelyard.data.row_keys import group_duplicates, row_keys
from modelyard.data.schema import DatasetSchema, Roles
from modelyard.data.split import fold_assignments, split_rows


def schema(**fitting: object) -> DatasetSchema:
    return DatasetSchema(task="classification", modality="tabular", features=["a", "b", "c"], categorical=["c"],
                         fitting={"missing": "median", "outliers": {"method": "none"}, "normalize": "standardize",
                                  **fitting})


def frame(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"a": rng.normal(5, 2, n), "b": rng.exponential(3, n), "c": rng.choice(["x", "y", "z"], n,
                                                                                           p=[0.5, 0.3, 0.2])})
    out.loc[::97, "a"] = np.nan
    return out


def test_streamed_fit_equals_one_frame_fit() -> None:
    data = frame()
    whole = fit_preprocessor(lambda: [data], schema(), rows=len(data))
    parts = fit_preprocessor(lambda: (data.iloc[i:i + 130] for i in range(0, len(data), 130)), schema(),
                             rows=len(data))
    assert whole.fill_["a"] == pytest.approx(np.nanmedian(data["a"]))
    filled = data["a"].fillna(np.nanmedian(data["a"]))
    assert whole.center_["a"] == pytest.approx(filled.mean(), rel=1e-12)
    assert whole.scale_["a"] == pytest.approx(filled.std(ddof=0), rel=1e-9)
    for attr in ("fill_", "center_", "scale_", "categories_"):
        for key, value in getattr(whole, attr).items():
            assert getattr(parts, attr)[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float)
                                                 else value), (attr, key)
    assert whole.categories_["c"] == ["x", "y", "z"]  # by train frequency


def test_transform_minmax_unseen_categories_and_json_roundtrip() -> None:
    data = frame()
    pre = fit_preprocessor(lambda: [data], schema(normalize="minmax", missing="mode"), rows=len(data))
    x = pre.transform(data)
    assert x.shape == (1000, 3) and x.dtype == np.float32
    assert x[:, 1].min() == pytest.approx(0.0) and x[:, 1].max() == pytest.approx(1.0)
    new = pd.DataFrame({"a": [np.nan], "b": [1.0], "c": ["never seen"]})
    row = Preprocessor.from_dict(pre.to_dict()).transform(new)
    assert row[0, 2] == 3.0  # unseen category → the code after the known ones
    assert row[0, 0] == pytest.approx((pre.fill_["a"] - pre.center_["a"]) / pre.scale_["a"])
    with pytest.raises(DataError, match="input lacks feature column 'b'"):
        pre.transform(new.drop(columns="b"))


def test_outlier_bounds_clip_and_drop() -> None:
    data = pd.DataFrame({"a": [*list(range(1, 100)), 10000.0], "b": 1.0, "c": "x"})
    iqr = fit_preprocessor(lambda: [data], schema(outliers={"method": "iqr", "action": "clip"}, normalize="none"),
                           rows=100)
    q1, q3 = np.quantile(data["a"], [0.25, 0.75])
    assert (iqr.lower_["a"], iqr.upper_["a"]) == pytest.approx((q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)))
    assert iqr.transform(data)[:, 0].max() == pytest.approx(iqr.upper_["a"])
    z = fit_preprocessor(lambda: [data], schema(outliers={"method": "zscore", "threshold": 2.0, "action": "drop"}),
                         rows=100)
    keep = z.inliers(data)
    assert keep.sum() == 99 and not keep[-1]


def test_class_distribution_weights_and_resampling() -> None:
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    dist = class_distribution(labels, ["a", "b", "c"])
    assert dist["counts"] == {"a": 60, "b": 30, "c": 10} and dist["imbalance_ratio"] == 6.0
    np.testing.assert_allclose(balanced_class_weights(labels, 3), [100 / 180, 100 / 90, 100 / 30])
    assert balanced_class_weights(np.array([0, 0, 2]), 3) == [0.75, 0.0, 1.5]  # absent class: weight 0
    over = resample_indices(labels, "oversample", seed=0)
    assert np.bincount(labels[over]).tolist() == [60, 60, 60]
    assert np.array_equal(over[:100], np.arange(100))  # every original row kept, copies after
    under = resample_indices(labels, "undersample", seed=0)
    assert np.bincount(labels[under]).tolist() == [10, 10, 10] and len(set(under)) == 30
    np.testing.assert_array_equal(resample_indices(labels, "oversample", seed=0), over)  # seeded
    assert resampled_counts([60, 30, 10, 0], "undersample") == [10, 10, 10, 0]
    x = np.random.default_rng(0).normal(size=(100, 3))
    x_new, y_new = synthesize(x, labels, "smote", seed=0, k_neighbors=5)
    assert np.bincount(y_new).tolist() == [60, 60, 60] and np.array_equal(x_new[:100], x)
    with pytest.raises(DataError, match="smote needs at least 2 train rows per class"):
        synthesize(x[:61], np.array([0] * 60 + [1]), "smote", seed=0, k_neighbors=5)


def test_splits_are_seeded_stratified_and_sized() -> None:
    labels = np.array([0] * 80 + [1] * 20)
    cfg = SplitConfig(valid=0.1, test=0.2)
    result = split_rows(100, labels, cfg, seed=3, classification=True)
    assert result.method == "stratified"
    counts = {name: np.bincount(labels[idx], minlength=2).tolist() for name, idx in result.indices().items()}
    assert counts == {"train": [56, 14], "valid": [8, 2], "test": [16, 4]}  # 70 / 10 / 20, 80:20 in each
    again = split_rows(100, labels, cfg, seed=3, classification=True)
    np.testing.assert_array_equal(result.codes, again.codes)
    assert not np.array_equal(result.codes, split_rows(100, labels, cfg, seed=4, classification=True).codes)
    random = split_rows(100, None, SplitConfig(valid=0.1, test=0.2, stratify=False), seed=3, classification=False)
    assert random.method == "random" and np.bincount(random.codes).tolist() == [70, 10, 20]


def test_group_and_time_splits() -> None:
    groups = np.repeat(np.arange(25), 4)
    result = split_rows(100, None, SplitConfig(valid=0.2, test=0.2), seed=0, classification=False, groups=groups)
    assert result.method == "group"
    for g in range(25):
        assert len(set(result.codes[groups == g])) == 1
    assert np.bincount(result.codes).tolist() == [60, 20, 20]  # whole groups of 4 fill 20-row splits exactly
    times = np.arange(100)[::-1].astype(float)
    timed = split_rows(100, None, SplitConfig(method="time", valid=0.1, test=0.1), seed=0, classification=False,
                       times=times)
    assert timed.codes[times >= 90].tolist() == [2] * 10
    assert timed.codes[(times >= 80) & (times < 90)].tolist() == [1] * 10
    with pytest.raises(DataError, match="2 group"):
        split_rows(8, None, SplitConfig(valid=0.3, test=0.3), seed=0, classification=False,
                   groups=np.array([0, 0, 0, 0, 1, 1, 1, 1]))


def test_folds() -> None:
    labels = np.array([0] * 30 + [1] * 10)
    folds = fold_assignments(labels, None, k=5, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [8] * 5
    for fold in range(5):
        assert np.bincount(labels[folds == fold]).tolist() == [6, 2]  # stratified
    grouped = fold_assignments(None, np.repeat(np.arange(10), 4), k=5, seed=0)
    for g in range(10):
        assert len(set(grouped[g * 4:(g + 1) * 4])) == 1
    result = split_rows(40, labels, SplitConfig(folds=4, test=0.25), seed=0, classification=True)
    assert result.folds is not None and (result.folds[result.codes == 2] == -1).all()
    assert np.array_equal(result.codes == 1, result.folds == 0)
    with pytest.raises(DataError, match="class 'b' has 10 row"):
        fold_assignments(labels, None, k=11, seed=0, label_names=["a", "b"])


def test_duplicate_groups_match_pandas() -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 40, 300).astype(np.uint64)
    labels = rng.integers(0, 2, 300)
    found = group_duplicates(keys, labels)
    expected = pd.DataFrame({"k": keys, "y": labels}).duplicated().to_numpy()
    np.testing.assert_array_equal(found.duplicate, expected)
    conflicted = pd.DataFrame({"k": keys, "y": labels}).groupby("k")["y"].transform("nunique").to_numpy() > 1
    np.testing.assert_array_equal(found.conflict, conflicted)
    assert found.groups == int((pd.Series(list(zip(keys, labels))).value_counts() > 1).sum())
    assert found.conflict_count == len(found.conflict_groups)
    first = int(np.flatnonzero(found.duplicate)[0])
    assert (keys[found.first_copy(first)], labels[found.first_copy(first)]) == (keys[first], labels[first])
    for members in found.conflict_groups:
        assert len(set(keys[members])) == 1 and len(set(labels[members])) > 1


def test_text_keys_follow_the_normalisation() -> None:
    frame = pd.DataFrame({"t": ["  Hello\tWORLD \n", "hello world", "Ｈｅｌｌｏ world", "hello there"]})
    keys = row_keys(frame, Roles(label=None, text="t"))
    assert keys[0] == keys[1] == keys[2] and keys[3] != keys[0]


def test_column_profiles() -> None:
    ids = ColumnProfile("id", "categorical")
    ids.update(np.array([str(i) for i in range(50)], dtype=object))
    constant = ColumnProfile("k", "numeric")
    constant.update(np.full(30, 7.0))
    empty = ColumnProfile("e", "numeric")
    empty.update(np.full(30, np.nan))
    text = ColumnProfile("t", "text")
    text.update(np.array(["a" * 5, "b" * 15, None, "c" * 600], dtype=object))
    assert ids.to_dict()["id_like"] and not ids.to_dict()["constant"]
    assert constant.to_dict()["constant"] and constant.to_dict()["std"] == 0.0
    assert empty.to_dict()["all_missing"] and empty.to_dict()["missing_pct"] == 100.0
    profile = text.to_dict()
    assert profile["missing"] == 1 and profile["length_histogram"]["counts"][:2] == [1, 1]
    assert profile["length_histogram"]["counts"][6] == 1  # 600 chars: the 500-999 bin
