"""The compress stage end to end on a tiny real model: the budget gate, registration, lineage, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard import compress as compress_stage
from modelyard import evaluate as evaluate_stage
from modelyard.config.evaluate import EvaluateConfig
from modelyard.config.loader import load_recipe
from modelyard.core.errors import ConfigError
from modelyard.core.refs import ModelRef
from modelyard.store import open_store
from modelyard.store.context import stage_run
from tests.conftest import TINY_RECIPE

COMPRESS = """\
explain: {enabled: false}
compress:
  budget: {metric: accuracy, max_drop: 1.0}
  variants:
    - {method: int8-dynamic}
    - {method: prune-structured, sparsity: 0.5, fine_tune_epochs: 2}
    - {method: prune-magnitude, sparsity: 0.9, name: magnitude-90}
    - {method: distill, student: {params: {hidden: [8]}}, epochs: 15, lr: 0.03}
    - {method: onnx}
"""


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`yard run` of the tiny iris recipe with a compress: section, once for the module."""
    from modelyard.pipeline import run_recipe

    home = tmp_path_factory.mktemp("compress-home")
    recipe_path = home / "recipe.yaml"
    recipe_path.write_text(TINY_RECIPE + COMPRESS, encoding="utf-8")
    recipe = load_recipe(recipe_path, ())
    with open_store(home / "store") as store:
        result = run_recipe(recipe, store)
        summary = store.runs.get(result.stage_runs["compress"])["summary"]
        yield {"store": store, "result": result, "summary": summary["compress"], "recipe": recipe,
               "home": home, "recipe_path": recipe_path}


def _variant(compressed: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in compressed["summary"]["variants"] if v["name"] == name)


def test_variants_within_budget_are_registered_with_lineage(compressed: dict[str, Any]) -> None:
    store, summary = compressed["store"], compressed["summary"]
    assert summary["parent_uri"] == "tiny-iris@v1"
    assert summary["parent_metrics"]["accuracy"] == 1.0  # the seeded iris MLP gets all 30 test rows right
    statuses = {v["name"]: v["status"] for v in summary["variants"]}
    assert statuses["int8-dynamic"] == "accepted" and statuses["onnx"] == "accepted"
    assert statuses["prune-structured"] == "accepted"
    versions = {v.version: v for v in store.models.versions("tiny-iris")}
    for variant in summary["variants"]:
        if variant["status"] != "accepted":
            continue
        version = versions[int(variant["version"].split("@v")[1])]
        assert version.tags["compression.method"] == variant["method"]
        assert version.tags["compression.parent"] == "tiny-iris@v1"
        assert version.metrics["test/accuracy"] == variant["metrics"]["accuracy"]
        # Lineage: the variant artifact names its parent and the relation.
        assert store.artifacts.parents(variant["artifact"]) == [(summary["parent"], "compressed_from")]
    structured = _variant(compressed, "prune-structured")
    assert structured["details"]["kwargs"] == {"hidden": [16]}
    assert structured["parameters"] < summary["parent_parameters"]
    assert _variant(compressed, "onnx")["details"]["parity_max_abs"] <= 1e-4


def test_rejected_variant_is_reported_and_not_stored(compressed: dict[str, Any]) -> None:
    store, summary = compressed["store"], compressed["summary"]
    rejected = _variant(compressed, "magnitude-90")
    assert rejected["status"] == "rejected"
    assert rejected["drop"] > 1.0 and "budget 1" in rejected["reason"]
    assert rejected["details"]["weight_sparsity"] == pytest.approx(0.9, abs=0.01)
    assert rejected["artifact"] is None and rejected["version"] is None
    accepted = [v for v in summary["variants"] if v["status"] == "accepted"]
    children = [c for c, relation in store.artifacts.children(summary["parent"]) if relation == "compressed_from"]
    assert sorted(children) == sorted(v["artifact"] for v in accepted)  # nothing stored for the rejected ones


def test_evaluation_loads_every_variant_through_the_runtime(compressed: dict[str, Any]) -> None:
    store, result = compressed["store"], compressed["result"]
    for name in ("int8-dynamic", "onnx"):
        variant = _variant(compressed, name)
        with stage_run(store, kind="evaluate", name="t", config={}) as ctx:
            ref = evaluate_stage.run(EvaluateConfig(metrics=["accuracy"]), ModelRef(id=variant["artifact"]),
                                     result.dataset, ctx=ctx)
        assert evaluate_stage.read_report(store, ref)["metrics"]["accuracy"] == variant["metrics"]["accuracy"]


