"""The promotion gate's paired bootstrap, and model cards built from what the store holds."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from modelyard.core.errors import DataError
from modelyard.core.refs import ModelRef
from modelyard.store.cards import build_card, render_markdown, wilson_interval
from modelyard.store.gate import gate, paired_bootstrap
from modelyard.store.lineage import render_lineage, version_lineage


def test_paired_bootstrap_is_seeded_and_centred() -> None:
    rng = np.random.default_rng(0)
    base = (rng.random(400) < 0.80).astype(float)
    cand = base.copy()
    cand[:20] = 1.0  # the candidate fixes some of the baseline's errors on the same rows
    first = paired_bootstrap(cand, base, seed=1)
    assert first == paired_bootstrap(cand, base, seed=1)
    assert first.delta == pytest.approx((cand - base).mean())
    assert first.ci_low <= first.delta <= first.ci_high and first.ci_low > 0  # strictly better
    assert first.n == 400 and first.p_worse == 0.0


def test_gate_refuses_a_regression_and_tolerates_noise() -> None:
    rng = np.random.default_rng(3)
    base = (rng.random(300) < 0.9).astype(float)
    worse = base.copy()
    worse[np.flatnonzero(base)[:30]] = 0.0  # 30 of 300 rows newly wrong: 10 points worse
    verdict = gate(worse, base)
    assert not verdict.passed and "worse by 0.1000" in verdict.reason
    assert verdict.comparison.ci_high < 0
    assert gate(worse, base, tolerance=0.15).passed  # inside an explicit tolerance
    same = gate(base, base)
    assert same.passed and same.comparison.delta == 0.0
    assert gate(np.append(base, 1.0)[1:], base).as_dict()["n"] == 300


@pytest.mark.parametrize(("cand", "base", "needle"), [
    ([1, 0], [1], "same examples"), ([], [], "zero examples"), ([np.nan], [1.0], "NaN"),
])
def test_gate_bad_input(cand: list[float], base: list[float], needle: str) -> None:
    with pytest.raises(DataError, match=needle):
        gate(cand, base)


def test_wilson_interval() -> None:
    # Reference values: Wilson 95% interval for 27/30 = [0.7438, 0.9654]; for 30/30 = [0.8865, 1.0].
    low, high = wilson_interval(27, 30)
    assert (round(low, 4), round(high, 4)) == (0.7438, 0.9654)
    low, high = wilson_interval(30, 30)
    assert round(low, 4) == 0.8865 and high == 1.0


def _publish(store, files: dict[str, object], kind: str, **kw):  # type: ignore[no-untyped-def]
    with store.artifacts.staging() as folder:
        for name, value in files.items():
            (folder / name).write_text(json.dumps(value))
        return store.artifacts.publish(folder, kind=kind, **kw)


def test_card_and_lineage_from_the_store(store) -> None:  # type: ignore[no-untyped-def]
    data_run = store.runs.create(kind="data", name="d", config={})
    dataset = _publish(store, {"stats.json": {"rows": {"train": 100, "valid": 20, "test": 40},
                                              "class_counts": {"test": {"cat": 30, "dog": 10}},
                                              "imbalance_ratio": 3.0, "rows_in": 160}},
                       "dataset", run_id=data_run, meta={"source": "csv:pets.csv"})
    search = store.runs.create(kind="tune", name="s", config={})
    train_run = store.runs.create(kind="train", name="t", parent_run_id=search,
                                  config={"description": "Sort pet photos for the shelter.", "seed": 7,
                                          "train": {"device": "cpu", "epochs": 3}})
    store.runs.finish(train_run, status="finished", summary={"wall_seconds": 36.0},
                      compute={"cpu_hours": 0.02, "peak_memory_mb": 812.5})
    model = _publish(store, {"spec.json": {"plugin": "cnn", "task": "classification", "label_names": ["cat", "dog"]}},
                     "model", run_id=train_run, parents=[dataset.id], relation="trained_from")
    _publish(store, {"evaluation.json": {"metrics": {"accuracy": 0.9}, "rows": 40, "split": "test",
                                         "dataset": dataset.id}}, "report", parents=[model.id],
             relation="evaluated_from")
    small = _publish(store, {"spec.json": {"plugin": "cnn", "quantized": "int8"}}, "model", parents=[model.id],
                     relation="compressed_from")
    version = store.models.register("pets", ModelRef(id=model.id), run_id=train_run, alias="staging")
    store.models.register("pets-int8", ModelRef(id=small.id))
    store.models.set_notes("pets", 1, "Do not use on wildlife.")

    card = build_card(store, version)
    assert card["intended_use"] == "Sort pet photos for the shelter."
    assert card["data"]["split_sizes"] == {"train": 100, "valid": 20, "test": 40}
    assert card["data"]["source"] == "csv:pets.csv" and card["data"]["data_run"] == data_run
    accuracy = card["metrics"]["accuracy"]
    assert accuracy["value"] == 0.9 and accuracy["ci"] == [round(b, 6) for b in wilson_interval(36, 40)]
    assert card["compute"]["cpu_hours"] == 0.02 and card["compute"]["peak_memory_mb"] == 812.5
    assert card["compute"]["energy_kwh"] == pytest.approx(0.02 * 10 / 1000)
    assert card["lineage"]["search_run"] == search
    assert card["lineage"]["compressed_children"] == [
        {"id": small.id, "relation": "compressed_from", "versions": ["pets-int8@v1"]}]
    assert card["notes"] == "Do not use on wildlife."
    assert any("imbalanced" in item for item in card["limitations"])
    assert any("40 rows" in item for item in card["limitations"])
    text = render_markdown(card)
    for needle in ("# Model card: pets@v1", "Sort pet photos", "| accuracy | 0.9000 | [", "Wilson", "812.5",
                   "Do not use on wildlife.", "compressed_from", "## Known limitations"):
        assert needle in text, needle
    json.dumps(card)  # JSON-ready

    chain = render_lineage(version_lineage(store, version))
    lines = chain.splitlines()
    assert lines[0].startswith(f"dataset {dataset.id[:12]}")
    order = [next(i for i, line in enumerate(lines) if needle in line)
             for needle in ("data run", "search run", "training run", "pets@v1", "compressed_from")]
    assert order == sorted(order)
    assert "pets-int8@v1" in chain and "evaluated_from" in chain


def test_stage_run_records_compute(store) -> None:  # type: ignore[no-untyped-def]
    from modelyard.store.context import stage_run

    with stage_run(store, kind="train", name="t", config={}) as ctx:
        store.runs.set_summary(ctx.run_id, {"steps": 3, "compute": {"device": "cpu"}})
        # 50 ms of CPU: the kernel counts process CPU time in 10 ms ticks, and cpu_hours keeps 6 decimals
        # (3.6 ms), so a shorter burst can read as 0.
        started = time.process_time()
        while time.process_time() - started < 0.05:
            pass
    summary = store.runs.get(ctx.run_id)["summary"]
    assert summary["steps"] == 3 and summary["compute"]["device"] == "cpu"  # the stage's own figures kept
    assert summary["compute"]["cpu_hours"] > 0 and summary["compute"]["peak_memory_mb"] > 10
