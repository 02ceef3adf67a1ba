"""Build the recipe's augmentation pipeline from registered plugins and apply it to train rows only.

Offline mode adds ``copies`` augmented copies of every train row when training loads the
split (:meth:`~modelyard.data.artifact.Dataset.arrays`); online mode hands training the
pipeline (:meth:`~modelyard.data.artifact.Dataset.augmenter`) to apply to each batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.config.data import AugmentationSpec, AugmentConfig
from modelyard.core.errors import ConfigError
from modelyard.plugins import AUGMENTATIONS
from modelyard.plugins.augmentations import Augment, load_augmentations, modalities_of


class AugmentPipeline:
    """Augmentations applied in order to a batch: ``x, y = pipeline(x, y, rng)``."""

    def __init__(self, steps: list[tuple[str, Augment]], modality: str) -> None:
        self.steps = steps
        self.modality = modality

    @property
    def names(self) -> list[str]:
        """The plugin names, in order."""
        return [name for name, _ in self.steps]

    def __call__(self, x: Any, y: np.ndarray | None, rng: np.random.Generator) -> tuple[Any, np.ndarray | None]:
        for _name, step in self.steps:
            x, y = step(x, y, rng)
        return x, y


def check_augmentations(cfg: AugmentConfig | dict[str, Any], modality: str) -> AugmentPipeline | None:
    """Validate the recipe's augmentations against the registry and the data's modality; build the pipeline.

    Raises:
        PluginError: an unknown augmentation name (with did-you-mean).
        ConfigError: an augmentation listed for another modality than the data's, one that does not
            take that modality, or parameters its factory rejects.
    """
    if isinstance(cfg, dict):
        cfg = AugmentConfig.model_validate(cfg)
    load_augmentations()
    pipeline = None
    for section in ("image", "text", "tabular"):
        specs: list[AugmentationSpec] = getattr(cfg, section)
        if not specs:
            continue
        for i, spec in enumerate(specs):
            AUGMENTATIONS.get(spec.name)  # unknown names fail here, with close matches
            if section not in modalities_of(spec.name):
                raise ConfigError(f"augmentation {spec.name!r} does not apply to {section} data "
                                  f"(it takes {', '.join(modalities_of(spec.name))})",
                                  where=f"data.augment.{section}[{i}].name")
        if section != modality:
            raise ConfigError(f"augmentations listed for {section} data, but this dataset is {modality}",
                              where=f"data.augment.{section}")
        steps = []
        for i, spec in enumerate(specs):
            try:
                steps.append((spec.name, AUGMENTATIONS.get(spec.name)(p=spec.p, **spec.params)))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"augmentation {spec.name!r} rejects its params: {exc}",
                                  where=f"data.augment.{section}[{i}].params") from None
        pipeline = AugmentPipeline(steps, modality)
    return pipeline


def augment_copies(x: Any, y: np.ndarray, pipeline: AugmentPipeline, *, copies: int,
                   seed: int) -> tuple[Any, np.ndarray]:
    """The rows of ``x`` followed by ``copies`` augmented copies of them (labels repeated or blended)."""
    rng = np.random.default_rng(seed)
    xs, ys = [x], [y]
    for _ in range(copies):
        new_x, new_y = pipeline(x, y, rng)
        xs.append(new_x)
        ys.append(new_y if new_y is not None else y)
    if isinstance(x, list):
        return [t for part in xs for t in part], np.concatenate(ys)
    return np.concatenate(xs), np.concatenate(ys)
