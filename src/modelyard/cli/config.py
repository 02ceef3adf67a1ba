"""``yard config validate|schema``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import console


@click.group("config")
def config_group() -> None:
    """Validate recipes and show their schema."""


@config_group.command("validate")
@recipe_argument
@overrides_argument
@click.option("--resolved", is_flag=True, help="Print the recipe with every default filled in.")
def validate_command(recipe: Path, overrides: tuple[str, ...], resolved: bool) -> None:
    """Check RECIPE (and plugin names) without running anything."""
    from modelyard.config.loader import recipe_to_yaml
    from modelyard.core.errors import ConfigError
    from modelyard.core.registry import unknown_name_message
    from modelyard.plugins import METRICS, MODELS, load_builtins

    loaded = load(recipe, overrides)
    load_builtins()
    if loaded.model.name not in MODELS:
        raise ConfigError(unknown_name_message("model", loaded.model.name, MODELS.names()), where="model.name")
    for name in loaded.evaluate.metrics:
        if name not in METRICS:
            raise ConfigError(unknown_name_message("metric", name, METRICS.names()), where="evaluate.metrics")
    if resolved:
        click.echo(recipe_to_yaml(loaded), nl=False)
    else:
        console.print(f"[green]ok[/green] {recipe}: recipe '{loaded.name}' is valid")


@config_group.command("schema")
@click.argument("section", required=False)
def schema_command(section: str | None) -> None:
    """Print the JSON schema of the recipe, or of one SECTION (data, model, train, …)."""
    from modelyard.config.recipe import Recipe
    from modelyard.core.errors import ConfigError

    schema = Recipe.model_json_schema(by_alias=True)
    if section:
        props = schema["properties"]
        if section not in props:
            raise ConfigError(f"unknown section {section!r} (sections: {', '.join(props)})")
        ref = props[section].get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        schema = {"section": section, **schema.get("$defs", {}).get(name, props[section]),
                  "$defs": schema.get("$defs", {})}
    click.echo(json.dumps(schema, indent=2))


COMMANDS = [config_group]
