"""Read a raw source named in the recipe as a stream of chunks, so memory follows the chunk, not the file.

Every source yields :class:`Chunk` objects (a pandas frame plus the source row number of
each row) and can name a row for error messages (:meth:`Source.locate`). CSV and TSV are
read with pyarrow's streaming reader, every column as text first (types are decided and
checked by :mod:`modelyard.data.schema`, with the offending row named); JSONL line by
line; Parquet by row group batches; image folders and text corpora file by file.

    source = open_source(cfg)          # checks existence, size, encoding
    for chunk in source.chunks(): ...  # chunk.frame, chunk.rows
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.config.data import SourceConfig
from modelyard.core.errors import DataError
from modelyard.data.encoding import decode_error, detect_encoding

# Written where the source has no missing-value marker of its own (CSV, TSV): the usual spellings.
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "none", "#N/A", "-NaN", "-nan"]


@dataclass
class Chunk:
    """Consecutive rows of a source: the frame and the 0-based source row number of each row."""

    frame: pd.DataFrame
    rows: np.ndarray  # (N,) int64


@dataclass
class SourceInfo:
    """What a reader knows about its source besides the rows."""

    where: str
    kind: str
    label_hint: str | None = None
    text_hint: str | None = None
    image_column: str | None = None
    image_shape: tuple[int, int, int] | None = None  # (C, H, W)
    path_column: str | None = None
    encoding: str | None = None
    encoding_how: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Source:
    """A readable source: :meth:`chunks` streams rows, :meth:`locate` names one for messages."""

    def __init__(self, info: SourceInfo) -> None:
        self.info = info

    def chunks(self) -> Iterator[Chunk]:
        """Yield the rows chunk by chunk (implemented by each reader)."""
        raise NotImplementedError

    def locate(self, row: int) -> str:
        """``file row N`` (1-based data row; the header is not counted)."""
        return f"{self.info.where} row {row + 1}"


def open_source(cfg: SourceConfig) -> Source:
    """Open the source of ``cfg`` (checks only: rows are read by :meth:`Source.chunks`).

    Raises:
        DataError: the path does not exist, is empty, is the wrong kind of path, or is
            not decodable text.
    """
    if cfg.format == "sklearn":
        assert cfg.name is not None  # guaranteed by SourceConfig
        return SklearnSource(cfg.name)
    assert cfg.path is not None
    path = Path(cfg.path)
    if not path.exists():
        what = "image folder" if cfg.format == "images" else "data file"
        raise DataError(f"{what} not found", where=str(path), hint="paths are relative to the working directory")
    if cfg.format == "images":
        from modelyard.data.images import ImageFolderSource

        return ImageFolderSource(path, cfg)
    if not path.is_file():
        raise DataError(f"{cfg.format} source must be a file", where=str(path))
    if path.stat().st_size == 0:
        raise DataError("data file is empty", where=str(path))
    if cfg.format in ("csv", "tsv"):
        return CsvSource(path, cfg)
    if cfg.format == "jsonl":
        return JsonlSource(path, cfg)
    if cfg.format == "parquet":
        return ParquetSource(path, cfg)
    if cfg.format == "text":
        return TextCorpusSource(path, cfg)
    return NumpySource(path, cfg)


class CsvSource(Source):
    """CSV / TSV through pyarrow's streaming reader, every column read as text."""

    def __init__(self, path: Path, cfg: SourceConfig) -> None:
        codec, how = detect_encoding(path, cfg.encoding)
        super().__init__(SourceInfo(where=str(path), kind=cfg.format, encoding=codec, encoding_how=how))
        self.path, self.cfg = path, cfg
        self.delimiter = "," if cfg.format == "csv" else "\t"
        self.bad_rows: list[tuple[int | None, str]] = []

    def _header(self) -> list[str]:
        import csv

        codec = self.info.encoding or "utf-8"
        with open(self.path, encoding=codec, newline="") as handle:
            try:
                first = next(csv.reader(handle, delimiter=self.delimiter), None)
            except UnicodeDecodeError:
                raise decode_error(self.path, codec) from None
            except csv.Error as exc:
                raise DataError(f"cannot parse the header: {exc}", where=f"{self.path}:1") from None
        if not first or all(not name.strip() for name in first):
            raise DataError("the first line (header) is empty", where=f"{self.path}:1")
        duplicated = sorted(name for name, n in Counter(first).items() if n > 1)
        if duplicated:
            raise DataError(f"duplicate column name {duplicated[0]!r} in the header", where=f"{self.path}:1")
        return first

    def chunks(self) -> Iterator[Chunk]:
        """Stream record batches of about ``chunk_rows`` rows."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        header = self._header()
        codec = self.info.encoding or "utf-8"
        fail = self.cfg.bad_rows == "fail"

        def on_bad_row(row: Any) -> str:
            self.bad_rows.append((row.number, f"expected {row.expected_columns} fields, got {row.actual_columns}"))
            return "error" if fail else "skip"

        # Blocks of at most 1 MB, regrouped into chunks of about chunk_rows rows: pyarrow's streaming reader
        # queues up to 32 blocks ahead of the parser, so the block size bounds that read-ahead (32 MB).
        block = int(min(max(self.cfg.chunk_rows * 100, 1 << 12), 1 << 20))
        read = pacsv.ReadOptions(block_size=block, use_threads=False,
                                 encoding="utf8" if codec in ("utf-8", "utf-8-sig") else codec)
        parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True, invalid_row_handler=on_bad_row)
        convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=True,
                                       null_values=NULL_VALUES, quoted_strings_can_be_null=False)
        start = 0
        pending: list[pa.RecordBatch] = []

        def chunk() -> Chunk:
            frame = pa.Table.from_batches(pending).to_pandas()
            pending.clear()
            return Chunk(frame=frame, rows=np.arange(start, start + len(frame), dtype=np.int64))

        try:
            reader = pacsv.open_csv(self.path, read_options=read, parse_options=parse, convert_options=convert)
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                pending.append(batch)
                if sum(b.num_rows for b in pending) >= self.cfg.chunk_rows:
                    out = chunk()
                    yield out
                    start += len(out.frame)
            if pending:
                yield chunk()
        except pa.ArrowInvalid as exc:
            text = str(exc)
            if self.bad_rows and fail:
                line, why = self.bad_rows[0]
                raise DataError(f"ragged row: {why}", where=f"{self.path}:{line}" if line else str(self.path),
                                hint="fix the row, or set data.source.bad_rows: skip") from None
            if "UTF8" in text or "UTF-8" in text or "decode" in text.lower():
                raise decode_error(self.path, codec) from None
            raise DataError(f"cannot parse {self.cfg.format.upper()}: {text.splitlines()[0]}",
                            where=str(self.path)) from None
        if self.bad_rows:
            self.info.notes["skipped_bad_rows"] = len(self.bad_rows)
            self.info.notes["bad_row_examples"] = [f"line {n}: {why}" for n, why in self.bad_rows[:5]]


class JsonlSource(Source):
    """JSON Lines: one object per line; blank lines are skipped, rows are named by line."""

    def __init__(self, path: Path, cfg: SourceConfig) -> None:
        codec, how = detect_encoding(path, cfg.encoding)
        super().__init__(SourceInfo(where=str(path), kind="jsonl", encoding=codec, encoding_how=how))
        self.path, self.cfg = path, cfg

    def locate(self, row: int) -> str:
        """``file:line``: JSONL rows are numbered by line."""
        return f"{self.path}:{row + 1}"

    def chunks(self) -> Iterator[Chunk]:
        """Parse ``chunk_rows`` lines at a time."""
        codec = self.info.encoding or "utf-8"
        columns: list[str] | None = None
        records: list[dict[str, Any]] = []
        lines: list[int] = []
        try:
            with open(self.path, encoding=codec) as handle:
                for number, line in enumerate(handle):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"invalid JSON: {exc.msg} at column {exc.colno}",
                                        where=f"{self.path}:{number + 1}") from None
                    if not isinstance(record, dict):
                        raise DataError(f"each line must be a JSON object, got {type(record).__name__}",
                                        where=f"{self.path}:{number + 1}")
                    records.append(record)
                    lines.append(number)
                    if len(records) >= self.cfg.chunk_rows:
                        columns = columns or _ordered_keys(records)
                        yield self._chunk(records, lines, columns)
                        records, lines = [], []
        except UnicodeDecodeError:
            raise decode_error(self.path, codec) from None
        if records:
            columns = columns or _ordered_keys(records)
            yield self._chunk(records, lines, columns)

    def _chunk(self, records: list[dict[str, Any]], lines: list[int], columns: list[str]) -> Chunk:
        frame = pd.DataFrame.from_records(records)
        extra = [c for c in frame.columns if c not in columns]
        if extra:
            # Keys that appear only after the first chunk cannot become columns of a streamed table.
            seen = self.info.notes.setdefault("ignored_keys", [])
            seen.extend(str(c) for c in extra if str(c) not in seen)
        frame = frame.reindex(columns=columns)
        return Chunk(frame=frame, rows=np.asarray(lines, dtype=np.int64))


def _ordered_keys(records: list[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    return list(keys)


class ParquetSource(Source):
    """Parquet, read batch by batch."""

    def __init__(self, path: Path, cfg: SourceConfig) -> None:
        super().__init__(SourceInfo(where=str(path), kind="parquet"))
        self.path, self.cfg = path, cfg

    def chunks(self) -> Iterator[Chunk]:
        """Record batches of ``chunk_rows`` rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            handle = pq.ParquetFile(self.path, pre_buffer=False)  # pre_buffer keeps all read bytes
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"not a readable Parquet file: {exc}", where=str(self.path)) from None
        start = 0
        for batch in handle.iter_batches(batch_size=self.cfg.chunk_rows):
            frame = batch.to_pandas()
            yield Chunk(frame=frame, rows=np.arange(start, start + len(frame), dtype=np.int64))
            start += len(frame)


