"""Model cards: what a version is, what it was trained on, how well it does, what it cost.

Generated per version from what the store already holds (Mitchell et al., "Model Cards
for Model Reporting", 2019, for the sections): the model's ``spec.json``, the recipe
recorded by its runs, the dataset's ``stats.json``, the newest evaluation report made
from it, its lineage, and the free-text notes people add (``yard models card --notes``).
Figures other stages add later are picked up when present: confidence intervals
(``intervals`` / ``ci`` in the evaluation report), slices (``slices``), compute
(``compute`` in the training run's summary, e.g. ``peak_rss_mb``, ``energy_kwh``).

    card = build_card(store, store.models.resolve("digits@production"))
    text = render_markdown(card)
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelyard.core.errors import ArtifactError, NotFoundError
from modelyard.store.lineage import version_lineage
from modelyard.store.registry import ModelVersion

if TYPE_CHECKING:
    from modelyard.store.project import Store

CARD_VERSION = 1
# Energy estimate when nothing measured it: a busy server core draws roughly 10 W
# (a 2-socket, 64-core, ~600 W box under load); stated in the card as an assumption.
_WATTS_PER_CORE = 10.0
_SMALL_TEST_SET = 200


def _read_json(store: Store, artifact_id: str, name: str) -> dict[str, Any] | None:
    try:
        path = store.artifacts.path(artifact_id) / name
    except (NotFoundError, ArtifactError):
        return None
    if not path.is_file():
        return None
    return json.loads(path.read_text("utf-8"))  # type: ignore[no-any-return]


def _newest_evaluation(store: Store, model_id: str) -> tuple[str, dict[str, Any]] | None:
    reports = []
    for child_id, relation in store.artifacts.children(model_id):
        row = store.artifacts.row(child_id)
        if row and row["kind"] == "report" and relation == "evaluated_from" and not row["deleted_at"]:
            reports.append((row["created_at"], child_id))
    for _created, report_id in sorted(reports, reverse=True):
        report = _read_json(store, report_id, "evaluation.json")
        if report is not None:
            return report_id, report
    return None


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); honest near 0 and 1 where
    the normal approximation collapses to a zero-width interval."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _metrics(report: dict[str, Any] | None, fallback: dict[str, Any]) -> dict[str, dict[str, Any]]:
    report = report or {}
    intervals = report.get("intervals") or report.get("ci") or {}
    rows = report.get("rows")
    out: dict[str, dict[str, Any]] = {}
    # The evaluation report's figures; else the headline metrics recorded at registration.
    for name, value in (report.get("metrics") or fallback).items():
        entry: dict[str, Any] = {"value": value}
        interval = intervals.get(name)
        if isinstance(interval, dict):
            entry["ci"] = [interval.get("low"), interval.get("high")]
            entry["confidence"] = interval.get("confidence")
            entry["ci_method"] = interval.get("method", "evaluation report")
        elif isinstance(interval, list | tuple) and len(interval) == 2:
            entry["ci"] = list(interval)
            entry["ci_method"] = "evaluation report"
        elif (name.rsplit("/", 1)[-1] == "accuracy" and isinstance(value, int | float)
              and isinstance(rows, int) and rows > 0):
            # Accuracy is a proportion of independent test rows: Wilson's interval needs only n.
            entry["ci"] = [round(b, 6) for b in wilson_interval(value * rows, rows)]
            entry["confidence"] = 0.95
            entry["ci_method"] = f"Wilson score interval over {rows} test rows"
        out[name] = entry
    return out


def _compute(train_run: dict[str, Any] | None) -> dict[str, Any]:
    if not train_run:
        return {}
    summary = train_run.get("summary") or {}
    recorded = dict(summary.get("compute") or {})
    wall = summary.get("wall_seconds")
    if wall is None and train_run.get("ended_at"):
        wall = (datetime.fromisoformat(train_run["ended_at"])
                - datetime.fromisoformat(train_run["started_at"])).total_seconds()
    cores = (train_run.get("host") or {}).get("cpu_count") or 1
    compute: dict[str, Any] = {"wall_seconds": wall, "host_cpu_count": cores,
                               "device": (train_run.get("config") or {}).get("train", {}).get("device"),
                               "peak_memory_mb": summary.get("peak_rss_mb"), **recorded}
    measured = "cpu_hours" in recorded  # stage_run records process CPU time (store/context.py)
    if wall is not None:
        compute.setdefault("cpu_hours", round(wall / 3600 * cores, 6))
    if compute.get("cpu_hours") is not None:
        compute.setdefault("energy_kwh", round(compute["cpu_hours"] * _WATTS_PER_CORE / 1000, 6))
        how = ("cpu_hours is the training process's CPU time" if measured
               else f"cpu_hours = wall time × {cores} host cores (an upper bound)")
        memory = "; peak memory is the process's high-water mark (an upper bound)" if compute.get(
            "peak_memory_mb") is not None else ""
        compute.setdefault("estimate_note", f"{how}; energy assumes {_WATTS_PER_CORE:g} W per busy core"
                                            f"{memory}; a GPU's draw is not included")
    compute.pop("measured", None)
    return compute


def _limitations(card: dict[str, Any]) -> list[str]:
    out = []
    test_rows = (card["data"].get("split_sizes") or {}).get("test")
    if test_rows is not None and test_rows < _SMALL_TEST_SET:
        out.append(f"The test split has {test_rows} rows: metric estimates are uncertain "
                   f"(a 95% interval on accuracy is about ±{100 / max(1, test_rows) ** 0.5:.0f} points).")
    ratio = card["data"].get("imbalance_ratio")
    if isinstance(ratio, int | float) and ratio >= 3:
        out.append(f"Classes are imbalanced (largest/smallest = {ratio:.1f}): check per-class metrics.")
    if not card["metrics"]:
        out.append("No evaluation report was found for this version.")
    elif not any("ci" in m for m in card["metrics"].values()):
        out.append("Metrics are point estimates without confidence intervals.")
    if not card.get("slices"):
        out.append("No slice (subgroup) metrics were computed.")
    out.append("Trained and evaluated on one data source; behaviour on data from other sources is unmeasured.")
    return out


def build_card(store: Store, version: ModelVersion) -> dict[str, Any]:
    """The model card of ``version`` as a JSON-ready dict."""
    spec = _read_json(store, version.ref.id, "spec.json") or {}
    lineage = version_lineage(store, version)
    train_run = store.runs.get(lineage["train_run"]["id"]) if lineage["train_run"] and not lineage["train_run"].get(
        "missing") else None
    config = (train_run or {}).get("config") or {}
    dataset = lineage["datasets"][0] if lineage["datasets"] else None
    stats = _read_json(store, dataset["id"], "stats.json") if dataset else None
    evaluation = _newest_evaluation(store, version.ref.id)
    report = evaluation[1] if evaluation else None
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "generated_at": datetime.now(UTC).isoformat(),
        "model": version.uri,
        "name": version.name,
        "version": version.version,
        "aliases": list(version.aliases),
        "tags": version.tags,
        "created_at": version.created_at,
        "artifact": version.ref.id,
        "task": spec.get("task") or config.get("task"),
        "intended_use": config.get("description") or version.description or "",
        "description": version.description,
        "model_details": {"plugin": spec.get("plugin"), "params": spec.get("kwargs"),
                          "modality": spec.get("modality"), "labels": spec.get("label_names")},
        "data": {
            "dataset": dataset["id"] if dataset else None,
            "source": (dataset or {}).get("meta", {}).get("source") or (config.get("data") or {}).get("source"),
            "data_run": ((dataset or {}).get("run") or {}).get("id"),
            "split_sizes": (stats or {}).get("rows"),
            "class_balance": (stats or {}).get("class_counts"),
            "imbalance_ratio": (stats or {}).get("imbalance_ratio"),
            "rows_in": (stats or {}).get("rows_in"),
        },
        "metrics": _metrics(report, version.metrics),
        "evaluation": ({"report": evaluation[0], "split": report.get("split"), "rows": report.get("rows"),
                        "dataset": report.get("dataset")} if evaluation and report else None),
        "slices": (report or {}).get("slices"),
        "training": {"run": (train_run or {}).get("id"), "seed": config.get("seed"), "model": config.get("model"),
                     "train": config.get("train"), "git_sha": (train_run or {}).get("git_sha"),
                     "packages": {k: v for k, v in ((train_run or {}).get("packages") or {}).items()
                                  if k in ("torch", "numpy", "modelyard", "scikit-learn", "transformers")}},
        "compute": _compute(train_run),
        "lineage": {"parents": [{"id": p["id"], "relation": p["relation"], "versions": p["versions"]}
                                for p in lineage["parent_models"]],
                    "search_run": (lineage["search_run"] or {}).get("id"),
                    "compressed_children": [{"id": c["id"], "relation": c["relation"], "versions": c["versions"]}
                                            for c in lineage["children"] if c["kind"] == "model"]},
        "notes": store.models.notes(version.name, version.version),
    }
    card["limitations"] = _limitations(card)
    return card


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def render_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown."""
    lines = [f"# Model card: {card['model']}", ""]
    lines += [f"- **Task:** {_fmt(card['task'])}",
              f"- **Aliases:** {', '.join(card['aliases']) or '—'}",
              f"- **Tags:** {', '.join(f'{k}={v}' for k, v in card['tags'].items()) or '—'}",
              f"- **Registered:** {card['created_at']}",
              f"- **Artifact (sha256):** `{card['artifact']}`", ""]
    lines += ["## Intended use", "", card["intended_use"] or "_Not stated in the recipe (`description:`)._", ""]
    details = card["model_details"]
    lines += ["## Model", "", f"- Plugin: `{_fmt(details['plugin'])}`", f"- Parameters: `{_fmt(details['params'])}`",
              f"- Labels: {_fmt(details['labels'])}", ""]
    data = card["data"]
    lines += ["## Data", "", f"- Dataset (sha256): `{_fmt(data['dataset'])}`", f"- Source: {_fmt(data['source'])}",
              f"- Data run: {_fmt(data['data_run'])}", f"- Rows read: {_fmt(data['rows_in'])}"]
    if data["split_sizes"]:
        lines.append("- Split sizes: " + ", ".join(f"{k} {v}" for k, v in data["split_sizes"].items()))
    if data["class_balance"]:
        lines += ["", "| split | " + " | ".join(next(iter(data["class_balance"].values())).keys()) + " |",
                  "|---" * (1 + len(next(iter(data["class_balance"].values())))) + "|"]
        for split, counts in data["class_balance"].items():
            lines.append(f"| {split} | " + " | ".join(str(v) for v in counts.values()) + " |")
    lines += ["", "## Metrics", ""]
    if card["evaluation"]:
        ev = card["evaluation"]
        lines.append(f"On the `{ev['split']}` split ({ev['rows']} rows) of dataset `{str(ev['dataset'])[:12]}`, "
                     f"report `{ev['report'][:12]}`.")
        lines.append("")
    if card["metrics"]:
        lines += ["| metric | value | 95% CI | interval from |", "|---|---|---|---|"]
        for name, entry in card["metrics"].items():
            ci = entry.get("ci")
            lines.append(f"| {name} | {_fmt(entry['value'])} | "
                         f"{f'[{_fmt(ci[0])}, {_fmt(ci[1])}]' if ci else '—'} | {entry.get('ci_method', '—')} |")
    else:
        lines.append("_No metrics recorded._" if card["evaluation"] else "_No evaluation found._")
    if card["slices"]:
        lines += ["", "### Slices", "", "```json", json.dumps(card["slices"], indent=2, sort_keys=True), "```"]
    training = card["training"]
    lines += ["", "## Training", "", f"- Run: {_fmt(training['run'])}", f"- Seed: {_fmt(training['seed'])}",
              f"- Git: {_fmt(training['git_sha'])}", f"- Config: `{_fmt(training['train'])}`",
              f"- Packages: {_fmt(training['packages'])}", "", "## Compute", ""]
    compute = card["compute"]
    if compute:
        for key in ("wall_seconds", "cpu_hours", "peak_memory_mb", "energy_kwh", "device", "host_cpu_count"):
            lines.append(f"- {key.replace('_', ' ')}: {_fmt(compute.get(key))}")
        if compute.get("estimate_note"):
            lines.append(f"- _{compute['estimate_note']}_")
    else:
        lines.append("_No training run recorded._")
    lineage = card["lineage"]
    lines += ["", "## Lineage", ""]
    for parent in lineage["parents"]:
        lines.append(f"- {parent['relation']}: `{parent['id'][:12]}` ({', '.join(parent['versions']) or '—'})")
    if lineage["search_run"]:
        lines.append(f"- Found by search run {lineage['search_run']}")
    for child in lineage["compressed_children"]:
        lines.append(f"- Child ({child['relation']}): `{child['id'][:12]}` ({', '.join(child['versions']) or '—'})")
    if not (lineage["parents"] or lineage["search_run"] or lineage["compressed_children"]):
        lines.append("- Trained directly from the dataset above; no compressed children.")
    lines += ["", "## Known limitations", ""] + [f"- {item}" for item in card["limitations"]]
    lines += ["", "## Notes", "", card["notes"] or "_None yet (`yard models card NAME@vN --notes TEXT`)._", ""]
    return "\n".join(lines)


__all__ = ["CARD_VERSION", "build_card", "render_markdown", "wilson_interval"]
