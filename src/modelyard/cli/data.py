"""``yard data prepare RECIPE`` · ``yard data report DATASET`` · ``yard data augmentations``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import console, emit_json, json_option, print_table


@click.group("data")
def data_group() -> None:
    """Stage 1: prepare datasets and inspect their quality."""


@data_group.command("prepare")
@recipe_argument
@overrides_argument
@json_option
def prepare_command(recipe: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Run only the data section of RECIPE and publish the dataset artifact.

    Overrides re-validate the recipe, e.g. `yard data prepare r.yaml data.split.test=0.2`.
    """
    from modelyard import data as data_stage
    from modelyard.config.loader import recipe_to_dict
    from modelyard.store import open_store
    from modelyard.store.context import stage_run

    loaded = load(recipe, overrides)
    with open_store() as store:
        with stage_run(store, kind="data", name=loaded.name, config=recipe_to_dict(loaded)["data"],
                       seed=loaded.seed) as ctx:
            ref = data_stage.run(loaded, ctx=ctx)
        summary = store.runs.get(ctx.run_id)["summary"]
    if as_json:
        emit_json({"run": ctx.run_id, **summary})
        return
    rows = [("run", ctx.run_id), ("dataset", ref.id),
            ("rows", f"{summary.get('rows_in')} in → " + ", ".join(
                f"{k} {summary.get(f'rows/{k}', 0)}" for k in ("train", "valid", "test")))]
    rows += [(k, v) for k, v in summary.items() if k not in ("dataset", "rows_in") and not k.startswith("rows/")]
    print_table("dataset", ["", ""], rows)
    console.print(f"next: [bold]yard data report {ref.short}[/bold]")


@data_group.command("report")
@click.argument("dataset")
@json_option
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the data-quality report as a self-contained HTML file.")
def report_command(dataset: str, as_json: bool, html_path: Path | None) -> None:
    """Show what preparing DATASET did: rows per step, columns, balance, duplicates, leakage, PII, labels.

    DATASET is a dataset artifact id (a unique prefix works) or the id of the data run that made it.
    """
    from modelyard.core.atomic import atomic_write_text
    from modelyard.core.errors import NotFoundError
    from modelyard.core.refs import DatasetRef
    from modelyard.data import open_dataset
    from modelyard.store import open_store

    with open_store() as store:
        try:
            ref = store.artifacts.resolve_prefix(dataset)
        except NotFoundError:
            outputs = [a for a, kind in store.runs.artifacts(store.runs.get(dataset)["id"]) if kind == "dataset"]
            if not outputs:
                raise NotFoundError(f"run {dataset} made no dataset") from None
            ref = store.artifacts.resolve_prefix(outputs[0])
        if ref.kind != "dataset":
            raise NotFoundError(f"artifact {ref.short} is a {ref.kind}, not a dataset")
        opened = open_dataset(store, DatasetRef(id=ref.id))
        quality = opened.quality
        stats = opened.stats
    if html_path is not None:
        from modelyard.report.data_quality import data_quality_page

        atomic_write_text(html_path, data_quality_page(quality, title=f"dataset {ref.short}"))
    if as_json:
        emit_json({"dataset": ref.id, "stats": stats, "quality": quality})
        return
    _print_quality(ref.id, quality, stats)
    if html_path is not None:
        console.print(f"html: {html_path}")


def _print_quality(dataset_id: str, quality: dict[str, Any], stats: dict[str, Any]) -> None:
    if not quality:
        print_table(f"dataset {dataset_id[:12]}", ["", ""], list(stats.items()))
        console.print("(no quality record: this dataset was prepared by an older modelyard, or is a fold)")
        return
    print_table(f"dataset {dataset_id[:12]} · steps", ["step", "rows in", "rows out", "counts"],
                [(s["step"], s["rows_in"], s["rows_out"], ", ".join(f"{k} {v}" for k, v in s["counts"].items()))
                 for s in quality.get("steps", [])])
    columns = quality.get("columns", [])
    if columns:
        print_table("columns", ["column", "kind", "missing %", "distinct", "flags", "range / top"],
                    [(c["column"], c["kind"], c["missing_pct"], c["distinct"], _flags(c), _range(c))
                     for c in columns])
    balance = quality.get("class_balance")
    if balance:
        splits = {name: balance["splits"][name] for name in ("train", "valid", "test") if name in balance["splits"]}
        print_table("class balance", ["class", *splits, "balanced weight"],
                    [(name, *[splits[s]["counts"].get(name, 0) for s in splits], weight)
                     for name, weight in zip(balance["label_names"], balance["balanced_class_weights"])])
        console.print(f"imbalance ratio (train): {splits['train']['imbalance_ratio']}")
    steps = {s["step"]: s for s in quality.get("steps", [])}
    issues = steps.get("label_issues", {}).get("flagged_rows", [])
    if issues:
        print_table("likely label errors (first 10)", ["row", "given", "suggested", "p(given)"],
                    [(i["row"], i["given"], i["suggested"], i["given_probability"]) for i in issues[:10]])
    for name in ("duplicates", "near_duplicates", "leakage", "pii"):
        examples = steps.get(name, {}).get("examples", [])
        if examples:
            print_table(f"{name} examples", ["example"], [(str(e),) for e in examples])


def _flags(column: dict[str, Any]) -> str:
    flags = [name for name in ("constant", "id_like", "all_missing") if column.get(name)]
    return ", ".join(flags)


def _range(column: dict[str, Any]) -> str:
    if "min" in column:
        return f"{column['min']:.4g} … {column['max']:.4g} (mean {column['mean']:.4g})"
    if "top" in column:
        return ", ".join(f"{v} ({n})" for v, n in column["top"][:3])
    if "length_mean" in column:
        return f"mean length {column['length_mean']}"
    return ""


@data_group.command("augmentations")
@json_option
def augmentations_command(as_json: bool) -> None:
    """List the registered augmentations and the data they apply to."""
    from modelyard.plugins import AUGMENTATIONS
    from modelyard.plugins.augmentations import load_augmentations, modalities_of

    load_augmentations()
    rows = [(name, ", ".join(modalities_of(name)), (AUGMENTATIONS.get(name).__doc__ or "").strip().splitlines()[0])
            for name in AUGMENTATIONS.names()]
    if as_json:
        emit_json([{"name": n, "modalities": m.split(", "), "doc": d} for n, m, d in rows])
    else:
        print_table("augmentations", ["name", "modalities", "what"], rows)


COMMANDS = [data_group]
