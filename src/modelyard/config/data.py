"""The recipe's ``data:`` section (stage 1, prepare).

    data:
      source: {path: data/tickets.csv, format: csv}
      columns: {text: body, label: category, group: customer_id}
      clean: {missing: median, outliers: {method: iqr, action: clip}, unicode: NFKC}
      duplicates: {exact: drop, near: {threshold: 0.8, action: report}, leakage: remove}
      pii: {action: mask}
      label_issues: {action: report}
      balance: {method: oversample}
      augment: {text: [{name: random-swap, p: 0.1}]}
      split: {valid: 0.1, test: 0.1, stratify: true}

Every sub-section has defaults, so ``data: {source: {...}}`` is a complete section.
Plugin names (augmentations) are checked by the data stage, which knows the registry.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from modelyard.config.base import Section

SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "iris", "diabetes")
PiiType = Literal["email", "phone", "card", "ip", "iban", "national_id"]
PII_TYPES: tuple[PiiType, ...] = ("email", "phone", "card", "ip", "iban", "national_id")


class SourceConfig(Section):
    """Where the raw data comes from, and how to read it."""

    format: Literal["csv", "tsv", "jsonl", "parquet", "images", "text", "numpy", "sklearn"] = Field(
        description="csv, tsv, jsonl, parquet; images (a folder root/<label>/*.png|jpg); text (a plain-text "
                    "corpus); numpy (.npz with x and y, or .npy of inputs); sklearn (a bundled dataset)."
    )
    path: str | None = Field(
        default=None, description="Data file or folder, relative to the working directory (all but sklearn)."
    )
    name: Literal["digits", "breast_cancer", "wine", "iris", "diabetes"] | None = Field(
        default=None, description="Bundled scikit-learn dataset name (format: sklearn)."
    )
    encoding: str = Field(
        default="auto",
        description="Text encoding of csv / tsv / jsonl / text files: auto (BOM, then UTF-8, then a detector) "
                    "or a codec name such as utf-8, cp1252, utf-16.",
    )
    chunk_rows: int = Field(
        default=100_000, ge=1,
        description="Rows read per chunk: files are streamed, so memory follows the chunk, not the file.",
    )
    bad_rows: Literal["fail", "skip"] = Field(
        default="fail", description="Ragged CSV rows / undecodable images: fail naming them, or skip and count."
    )
    image_size: list[int] | None = Field(
        default=None, min_length=2, max_length=2,
        description="images: [height, width] every image is resized to (default: the first image's size).",
    )
    image_mode: Literal["L", "RGB"] = Field(
        default="RGB", description="images: decode as grey (L, 1 channel) or colour (RGB, 3 channels)."
    )
    text_unit: Literal["line", "paragraph"] = Field(
        default="line", description="text: one document per non-empty line, or per blank-line separated paragraph."
    )
    x_key: str = Field(default="x", description="numpy (.npz): the array of inputs, (N, F) or (N, [C,] H, W).")
    y_key: str = Field(default="y", description="numpy (.npz): the array of labels, (N,).")

    @model_validator(mode="after")
    def _path_or_name(self) -> SourceConfig:
        if self.format == "sklearn":
            if self.name is None:
                raise ValueError("format 'sklearn' needs 'name' (one of " + ", ".join(SKLEARN_DATASETS) + ")")
        elif not self.path:
            raise ValueError(f"format {self.format!r} needs 'path'")
        if self.image_size is not None and min(self.image_size) < 1:
            raise ValueError(f"image_size {self.image_size} must be positive [height, width]")
        return self


class ColumnsConfig(Section):
    """Which columns play which role. Undeclared columns become features, typed by inference."""

    label: str | None = Field(default=None, description="The label / target column.")
    features: list[str] | None = Field(
        default=None,
        description="Tabular input columns; default: every column without another role and not ignored.",
    )
    numeric: list[str] = Field(default_factory=list, description="Columns forced to numeric (else inferred).")
    categorical: list[str] = Field(
        default_factory=list, description="Columns forced to categorical, e.g. numeric codes (else inferred)."
    )
    text: str | None = Field(default=None, description="The text column (text tasks).")
    group: str | None = Field(default=None, description="Group column: no group spans two splits.")
    id: str | None = Field(default=None, description="Row id column: kept in the dataset, never a feature.")
    weight: str | None = Field(default=None, description="Per-row sample weight column (numeric, ≥ 0).")
    time: str | None = Field(default=None, description="Timestamp / order column for time-ordered splits.")
    ignore: list[str] = Field(default_factory=list, description="Columns dropped on read.")
    label_values: list[str] | None = Field(
        default=None, description="The allowed labels; any other label is an invalid row (see validation)."
    )

    @model_validator(mode="after")
    def _roles_distinct(self) -> ColumnsConfig:
        single = {role: getattr(self, role) for role in ("label", "text", "group", "id", "weight", "time")}
        named = [(role, col) for role, col in single.items() if col is not None]
        seen: dict[str, str] = {}
        for role, col in named:
            if col in seen and not {role, seen[col]} <= {"group", "id"}:
                raise ValueError(f"column {col!r} cannot be both {seen[col]} and {role}")
            seen[col] = role
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"column {both[0]!r} cannot be both numeric and categorical")
        for col in [*self.ignore]:
            if col in seen:
                raise ValueError(f"column {col!r} is ignored but is also the {seen[col]} column")
        return self


class ValidationConfig(Section):
    """What happens to rows that fail their column's type, or carry an invalid or missing label."""

    invalid: Literal["fail", "drop", "fill"] = Field(
        default="fail",
        description="fail (name the first bad row), drop the row, or fill (the bad value becomes missing and "
                    "clean.missing handles it; a bad label is dropped).",
    )
    numeric_share: float = Field(
        default=0.9, gt=0.5, le=1.0,
        description="A column is inferred numeric when at least this share of its non-missing values parse "
                    "as numbers; the others are then type failures.",
    )


