"""Sources stream chunks with source row numbers; encodings are detected or named in the error."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.config.data import SourceConfig
from modelyard.core.errors import DataError
from modelyard.data.encoding import decode_error, detect_encoding
from modelyard.data.sources import open_source


def chunks(cfg: dict) -> tuple[pd.DataFrame, np.ndarray, object]:
    source = open_source(SourceConfig(**cfg))
    parts = list(source.chunks())
    return pd.concat([p.frame for p in parts], ignore_index=True), np.concatenate([p.rows for p in parts]), source


def test_csv_is_streamed_as_text_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "".join(f"{i},{'x' * 98}\n" for i in range(50)) + ',"quoted, with comma"\n')
    source = open_source(SourceConfig(format="csv", path=str(path), chunk_rows=7))
    parts = list(source.chunks())
    assert len(parts) > 1  # chunk_rows sets the block size (≥ 4 KiB): 5 KB of rows come in 2 chunks
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    rows = np.concatenate([p.rows for p in parts])
    np.testing.assert_array_equal(rows, np.arange(51))
    assert frame["a"].iloc[3] == "3" and pd.isna(frame["a"].iloc[50])  # text first; "" is missing
    assert frame["b"].iloc[50] == "quoted, with comma"
    assert source.locate(50) == f"{path} row 51"


def test_tsv_jsonl_parquet_numpy_and_corpus(tmp_path: Path) -> None:
    (tmp_path / "d.tsv").write_text("a\tb\n1\tx\n2\ty\n")
    frame, _, _ = chunks({"format": "tsv", "path": str(tmp_path / "d.tsv")})
    assert frame.to_dict("list") == {"a": ["1", "2"], "b": ["x", "y"]}

    (tmp_path / "d.jsonl").write_text('{"a": 1, "b": "x"}\n\n{"a": 2, "c": true}\n')
    frame, rows, source = chunks({"format": "jsonl", "path": str(tmp_path / "d.jsonl")})
    assert rows.tolist() == [0, 2] and source.locate(2) == f"{tmp_path / 'd.jsonl'}:3"  # blank line skipped
    assert list(frame.columns) == ["a", "b", "c"] and frame["a"].tolist() == [1, 2]

    pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]}).to_parquet(tmp_path / "d.parquet")
    frame, _, _ = chunks({"format": "parquet", "path": str(tmp_path / "d.parquet")})
    assert frame["a"].tolist() == [1.5, 2.5]

    np.savez(tmp_path / "t.npz", x=np.arange(6.0).reshape(3, 2), y=np.array([0, 1, 0]))
    frame, _, source = chunks({"format": "numpy", "path": str(tmp_path / "t.npz")})
    assert list(frame.columns) == ["x0", "x1", "y"] and source.info.label_hint == "y"
    np.savez(tmp_path / "i.npz", x=np.zeros((4, 5, 6), dtype=np.uint8) + 255, y=np.zeros(4))
    frame, _, source = chunks({"format": "numpy", "path": str(tmp_path / "i.npz")})
    assert source.info.image_shape == (1, 5, 6) and frame["image"].iloc[0].max() == 1.0  # uint8 scaled to [0, 1]

    (tmp_path / "c.txt").write_text("first doc\n\nsecond doc\nstill second\n\n\nthird\n")
    frame, rows, _ = chunks({"format": "text", "path": str(tmp_path / "c.txt"), "text_unit": "paragraph"})
    assert frame["text"].tolist() == ["first doc", "second doc\nstill second", "third"] and rows.tolist() == [0, 2, 6]
    frame, _, _ = chunks({"format": "text", "path": str(tmp_path / "c.txt")})
    assert len(frame) == 4  # one document per non-empty line


def test_source_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        open_source(SourceConfig(format="csv", path=str(tmp_path / "nope.csv")))
    with pytest.raises(DataError, match="image folder not found"):
        open_source(SourceConfig(format="images", path=str(tmp_path / "nope")))
    with pytest.raises(DataError, match="csv source must be a file"):
        open_source(SourceConfig(format="csv", path=str(tmp_path)))
    (tmp_path / "dup.csv").write_text("a,a\n1,2\n")
    with pytest.raises(DataError, match="duplicate column name 'a'"):
        list(open_source(SourceConfig(format="csv", path=str(tmp_path / "dup.csv"))).chunks())
    np.savez(tmp_path / "k.npz", inputs=np.zeros((2, 2)))
    with pytest.raises(DataError, match="array 'x' not in the archive"):
        open_source(SourceConfig(format="numpy", path=str(tmp_path / "k.npz")))
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="numpy"):
        open_source(SourceConfig(format="numpy", path=str(tmp_path / "o.npy")))  # never unpickled
    (tmp_path / "p.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        list(open_source(SourceConfig(format="parquet", path=str(tmp_path / "p.parquet"))).chunks())
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="no images"):
        open_source(SourceConfig(format="images", path=str(tmp_path / "empty_dir")))


@pytest.mark.parametrize(("encoding", "expected"), [("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"),
                                                    ("utf-8", "utf-8")])
def test_boms_and_utf8(tmp_path: Path, encoding: str, expected: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text("name,city\nZoë,Zürich\n", encoding=encoding)
    assert detect_encoding(path)[0] == expected
    frame, _, _ = chunks({"format": "csv", "path": str(path)})
    assert frame.to_dict("list") == {"name": ["Zoë"], "city": ["Zürich"]}


def test_detected_and_declared_encodings(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("name,city\nZoë,Zürich\nJosé,Málaga\n".encode("cp1252"))
    assert detect_encoding(path) == ("cp1252", "detected")
    assert detect_encoding(path, "latin-1") == ("latin-1", "declared")
    with pytest.raises(DataError, match="unknown text encoding 'klingon'"):
        detect_encoding(path, "klingon")


def test_decode_error_across_the_read_window(tmp_path: Path) -> None:
    # A 2-byte character straddles the 1 MiB read boundary (fine); a bad byte 3 lines later is named.
    head = b"a" * ((1 << 20) - 1)
    path = tmp_path / "big.txt"
    path.write_bytes(head + "é".encode() + b"\nline2\nline3\nbad \xff here\n")
    error = decode_error(path, "utf-8")
    assert error.where == f"{path}:4"
    assert f"undecodable byte 0xff at byte {len(head) + 2 + 13 + 4}" in error.message
    assert codecs.lookup("utf-8")
