"""Conformance checks for plugins: ours run them over every registered plugin, third parties on theirs.

    from modelyard.testing import check_model, check_tokenizer

    check_model("my-model", num_features=8, num_outputs=3, hidden=[16])
    check_tokenizer(MyTokenizer(vocab_size=300).fit(texts))

A failed check raises :class:`ConformanceError` (an ``AssertionError``, so pytest shows it
as a test failure) whose message says what is wrong. Nothing here is pickled: weights go
through ``safetensors``, tokenizers through their JSON files.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from modelyard.core.manifest import looks_like_pickle
from modelyard.plugins import MODELS, load_builtins
from modelyard.plugins.models import Modality, modality_of
from modelyard.plugins.tokenizers.base import Tokenizer, load_tokenizer

SAMPLE_TEXTS = ("the quick brown fox jumps over the lazy dog", "Hello, World!", "", "naïve café — ünïcödé",
                "a " * 64)
ROUNDTRIP_TEXTS = ("the quick brown fox jumps over the lazy dog",)


class ConformanceError(AssertionError):
    """A plugin breaks the contract that ``modelyard.testing`` checks."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


def example_inputs(modality: Modality, *, batch_size: int = 3, seed: int = 0, num_features: int | None = None,
                   in_channels: int | None = None, image_size: Sequence[int] | None = None,
                   vocab_size: int | None = None, max_length: int | None = None, **_params: Any) -> tuple[Any, ...]:
    """Positional ``forward`` arguments of the right modality, shape and dtype.

    - tabular: ``(x,)`` with ``x`` (B, num_features) float32;
    - image: ``(x,)`` with ``x`` (B, in_channels, H, W) float32;
    - tokens: ``(input_ids, attention_mask)``, both (B, max_length) int64; row 0 is full,
      the others right-padded (row 1 to half length, row 2 to one token) so that the
      padding path is exercised.

    Args:
        modality: ``tabular``, ``image`` or ``tokens``.
        batch_size: B (at least 3 for tokens shows every padding case).
        seed: seed of the generator that draws the values.
        num_features: tabular width.
        in_channels: image channels.
        image_size: image (H, W).
        vocab_size: token ids are drawn from ``0 .. vocab_size - 1``.
        max_length: T of the token inputs.
        **_params: the model's other parameters, ignored (so a model's kwargs can be passed as they are).

    Returns:
        The arguments for ``model(*inputs)``.
    """
    generator = torch.Generator().manual_seed(seed)
    if modality == "tabular":
        _require(num_features is not None, "tabular inputs need num_features")
        return (torch.randn(batch_size, int(num_features), generator=generator),)  # type: ignore[arg-type]
    if modality == "image":
        _require(in_channels is not None and image_size is not None, "image inputs need in_channels and image_size")
        height, width = (int(s) for s in image_size)  # type: ignore[union-attr]
        return (torch.randn(batch_size, int(in_channels), height, width, generator=generator),)  # type: ignore[arg-type]
    if modality == "tokens":
        _require(vocab_size is not None and max_length is not None, "token inputs need vocab_size and max_length")
        length = int(max_length)  # type: ignore[arg-type]
        input_ids = torch.randint(0, int(vocab_size), (batch_size, length), generator=generator)  # type: ignore[arg-type]
        lengths = [length, max(1, length // 2), 1] + [length] * max(0, batch_size - 3)
        attention_mask = (torch.arange(length)[None, :] < torch.tensor(lengths[:batch_size])[:, None]).long()  # (B, T)
        return input_ids, attention_mask
    raise ConformanceError(f"unknown modality {modality!r}")


def expected_output_shape(name: str, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """``(B, num_outputs)``, or ``(B, T, num_outputs)`` for a factory marked ``output_layout = "per_token"``.

    A per-token model (``gpt``) may leave ``num_outputs`` out: it then equals ``vocab_size``.
    """
    factory = MODELS.get(name)
    batch = int(inputs[0].shape[0])
    if getattr(factory, "output_layout", "pooled") == "per_token":
        outputs = kwargs.get("num_outputs") or kwargs["vocab_size"]
        return batch, int(inputs[0].shape[1]), int(outputs)
    return batch, int(kwargs["num_outputs"])


def check_model(name: str, **kwargs: Any) -> dict[str, Any]:
    """Check that the registered model ``name`` keeps the model-plugin contract.

    1. ``MODELS.get(name)(**kwargs)`` builds an ``nn.Module``.
    2. A forward pass on :func:`example_inputs` (train mode) gives finite outputs of the
       documented shape.
    3. A backward pass reaches every trainable parameter with a finite gradient, and at least
       one gradient is non-zero.
    4. In eval mode, ``state_dict`` → ``safetensors`` file → a new module from the same kwargs
       → load gives bit-identical outputs (``safetensors.torch.save_model``/``load_model``,
       which handle tied weights).

    Args:
        name: the registered model name.
        **kwargs: the factory's keyword arguments: input description (``num_features`` /
            ``in_channels`` + ``image_size`` / ``vocab_size`` + ``max_length``), ``num_outputs``
            and the model's own parameters.

    Returns:
        Facts for the caller's own assertions: ``parameters``, ``trainable_parameters``,
        ``output_shape``, ``modality``.

    Raises:
        ConformanceError: the first broken rule, with what was expected and found.
    """
    load_builtins()
    factory = MODELS.get(name)
    modality = modality_of(name)
    torch.manual_seed(0)
    model = factory(**kwargs)
    _require(isinstance(model, nn.Module), f"{name}: the factory returned {type(model).__name__}, not an nn.Module")
    inputs = example_inputs(modality, **kwargs)
    expected = expected_output_shape(name, inputs, kwargs)

    model.train()
    output = model(*inputs)
    _require(isinstance(output, torch.Tensor), f"{name}: forward returned {type(output).__name__}, not a tensor")
    _require(tuple(output.shape) == expected, f"{name}: output shape {tuple(output.shape)}, expected {expected}")
    _require(output.is_floating_point(), f"{name}: output dtype {output.dtype} is not floating point")
    _require(bool(torch.isfinite(output).all()), f"{name}: output has NaN or inf values")

    # A random projection, not .sum(): a sum's gradient is blind to anything that sums to a constant.
    weights = torch.randn(output.shape, generator=torch.Generator().manual_seed(1))
    (output * weights).sum().backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    _require(bool(trainable), f"{name}: the model has no trainable parameters")
    missing = [n for n, p in trainable if p.grad is None]
    _require(not missing, f"{name}: no gradient reaches {', '.join(missing[:5])}" + (" …" if len(missing) > 5 else ""))
    not_finite = [n for n, p in trainable if not bool(torch.isfinite(p.grad).all())]  # type: ignore[arg-type]
    _require(not not_finite, f"{name}: non-finite gradients in {', '.join(not_finite[:5])}")
    _require(any(bool(p.grad.abs().sum() > 0) for _, p in trainable),  # type: ignore[union-attr]
             f"{name}: every gradient is zero")

    model.eval()
    with torch.no_grad():
        before = model(*inputs)
        _require(torch.equal(before, model(*inputs)), f"{name}: eval-mode outputs differ between two calls")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "weights.safetensors"
            save_model(model, str(path))
            torch.manual_seed(1)  # a different initialisation, so only the loaded weights can match
            rebuilt = factory(**kwargs)
            missing_keys, unexpected = load_model(rebuilt, str(path), strict=True)
            _require(not missing_keys and not unexpected,
                     f"{name}: state_dict keys differ after rebuild: missing {missing_keys}, unexpected {unexpected}")
        rebuilt.eval()
        after = rebuilt(*inputs)
    _require(torch.equal(before, after),
             f"{name}: outputs differ after the safetensors round trip (max |diff| "
             f"{(before - after).abs().max().item():.3g})")
    return {"modality": modality, "output_shape": tuple(output.shape),
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for _, p in trainable)}


def check_tokenizer(tokenizer: Tokenizer, *, texts: Sequence[str] = SAMPLE_TEXTS, max_length: int = 16,
                    roundtrip_texts: Sequence[str] = ROUNDTRIP_TEXTS) -> dict[str, Any]:
    """Check that a (fitted) tokenizer keeps the tokenizer-plugin contract.

    1. ``encode_batch(texts, max_length)`` gives int64 ``(B, max_length)`` ids and a 0/1 mask,
       right-padded with ``pad_id``, every id below ``vocab_size``; ``pad_to_longest`` gives
       the same rows, cut to the longest one.
    2. ``decode`` gives a string, and for ``roundtrip_texts`` (which the tokenizer must be able
       to spell) encoding the decoded text gives the same ids again.
    3. ``save`` writes ``tokenizer.json`` and ``tokenizer_meta.json`` (JSON, no pickle) and
       ``load_tokenizer`` gives back the same kind, vocabulary size, pad id, ids and decodings.

    Returns:
        ``vocab_size``, ``pad_id`` and the ids of ``texts`` for the caller's own assertions.

    Raises:
        ConformanceError: the first broken rule.
    """
    kind = getattr(tokenizer, "kind", type(tokenizer).__name__)
    ids, mask = tokenizer.encode_batch(list(texts), max_length)
    _require(isinstance(ids, np.ndarray) and isinstance(mask, np.ndarray), f"{kind}: encode_batch must return arrays")
    _require(ids.dtype == np.int64 and mask.dtype == np.int64, f"{kind}: dtypes {ids.dtype}/{mask.dtype}, not int64")
    shape = (len(texts), max_length)
    _require(ids.shape == shape and mask.shape == shape, f"{kind}: shapes {ids.shape}/{mask.shape}, expected {shape}")
    _require(bool(np.isin(mask, (0, 1)).all()), f"{kind}: the attention mask holds values other than 0 and 1")
    _require(bool((np.diff(mask, axis=1) <= 0).all()), f"{kind}: rows are not right-padded")
    _require(bool((ids[mask == 0] == tokenizer.pad_id).all()), f"{kind}: padding positions do not hold pad_id")
    _require(bool(((ids >= 0) & (ids < tokenizer.vocab_size)).all()), f"{kind}: ids outside 0 .. vocab_size - 1")
    short_ids, short_mask = tokenizer.encode_batch(list(texts), max_length, pad_to_longest=True)
    longest = int(mask.sum(axis=1).max()) if len(texts) else 0
    _require(short_ids.shape == (len(texts), longest) and np.array_equal(short_ids, ids[:, :longest])
             and np.array_equal(short_mask, mask[:, :longest]), f"{kind}: pad_to_longest changes the rows")

    decoded = [tokenizer.decode(row[m == 1]) for row, m in zip(ids, mask)]
    _require(all(isinstance(text, str) for text in decoded), f"{kind}: decode must return str")
    for text in roundtrip_texts:
        first, first_mask = tokenizer.encode_batch([text], max_length * 4)
        again, _ = tokenizer.encode_batch([tokenizer.decode(first[0][first_mask[0] == 1])], max_length * 4)
        _require(np.array_equal(first, again), f"{kind}: encode(decode(encode({text!r}))) differs from encode(text)")

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        files = sorted(p.name for p in Path(tmp).iterdir())
        _require({"tokenizer.json", "tokenizer_meta.json"} <= set(files), f"{kind}: save wrote {files}")
        for file in Path(tmp).iterdir():
            _require(not looks_like_pickle(file), f"{kind}: {file.name} is a pickle")
            if file.suffix == ".json":
                json.loads(file.read_text("utf-8"))  # must be plain JSON
        loaded = load_tokenizer(tmp)
    _require(type(loaded) is type(tokenizer), f"{kind}: load_tokenizer gave {type(loaded).__name__}")
    _require(loaded.vocab_size == tokenizer.vocab_size and loaded.pad_id == tokenizer.pad_id,
             f"{kind}: vocab_size/pad_id changed by save/load")
    ids2, mask2 = loaded.encode_batch(list(texts), max_length)
    _require(np.array_equal(ids, ids2) and np.array_equal(mask, mask2), f"{kind}: ids changed by save/load")
    _require([loaded.decode(row[m == 1]) for row, m in zip(ids2, mask2)] == decoded,
             f"{kind}: decodings changed by save/load")
    return {"vocab_size": tokenizer.vocab_size, "pad_id": tokenizer.pad_id, "ids": ids, "attention_mask": mask}


__all__ = ["ConformanceError", "check_model", "check_tokenizer", "example_inputs", "expected_output_shape"]
