"""FSDP (``train.parallel: fsdp``) under torchrun: 2 gloo processes on 127.0.0.1 against 1 plain process.

The same tiny recipe as the DDP tests (no dropout, no batch norm), so sharded training must
follow the one-process loss curve and end at the same weights; the checkpoints hold the
full (gathered) state, so a sharded run resumes exactly. Slow: marked ``slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from modelyard.core.refs import ModelRef
from modelyard.store import open_store

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
YARD = [sys.executable, "-m", "modelyard.cli.__main__"]
FSDP = "train.parallel=fsdp"


def _yard(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*YARD, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One plain run, one 2-process FSDP run, and that FSDP run resumed from its last checkpoint (step 14 of 21)."""
    work = tmp_path_factory.mktemp("fsdp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARD_")}
    env.update(YARD_HOME=str(work / "home"), MPLBACKEND="Agg", HF_HUB_OFFLINE="1")
    recipe = str(HERE / "tiny.yaml")
    ids = []
    for args in ([recipe], [recipe, "--nproc", "2", FSDP]):
        result = _yard(["train", *args], env, work)
        assert result.returncode == 0, result.stderr
        ids.append(_newest_train_run(work / "home")["id"])
    resumed = _yard(["train", recipe, "--nproc", "2", FSDP, "--resume", ids[1]], env, work)
    assert resumed.returncode == 0, resumed.stderr
    ids.append(_newest_train_run(work / "home")["id"])
    return {"env": env, "work": work, "home": work / "home", "ids": ids}


def _newest_train_run(home: Path) -> dict[str, Any]:
    with open_store(home) as store:
        return store.runs.list(kind="train")[0]


def _run(home: Path, run_id: str) -> tuple[dict[str, Any], dict[str, Any], list[tuple[int, float]]]:
    with open_store(home) as store:
        return store.runs.get(run_id), store.runs.params(run_id), store.runs.metric_series(run_id, "train/loss")


def _weights(home: Path, model_id: str) -> dict[str, torch.Tensor]:
    with open_store(home) as store:
        return load_file(str(store.artifacts.path(ModelRef(id=model_id)) / "weights.safetensors"))


def test_sharded_training_follows_the_one_process_curve(runs: dict[str, Any]) -> None:
    (one, _, loss_1), (two, params, loss_2) = (_run(runs["home"], i) for i in runs["ids"][:2])
    assert params["world_size"] == 2
    assert [s for s, _ in loss_1] == [s for s, _ in loss_2] == list(range(1, 22))
    gap = max(abs(a - b) for (_, a), (_, b) in zip(loss_1, loss_2, strict=True))
    assert gap <= 1e-5, gap
    w1, w2 = _weights(runs["home"], one["summary"]["model"]), _weights(runs["home"], two["summary"]["model"])
    assert w1.keys() == w2.keys()  # the gathered, unsharded weights under the plain module's names
    for name in w1:
        torch.testing.assert_close(w1[name], w2[name], atol=1e-5, rtol=1e-4)


def test_a_sharded_run_resumes_from_its_gathered_checkpoint(runs: dict[str, Any]) -> None:
    (two, _, loss_2), (resumed, params, loss_r) = (_run(runs["home"], i) for i in runs["ids"][1:])
    assert params["resumed_from"] == "step-000000014"
    assert [s for s, _ in loss_r] == list(range(15, 22))  # only the steps after the checkpoint were trained
    torch.testing.assert_close([v for _, v in loss_r], [v for s, v in loss_2 if s > 14], atol=1e-6, rtol=0)
    w2, wr = _weights(runs["home"], two["summary"]["model"]), _weights(runs["home"], resumed["summary"]["model"])
    for name in w2:
        torch.testing.assert_close(w2[name], wr[name], atol=1e-6, rtol=0)


def test_resuming_a_sharded_checkpoint_without_fsdp_is_refused(runs: dict[str, Any]) -> None:
    result = _yard(["train", str(HERE / "tiny.yaml"), "--nproc", "2", "--resume", runs["ids"][1]], runs["env"],
                   runs["work"])
    assert result.returncode == 2, result.stderr
    assert "cannot resume" in result.stderr and "'parallel': 'fsdp'" in result.stderr
