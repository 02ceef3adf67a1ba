"""The run report: every evaluation and explanation part is in one self-contained HTML file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelyard import evaluate as evaluate_stage
from modelyard import explain as explain_stage
from modelyard.config.evaluate import EvaluateConfig
from modelyard.config.explain import ExplainConfig
from modelyard.report import render_run_report
from modelyard.report.explanation import highlighted_tokens
from modelyard.store.context import stage_run
from tests.unit.evaluate.fixtures import make_model, prepare


def _pipeline_like_run(store: Any) -> str:
    data = prepare(store, {"format": "sklearn", "name": "iris"})
    model = make_model(store, data, params={"hidden": [8]}, epochs=30)
    with stage_run(store, kind="pipeline", name="iris", config={}) as top:
        with stage_run(store, kind="evaluate", name="iris", config={}, parent_run_id=top.run_id) as ctx:
            evaluate_stage.run(EvaluateConfig(bootstrap={"samples": 100}, slices=[{"column": "petal length (cm)"}]),
                               model, data, ctx=ctx, against=model, against_name="iris@v1")
        with stage_run(store, kind="explain", name="iris", config={}, parent_run_id=top.run_id) as ctx:
            explain_stage.run(ExplainConfig(examples=2, repeats=2, gradient_rows=4, shap_samples=10, background=8),
                              model, data, ctx=ctx)
        run_id = top.run_id
    return run_id


def test_report_holds_every_part_offline(store: Any, tmp_path: Path) -> None:
    path = render_run_report(store, _pipeline_like_run(store), out_dir=tmp_path)
    page = path.read_text("utf-8")
    for heading in ("Evaluation (test", "Per class", "Most confused", "Slice: petal length", "Robustness",
                    "Against iris@v1", "Worst examples", "Explanation", "Permutation importance", "SHAP",
                    "Lineage", "Environment"):
        assert heading in page, heading
    alts = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]+)"', page)
    for alt in ("confusion matrix", "ROC curve", "precision-recall curve", "reliability diagram", "robustness curve"):
        assert alt in alts, alt
    assert "95% CI (bootstrap)" in page
    # self-contained: nothing fetched from anywhere
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_token_highlighting_escapes_text() -> None:
    html = highlighted_tokens(["<b>", "good"], [-0.5, 1.0])
    assert "&lt;b&gt;" in html and "rgba(46,134,193,0.80)" in html and "rgba(192,57,43,0.40)" in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (CI installs Debian's chromium)")
def test_report_loads_in_headless_chromium(store: Any, tmp_path: Path) -> None:
    path = render_run_report(store, _pipeline_like_run(store), out_dir=tmp_path)
    # --dump-dom prints the DOM after load; images that fail to decode get naturalWidth 0, checked by the script.
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text("utf-8").replace(
        "</body>", "<script>window.onload=()=>{const bad=[...document.images].filter(i=>!i.naturalWidth).length;"
                   "document.body.setAttribute('data-images',document.images.length);"
                   "document.body.setAttribute('data-broken',bad);}</script></body>"), "utf-8")
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                          "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert 'data-broken="0"' in out.stdout
    images = int(re.search(r'data-images="(\d+)"', out.stdout).group(1))  # type: ignore[union-attr]
    assert images >= 8
    assert "Uncaught" not in out.stderr and "CONSOLE(" not in out.stderr