def test_a_failed_export_is_reported_and_registers_nothing(compressed: dict[str, Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.compress import export as export_module

    def broken_export(module: object, example: object, path: Path, **kwargs: object) -> None:
        path.write_bytes(b"not an onnx graph")

    monkeypatch.setattr(export_module, "export_onnx", broken_export)
    store, result = compressed["store"], compressed["result"]
    recipe = compressed["recipe"].model_copy(update={"compress": compressed["recipe"].compress.model_copy(
        update={"variants": [compressed["recipe"].compress.variants[-1]]})})
    before = len(store.models.versions("tiny-iris"))
    with stage_run(store, kind="compress", name="t", config={}) as ctx:
        outcome = compress_stage.run(recipe, result.model, result.dataset, ctx=ctx)
    (variant,) = outcome.variants
    assert variant.status == "failed" and "ONNX checker" in variant.reason
    assert len(store.models.versions("tiny-iris")) == before


def test_a_method_that_does_not_apply_is_refused_before_any_work(compressed: dict[str, Any]) -> None:
    store, result = compressed["store"], compressed["result"]
    cfg = compressed["recipe"].compress.model_copy(update={"variants": [
        compressed["recipe"].compress.variants[0].model_copy(update={"layers": ["lstm"]})]})
    recipe = compressed["recipe"].model_copy(update={"compress": cfg})
    with pytest.raises(ConfigError, match=r"compress.variants\[0\] \(int8-dynamic\).*lstm"):
        with stage_run(store, kind="compress", name="t", config={}) as ctx:
            compress_stage.run(recipe, result.model, result.dataset, ctx=ctx)


@pytest.mark.parametrize(("line", "needle"), [
    ("  budget: {metric: accuracy, max_drop: -1}", "compress.budget.max_drop"),
    ("    - {method: prune-magnitude, sparsity: 1.0}", "sparsity must be in [0, 1)"),
    ("    - {method: int8-static, calibration_rows: 0}", "calibration_rows"),
    ("    - {method: quantize-everything}", "does not match any of the expected tags"),
])
def test_bad_compress_sections_name_the_field(tmp_path: Path, line: str, needle: str) -> None:
    text = TINY_RECIPE + "compress:\n" + ("" if "budget" not in line else line + "\n") + "  variants:\n" + (
        "    - {method: onnx}\n" if "budget" in line else line + "\n")
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_recipe(path, ())
    assert needle in str(info.value) and "bad.yaml:" in str(info.value)


def test_cli_compress_json_and_bad_input(compressed: dict[str, Any], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard.cli import main

    monkeypatch.setenv("YARD_HOME", str(compressed["home"] / "store"))
    recipe = tmp_path / "only-int8.yaml"
    recipe.write_text(TINY_RECIPE + "compress:\n  variants: [{method: int8-dynamic}]\n", encoding="utf-8")
    main(["compress", "tiny-iris@v1", str(recipe), "--json"])
    out = json.loads(capsys.readouterr().out)
    # Same content as the pipeline's int8 variant: content-addressed, so the same artifact, a new version.
    assert out["variants"][0]["status"] == "accepted"
    assert out["variants"][0]["artifact"] == _variant(compressed, "int8-dynamic")["artifact"]
    assert out["variants"][0]["version"] == f"tiny-iris@v{len(compressed['store'].models.versions('tiny-iris'))}"
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", "tiny-iris@v1", str(recipe), "compress.budget.max_drop=-2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "compress.budget.max_drop" in err and err.count("\n") == 1


def test_serving_loads_int8_and_onnx_variants(compressed: dict[str, Any]) -> None:
    import numpy as np

    from modelyard.data.artifact import open_dataset
    from modelyard.serve.predictor import load_predictor

    store, result = compressed["store"], compressed["result"]
    x, _ = open_dataset(store, result.dataset).arrays("test")
    outputs = {}
    for name in ("int8-dynamic", "onnx"):
        predictor = load_predictor(store, ModelRef(id=_variant(compressed, name)["artifact"]))
        outputs[name] = predictor.predict(x[:8])
    fp32 = load_predictor(store, result.model).predict(x[:8])
    np.testing.assert_allclose(outputs["onnx"], fp32, atol=1e-4)
    # int8 weights: logits of size ~8 move by ~1%, the predicted classes do not.
    np.testing.assert_allclose(outputs["int8-dynamic"], fp32, rtol=0.05, atol=0.1)
    assert (outputs["int8-dynamic"].argmax(1) == fp32.argmax(1)).all()


def test_report_has_the_compression_table_and_plot(compressed: dict[str, Any], tmp_path: Path) -> None:
    from modelyard.report.compression import variant_rows
    from modelyard.report.html import render_run_report

    store, result = compressed["store"], compressed["result"]
    for run_id in (result.run_id, result.stage_runs["compress"]):  # the pipeline's report and the stage's own
        page = render_run_report(store, run_id, out_dir=tmp_path).read_text()
        assert "<h2>Compression</h2>" in page and 'alt="compression trade-off"' in page
        for variant in compressed["summary"]["variants"]:
            assert f"<td>{variant['name']}</td>" in page
        assert "<b>rejected</b>" in page and "<b>accepted</b>" in page
    rows = {r["name"]: r for r in variant_rows(compressed["summary"])}
    structured = rows["prune-structured"]
    summary = compressed["summary"]
    pruned_bytes = _variant(compressed, "prune-structured")["size_bytes"]
    assert structured["smaller"] == summary["parent_size_bytes"] / pruned_bytes
    assert structured["smaller"] > 1.5 and rows["parent (fp32)"]["faster_b32"] == 1.0