class TextCorpusSource(Source):
    """A plain-text corpus: one document per non-empty line, or per blank-line separated paragraph."""

    def __init__(self, path: Path, cfg: SourceConfig) -> None:
        codec, how = detect_encoding(path, cfg.encoding)
        super().__init__(SourceInfo(where=str(path), kind="text", text_hint="text", encoding=codec, encoding_how=how))
        self.path, self.cfg = path, cfg

    def locate(self, row: int) -> str:
        """``file:line`` of the document's first line."""
        return f"{self.path}:{row + 1}"

    def chunks(self) -> Iterator[Chunk]:
        """Documents, ``chunk_rows`` at a time, numbered by their first line."""
        codec = self.info.encoding or "utf-8"
        texts: list[str] = []
        starts: list[int] = []
        paragraph: list[str] = []
        first = 0
        try:
            with open(self.path, encoding=codec) as handle:
                for number, line in enumerate(handle):
                    content = line.rstrip("\r\n")
                    if self.cfg.text_unit == "line":
                        if content.strip():
                            texts.append(content)
                            starts.append(number)
                    elif content.strip():
                        if not paragraph:
                            first = number
                        paragraph.append(content)
                    elif paragraph:
                        texts.append("\n".join(paragraph))
                        starts.append(first)
                        paragraph = []
                    if len(texts) >= self.cfg.chunk_rows:
                        yield _text_chunk(texts, starts)
                        texts, starts = [], []
        except UnicodeDecodeError:
            raise decode_error(self.path, codec) from None
        if paragraph:
            texts.append("\n".join(paragraph))
            starts.append(first)
        if texts:
            yield _text_chunk(texts, starts)