class OutlierConfig(Section):
    """Outliers of numeric features, with bounds fitted on the train split only."""

    method: Literal["none", "iqr", "zscore"] = Field(default="none", description="none, iqr, or zscore.")
    threshold: float | None = Field(
        default=None, gt=0.0, description="IQR multiplier (default 1.5) or z-score limit (default 3.0)."
    )
    action: Literal["clip", "drop"] = Field(
        default="clip",
        description="clip values to the bounds (every split and serving), or drop train rows outside them.",
    )


class CleanConfig(Section):
    """Cleaning: missing values, outliers, text normalisation."""

    missing: Literal["drop", "mean", "median", "mode", "constant", "fail"] = Field(
        default="drop",
        description="Missing feature values: drop the row, fill with the train split's mean / median / mode, "
                    "fill a constant, or fail.",
    )
    fill_value: float | str = Field(default=0.0, description="The constant for missing: constant.")
    outliers: OutlierConfig = Field(default_factory=OutlierConfig, description="Outlier handling.")
    unicode: Literal["NFKC", "NFC", "none"] = Field(default="NFKC", description="Unicode normalisation of text.")
    strip: bool = Field(default=True, description="Trim surrounding whitespace of text and string values.")
    drop_empty_text: bool = Field(default=True, description="Drop rows whose text is empty or whitespace only.")


class NearDuplicateConfig(Section):
    """Near-duplicate texts by MinHash LSH over character shingles."""

    threshold: float = Field(default=0.8, gt=0.0, le=1.0, description="Jaccard similarity of near-duplicates.")
    action: Literal["report", "drop"] = Field(
        default="report", description="report the groups, or drop all but the first row of each group."
    )
    max_rows: int = Field(
        default=1_000_000, ge=1, description="Skip (and say so) above this many texts: MinHash is in memory."
    )


class DuplicatesConfig(Section):
    """Exact and near duplicates, conflicting labels, and train/valid/test leakage."""

    exact: Literal["drop", "report", "off"] = Field(
        default="drop", description="Exact duplicate rows (after normalisation): drop all but the first, report, off."
    )
    near: NearDuplicateConfig | None = Field(
        default_factory=NearDuplicateConfig,
        description="Near-duplicate texts (text data only); null: off.",
    )
    conflicts: Literal["report", "drop"] = Field(
        default="report",
        description="Same input with different labels: report, or drop every row of such a group.",
    )
    leakage: Literal["remove", "report"] = Field(
        default="remove",
        description="Rows of valid/test that duplicate (exactly or nearly) a row of another split: remove them "
                    "from the evaluation split, or only report them.",
    )


class PiiConfig(Section):
    """Personal data in text and string columns."""

    action: Literal["off", "report", "mask", "drop"] = Field(
        default="off", description="off, report counts, mask with typed tokens (<EMAIL> …), or drop the row."
    )
    types: list[PiiType] = Field(
        default_factory=lambda: list(PII_TYPES), description="Kinds of personal data to look for."
    )
    columns: list[str] | None = Field(
        default=None, description="Columns to scan; default: the text column and every string feature."
    )


