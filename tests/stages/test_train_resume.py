"""Exact resume: a training process killed with SIGKILL at a random step and resumed ends
with weights bit-identical to a run that was never interrupted (CPU)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors.torch import load_file

from modelyard.config import load_recipe
from modelyard.core.errors import ArtifactError, ConfigError
from modelyard.core.refs import ModelRef
from modelyard.store import open_store
from modelyard.store.project import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home_store() -> Iterator[Store]:
    """The store of $YARD_HOME: the one the training subprocesses open."""
    with open_store() as opened:
        yield opened

# breast_cancer (569 rows) with an MLP that uses every piece of state resume must restore:
# dropout (torch RNG), batch norm (running buffers), AdamW moments, a warm-up + cosine
# schedule, and validation-based best-weight selection. 398 train rows / 32 = 13 steps an
# epoch, 3 epochs = 39 steps; a checkpoint every 4 steps.
RECIPE = """\
version: 1
name: resume-mlp
seed: 11
task: classification
data:
  source: {format: sklearn, name: breast_cancer}
  split: {valid: 0.15, test: 0.15}
model:
  name: mlp
  params: {hidden: [32, 16], dropout: 0.2, batch_norm: true}
train:
  epochs: 3
  batch_size: 32
  optimizer: {name: adamw, lr: 0.005}
  schedule: {name: cosine, warmup: 0.1}
  log_every_steps: 3
  checkpoint: {every_steps: 4, keep: 2}
"""


def _prepare(store: Store, tmp_path: Path) -> tuple[Path, str]:
    from modelyard import data as data_stage
    from modelyard.store.context import stage_run

    path = tmp_path / "resume.yaml"
    path.write_text(RECIPE)
    recipe = load_recipe(path)
    with stage_run(store, kind="data", name=recipe.name, config={}) as ctx:
        dataset = data_stage.run(recipe, ctx=ctx)
    return path, dataset.id


def _child(recipe: Path, dataset: str, kill_at: int, resume: str, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tests.unit.train.train_child", str(recipe), dataset, str(kill_at),
                           resume, str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # three fresh Python processes: ~14 s idle, a minute on a loaded machine
def test_sigkill_at_a_random_step_then_resume_is_bit_identical(home_store: Store, tmp_path: Path) -> None:
    recipe, dataset = _prepare(home_store, tmp_path)
    kill_at = random.Random().randint(5, 37)  # any step after the first checkpoint, before the end

    straight = _child(recipe, dataset, 0, "-", tmp_path / "straight.txt")
    assert straight.returncode == 0, straight.stderr

    killed = _child(recipe, dataset, kill_at, "-", tmp_path / "killed.txt")
    assert killed.returncode == -signal.SIGKILL, f"kill_at={kill_at}: {killed.stderr[-2000:]}"
    killed_run = killed.stdout.split()[0]
    assert home_store.runs.get(killed_run)["status"] == "running"  # it never got to say anything

    resumed = _child(recipe, dataset, 0, killed_run, tmp_path / "resumed.txt")
    assert resumed.returncode == 0, f"kill_at={kill_at}: {resumed.stderr[-2000:]}"

    a = ModelRef(id=(tmp_path / "straight.txt").read_text())
    b = ModelRef(id=(tmp_path / "resumed.txt").read_text())
    wa = load_file(str(home_store.artifacts.path(a) / "weights.safetensors"))
    wb = load_file(str(home_store.artifacts.path(b) / "weights.safetensors"))
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not (wa[k].dtype == wb[k].dtype and bool((wa[k] == wb[k]).all()))]
    assert not different, f"kill_at={kill_at}: tensors differ after resume: {different}"
    assert a.id == b.id  # same bytes, same spec: the very same artifact

    summary = home_store.runs.get(resumed.stdout.split()[0])["summary"]
    assert summary["steps"] == 39
    assert 4 <= summary["resumed_from_step"] <= kill_at and summary["resumed_from_step"] % 4 == 0


@pytest.mark.slow
def test_resume_refuses_another_recipe_and_a_corrupt_checkpoint(home_store: Store, tmp_path: Path) -> None:
    from modelyard import train as train_stage
    from modelyard.store.context import stage_run

    recipe_path, dataset = _prepare(home_store, tmp_path)
    killed = _child(recipe_path, dataset, 9, "-", tmp_path / "k.txt")
    assert killed.returncode == -signal.SIGKILL
    run_id = killed.stdout.split()[0]

    other = tmp_path / "other.yaml"
    other.write_text(RECIPE.replace("hidden: [32, 16]", "hidden: [64]"))
    from modelyard.core.refs import DatasetRef

    with pytest.raises(ConfigError, match=r"cannot resume: the checkpoint was made with model = .*hidden"):
        with stage_run(home_store, kind="train", name="resume-mlp", config={}) as ctx:
            train_stage.run(load_recipe(other), DatasetRef(id=dataset), ctx=ctx, resume=run_id)

    checkpoint = train_stage.find_resume_checkpoint(home_store, run_id, name="resume-mlp")[1]
    weights = checkpoint / "optimizer.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checkpoint file optimizer.safetensors is corrupt"):
        with stage_run(home_store, kind="train", name="resume-mlp", config={}) as ctx:
            train_stage.run(load_recipe(recipe_path), DatasetRef(id=dataset), ctx=ctx, resume="last")
