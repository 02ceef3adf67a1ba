"""Scale-out: the same search through Ray Tune (Optuna TPE searcher, ASHA scheduler) on a local Ray.

Ray is started inside the test with 2 CPUs on 127.0.0.1, no dashboard, a temp folder of its
own and usage stats off. Ray's gRPC servers still listen on every interface, so the search
runs in a child process inside a private network namespace (``unshare --net``) whose only
interface is loopback: nothing is reachable from, or sent to, any other address.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

CHILD = r'''
import json, os, sys, tempfile
import yaml
import ray
from modelyard import data as data_stage, tune as tune_stage
from modelyard.config import validate_recipe
from modelyard.store import open_store
from modelyard.store.context import stage_run
from tests.conftest import TINY_RECIPE

raw = yaml.safe_load(TINY_RECIPE)
raw["tune"] = {"backend": "ray", "ray_address": "auto", "n_trials": 4, "startup_trials": 2, "warmup_steps": 2,
               "space": {"train.optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                         "model.params.hidden": {"type": "categorical", "choices": [[8], [32]]}}}
recipe = validate_recipe(raw)
# A short folder: Ray's unix sockets live under it and socket paths are limited to ~107 bytes.
with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as folder:
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=folder,
             log_to_driver=False)
    try:
        with open_store(sys.argv[1]) as store:
            with stage_run(store, kind="data", name=recipe.name, config={}) as ctx:
                dataset = data_stage.run(recipe, ctx=ctx)
            with stage_run(store, kind="tune", name=recipe.name, config={}) as ctx:
                result = tune_stage.run(recipe, dataset, ctx=ctx)
            runs = store.runs.list(parent_run_id=result.search_run_id)
            out = {**result.table(), "runs": [[r["kind"], r["status"]] for r in runs]}
    finally:
        ray.shutdown()
print("RESULT " + json.dumps(out, default=str))
'''


def _namespace_prefix() -> list[str]:
    """``unshare --net`` with loopback up, or skip where a network namespace cannot be made."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if not unshare or not ip:
        pytest.skip("needs unshare and ip (util-linux, iproute2) for a private network namespace")
    probe = subprocess.run([unshare, "--net", ip, "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
    return [unshare, "--net", "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh"]


def test_search_on_local_ray(tmp_path: Path, cli_env: dict[str, str]) -> None:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([*_namespace_prefix(), sys.executable, "-c", CHILD, str(tmp_path / "store")],
                          capture_output=True, text=True, cwd=repo, timeout=240,
                          env={**cli_env, "PYTHONPATH": str(repo), "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    trials = result["trials"]
    assert len(trials) == 4
    assert {t["state"] for t in trials} <= {"complete", "pruned"}
    complete = [t for t in trials if t["state"] == "complete"]
    assert complete and result["best"]["value"] == max(t["value"] for t in complete)
    # Decoded values (lists, not Optuna's JSON text), and each trial a modelyard run under the search run.
    assert all(t["params"]["model.params.hidden"] in ([8], [32]) for t in trials)
    assert sorted(result["runs"]) == [["trial", "finished"]] * 4
    assert result["best"]["model"] == next(t["model"] for t in complete if t["number"] == result["best"]["trial"])
    # fANOVA importances over the complete trials, as the local search gives (lr always varies).
    assert set(result["importances"]) <= {"train.optimizer.lr", "model.params.hidden"}
    if len(complete) >= 2:
        assert "train.optimizer.lr" in result["importances"]
    # ASHA-stopped trials reported fewer epochs than the 30 of a complete trial.
    assert all(len(t["intermediate"]) < 30 for t in trials if t["state"] == "pruned")
