"""SHAP values for tabular models: GradientExplainer (expected gradients) on the torch module,
or KernelExplainer on a predict function when there is no module to differentiate."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np


def _shap() -> ModuleType:
    # shap's import touches a matplotlib API that now warns (PendingDeprecationWarning); not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import shap
    return shap


def gradient_shap(module: object, background: np.ndarray, x: np.ndarray, target: np.ndarray | None, *,
                  seed: int, samples: int = 200) -> np.ndarray:
    """(N, F) SHAP values of the ``target`` output per row (expected gradients over ``background``)."""
    import torch

    shap = _shap()
    torch.manual_seed(seed)
    explainer = shap.GradientExplainer(module, torch.as_tensor(background, dtype=torch.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        values = explainer.shap_values(torch.as_tensor(x, dtype=torch.float32), nsamples=samples,
                                       rseed=seed)
    return _pick(np.asarray(values), target, len(x))


def kernel_shap(predict: Callable[[np.ndarray], np.ndarray], background: np.ndarray, x: np.ndarray,
                target: np.ndarray | None, *, seed: int, samples: int = 200) -> np.ndarray:
    """(N, F) SHAP values from the model-agnostic KernelExplainer (slow: keep ``x`` small)."""
    shap = _shap()
    explainer = shap.KernelExplainer(predict, background, seed=seed)
    values = explainer.shap_values(x, nsamples=samples, silent=True)
    return _pick(np.asarray(values), target, len(x))


def _pick(values: np.ndarray, target: np.ndarray | None, n: int) -> np.ndarray:
    # shap returns (N, F, K) for K outputs (older releases: a list of K (N, F) arrays)
    if values.ndim == 3 and values.shape[0] != n:
        values = np.moveaxis(values, 0, -1)
    if values.ndim == 2:
        return values
    rows = np.arange(n)
    index = np.zeros(n, dtype=int) if target is None else np.asarray(target, dtype=int)
    return values[rows, :, index]


__all__ = ["gradient_shap", "kernel_shap"]
