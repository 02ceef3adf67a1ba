"""`yard data prepare | report | augmentations` as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

YARD = [sys.executable, "-m", "modelyard.cli.__main__"]


def yard(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*YARD, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_prepare_then_report(cli_env: dict[str, str], tmp_path: Path) -> None:
    rows = [f"{i % 7}.5,{'abc'[i % 3]},{'xy'[i % 2]}" for i in range(60)] + ["0.5,a,x"]  # row 61 repeats row 1
    (tmp_path / "d.csv").write_text("num,cat,y\n" + "\n".join(rows) + "\n")
    recipe = {"version": 1, "name": "cli-data", "task": "classification", "model": {"name": "mlp"},
              "data": {"source": {"format": "csv", "path": "d.csv"}, "columns": {"label": "y"},
                       "duplicates": {"exact": "report", "leakage": "report"}}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    done = yard(["data", "prepare", "r.yaml", "data.split.test=0.2", "--json"], cli_env, tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    # 61 rows, exact duplicates only reported: round(12.2) = 12 test, round(6.1) = 6 valid, 43 train.
    assert (summary["rows/train"], summary["rows/valid"], summary["rows/test"]) == (43, 6, 12)
    # i % 7, i % 3 and i % 2 repeat every 42 rows: rows 43-60 repeat rows 1-18, row 61 repeats row 1.
    assert summary["duplicates/exact_rows"] == 19
    assert summary["leakage/exact/valid"] + summary["leakage/exact/test"] >= 1  # reported, not removed
    dataset = summary["dataset"]

    report = yard(["data", "report", dataset[:10], "--json"], cli_env, tmp_path)
    assert report.returncode == 0, report.stderr
    quality = json.loads(report.stdout)["quality"]
    assert [s["step"] for s in quality["steps"]][:4] == ["read", "validate", "clean", "duplicates"]
    assert {c["column"]: c["kind"] for c in quality["columns"]} == {"num": "numeric", "cat": "categorical",
                                                                   "y (label)": "categorical"}
    text = yard(["data", "report", summary["run"], "--html", "q.html"], cli_env, tmp_path)
    assert text.returncode == 0, text.stderr
    assert "duplicates" in text.stdout and "class balance" in text.stdout and "leakage" in text.stdout
    page = (tmp_path / "q.html").read_text()
    assert page.startswith("<!doctype html>") and "Rows per step" in page

    missing = yard(["data", "report", "abcdef123456"], cli_env, tmp_path)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_augmentations_are_listed(cli_env: dict[str, str], tmp_path: Path) -> None:
    done = yard(["data", "augmentations", "--json"], cli_env, tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {a["name"]: a["modalities"] for a in json.loads(done.stdout)}
    assert listed["mixup"] == ["image", "tabular"] and listed["char-noise"] == ["text"]