class LabelIssuesConfig(Section):
    """Likely label errors: out-of-fold probabilities of a quick model + confident learning (cleanlab)."""

    action: Literal["off", "report", "drop", "relabel"] = Field(
        default="off", description="off, report the flagged rows, drop them, or relabel them with the suggestion."
    )
    folds: int = Field(default=5, ge=2, le=20, description="Cross-validation folds for out-of-fold probabilities.")
    max_rows: int = Field(
        default=200_000, ge=10, description="Skip (and say so) above this many rows: the quick model is in memory."
    )
    min_confidence: float = Field(
        default=0.1, ge=0.0, lt=1.0,
        description="Also flag rows whose label gets less out-of-fold probability than this while the quick "
                    "models predict another class (0: confident learning alone).",
    )


class BalanceConfig(Section):
    """Class imbalance of the train split (classification)."""

    method: Literal["none", "oversample", "undersample", "smote", "adasyn", "class_weights"] = Field(
        default="none",
        description="none; random oversample / undersample (any modality); smote / adasyn (numeric features); "
                    "class_weights (passed to training's loss).",
    )
    k_neighbors: int = Field(default=5, ge=1, description="Neighbours of SMOTE / ADASYN.")


class AugmentationSpec(Section):
    """One augmentation plugin with its probability and parameters."""

    name: str = Field(description="A registered augmentation (yard data augmentations lists them).")
    p: float = Field(default=0.5, ge=0.0, le=1.0, description="Probability of applying it to a sample.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the plugin.")


class AugmentConfig(Section):
    """Augmentation of the train split only, per modality."""

    image: list[AugmentationSpec] = Field(default_factory=list, description="Image augmentations, in order.")
    text: list[AugmentationSpec] = Field(default_factory=list, description="Text augmentations, in order.")
    tabular: list[AugmentationSpec] = Field(default_factory=list, description="Tabular augmentations, in order.")
    copies: int = Field(
        default=1, ge=1, le=20,
        description="Augmented copies of each train row added when the split is loaded (offline mode).",
    )
    mode: Literal["offline", "online"] = Field(
        default="offline",
        description="offline: copies are added when training loads the split; online: the training loop "
                    "applies the pipeline (Dataset.augmenter()) to each train batch, a fresh draw every epoch "
                    "seeded per step (resume stays exact); valid and test are never augmented.",
    )


class SplitConfig(Section):
    """How rows are divided into train / valid / test."""

    method: Literal["auto", "random", "stratified", "group", "time"] = Field(
        default="auto",
        description="auto (group if a group column, else stratified for classification when stratify is on, "
                    "else random), random, stratified, group (no group in two splits), time (oldest → train).",
    )
    valid: float = Field(default=0.1, ge=0.0, lt=1.0, description="Fraction of rows for validation.")
    test: float = Field(default=0.1, ge=0.0, lt=1.0, description="Fraction of rows for the test split.")
    stratify: bool = Field(default=True, description="Keep class proportions in every split (classification).")
    folds: int | None = Field(
        default=None, ge=2, le=50,
        description="k-fold: the non-test rows get a fold 0..k-1 (fold 0 is the valid split); valid is ignored.",
    )

    @model_validator(mode="after")
    def _leaves_train(self) -> SplitConfig:
        if self.folds is None and self.valid + self.test >= 1.0:
            raise ValueError(f"valid + test = {self.valid + self.test:g} leaves no training rows")
        return self


class DataConfig(Section):
    """Stage 1: read, validate, clean, deduplicate, de-identify, balance and split into a dataset artifact."""

    source: SourceConfig = Field(description="Where the raw data is.")
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig, description="Column roles.")
    validation: ValidationConfig = Field(default_factory=ValidationConfig, description="Schema validation policy.")
    clean: CleanConfig = Field(default_factory=CleanConfig, description="Cleaning.")
    normalize: Literal["standardize", "minmax", "none"] = Field(
        default="standardize",
        description="Numeric features: standardize or min-max, fitted on the train split only and saved with "
                    "the dataset (preprocessor.json) so serving applies the same transform.",
    )
    duplicates: DuplicatesConfig = Field(default_factory=DuplicatesConfig, description="Duplicates and leakage.")
    pii: PiiConfig = Field(default_factory=PiiConfig, description="Personal data detection and masking.")
    label_issues: LabelIssuesConfig = Field(default_factory=LabelIssuesConfig, description="Label errors.")
    balance: BalanceConfig = Field(default_factory=BalanceConfig, description="Class imbalance.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Train-split augmentation.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train / valid / test split.")
    max_examples: int = Field(default=5, ge=0, le=100, description="Examples each step keeps in the quality report.")
