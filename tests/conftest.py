"""Shared fixtures: every test gets its own store and keeps caches out of $HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh YARD_HOME per test; matplotlib / torch / ray caches in the test's temp folder."""
    monkeypatch.setenv("YARD_HOME", str(tmp_path / "yard-home"))
    monkeypatch.delenv("YARD_STORE_URL", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    """An opened, empty project store in the test's temp folder."""
    from modelyard.store import open_store

    with open_store(tmp_path / "store") as opened:
        yield opened


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `yard` subprocesses: isolated store and caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARD_")}
    env.update(YARD_HOME=str(tmp_path / "yard-home"), MPLCONFIGDIR=str(tmp_path / "mpl"), MPLBACKEND="Agg",
               HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    return env


def write_recipe(path: Path, text: str) -> Path:
    """Write a recipe file (dedented by the caller) and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


TINY_RECIPE = """\
version: 1
name: tiny-iris
seed: 3
task: classification
data:
  source: {format: sklearn, name: iris}
  split: {valid: 0.15, test: 0.2}
model:
  name: mlp
  params: {hidden: [32], dropout: 0.0}
train:
  epochs: 30
  batch_size: 32
  optimizer: {name: adamw, lr: 0.02, weight_decay: 0.0}
  schedule: {name: cosine, warmup: 0.1}
"""
"""A recipe that runs end to end in about a second (150 iris flowers, 4 features)."""
