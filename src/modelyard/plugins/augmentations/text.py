"""Text augmentations (EDA-style word operations and character-level typo noise).

Words are whitespace-separated tokens; an augmented text is re-joined with single
spaces. Insertion repeats words of the same text (no synonym dictionary is shipped, so
nothing is downloaded); typo noise substitutes a QWERTY neighbour, drops, doubles or
swaps characters.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from modelyard.plugins.augmentations import Augment, register_augmentation, selected

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
# QWERTY neighbours of each letter (same row left/right, and the keys above and below).
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_ROWS):
    for _c, _ch in enumerate(_row):
        near = [_row[i] for i in (_c - 1, _c + 1) if 0 <= i < len(_row)]
        for _other in (_r - 1, _r + 1):
            if 0 <= _other < len(_ROWS):
                near += [_ROWS[_other][i] for i in (_c - 1, _c, _c + 1) if 0 <= i < len(_ROWS[_other])]
        _NEIGHBOURS[_ch] = "".join(near)


def _check(x: list[str]) -> None:
    if not isinstance(x, list) or not all(isinstance(t, str) for t in x):
        raise ValueError("text augmentations take a list of strings")


def _word_op(p: float, op: Callable[[list[str], random.Random], list[str]]) -> Augment:
    def apply(x: list[str], y: np.ndarray | None, rng: np.random.Generator) -> tuple[list[str], np.ndarray | None]:
        _check(x)
        mask = selected(len(x), p, rng)
        local = random.Random(int(rng.integers(2**63)))
        out = list(x)
        for i in np.flatnonzero(mask):
            words = x[i].split()
            if len(words) > 1:
                out[i] = " ".join(op(words, local))
        return out, y

    return apply


@register_augmentation("random-swap", modalities=("text",))
def random_swap(*, p: float = 0.5, alpha: float = 0.1) -> Augment:
    """Swap ``max(1, alpha · words)`` random pairs of words."""

    def op(words: list[str], rng: random.Random) -> list[str]:
        for _ in range(max(1, int(alpha * len(words)))):
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        return words

    return _word_op(p, op)


@register_augmentation("random-deletion", modalities=("text",))
def random_deletion(*, p: float = 0.5, alpha: float = 0.1) -> Augment:
    """Delete each word with probability ``alpha`` (at least one word stays)."""

    def op(words: list[str], rng: random.Random) -> list[str]:
        kept = [w for w in words if rng.random() >= alpha]
        return kept or [words[rng.randrange(len(words))]]

    return _word_op(p, op)


@register_augmentation("random-insertion", modalities=("text",))
def random_insertion(*, p: float = 0.5, alpha: float = 0.1) -> Augment:
    """Insert ``max(1, alpha · words)`` copies of words from the same text at random places."""

    def op(words: list[str], rng: random.Random) -> list[str]:
        for _ in range(max(1, int(alpha * len(words)))):
            words.insert(rng.randrange(len(words) + 1), words[rng.randrange(len(words))])
        return words

    return _word_op(p, op)


@register_augmentation("char-noise", modalities=("text",))
def char_noise(*, p: float = 0.5, rate: float = 0.05) -> Augment:
    """Typo noise: each character, with probability ``rate``, is replaced by a keyboard neighbour, dropped,
    doubled, or swapped with the next one."""

    def noisy(text: str, rng: random.Random) -> str:
        chars = list(text)
        out: list[str] = []
        i = 0
        while i < len(chars):
            ch = chars[i]
            if ch.isspace() or rng.random() >= rate:
                out.append(ch)
                i += 1
                continue
            kind = rng.randrange(4)
            near = _NEIGHBOURS.get(ch.lower())
            if kind == 0 and near:
                sub = near[rng.randrange(len(near))]
                out.append(sub.upper() if ch.isupper() else sub)
            elif kind == 1:
                pass  # dropped
            elif kind == 2:
                out += [ch, ch]
            elif i + 1 < len(chars):
                out += [chars[i + 1], ch]
                i += 1
            else:
                out.append(ch)
            i += 1
        return "".join(out)

    def apply(x: list[str], y: np.ndarray | None, rng: np.random.Generator) -> tuple[list[str], np.ndarray | None]:
        _check(x)
        mask = selected(len(x), p, rng)
        local = random.Random(int(rng.integers(2**63)))
        out = list(x)
        for i in np.flatnonzero(mask):
            out[i] = noisy(x[i], local)
        return out, y

    return apply
