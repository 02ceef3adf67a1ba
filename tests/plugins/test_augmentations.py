"""Conformance of every registered augmentation, for every modality it claims, plus what each one does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelyard.plugins import AUGMENTATIONS
from modelyard.plugins.augmentations import load_augmentations, modalities_of

load_augmentations()
CASES = [(name, modality) for name in AUGMENTATIONS.names() for modality in modalities_of(name)]


def batch(modality: str) -> Any:
    rng = np.random.default_rng(0)
    if modality == "image":
        return rng.random((6, 3, 8, 8)).astype(np.float32)
    if modality == "tabular":
        return rng.normal(size=(6, 4)).astype(np.float32)
    return ["the quick brown fox jumps over the lazy dog", "hello world", "one", "",
            "modelyard prepares data for small teams", "a b c d e f g h"]


def same(a: Any, b: Any) -> bool:
    return a == b if isinstance(a, list) else bool(np.array_equal(a, b))


def test_the_builtins_are_registered() -> None:
    assert {"flip", "rotate", "crop-resize", "color-jitter", "gaussian-noise", "mixup", "random-swap",
            "random-deletion", "random-insertion", "char-noise"} <= set(AUGMENTATIONS.names())


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_conformance(name: str, modality: str) -> None:
    x = batch(modality)
    original = [t for t in x] if isinstance(x, list) else x.copy()
    y = np.array([0, 1, 2, 0, 1, 2])
    augment = AUGMENTATIONS.get(name)(p=1.0)
    out, y_out = augment(x, y, np.random.default_rng(7))
    # Same type, length, shape and dtype; the input is untouched; class labels are kept.
    assert type(out) is type(x) and len(out) == len(x)
    if isinstance(x, np.ndarray):
        assert out.shape == x.shape and out.dtype == x.dtype and np.isfinite(out).all()
    else:
        assert all(isinstance(t, str) for t in out)
    assert same(x, original)
    np.testing.assert_array_equal(y_out, y)
    assert not same(out, x)  # p=1 changes the batch
    # Same rng state → same output; p=0 → unchanged.
    again, _ = augment(x, y, np.random.default_rng(7))
    assert same(out, again)
    unchanged, _ = AUGMENTATIONS.get(name)(p=0.0)(x, y, np.random.default_rng(7))
    assert same(unchanged, x)
    assert modality in modalities_of(name)


@pytest.mark.parametrize("name", [n for n, m in CASES if m == "image"])
def test_image_augmentations_take_torch_tensors(name: str) -> None:
    import torch

    x = torch.from_numpy(batch("image"))
    out, _ = AUGMENTATIONS.get(name)(p=1.0)(x, None, np.random.default_rng(1))
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == x.dtype
    numpy_out, _ = AUGMENTATIONS.get(name)(p=1.0)(x.numpy(), None, np.random.default_rng(1))
    np.testing.assert_allclose(out.numpy(), numpy_out, atol=1e-6)


def test_flip_mirrors_and_rotate_turns_an_asymmetric_image() -> None:
    image = np.zeros((1, 1, 9, 9), dtype=np.float32)
    image[0, 0, 4, 6:] = 1.0  # a bar right of the centre
    flipped, _ = AUGMENTATIONS.get("flip")(p=1.0)(image, None, np.random.default_rng(0))
    np.testing.assert_array_equal(flipped[0, 0], image[0, 0, :, ::-1])
    turned, _ = AUGMENTATIONS.get("rotate")(p=1.0, degrees=90)(image, None, np.random.default_rng(0))
    assert abs(float(turned.sum()) - float(image.sum())) < 1.5  # mass kept up to interpolation
    assert not np.allclose(turned, image)


def test_crop_resize_zooms_in() -> None:
    ramp = np.tile(np.linspace(0.0, 1.0, 16, dtype=np.float32), (16, 1))[None, None]  # value = x position
    whole, _ = AUGMENTATIONS.get("crop-resize")(p=1.0, scale=(1.0, 1.0), ratio=(1.0, 1.0))(
        ramp, None, np.random.default_rng(0))
    np.testing.assert_allclose(whole, ramp, atol=1e-5)  # the whole image as the window: identity
    zoomed, _ = AUGMENTATIONS.get("crop-resize")(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0))(
        ramp, None, np.random.default_rng(0))
    # A window half as wide shows half of the ramp stretched over the full width.
    spread = float(zoomed[0, 0, 8].max() - zoomed[0, 0, 8].min())
    assert 0.4 < spread < 0.6


def test_color_jitter_stays_in_range_and_gaussian_noise_has_its_std() -> None:
    x = np.random.default_rng(0).random((64, 3, 8, 8)).astype(np.float32)
    jittered, _ = AUGMENTATIONS.get("color-jitter")(p=1.0, brightness=0.5)(x, None, np.random.default_rng(0))
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0
    noisy, _ = AUGMENTATIONS.get("gaussian-noise")(p=1.0, std=0.1)(x, None, np.random.default_rng(0))
    assert float((noisy - x).std()) == pytest.approx(0.1, rel=0.03)  # 12,288 draws: ~1% sampling error


def test_mixup_keeps_class_labels_and_blends_regression_targets() -> None:
    x = np.eye(4, dtype=np.float32)
    out, labels = AUGMENTATIONS.get("mixup")(p=1.0, alpha=0.4)(x, np.array([0, 1, 2, 3]), np.random.default_rng(3))
    np.testing.assert_array_equal(labels, [0, 1, 2, 3])
    assert (out.max(axis=1) >= 0.5 - 1e-6).all()  # each row's own value dominates (λ ≥ 0.5)
    _, targets = AUGMENTATIONS.get("mixup")(p=1.0, alpha=0.4)(x, np.array([0.0, 1.0, 2.0, 3.0]),
                                                              np.random.default_rng(3))
    assert not np.array_equal(targets, [0.0, 1.0, 2.0, 3.0]) and targets.min() >= 0 and targets.max() <= 3


def test_text_operations() -> None:
    text = ["one two three four five six seven eight nine ten"]
    rng = np.random.default_rng(0)
    swapped, _ = AUGMENTATIONS.get("random-swap")(p=1.0, alpha=0.2)(text, None, rng)
    assert sorted(swapped[0].split()) == sorted(text[0].split()) and swapped != text
    deleted, _ = AUGMENTATIONS.get("random-deletion")(p=1.0, alpha=0.5)(text, None, rng)
    assert 1 <= len(deleted[0].split()) < 10 and set(deleted[0].split()) <= set(text[0].split())
    inserted, _ = AUGMENTATIONS.get("random-insertion")(p=1.0, alpha=0.2)(text, None, rng)
    assert len(inserted[0].split()) == 12 and set(inserted[0].split()) == set(text[0].split())
    noisy, _ = AUGMENTATIONS.get("char-noise")(p=1.0, rate=0.2)(text, None, rng)
    assert noisy != text and abs(len(noisy[0]) - len(text[0])) <= 10


def test_rejected_params_name_the_plugin() -> None:
    with pytest.raises(TypeError):
        AUGMENTATIONS.get("flip")(p=1.0, diagonal=True)
    with pytest.raises(ValueError, match="scale"):
        AUGMENTATIONS.get("crop-resize")(scale=(0.0, 2.0))
