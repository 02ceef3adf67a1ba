"""Column roles and types are inferred or declared; rows failing them are named; strings are normalised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.config.data import CleanConfig, ColumnsConfig, DataConfig, SourceConfig
from modelyard.core.errors import DataError
from modelyard.data.clean import clean_chunk, normalize_text
from modelyard.data.quality import QualityLog
from modelyard.data.schema import DatasetSchema, apply_policy, coerce_chunk, label_text, resolve_roles
from modelyard.data.sources import open_source


def setup(tmp_path: Path, frame: pd.DataFrame, **columns: object) -> tuple[DataConfig, object]:
    frame.to_csv(tmp_path / "d.csv", index=False)
    cfg = DataConfig(source=SourceConfig(format="csv", path=str(tmp_path / "d.csv")), columns=ColumnsConfig(**columns))
    return cfg, open_source(cfg.source)


def first_chunk(source: object) -> pd.DataFrame:
    return next(iter(source.chunks())).frame  # type: ignore[attr-defined]


def test_types_are_inferred_and_declared(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": ["1", "2.5", "x"] + ["3"] * 27, "zip": ["75001"] * 30, "c": ["red", "blue"] * 15,
                          "y": ["a", "b"] * 15})
    cfg, source = setup(tmp_path, frame, label="y", categorical=["zip"])
    roles = resolve_roles(cfg, "classification", source, first_chunk(source))
    assert roles.features == ["n", "zip", "c"]
    assert roles.categorical == {"zip", "c"}
    assert roles.inferred == {"n": "numeric (inferred)", "zip": "categorical (declared)", "c": "categorical (inferred)"}


def test_a_free_text_column_is_recognised(tmp_path: Path) -> None:
    texts = [f"customer number {i} says the app crashes on start" for i in range(20)]
    cfg, source = setup(tmp_path, pd.DataFrame({"body": texts, "y": ["a", "b"] * 10}), label="y")
    roles = resolve_roles(cfg, "classification", source, first_chunk(source))
    assert roles.text == "body" and roles.modality == "text" and roles.features == []


def test_reserved_names_and_conflicting_roles(tmp_path: Path) -> None:
    cfg, source = setup(tmp_path, pd.DataFrame({"_row": [1, 2], "y": ["a", "b"]}), label="y")
    with pytest.raises(DataError, match="column name '_row' is reserved"):
        resolve_roles(cfg, "classification", source, first_chunk(source))
    cfg, source = setup(tmp_path, pd.DataFrame({"g": [1, 2], "y": ["a", "b"]}), label="y", group="g", features=["g"])
    with pytest.raises(DataError, match="column 'g' cannot be a feature: it is already the group column"):
        resolve_roles(cfg, "classification", source, first_chunk(source))
    with pytest.raises(ValueError, match="cannot be both label and text"):
        ColumnsConfig(label="y", text="y")


def test_coerce_and_policies(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": ["1", "2", "oops", "4"], "w": ["1", "-1", "2", "1"], "y": ["a", "b", None, "a"]})
    cfg, source = setup(tmp_path, frame, label="y", weight="w", numeric=["n"])
    raw = first_chunk(source)
    roles = resolve_roles(cfg, "classification", source, raw)
    coerced, failures = coerce_chunk(raw, np.arange(4), roles, cfg.columns, task="classification")
    assert sorted((f.row, f.column, f.reason) for f in failures) == [
        (1, "w", "weight must be a number ≥ 0"), (2, "n", "not a number"), (2, "y", "missing label")]
    with pytest.raises(DataError, match=r"row 2: column 'w': weight must be a number ≥ 0: -1.0; 1 more row"):
        apply_policy(coerced.copy(), failures, policy="fail", roles=roles, source=source)
    dropped, n = apply_policy(coerced.copy(), failures, policy="drop", roles=roles, source=source)
    assert n == 2 and dropped["_row"].tolist() == [0, 3]
    filled, n = apply_policy(coerced.copy(), failures, policy="fill", roles=roles, source=source)
    # A bad feature value becomes missing; a bad weight or label still drops its row.
    assert n == 2 and filled["_row"].tolist() == [0, 3]


def test_label_text_and_schema_roundtrip() -> None:
    assert [label_text(v) for v in (3, 3.0, "3", b"x", " a ")] == ["3", "3", "3", "x", "a"]
    schema = DatasetSchema(task="classification", modality="tabular", features=["a", "b"], categorical=["b"])
    assert schema.numeric == ["a"]
    assert DatasetSchema.from_dict({**schema.to_dict(), "from_the_future": 1}) == schema


def test_normalize_text() -> None:
    assert normalize_text("  ﬁle Ｎｏ．１２  ", "NFKC", True) == "file No.12"
    assert normalize_text("ﬁ", "none", False) == "ﬁ"


def test_clean_chunk_drops_empty_texts_and_missing_rows(tmp_path: Path) -> None:
    texts = ["  hello\u00a0world ", "   ", None, "ok"]
    frame = pd.DataFrame({"t": texts, "x": [1.0, 2.0, 3.0, np.nan], "y": ["a", "b", "a", "b"]})
    cfg, source = setup(tmp_path, frame, label="y", text="t")
    raw = first_chunk(source)
    roles = resolve_roles(cfg, "classification", source, raw)
    roles.features = []  # a text dataset keeps only the text
    coerced, _ = coerce_chunk(raw, np.arange(4), roles, cfg.columns, task="classification")
    log = QualityLog()
    out = clean_chunk(coerced, roles, CleanConfig(), log=log.step("clean"), source=source)
    assert out["t"].tolist() == ["hello world", "ok"]  # NFKC turns the no-break space into a space
    step = log.step("clean")
    assert step.counts["empty_text"] == 2 and step.rows_in == 4 and step.rows_out == 2


def test_missing_fail_names_row_and_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0], "y": ["a", "b", "a"]})
    cfg, source = setup(tmp_path, frame, label="y")
    raw = first_chunk(source)
    roles = resolve_roles(cfg, "classification", source, raw)
    coerced, _ = coerce_chunk(raw, np.arange(3), roles, cfg.columns, task="classification")
    with pytest.raises(DataError, match=r"d.csv row 2: column 'x' has a missing value"):
        clean_chunk(coerced, roles, CleanConfig(missing="fail"), log=QualityLog().step("clean"), source=source)
