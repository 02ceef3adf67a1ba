"""Real torchrun runs on this machine: 2 gloo processes on 127.0.0.1 against 1 process.

Slow (each torchrun start imports torch in every worker): marked ``slow``, run by `make test`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from safetensors.torch import load_file

from modelyard.core.refs import ModelRef
from modelyard.store import open_store

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
YARD = [sys.executable, "-m", "modelyard.cli.__main__"]


def _yard(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*YARD, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def _train_runs(home: Path) -> list[dict[str, Any]]:
    with open_store(home) as store:
        return list(reversed(store.runs.list(kind="train")))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny recipe trained once in-process and once under torchrun with 2 processes (same store)."""
    work = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARD_")}
    env.update(YARD_HOME=str(work / "home"), MPLBACKEND="Agg", HF_HUB_OFFLINE="1")
    one = _yard(["train", str(HERE / "tiny.yaml")], env, work)
    assert one.returncode == 0, one.stderr
    two = _yard(["train", str(HERE / "tiny.yaml"), "--nproc", "2"], env, work)
    assert two.returncode == 0, two.stderr
    return {"env": env, "work": work, "home": work / "home"}


def _series(home: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    with open_store(home) as store:
        return store.runs.metric_series(run_id, key)


def _weights(home: Path, model_id: str) -> dict[str, torch.Tensor]:
    with open_store(home) as store:
        folder = store.artifacts.path(ModelRef(id=model_id))
        return load_file(str(folder / "weights.safetensors"))


def test_two_processes_match_one_with_the_same_global_batch(two_runs: dict[str, Any]) -> None:
    one, two = _train_runs(two_runs["home"])[:2]
    loss_1 = _series(two_runs["home"], one["id"], "train/loss")
    loss_2 = _series(two_runs["home"], two["id"], "train/loss")
    # wine: 106 train rows, batch 16 → 7 steps per epoch (the last of 10 rows: 5 per rank), 3 epochs.
    assert [s for s, _ in loss_1] == [s for s, _ in loss_2] == list(range(1, 22))
    gap = max(abs(a - b) for (_, a), (_, b) in zip(loss_1, loss_2, strict=True))
    assert gap <= 1e-5, gap
    assert loss_1[-1][1] < loss_1[0][1]  # and it did learn
    valid_1 = _series(two_runs["home"], one["id"], "valid/loss")
    valid_2 = _series(two_runs["home"], two["id"], "valid/loss")
    assert max(abs(a - b) for (_, a), (_, b) in zip(valid_1, valid_2, strict=True)) <= 1e-5
    w1, w2 = _weights(two_runs["home"], one["summary"]["model"]), _weights(two_runs["home"], two["summary"]["model"])
    assert w1.keys() == w2.keys()  # no "module." prefix: the unwrapped model was saved
    for name in w1:
        torch.testing.assert_close(w1[name], w2[name], atol=1e-5, rtol=1e-4)


def test_only_rank_zero_wrote_and_compute_covers_both_workers(two_runs: dict[str, Any]) -> None:
    two = _train_runs(two_runs["home"])[1]
    with open_store(two_runs["home"]) as store:
        params = store.runs.params(two["id"])
        points = store.runs.metric_series(two["id"], "train/loss")
        outputs = store.runs.artifacts(two["id"], role="output")
        inputs = store.runs.artifacts(two["id"], role="input")
    assert params["world_size"] == 2
    assert len(points) == 21          # one point per step, not one per rank
    assert [kind for _, kind in outputs] == ["model"]   # published once, by rank 0
    assert [kind for _, kind in inputs] == ["dataset"]  # linked once
    compute = two["summary"]["compute"]
    assert compute["processes"] == 2 and compute["world_size"] == 2
    assert compute["cpu_hours"] > 0 and compute["peak_memory_mb"] > 100


def test_resume_with_another_world_size_is_refused(two_runs: dict[str, Any]) -> None:
    two = _train_runs(two_runs["home"])[1]
    result = _yard(["train", str(HERE / "tiny.yaml"), "--resume", two["id"]], two_runs["env"], two_runs["work"])
    assert result.returncode == 2, result.stderr
    assert "world_size = 2, this run has 1" in result.stderr.strip().splitlines()[-1]


def test_a_rank_that_dies_stops_the_job_and_publishes_nothing(two_runs: dict[str, Any]) -> None:
    env, work = two_runs["env"], two_runs["work"]
    before = {r["id"] for r in _train_runs(two_runs["home"])}
    proc = subprocess.Popen([*YARD, "train", str(HERE / "tiny.yaml"), "--nproc", "2", "train.epochs=400"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=work)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                cmd = child.cmdline()
                if "modelyard.train.distributed" in cmd and child.environ().get("RANK") == "1":
                    victim = child
            except psutil.Error:
                continue
        time.sleep(0.5)
    assert victim is not None, "no rank-1 worker appeared"
    time.sleep(3.0)  # let it get into the training loop
    victim.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    assert "a worker died before finishing" in stderr and "nothing was published" in stderr
    runs = [r for r in _train_runs(two_runs["home"]) if r["id"] not in before]
    assert len(runs) == 1 and runs[0]["status"] == "failed"
    with open_store(two_runs["home"]) as store:
        assert store.runs.artifacts(runs[0]["id"], role="output") == []
