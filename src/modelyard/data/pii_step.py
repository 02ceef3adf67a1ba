"""The PII step of the stage: scan text and string columns chunk by chunk, count, mask or drop.

Detection itself lives in :mod:`modelyard.data.pii`; this module applies it to the
stage's chunks under the recipe's ``data.pii`` policy and records counts by type.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from modelyard.config.data import PiiConfig
from modelyard.core.errors import ConfigError, DataError
from modelyard.data.pii import scan_texts
from modelyard.data.quality import StepLog
from modelyard.data.schema import ROW, Roles
from modelyard.data.sources import Source


class PiiStep:
    """Applies ``data.pii`` to the chosen columns of each chunk."""

    def __init__(self, cfg: PiiConfig, columns: list[str], source: Source) -> None:
        self.cfg, self.columns, self.source = cfg, columns, source

    @classmethod
    def create(cls, cfg: PiiConfig, roles: Roles, source: Source) -> PiiStep:
        """Choose the columns (the recipe's, or the text column and string features).

        Raises:
            DataError: a named column does not exist or is not a string column.
        """
        strings = list(dict.fromkeys(roles.string_columns))
        keys = (roles.id, roles.group)  # identifiers are scanned only when named: masking merges them
        columns = cfg.columns if cfg.columns is not None else [c for c in strings if c not in keys]
        for col in columns:
            if col not in strings:
                raise DataError(f"pii column {col!r} is not a text or string column (those are: "
                                f"{', '.join(strings) or 'none'})", where="data.pii.columns")
            if cfg.action == "mask" and col == roles.group:
                raise ConfigError(f"masking the group column {col!r} would merge its groups into one per mask",
                                  where="data.pii.columns", hint="use pii.action: drop, or leave it unscanned")
        return cls(cfg, list(dict.fromkeys(columns)), source)

    def apply(self, frame: pd.DataFrame, log: StepLog) -> pd.DataFrame:
        """Scan, count and act on one chunk: counts ``found/<type>`` and ``rows/<column>``; masked examples."""
        action = self.cfg.action
        flagged = np.zeros(len(frame), dtype=bool)
        out = frame
        for col in self.columns:
            values = frame[col].tolist()
            result = scan_texts(values, self.cfg.types, action, max_examples=log.max_examples)  # type: ignore[arg-type]
            for kind, n in result.counts.items():
                log.count(f"found/{kind}", n)
            log.count(f"rows/{col}", result.rows_with_pii)
            if result.rows_with_pii:
                rows = frame[ROW].to_numpy()[result.has_pii]
                for row, excerpt in zip(rows, result.examples):
                    log.example(row=self.source.locate(int(row)), column=col, masked=excerpt)
            flagged |= result.has_pii
            if action == "mask" and result.rows_with_pii:
                if out is frame:
                    out = frame.copy()
                out[col] = pd.Series(result.texts, index=frame.index, dtype=frame[col].dtype)
        log.count("rows_with_pii", int(flagged.sum()))
        if action == "drop":
            out = out.loc[~flagged]
        log.rows(len(frame), len(out))
        log.details.update(action=self.cfg.action, types=list(self.cfg.types), columns=self.columns)
        return out