def _text_chunk(texts: list[str], starts: list[int]) -> Chunk:
    return Chunk(frame=pd.DataFrame({"text": texts}), rows=np.asarray(starts, dtype=np.int64))


class NumpySource(Source):
    """A ``.npz`` with an input array (``x``: (N, F) tabular, (N, H, W) or (N, C, H, W) images) and labels."""

    def __init__(self, path: Path, cfg: SourceConfig) -> None:
        super().__init__(SourceInfo(where=str(path), kind="numpy"))
        self.path, self.cfg = path, cfg
        try:
            # allow_pickle=False: an object array inside the archive is refused, never unpickled.
            with np.load(path, allow_pickle=False) as archive:
                if not hasattr(archive, "files"):
                    raise DataError("expected a .npz archive with inputs and labels", where=str(path))
                missing = [k for k in (cfg.x_key, cfg.y_key) if k not in archive.files]
                if missing:
                    raise DataError(f"array {missing[0]!r} not in the archive (has: {', '.join(archive.files)})",
                                    where=str(path), hint="set data.source.x_key / y_key")
                self.x = archive[cfg.x_key]
                self.y = archive[cfg.y_key]
        except ValueError as exc:
            raise DataError(f"cannot read numpy archive: {exc}", where=str(path)) from None
        except OSError as exc:
            raise DataError(f"not a numpy archive: {exc}", where=str(path)) from None
        if len(self.x) != len(self.y):
            raise DataError(f"{cfg.x_key} has {len(self.x)} rows but {cfg.y_key} has {len(self.y)}", where=str(path))
        if self.x.ndim not in (2, 3, 4) or self.y.ndim != 1:
            raise DataError(f"{cfg.x_key} must be (N, F), (N, H, W) or (N, C, H, W) and {cfg.y_key} (N,); got "
                            f"{self.x.shape} and {self.y.shape}", where=str(path))
        self.info.label_hint = cfg.y_key
        if self.x.ndim > 2:
            shape = (1, *self.x.shape[1:]) if self.x.ndim == 3 else tuple(self.x.shape[1:])
            self.info.image_column, self.info.image_shape = "image", (int(shape[0]), int(shape[1]), int(shape[2]))

    def chunks(self) -> Iterator[Chunk]:
        """Slices of ``chunk_rows`` rows."""
        step = self.cfg.chunk_rows
        for start in range(0, len(self.x), step):
            x = self.x[start:start + step]
            if self.info.image_column:
                scale = 255.0 if x.dtype == np.uint8 else 1.0
                flat = (x.astype(np.float32) / scale).reshape(len(x), -1)
                frame = pd.DataFrame({"image": list(flat)})
            else:
                frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
            frame[self.cfg.y_key] = self.y[start:start + step]
            yield Chunk(frame=frame, rows=np.arange(start, start + len(x), dtype=np.int64))


