"""Robustness: the headline metric under increasing input perturbation.

Perturbations are seeded and depend only on the inputs, so two models see the same
corrupted rows. Strengths: noise σ in units of the clean inputs' standard deviation
(global for images, per feature for tables), rotation in degrees, typo rate per character.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelyard.core.errors import ConfigError

DEFAULT_LEVELS: dict[str, list[float]] = {
    "gaussian-noise": [0.0, 0.1, 0.25, 0.5, 1.0],
    "feature-noise": [0.0, 0.1, 0.25, 0.5, 1.0],
    "rotation": [0.0, 10.0, 20.0, 30.0, 45.0],
    "char-noise": [0.0, 0.02, 0.05, 0.1, 0.2],
}
AUTO = {"image": "gaussian-noise", "tabular": "feature-noise", "text": "char-noise"}
FITS = {"gaussian-noise": ("image", "tabular"), "feature-noise": ("tabular",), "rotation": ("image",),
        "char-noise": ("text",)}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def gaussian_noise(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """x + N(0, (level · std(x))²), one σ for the whole array."""
    return (x + rng.normal(0.0, 1.0, x.shape) * level * float(x.std())).astype(np.float32)


def feature_noise(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """x + N(0, (level · std of each column)²)."""
    scale = x.std(axis=0, keepdims=True)
    return (x + rng.normal(0.0, 1.0, x.shape) * level * scale).astype(np.float32)


def rotation(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Each (C, H, W) image turned by ±level degrees (random sign), background = the data's minimum."""
    from scipy import ndimage

    out = np.empty_like(x)
    signs = rng.choice([-1.0, 1.0], size=len(x))
    for i, image in enumerate(x):
        out[i] = ndimage.rotate(image, signs[i] * level, axes=(-1, -2), reshape=False, order=1, mode="constant",
                                cval=float(x.min()))
    return out


def char_noise(texts: list[str], level: float, rng: np.random.Generator) -> list[str]:
    """Typos at rate ``level`` per character: delete, duplicate, swap with the next, or replace."""
    out = []
    for text in texts:
        chars = list(text)
        i, result = 0, []
        while i < len(chars):
            if rng.random() >= level:
                result.append(chars[i])
                i += 1
                continue
            kind = rng.integers(4)
            if kind == 0:  # delete
                pass
            elif kind == 1:  # duplicate
                result += [chars[i], chars[i]]
            elif kind == 2 and i + 1 < len(chars):  # swap with the next character
                result += [chars[i + 1], chars[i]]
                i += 1
            else:  # replace
                result.append(_LETTERS[int(rng.integers(len(_LETTERS)))])
            i += 1
        out.append("".join(result))
    return out


PERTURBATIONS: dict[str, Callable[[Any, float, np.random.Generator], Any]] = {
    "gaussian-noise": gaussian_noise, "feature-noise": feature_noise, "rotation": rotation, "char-noise": char_noise,
}


def resolve(perturbation: str, modality: str) -> str:
    """``auto`` → the modality's default; refuses a perturbation that does not fit the data."""
    name = AUTO.get(modality, "") if perturbation == "auto" else perturbation
    if not name or modality not in FITS[name]:
        fitting = [p for p, mods in FITS.items() if modality in mods]
        raise ConfigError(f"perturbation {perturbation!r} does not fit {modality} data",
                          where="evaluate.robustness.perturbation", hint=f"use one of {fitting}")
    return name


def robustness_curve(inputs: Any, perturbation: str, levels: list[float], score: Callable[[Any], float], *,
                     seed: int, on_level: Callable[[], None] | None = None) -> list[dict[str, float]]:
    """``score(perturbed inputs)`` at each level; level 0 is the clean inputs."""
    fn = PERTURBATIONS[perturbation]
    out = []
    for i, level in enumerate(levels):
        rng = np.random.default_rng([seed, i])
        perturbed = inputs if level == 0 else fn(inputs, float(level), rng)
        out.append({"level": float(level), "value": float(score(perturbed))})
        if on_level is not None:
            on_level()
    return out


__all__ = ["DEFAULT_LEVELS", "PERTURBATIONS", "char_noise", "feature_noise", "gaussian_noise", "resolve",
           "robustness_curve", "rotation"]
