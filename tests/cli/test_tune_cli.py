"""`yard tune` as a subprocess: JSON results, bad input as one line + exit 2, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from tests.conftest import TINY_RECIPE

YARD = [sys.executable, "-m", "modelyard.cli.__main__"]
SPACE = {"train.optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}


def _recipe(path: Path, tune: dict[str, object] | None, **train: object) -> Path:
    raw = yaml.safe_load(TINY_RECIPE)
    raw["train"].update(train)
    if tune is not None:
        raw["tune"] = tune
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def yard(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*YARD, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_tune_json_and_help(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert "  tune" in yard(["--help"], cli_env, tmp_path).stdout
    recipe = _recipe(tmp_path / "r.yaml", {"n_trials": 3, "pruner": "none", "space": SPACE})
    result = yard(["tune", str(recipe), "--json", "--best-out", "best.yaml"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["trials"]) == 3 and out["metric"] == "valid/accuracy"
    assert out["best"]["value"] == max(t["value"] for t in out["trials"])
    assert out["registered"] == "tiny-iris@v1"
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert "tune" not in best and best["train"]["optimizer"]["lr"] == out["best"]["params"]["train.optimizer.lr"]
    assert Path(out["report"]).is_file()


def test_bad_inputs_are_one_line_errors(cli_env: dict[str, str], tmp_path: Path) -> None:
    plain = _recipe(tmp_path / "plain.yaml", None)
    _one_line_error(yard(["tune", str(plain)], cli_env, tmp_path), "has no tune: section")
    typo = _recipe(tmp_path / "typo.yaml", {"space": {"train.lr": SPACE["train.optimizer.lr"]}})
    _one_line_error(yard(["tune", str(typo)], cli_env, tmp_path), "typo.yaml", "'train.lr' is not a recipe field",
                    "did you mean 'train.optimizer.lr'")
    never = _recipe(tmp_path / "never.yaml", {"metric": "valid/f1", "n_trials": 3, "space": SPACE})
    _one_line_error(yard(["tune", str(never)], cli_env, tmp_path), "tune.metric",
                    "metric 'valid/f1' is never recorded by training")


def test_resume_after_sigkill_keeps_completed_trials(cli_env: dict[str, str], tmp_path: Path) -> None:
    # 300 epochs make a trial last about a second, so the kill lands inside a trial.
    recipe = _recipe(tmp_path / "r.yaml", {"n_trials": 4, "pruner": "none", "space": SPACE}, epochs=300)
    process = subprocess.Popen([*YARD, "tune", str(recipe), "--json"], env=cli_env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from modelyard.store import open_store

    home = Path(cli_env["YARD_HOME"])
    deadline = time.monotonic() + 120
    finished: list[str] = []
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (home / "store.db").exists():
                with open_store(home) as store:
                    trials = store.runs.list(kind="trial", limit=50)
                finished = [t["id"] for t in trials if t["status"] == "finished"]
                if finished and any(t["status"] == "running" for t in trials):
                    break
            time.sleep(0.2)
        assert process.poll() is None, "the search ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert finished

    result = yard(["tune", str(recipe), "--resume", "--json"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    states = [t["state"] for t in out["trials"]]
    assert len(states) == 4 and states.count("fail") == 1
    assert next(t for t in out["trials"] if t["state"] == "fail")["error"] == "interrupted (the search was killed)"
    # The trials finished before the kill are kept, not re-run.
    assert set(finished) <= {t["run_id"] for t in out["trials"]}
    with open_store(home) as store:
        assert not [t for t in store.runs.list(kind="trial", limit=50) if t["status"] == "running"]