class SklearnSource(Source):
    """A dataset bundled with scikit-learn (digits as 8x8 images, the others tabular)."""

    def __init__(self, name: str) -> None:
        super().__init__(SourceInfo(where=f"sklearn:{name}", kind="sklearn", label_hint="target"))
        self.name = name
        if name == "digits":
            self.info.image_column, self.info.image_shape = "image", (1, 8, 8)

    def chunks(self) -> Iterator[Chunk]:
        """The whole dataset as one chunk."""
        from sklearn import datasets

        loader = {
            "digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
            "iris": datasets.load_iris, "diabetes": datasets.load_diabetes,
        }[self.name]
        bunch = loader()
        if self.name == "digits":
            # 8x8 grey images with values 0..16: scale to [0, 1], one flat float column.
            images = (bunch.images.astype(np.float32) / 16.0).reshape(len(bunch.images), -1)
            frame = pd.DataFrame({"image": list(images), "target": bunch.target.astype(np.int64)})
        else:
            frame = pd.DataFrame(bunch.data.astype(np.float64), columns=[str(c) for c in bunch.feature_names])
            frame["target"] = bunch.target
            if hasattr(bunch, "target_names") and self.name != "diabetes":
                frame["target"] = [str(bunch.target_names[t]) for t in bunch.target]
        yield Chunk(frame=frame, rows=np.arange(len(frame), dtype=np.int64))
