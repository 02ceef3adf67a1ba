"""The data stage on tiny data: what each step does, pinned to numbers worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard import data as data_stage
from modelyard.config.loader import validate_recipe
from modelyard.core.refs import DatasetRef
from modelyard.data import Dataset, open_dataset
from modelyard.data.artifact import write_dataset
from modelyard.report.data_quality import data_quality_section
from modelyard.store.context import stage_run


def prepare(store: Any, data: dict[str, Any], *, task: str = "classification", seed: int = 0) -> Dataset:
    recipe = validate_recipe({"version": 1, "name": "t", "task": task, "seed": seed, "data": data,
                              "model": {"name": "mlp"}})
    with stage_run(store, kind="data", name="t", config={}) as ctx:
        ref = data_stage.run(recipe, ctx=ctx)
    return open_dataset(store, ref)


def steps(dataset: Dataset) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in dataset.quality["steps"]}


def tabular_csv(path: Path, n: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, n).round(2), "income": rng.lognormal(10, 0.5, n).round(2),
        "city": rng.choice(["Paris", "Lyon", "Nice"], n), "y": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
    })
    frame.to_csv(path, index=False)
    return path


def test_iris_is_deduplicated_split_and_named_by_content(store: Any) -> None:
    data = {"source": {"format": "sklearn", "name": "iris"}, "split": {"valid": 0.1, "test": 0.1}}
    first = prepare(store, data)
    again = prepare(store, data)
    other_seed = prepare(store, data, seed=1)
    assert first.ref == again.ref  # same input + same recipe → same content hash
    assert other_seed.ref != first.ref
    record = steps(first)
    # scikit-learn's iris has one exact duplicate pair (rows 102 and 143: 5.8, 2.7, 5.1, 1.9, virginica).
    assert record["duplicates"]["counts"]["exact_rows"] == 1
    assert record["duplicates"]["examples"][0] == {"kind": "exact", "row": "sklearn:iris row 143",
                                                   "same_as": "sklearn:iris row 102"}
    # 149 rows: round(14.9) = 15 test, 15 valid, 119 train, stratified.
    assert first.stats["rows"] == {"train": 119, "valid": 15, "test": 15}
    assert first.stats["rows_in"] == 150
    assert [s["step"] for s in first.quality["steps"]] == ["read", "validate", "clean", "duplicates", "split",
                                                            "leakage"]
    assert sum(first.stats["class_counts"]["test"].values()) == 15


def test_normalization_is_fitted_on_train_only_and_saved(store: Any, tmp_path: Path) -> None:
    path = tabular_csv(tmp_path / "t.csv")
    dataset = prepare(store, {"source": {"format": "csv", "path": str(path)}, "columns": {"label": "y"}})
    train = dataset.frame("train")
    pre = dataset.preprocessor
    assert pre.center_["age"] == pytest.approx(train["age"].mean(), rel=1e-12)
    assert pre.scale_["age"] == pytest.approx(train["age"].std(ddof=0), rel=1e-9)
    x_train, _ = dataset.arrays("train")
    x_valid, _ = dataset.arrays("valid")
    numeric = [dataset.schema.features.index(c) for c in ("age", "income")]
    np.testing.assert_allclose(x_train[:, numeric].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x_train[:, numeric].std(axis=0), 1.0, atol=1e-5)
    # valid rows use the train statistics, so they are not exactly centred.
    assert abs(float(x_valid[:, numeric[0]].mean())) > 1e-4
    # The transform travels as JSON and gives the same matrix on raw records (serving).
    from modelyard.data import Preprocessor

    stored = Preprocessor.from_dict(pre.to_dict())
    np.testing.assert_array_equal(stored.transform(dataset.frame("valid")), x_valid)
    # city is categorical: codes in order of train frequency.
    assert dataset.schema.categorical == ["city"]
    assert set(pre.categories_["city"]) == {"Paris", "Lyon", "Nice"}


def test_missing_values_filled_with_train_median_and_outliers_clipped(store: Any, tmp_path: Path) -> None:
    rows = [{"x": float(i), "z": float(i % 7), "y": "a" if i % 2 else "b"} for i in range(100)]
    rows[5]["x"] = float("nan")
    rows[7]["x"] = 1e6  # an outlier
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    dataset = prepare(store, {"source": {"format": "csv", "path": str(tmp_path / "m.csv")},
                              "columns": {"label": "y"}, "normalize": "none", "split": {"valid": 0.2, "test": 0.2},
                              "clean": {"missing": "median", "outliers": {"method": "iqr", "action": "clip"}}})
    train = dataset.frame("train")
    pre = dataset.preprocessor
    assert pre.fill_["x"] == pytest.approx(float(np.nanmedian(train["x"])))
    q1, q3 = np.nanquantile(train["x"], [0.25, 0.75])
    assert pre.upper_["x"] == pytest.approx(q3 + 1.5 * (q3 - q1))
    x, _ = dataset.arrays("train", balance=False)
    assert x[:, 0].max() <= pre.upper_["x"] + 1e-3  # the 1e6 is clipped wherever it landed
    assert not np.isnan(x).any()
    assert steps(dataset)["clean"]["counts"]["missing_values_to_fill"] == 1


def test_outlier_drop_touches_train_rows_only(store: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(0, 1, 300), "y": rng.choice(["a", "b"], 300)})
    frame.loc[::50, "x"] = 40.0  # 6 planted outliers
    frame.to_csv(tmp_path / "o.csv", index=False)
    dataset = prepare(store, {"source": {"format": "csv", "path": str(tmp_path / "o.csv")}, "columns": {"label": "y"},
                              "clean": {"outliers": {"method": "zscore", "threshold": 3.0, "action": "drop"}}})
    train = dataset.frame("train")
    x_train, _ = dataset.arrays("train")
    outside = int((train["x"] > dataset.preprocessor.upper_["x"]).sum())
    assert outside >= 1
    assert len(x_train) == len(train) - outside
    assert len(dataset.arrays("test")[0]) == len(dataset.frame("test"))  # evaluation rows are never dropped
    assert steps(dataset)["outliers"]["rows_out"] == len(train) - outside


def _tickets(path: Path) -> Path:
    words = ["billing", "login", "crash", "refund", "upgrade", "invoice", "password", "screen"]
    rng = np.random.default_rng(3)
    texts, labels = [], []
    for i in range(200):
        topic = words[i % len(words)]
        texts.append(f"customer {i} writes about {topic} issue number {rng.integers(10**6)} and waits")
        labels.append("money" if topic in ("billing", "refund", "invoice", "upgrade") else "tech")
    texts += ["Customer 0   writes ABOUT billing issue number", "exact copy", "exact copy", "exact copy"]
    labels += ["money", "tech", "tech", "money"]  # rows 202-203 exact duplicates, 204 conflicts with them
    # Near-duplicates of rows 10..19: one word changed at the end of a long text (Jaccard ≈ 0.9).
    texts += [texts[i].replace("and waits", "and waited") for i in range(10, 20)]
    labels += labels[10:20]
    pd.DataFrame({"body": texts, "topic": labels}).to_csv(path, index=False)
    return path


def test_duplicates_conflicts_near_duplicates_and_leakage(store: Any, tmp_path: Path) -> None:
    path = _tickets(tmp_path / "tickets.csv")
    dataset = prepare(store, {"source": {"format": "csv", "path": str(path)},
                              "columns": {"text": "body", "label": "topic"},
                              "duplicates": {"near": {"threshold": 0.8, "action": "report"}}})
    record = steps(dataset)
    assert record["read"]["rows_in"] == 214
    # "exact copy" ×3: rows 202 and 203 share label tech (one duplicate), row 204 says money (a conflict).
    assert record["duplicates"]["counts"]["exact_rows"] == 1
    assert record["duplicates"]["counts"]["conflict_groups"] == 1
    assert record["duplicates"]["conflicts"][0]["labels"] == ["money", "tech"]
    near = record["near_duplicates"]["counts"]
    # The 10 planted pairs, plus the two conflicting "exact copy" rows left after exact deduplication.
    assert near["groups"] == 11 and near["rows_in_groups"] == 22
    leak = record["leakage"]["counts"]
    # Every near pair split across train/valid/test is removed from the later split; none stays.
    pool = pd.concat([dataset.frame(s).assign(split=s) for s in ("train", "valid", "test")])
    stems = pool["body"].str.replace("and waited", "and waits")
    crossing = pool.groupby(stems)["split"].nunique()
    assert (crossing > 1).sum() == 0
    assert sum(leak.values()) >= 1


def test_group_split_keeps_each_group_in_one_split(store: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=300), "customer": rng.integers(0, 40, 300),
                          "y": rng.choice(["a", "b"], 300)})
    frame.to_csv(tmp_path / "g.csv", index=False)
    dataset = prepare(store, {"source": {"format": "csv", "path": str(tmp_path / "g.csv")},
                              "columns": {"label": "y", "group": "customer"}, "split": {"valid": 0.2, "test": 0.2}})
    groups = {s: set(dataset.frame(s)["customer"]) for s in ("train", "valid", "test")}
    assert not (groups["train"] & groups["valid"]) and not (groups["train"] & groups["test"])
    assert not (groups["valid"] & groups["test"])
    assert steps(dataset)["split"]["method"] == "group"
    assert steps(dataset)["split"]["groups_in_two_splits"] == 0
    assert "customer" not in dataset.schema.features


def test_time_split_trains_on_the_past(store: Any, tmp_path: Path) -> None:
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    frame = pd.DataFrame({"when": days.strftime("%Y-%m-%d"), "x": np.arange(120.0), "y": ["a", "b", "c"] * 40})
    frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "t.csv", index=False)
    dataset = prepare(store, {"source": {"format": "csv", "path": str(tmp_path / "t.csv")},
                              "columns": {"label": "y", "time": "when"},
                              "split": {"method": "time", "valid": 0.25, "test": 0.25}})
    # 120 days: the last 30 are test, the 30 before valid, the first 60 train.
    assert dataset.frame("train")["when"].max() < dataset.frame("valid")["when"].min()
    assert dataset.frame("valid")["when"].max() < dataset.frame("test")["when"].min()
    assert dataset.stats["rows"] == {"train": 60, "valid": 30, "test": 30}


def test_kfold_assignments_and_refits_inside_each_fold(store: Any, tmp_path: Path) -> None:
    path = tabular_csv(tmp_path / "k.csv", n=300)
    dataset = prepare(store, {"source": {"format": "csv", "path": str(path)}, "columns": {"label": "y"},
                              "split": {"folds": 5, "test": 0.2}})
    assert dataset.schema.folds == 5
    # 300 rows: 60 test, the other 240 in 5 folds of 48; fold 0 is the valid split.
    assert dataset.stats["rows"] == {"train": 192, "valid": 48, "test": 60}
    folds = dataset.fold_indices()
    held = np.sort(np.concatenate([h for _, h in folds]))
    np.testing.assert_array_equal(held, np.arange(240))  # the held-out folds partition train + valid
    views = dataset.folds()
    for view, (train_rows, _) in zip(views, folds):
        pool = pd.concat([dataset.frame("train"), dataset.frame("valid")], ignore_index=True)
        assert view.preprocessor.center_["age"] == pytest.approx(pool.iloc[train_rows]["age"].mean())
        x, _ = view.arrays("train")
        np.testing.assert_allclose(x[:, 0].mean(), 0.0, atol=1e-5)
    assert len({round(v.preprocessor.center_["age"], 9) for v in views}) == 5
    # A fold written as an artifact (the search stage does this) refits its own preprocessor too.
    train_rows, held_rows = folds[1]
    pool = pd.concat([dataset.frame("train"), dataset.frame("valid")], ignore_index=True)
    with store.artifacts.staging() as folder:
        write_dataset(folder, dataset.schema, {"train": pool.iloc[train_rows], "valid": pool.iloc[held_rows],
                                               "test": dataset.frame("test")}, {"rows": {}})
        ref = store.artifacts.publish(folder, kind="dataset")
    written = open_dataset(store, DatasetRef(id=ref.id))
    assert written.preprocessor.center_["age"] == pytest.approx(views[1].preprocessor.center_["age"])
    # Folds on demand (k given) for a dataset prepared without them.
    assert [len(h) for _, h in dataset.fold_indices(4)] == [60, 60, 60, 60]


def test_class_weights_and_resampling_touch_train_only(store: Any, tmp_path: Path) -> None:
    path = tabular_csv(tmp_path / "b.csv", n=500)
    base = {"source": {"format": "csv", "path": str(path)}, "columns": {"label": "y"}}
    weighted = prepare(store, {**base, "balance": {"method": "class_weights"}})
    counts = np.array([weighted.stats["class_counts"]["train"][n] for n in weighted.schema.label_names])
    expected = counts.sum() / (len(counts) * counts)  # scikit-learn's "balanced" weights
    np.testing.assert_allclose(weighted.class_weights, expected, rtol=1e-6)
    assert weighted.stats["class_weights"] == weighted.class_weights
    for method, target in (("oversample", counts.max()), ("undersample", counts.min()), ("smote", counts.max())):
        dataset = prepare(store, {**base, "balance": {"method": method}})
        _, y = dataset.arrays("train")
        assert np.bincount(y).tolist() == [target] * 3, method
        _, y_valid = dataset.arrays("valid")
        assert len(y_valid) == dataset.stats["rows"]["valid"]
        assert steps(dataset)["balance"]["after"] == dict.fromkeys(dataset.schema.label_names, int(target))
    assert prepare(store, {**base, "balance": {"method": "none"}}).class_weights is None


def test_offline_and_online_augmentation(store: Any, tmp_path: Path) -> None:
    path = _tickets(tmp_path / "tickets.csv")
    base = {"source": {"format": "csv", "path": str(path)}, "columns": {"text": "body", "label": "topic"}}
    offline = prepare(store, {**base, "augment": {"text": [{"name": "random-swap", "p": 1.0}], "copies": 2}})
    texts, labels = offline.texts("train")
    n = offline.stats["rows"]["train"]
    assert len(texts) == 3 * n and labels[:n].tolist() * 3 == labels.tolist()
    assert texts[:n] == offline.frame("train")["body"].tolist()
    assert sum(a != b for a, b in zip(texts[:n], texts[n:2 * n])) > 0.9 * n
    assert len(offline.texts("valid")[0]) == offline.stats["rows"]["valid"]
    assert offline.augmenter() is None
    online = prepare(store, {**base, "augment": {"mode": "online", "text": [{"name": "char-noise", "p": 1.0}]}})
    assert len(online.texts("train")[0]) == online.stats["rows"]["train"]
    pipeline = online.augmenter()
    assert pipeline.names == ["char-noise"]
    batch, _ = pipeline(["hello world from modelyard"] * 4, None, np.random.default_rng(0))
    assert batch != ["hello world from modelyard"] * 4


def test_image_folder_decoded_resized_and_augmented(store: Any, tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, size in (("cat", (12, 10)), ("dog", (8, 8))):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(15):
            Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(
                tmp_path / "img" / label / f"{i}.png")
    (tmp_path / "img" / "dog" / "broken.png").write_bytes(b"not a png")
    dataset = prepare(store, {"source": {"format": "images", "path": str(tmp_path / "img"), "image_size": [8, 8],
                                         "bad_rows": "skip"},
                              "split": {"valid": 0.2, "test": 0.2}, "augment": {"image": [{"name": "flip"}]}})
    assert dataset.schema.image_shape == [3, 8, 8]
    x, _y = dataset.arrays("train")
    # 30 images: 6 test, 6 valid, 18 train, doubled by one offline augmented copy.
    assert x.shape == (36, 3, 8, 8) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    read = steps(dataset)["read"]
    assert read["skipped_bad_rows"] == 1 and "broken.png" in read["bad_row_examples"][0]
    assert read["image_sizes"] == {"12x10": 15, "8x8": 15}
    assert set(dataset.frame("test")["path"].str.split("/").str[0]) <= {"cat", "dog"}


def test_label_issues_relabel_on_flipped_digits(store: Any, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), 40, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, 40)) % 10
    np.savez(tmp_path / "d.npz", x=(x / 16).reshape(-1, 8, 8), y=noisy)
    dataset = prepare(store, {"source": {"format": "numpy", "path": str(tmp_path / "d.npz")},
                              "label_issues": {"action": "relabel"}})
    record = steps(dataset)["label_issues"]
    found = {int(r["row"].rsplit(" ", 1)[1]) - 1 for r in record["flagged_rows"]}
    listed = record["flagged_rows"]
    assert record["counts"]["relabelled"] == record["counts"]["flagged"]
    assert len(found & set(flipped.tolist())) >= 0.8 * min(len(listed), 40)
    # A relabelled row carries the suggestion: the true digit for most flipped rows.
    assert sum(r["suggested"] == str(y[int(r["row"].rsplit(" ", 1)[1]) - 1]) for r in listed) >= 0.8 * len(listed)


def test_chunking_does_not_change_the_dataset(store: Any, tmp_path: Path) -> None:
    path = tabular_csv(tmp_path / "c.csv", n=250)
    base = {"source": {"format": "csv", "path": str(path)}, "columns": {"label": "y"}}
    whole = prepare(store, base)
    chunked = prepare(store, {**base, "source": {**base["source"], "chunk_rows": 7}})
    assert whole.ref == chunked.ref


def test_run_summary_metrics_and_report_section(store: Any, tmp_path: Path) -> None:
    from modelyard.report import render_run_report
    from modelyard.report.data_quality import data_quality_section

    path = _tickets(tmp_path / "tickets.csv")
    recipe = validate_recipe({"version": 1, "name": "t", "task": "classification",
                              "data": {"source": {"format": "csv", "path": str(path)},
                                       "columns": {"text": "body", "label": "topic"},
                                       "label_issues": {"action": "report"}},
                              "model": {"name": "mlp"}})
    with stage_run(store, kind="data", name="t", config={}) as ctx:
        ref = data_stage.run(recipe, ctx=ctx)
    summary = store.runs.get(ctx.run_id)["summary"]
    assert summary["dataset"] == ref.id and summary["rows_in"] == 214
    assert summary["duplicates/exact_rows"] == 1
    assert store.runs.metric_series(ctx.run_id, "duplicates/exact_rows") == [(0, 1.0)]
    fragment = data_quality_section(open_dataset(store, ref).quality)
    for title in ("Rows per step", "Columns", "Class balance", "Duplicates", "Near-duplicates", "Leakage",
                  "Likely label errors", "text length of body"):
        assert title in fragment, title
    assert "<script" not in fragment
    page = render_run_report(store, ctx.run_id, out_dir=tmp_path).read_text()
    assert "Data quality" in page and "Rows per step" in page


def _support_tickets(path: Path) -> Path:
    rows = []
    for i in range(60):
        body = f"ticket {i}: the app crashed after update {i % 7}"
        if i % 6 == 0:
            body += f", write to user{i}@example.com"
        if i % 10 == 3:
            body += ", card 4111 1111 1111 1111"
        rows.append({"body": body, "topic": ["bug", "billing"][i % 2], "customer": f"c{i % 9}"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("action", ["mask", "drop", "report"])
def test_pii_is_masked_dropped_or_reported_and_counted(store: Any, tmp_path: Path, action: str) -> None:
    path = _support_tickets(tmp_path / "t.csv")
    dataset = prepare(store, {"source": {"format": "csv", "path": str(path)},
                              "columns": {"text": "body", "label": "topic", "group": "customer"},
                              "pii": {"action": action}, "duplicates": {"near": None}})
    pii = steps(dataset)["pii"]
    # Ten e-mails (i = 0, 6, …, 54), six cards (i = 3, 13, …, 53); no row has both.
    assert pii["counts"] == {"found/card": 6, "found/email": 10, "rows/body": 16, "rows_with_pii": 16}
    assert pii["columns"] == ["body"]  # the group column is an identifier: not scanned unless named
    assert all("@" not in e["masked"] and "4111" not in e["masked"] for e in pii["examples"])
    pool = pd.concat([dataset.frame(s) for s in ("train", "valid", "test")])
    assert pii["rows_in"] == 60 and pii["rows_out"] == (44 if action == "drop" else 60) == len(pool)
    has_email = pool["body"].str.contains("@example.com", regex=False)
    if action == "mask":
        assert not has_email.any() and pool["body"].str.contains("<EMAIL>").sum() == 10
        assert pool["body"].str.contains("<CARD>").sum() == 6
    elif action == "report":
        assert has_email.sum() == 10
    else:
        assert not has_email.any() and not pool["body"].str.contains("4111").any()
    assert "personal data found, by type" in data_quality_section(dataset.quality)
