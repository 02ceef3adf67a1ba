"""Options and argument parsing shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.config.recipe import Recipe

recipe_argument = click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")


def load(recipe: Path, overrides: tuple[str, ...]) -> Recipe:
    """Load and validate a recipe with overrides (errors exit 2 via main)."""
    from modelyard.config.loader import load_recipe

    return load_recipe(recipe, overrides)
