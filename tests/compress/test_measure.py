"""Artifact size as the compress stage counts it."""

from __future__ import annotations

from pathlib import Path

from modelyard.compress.measure import folder_bytes


def test_size_counts_what_the_runtime_loads_not_the_hf_export(tmp_path: Path) -> None:
    (tmp_path / "weights.safetensors").write_bytes(b"w" * 1000)
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "vocab.txt").write_bytes(b"t" * 30)
    (tmp_path / "hf").mkdir()  # the Hugging Face-format copy of a fine-tuned backbone
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"h" * 5000)
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "spec.json").write_text("{}")
    assert folder_bytes(tmp_path) == 1030
