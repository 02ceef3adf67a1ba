"""Bad input to the data stage: a clear error naming file / row / column, and nothing half-written.

Each case runs the stage in-process (the message and what is left in the store) and a few
run `yard data prepare` as a subprocess (exit code 2, one line on stderr, no traceback).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from modelyard import data as data_stage
from modelyard.config.loader import validate_recipe
from modelyard.core.errors import ConfigError, DataError, PluginError, YardError
from modelyard.store.context import stage_run

YARD = [sys.executable, "-m", "modelyard.cli.__main__"]


def recipe_dict(data: dict[str, Any], task: str = "classification") -> dict[str, Any]:
    return {"version": 1, "name": "bad", "task": task, "data": data, "model": {"name": "mlp"}}


def fails(store: Any, data: dict[str, Any], error: type[YardError], *needles: str) -> str:
    """Run the stage, expect ``error`` naming every needle; check the run failed and nothing was stored."""
    recipe = validate_recipe(recipe_dict(data))
    with pytest.raises(error) as caught, stage_run(store, kind="data", name="bad", config={}) as ctx:
        data_stage.run(recipe, ctx=ctx)
    message = str(caught.value)
    for needle in needles:
        assert needle in message, message
    assert store.runs.get(ctx.run_id)["status"] == "failed"
    assert store.runs.artifacts(ctx.run_id) == []
    assert not any(store.artifacts.root.rglob("*.parquet"))
    assert not any(store.artifacts.tmp.iterdir())  # staging and scratch folders are gone
    return message


def csv(tmp_path: Path, text: str, name: str = "d.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_empty_file(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "")
    fails(store, {"source": {"format": "csv", "path": path}}, DataError, path, "data file is empty")


def test_header_only(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n")
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"}}, DataError, path,
          "no rows (a header only)")


def test_ragged_rows_name_the_line(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n1,a\n2,b\n3,a,extra\n4,b\n")
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"}}, DataError,
          f"{path}:4", "ragged row: expected 2 fields, got 3")


def test_ragged_rows_can_be_skipped_and_counted(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(30)) + "3,a,extra\n")
    recipe = validate_recipe(recipe_dict({"source": {"format": "csv", "path": path, "bad_rows": "skip"},
                                          "columns": {"label": "y"}}))
    with stage_run(store, kind="data", name="ok", config={}) as ctx:
        ref = data_stage.run(recipe, ctx=ctx)
    from modelyard.data import open_dataset

    read = open_dataset(store, ref).quality["steps"][0]
    assert read["skipped_bad_rows"] == 1 and read["bad_row_examples"] == ["line 32: expected 2 fields, got 3"]


def test_label_column_that_does_not_exist(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n1,a\n2,b\n")
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "target"}}, DataError,
          path, "label column 'target' does not exist (columns: x, y)")


def test_single_class(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n" + "".join(f"{i},only\n" for i in range(20)))
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"}}, DataError,
          path, "label column 'y' has a single class ('only')")


def test_all_nan_column(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,empty,y\n" + "".join(f"{i},,{'ab'[i % 2]}\n" for i in range(20)))
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"}}, DataError,
          path, "feature column 'empty' is entirely missing (20 rows", "data.columns.ignore")


def test_mixed_types_in_a_numeric_column(store: Any, tmp_path: Path) -> None:
    rows = "".join(f"{i}.5,{'ab'[i % 2]}\n" for i in range(30))
    path = csv(tmp_path, "x,y\n" + rows + "twelve,a\n")
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"}}, DataError,
          f"{path} row 31", "column 'x': not a number: 'twelve'")


def test_mixed_types_dropped_or_filled_by_policy(store: Any, tmp_path: Path) -> None:
    from modelyard.data import open_dataset

    path = csv(tmp_path, "x,y\n" + "".join(f"{i}.5,{'ab'[i % 2]}\n" for i in range(30)) + "twelve,a\n")
    for policy, rows in (("drop", 30), ("fill", 31)):
        recipe = validate_recipe(recipe_dict({"source": {"format": "csv", "path": path}, "columns": {"label": "y"},
                                              "validation": {"invalid": policy}, "clean": {"missing": "median"}}))
        with stage_run(store, kind="data", name="ok", config={}) as ctx:
            dataset = open_dataset(store, data_stage.run(recipe, ctx=ctx))
        assert sum(dataset.stats["rows"].values()) == rows, policy
        validate = dataset.quality["steps"][1]
        assert validate["counts"] == {"not a number/x": 1}
        assert validate["examples"][0]["row"] == f"{path} row 31"


def test_images_that_do_not_decode_are_each_named(store: Any, tmp_path: Path) -> None:
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "img" / label / f"{i}.png")
    (tmp_path / "img" / "cat" / "bad1.png").write_bytes(b"garbage")
    (tmp_path / "img" / "dog" / "bad2.jpg").write_bytes(b"\xff\xd8\xff truncated")
    fails(store, {"source": {"format": "images", "path": str(tmp_path / "img")}}, DataError,
          "2 image(s) do not decode", "cat/bad1.png", "dog/bad2.jpg")


def test_split_ratio_that_leaves_a_split_empty(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(8)))
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"},
                  "split": {"valid": 0.05, "test": 0.25, "stratify": False}}, DataError,
          "data.split.valid", "valid=0.05 of 8 rows leaves the valid split empty")


def test_kfold_with_more_folds_than_the_smallest_class(store: Any, tmp_path: Path) -> None:
    labels = ["big"] * 40 + ["small"] * 4
    path = csv(tmp_path, "x,y\n" + "".join(f"{i},{y}\n" for i, y in enumerate(labels)))
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"},
                  "split": {"folds": 5, "test": 0.0}}, DataError,
          "data.split", "class 'small' has 4 row(s): too few to stratify into 5 folds")


def test_unknown_augmentation_name(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n1,a\n2,b\n")
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"},
                  "augment": {"tabular": [{"name": "mixupp"}]}}, PluginError,
          "unknown augmentation 'mixupp'", "did you mean 'mixup'")


def test_augmentation_for_another_modality(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n1,a\n2,b\n")
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"},
                  "augment": {"tabular": [{"name": "rotate"}]}}, ConfigError,
          "data.augment.tabular[0].name", "'rotate' does not apply to tabular data")


def test_undecodable_bytes_name_line_and_byte(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"x,y\n1,a\n2,caf\xe9\n")
    fails(store, {"source": {"format": "csv", "path": str(path), "encoding": "utf-8"}, "columns": {"label": "y"}},
          DataError, f"{path}:3", "undecodable byte 0xe9 at byte 13 as utf-8")  # 0-based: "x,y\n1,a\n2,caf" is 13


def test_non_utf8_file_is_detected(store: Any, tmp_path: Path) -> None:
    from modelyard.data import open_dataset

    path = tmp_path / "latin.csv"
    path.write_bytes(("x,y\n" + "".join(f"{i},{'café' if i % 2 else 'thé'}\n" for i in range(40))).encode("cp1252"))
    recipe = validate_recipe(recipe_dict({"source": {"format": "csv", "path": str(path)}, "columns": {"label": "y"}}))
    with stage_run(store, kind="data", name="ok", config={}) as ctx:
        dataset = open_dataset(store, data_stage.run(recipe, ctx=ctx))
    assert dataset.schema.label_names == ["café", "thé"]
    assert dataset.quality["steps"][0]["encoding"] == {"codec": "cp1252", "how": "detected"}


def test_missing_and_invalid_labels(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "x,y\n1,a\n2,\n3,b\n")
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y"}}, DataError,
          f"{path} row 2", "column 'y': missing label")
    path = csv(tmp_path, "x,y\n1,a\n2,c\n3,b\n", name="e.csv")
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y", "label_values": ["a", "b"]}},
          DataError, f"{path} row 2", "invalid label (allowed: a, b): 'c'")


def test_jsonl_syntax_error_names_the_line(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"x": 1, "y": "a"}\n{"x": 2, "y": "b"}\n{"x": 3, "y": \n')
    fails(store, {"source": {"format": "jsonl", "path": str(path)}, "columns": {"label": "y"}}, DataError,
          f"{path}:3", "invalid JSON")


def test_smote_on_text_is_refused(store: Any, tmp_path: Path) -> None:
    path = csv(tmp_path, "t,y\n" + "".join(f"text number {i} here,{'ab'[i % 2]}\n" for i in range(20)))
    fails(store, {"source": {"format": "csv", "path": path}, "columns": {"label": "y", "text": "t"},
                  "balance": {"method": "smote"}}, DataError, "data.balance.method", "this dataset is text")


# -- the same refusals through the CLI ---------------------------------------------------------------

def _yard_prepare(tmp_path: Path, env: dict[str, str], data: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe_dict(data)))
    return subprocess.run([*YARD, "data", "prepare", "r.yaml"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)


@pytest.mark.parametrize(("text", "columns", "needles"), [
    ("x,y\n1,a\n2,b,c\n", {"label": "y"}, ["d.csv:3", "ragged row"]),
    # 20 numbers and one word: the column is inferred numeric (≥ 90% parse), the word is the bad value.
    ("x,y\n" + "1.5,a\n2.5,b\n" * 10 + "lots,a\n", {"label": "y"},
     ["d.csv row 21", "column 'x': not a number: 'lots'"]),
    ("x,y\n1,a\n2,b\n", {"label": "label"}, ["d.csv", "label column 'label' does not exist"]),
])
def test_cli_exit_2_with_one_line(tmp_path: Path, cli_env: dict[str, str], text: str, columns: dict[str, str],
                                  needles: list[str]) -> None:
    (tmp_path / "d.csv").write_text(text)
    done = _yard_prepare(tmp_path, cli_env, {"source": {"format": "csv", "path": "d.csv"}, "columns": columns})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not list((tmp_path / "yard-home" / "artifacts").rglob("*.parquet"))
