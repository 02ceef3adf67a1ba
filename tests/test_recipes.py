"""Every example recipe in recipes/ validates, and its plugin names exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.config import load_recipe
from modelyard.plugins import METRICS, MODELS, load_builtins

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_there_are_recipes() -> None:
    assert any(p.name == "quickstart.yaml" for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    load_builtins()
    assert recipe.model.name in MODELS
    assert all(name in METRICS for name in recipe.evaluate.metrics)
