"""The import directions of ARCHITECTURE §2, checked on the source (AST), plus the torch-free CLI."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "modelyard"

STAGE_BASE = {"core", "config", "store", "plugins", "runtime", "data"}
# package -> the modelyard packages it may import (itself always allowed).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": {"core"},
    "store": {"core", "config"},
    "plugins": {"core"},
    "runtime": {"core", "store", "plugins"},
    "data": {"core", "config", "store", "plugins"},
    "train": STAGE_BASE,
    "tune": STAGE_BASE | {"train"},
    "evaluate": STAGE_BASE,
    "explain": STAGE_BASE,
    "compress": STAGE_BASE | {"train"},  # distillation reuses the training loop's helpers
    "serve": {"core", "config", "store", "plugins", "runtime"},
    "report": {"core", "config", "store"},
    "pipeline": STAGE_BASE | {"train", "tune", "evaluate", "explain", "compress", "report", "plan"},
    "cli": {"core", "config", "store", "plugins", "runtime", "data", "train", "tune", "evaluate", "explain",
            "compress", "serve", "pipeline", "report", "testing", "plan"},
    "testing": {"core", "plugins", "runtime"},
    "plan": STAGE_BASE | {"train"},
}
# Packages that must import without torch (checked at module level, imports inside functions are fine).
TORCH_FREE = {"core", "config", "store", "report"}


def _imports(path: Path, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text("utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
    return out


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else ""


def test_every_package_is_in_the_table() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in SRC.glob("*.py") if p.name != "__init__.py"}
    assert packages <= set(ALLOWED), f"add {packages - set(ALLOWED)} to the layering table"


def test_import_directions() -> None:
    violations = []
    for path in SRC.rglob("*.py"):
        package = _package_of(path)
        if not package:
            continue
        for module, line in _imports(path):
            parts = module.split(".")
            if parts[0] != "modelyard" or len(parts) < 2:
                continue
            target = parts[1]
            if target == "__version__" or target == package:
                continue
            if target not in ALLOWED[package]:
                violations.append(f"{path.relative_to(SRC)}:{line} {package} -> {target}")
    assert not violations, "imports against ARCHITECTURE §2:\n" + "\n".join(violations)


def test_nothing_imports_cli() -> None:
    offenders = [f"{p.relative_to(SRC)}:{line}" for p in SRC.rglob("*.py") if _package_of(p) != "cli"
                 for module, line in _imports(p) if module.startswith("modelyard.cli")]
    assert not offenders


def test_torch_free_packages_do_not_import_torch_at_module_level() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if _package_of(path) in TORCH_FREE:
            offenders += [f"{path.relative_to(SRC)}:{line}" for module, line in _imports(path, top_level_only=True)
                          if module.split(".")[0] in {"torch", "transformers", "peft", "optuna"}]
    assert not offenders


def test_no_grab_bag_modules() -> None:
    assert not [p for p in SRC.rglob("*.py") if p.name in {"utils.py", "helpers.py", "common.py", "misc.py"}]


def test_cli_and_config_import_without_torch() -> None:
    code = ("import sys, modelyard.cli, modelyard.config, modelyard.store, modelyard.report;"
            "bad = sorted(m for m in ('torch', 'transformers', 'optuna', 'sklearn') if m in sys.modules);"
            "print(','.join(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.stdout.strip() == "", f"heavy modules imported by the CLI: {done.stdout.strip()}"
