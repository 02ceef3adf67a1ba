"""config: YAML loading with file:line errors, overrides, migrations, schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.config import RECIPE_VERSION, Recipe, load_recipe, recipe_to_yaml, validate_recipe
from modelyard.config.loader import apply_overrides, parse_yaml
from modelyard.core.errors import ConfigError
from tests.conftest import TINY_RECIPE

REPO = Path(__file__).resolve().parents[3]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_tiny_recipe_fills_defaults(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, TINY_RECIPE))
    assert recipe.name == "tiny-iris"
    assert recipe.train.epochs == 30
    assert recipe.train.grad_clip == 1.0  # default
    assert recipe.registration.alias == "staging"  # default of the `register:` section
    assert recipe.evaluate.metrics == []  # empty: the task's default metrics (evaluate/scoring.py)


def test_unknown_key_names_line_and_path(tmp_path: Path) -> None:
    text = TINY_RECIPE.replace("  batch_size: 32\n", "  batch_size: 32\n  bacth: 3\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(_write(tmp_path, text))
    message = str(err.value)
    line = text.splitlines().index("  bacth: 3") + 1
    assert f"r.yaml:{line}" in message
    assert "train.bacth: unknown key" in message


def test_wrong_type_names_value(tmp_path: Path) -> None:
    text = TINY_RECIPE.replace("epochs: 30", "epochs: many")
    with pytest.raises(ConfigError, match=r"train.epochs: .*'many'"):
        load_recipe(_write(tmp_path, text))


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"r.yaml:\d+: YAML syntax error"):
        load_recipe(_write(tmp_path, TINY_RECIPE + "model: [unclosed\n"))


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_recipe(_write(tmp_path, TINY_RECIPE + "seed: 4\n"))


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="recipe is empty"):
        load_recipe(_write(tmp_path, "# nothing\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_recipe(_write(tmp_path, "- a\n- b\n"))


def test_overrides_are_revalidated(tmp_path: Path) -> None:
    path = _write(tmp_path, TINY_RECIPE)
    recipe = load_recipe(path, ["train.optimizer.lr=3e-4", "seed=11", "model.params.hidden=[8, 8]"])
    assert recipe.train.optimizer.lr == pytest.approx(3e-4)
    assert recipe.seed == 11
    assert recipe.model.params["hidden"] == [8, 8]
    with pytest.raises(ConfigError, match=r"train.epochs: .*greater than or equal to 1"):
        load_recipe(path, ["train.epochs=0"])
    with pytest.raises(ConfigError, match="train.nope: unknown key"):
        load_recipe(path, ["train.nope=1"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_recipe(path, ["train.epochs"])
    with pytest.raises(ConfigError, match="is not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_missing_version_and_newer_version(tmp_path: Path) -> None:
    body = "\n".join(line for line in TINY_RECIPE.splitlines() if not line.startswith("version"))
    with pytest.raises(ConfigError, match="missing 'version'"):
        load_recipe(_write(tmp_path, body))
    with pytest.raises(ConfigError, match="newer than this modelyard"):
        load_recipe(_write(tmp_path, f"version: {RECIPE_VERSION + 1}\n" + body))


def test_version_0_recipe_is_migrated(tmp_path: Path) -> None:
    body = "\n".join(line for line in TINY_RECIPE.splitlines() if not line.startswith("version"))
    body = body.replace("  optimizer: {name: adamw, lr: 0.01, weight_decay: 0.0}", "  lr: 0.02")
    recipe = load_recipe(_write(tmp_path, "version: 0\n" + body))
    assert recipe.version == RECIPE_VERSION
    assert recipe.train.optimizer.lr == pytest.approx(0.02)


def test_bad_model_name_and_split(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid model name"):
        load_recipe(_write(tmp_path, TINY_RECIPE.replace("name: tiny-iris", "name: ../evil")))
    with pytest.raises(ConfigError, match="leaves no training rows"):
        load_recipe(_write(tmp_path, TINY_RECIPE.replace("{valid: 0.15, test: 0.2}", "{valid: 0.5, test: 0.5}")))
    with pytest.raises(ConfigError, match="format 'csv' needs 'path'"):
        load_recipe(_write(tmp_path, TINY_RECIPE.replace("{format: sklearn, name: iris}", "{format: csv}")))


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, TINY_RECIPE))
    again = validate_recipe(parse_yaml(recipe_to_yaml(recipe), source="resolved"))
    assert again == recipe


def test_every_field_has_a_description() -> None:
    missing = []

    def walk(model: type, prefix: str) -> None:
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if not field.description:
                missing.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation, f"{prefix}{name}.")

    walk(Recipe, "")
    assert not missing, f"fields without a description: {missing}"
