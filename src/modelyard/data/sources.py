"""Read a raw source named in the recipe into a pandas DataFrame (plus image shape, if any)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelyard.config.data import SourceConfig
from modelyard.core.errors import DataError


@dataclass
class RawTable:
    """A loaded source: the rows, and facts the loader knows (image shape, default label)."""

    frame: pd.DataFrame
    where: str
    label_hint: str | None = None
    image_column: str | None = None
    image_shape: tuple[int, int, int] | None = None  # (C, H, W)


def read_source(cfg: SourceConfig) -> RawTable:
    """Load the source of ``cfg``.

    Raises:
        DataError: the file does not exist, is empty, cannot be parsed (naming file and line).
    """
    if cfg.format == "sklearn":
        assert cfg.name is not None  # guaranteed by SourceConfig
        return _read_sklearn(cfg.name)
    assert cfg.path is not None
    path = Path(cfg.path)
    if not path.exists():
        raise DataError("data file not found", where=str(path))
    if not path.is_file():
        raise DataError("data source is not a file", where=str(path))
    if path.stat().st_size == 0:
        raise DataError("data file is empty", where=str(path))
    try:
        if cfg.format in ("csv", "tsv"):
            frame = pd.read_csv(path, sep="," if cfg.format == "csv" else "\t", encoding="utf-8")
        elif cfg.format == "jsonl":
            frame = pd.read_json(path, lines=True, encoding="utf-8")
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(path)) from None
    except pd.errors.EmptyDataError:
        raise DataError("data file has no columns", where=str(path)) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"cannot parse {cfg.format.upper()}: {str(exc).strip()}", where=str(path)) from None
    except ValueError as exc:  # pandas' JSON / parquet readers
        raise DataError(f"cannot parse {cfg.format}: {exc}", where=str(path)) from None
    if frame.empty:
        raise DataError("data file has a header but no rows", where=str(path))
    return RawTable(frame=frame, where=str(path))


def _read_sklearn(name: str) -> RawTable:
    from sklearn import datasets

    loader = {
        "digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
        "iris": datasets.load_iris, "diabetes": datasets.load_diabetes,
    }[name]
    bunch = loader()
    where = f"sklearn:{name}"
    if name == "digits":
        # 8x8 grey images with values 0..16: scale to [0, 1], keep them as one flat float column.
        images = (bunch.images.astype(np.float32) / 16.0).reshape(len(bunch.images), -1)
        frame = pd.DataFrame({"image": list(images), "target": bunch.target.astype(np.int64)})
        return RawTable(frame=frame, where=where, label_hint="target", image_column="image", image_shape=(1, 8, 8))
    frame = pd.DataFrame(bunch.data.astype(np.float64), columns=[str(c) for c in bunch.feature_names])
    frame["target"] = bunch.target
    if hasattr(bunch, "target_names") and name != "diabetes":
        frame["target"] = [str(bunch.target_names[t]) for t in bunch.target]
    return RawTable(frame=frame, where=where, label_hint="target")
