"""Stage 1, prepare: raw source → DatasetRef.

Reads the recipe's ``data.source`` as a stream of chunks (CSV, TSV, JSONL, Parquet, a
folder of images per class, a text corpus, numpy arrays, scikit-learn datasets), then:

1. validates every row against the resolved column roles and types (fail / drop / fill);
2. cleans: Unicode NFKC, trimming, empty texts, missing values;
3. finds personal data (e-mails, phones, cards, IPs, IBANs, national ids) and masks or drops it;
4. removes exact duplicates, reports conflicting ones, finds near-duplicate texts (MinHash LSH);
5. flags likely label errors (out-of-fold probabilities + cleanlab), reports, drops or relabels;
6. splits train / valid / test (random, stratified, grouped, time-ordered; k folds), seeded;
7. removes rows of valid / test that leak from another split;
8. writes Parquet per split + schema + the preprocessor fitted on train (fills, outlier
   bounds, scaling) + stats (class balance, class weights) + ``quality.json``.

Balancing (over/under-sampling, SMOTE, ADASYN) and augmentation touch the train split only,
when it is loaded (:meth:`Dataset.arrays`, :meth:`Dataset.texts`), so folds refit them.

    yard data prepare recipes/quickstart.yaml
    yard data report <dataset-id>
"""

from __future__ import annotations

from modelyard.config.recipe import Recipe
from modelyard.core.refs import DatasetRef
from modelyard.data.artifact import Dataset, open_dataset
from modelyard.data.preprocess import Preprocessor
from modelyard.data.schema import DatasetSchema
from modelyard.store.context import RunContext


def run(recipe: Recipe, *, ctx: RunContext) -> DatasetRef:
    """Prepare the dataset described by the recipe's ``data:`` section and publish it to the store.

    Args:
        recipe: the validated recipe (its ``data``, ``task`` and ``seed`` are used).
        ctx: the run context (store, run id, metrics).

    Returns:
        The reference of the (content-addressed) dataset artifact: the same input and
        recipe always give the same id.

    Raises:
        DataError: unreadable or invalid data, naming the file, row and column.
        ConfigError: options that do not fit the data (e.g. an augmentation for another modality).
    """
    from modelyard.data.prepare import prepare

    return prepare(recipe, ctx=ctx)


__all__ = ["Dataset", "DatasetSchema", "Preprocessor", "open_dataset", "run"]
