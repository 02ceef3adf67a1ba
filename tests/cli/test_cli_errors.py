"""`yard` as a subprocess: each bad input gives one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import TINY_RECIPE

YARD = [sys.executable, "-m", "modelyard.cli.__main__"]


def yard(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*YARD, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _bad(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_lists_the_lifecycle(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = yard(["--help"], cli_env, tmp_path)
    assert result.returncode == 0
    for command in ("run", "quickstart", "config", "data", "train", "evaluate", "models", "runs", "report"):
        assert f"  {command}" in result.stdout


def test_missing_recipe(cli_env: dict[str, str], tmp_path: Path) -> None:
    _bad(yard(["run", "nope.yaml"], cli_env, tmp_path), "nope.yaml", "recipe file not found")


def test_yaml_syntax_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TINY_RECIPE + "train: [oops\n")
    _bad(yard(["run", "r.yaml"], cli_env, tmp_path), "r.yaml:", "YAML syntax error")


def test_unknown_key(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TINY_RECIPE.replace("seed: 3", "seed: 3\nsede: 4"))
    _bad(yard(["config", "validate", "r.yaml"], cli_env, tmp_path), "r.yaml:4", "sede: unknown key")


def test_wrong_type(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TINY_RECIPE.replace("batch_size: 32", "batch_size: lots"))
    _bad(yard(["run", "r.yaml"], cli_env, tmp_path), "train.batch_size", "'lots'")


def test_unknown_plugin_name(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TINY_RECIPE.replace("name: mlp", "name: mpl"))
    _bad(yard(["config", "validate", "r.yaml"], cli_env, tmp_path), "unknown model 'mpl'", "did you mean 'mlp'")
    _bad(yard(["run", "r.yaml"], cli_env, tmp_path), "unknown model 'mpl'")


def test_missing_data_file_is_recorded_as_failed_run(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TINY_RECIPE.replace("{format: sklearn, name: iris}",
                                                         "{format: csv, path: data/missing.csv}"))
    _bad(yard(["run", "r.yaml"], cli_env, tmp_path), "data/missing.csv", "data file not found")
    listing = yard(["runs", "list", "--json"], cli_env, tmp_path)
    assert listing.returncode == 0
    import json

    runs = json.loads(listing.stdout)
    assert {r["kind"]: r["status"] for r in runs} == {"pipeline": "failed", "data": "failed"}
    assert all("data file not found" in r["error"] for r in runs)


def test_missing_label_column(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,x\n3,4,z\n5,6,x\n7,8,z\n")
    text = TINY_RECIPE.replace("{format: sklearn, name: iris}", "{format: csv, path: d.csv}")
    text = text.replace("  split:", "  columns: {label: category}\n  split:")
    (tmp_path / "r.yaml").write_text(text)
    _bad(yard(["data", "prepare", "r.yaml"], cli_env, tmp_path), "d.csv", "label column 'category' does not exist",
         "a, b, y")


def test_override_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TINY_RECIPE)
    _bad(yard(["run", "r.yaml", "train.epochs=-1"], cli_env, tmp_path), "train.epochs")


def test_debug_shows_traceback(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = yard(["--debug", "run", "nope.yaml"], cli_env, tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


@pytest.mark.parametrize("args", [["models", "show", "nothere@staging"], ["runs", "show", "feedbeef"]])
def test_not_found(cli_env: dict[str, str], tmp_path: Path, args: list[str]) -> None:
    _bad(yard(args, cli_env, tmp_path), "not found")


def test_run_resume_without_an_interrupted_run(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TINY_RECIPE)
    _bad(yard(["run", "r.yaml", "--resume", "last"], cli_env, tmp_path),
         "no interrupted pipeline run of 'tiny-iris' with a training checkpoint to resume")
