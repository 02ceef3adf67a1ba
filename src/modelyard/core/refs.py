"""References to artifacts in the store: the only things stages hand each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArtifactRef:
    """Names one artifact in the store by id (its content digest) and kind."""

    id: str
    kind: str

    @property
    def sha256(self) -> str:
        """The content digest; artifact ids are content-addressed."""
        return self.id

    @property
    def short(self) -> str:
        """The first 12 hex digits, for display."""
        return self.id[:12]


@dataclass(frozen=True)
class DatasetRef(ArtifactRef):
    """A prepared dataset (Parquet per split + schema + stats)."""

    kind: str = "dataset"


@dataclass(frozen=True)
class ModelRef(ArtifactRef):
    """A packaged model (safetensors + spec.json + preprocessing)."""

    kind: str = "model"


@dataclass(frozen=True)
class ReportRef(ArtifactRef):
    """A stage report (JSON figures, optional plots)."""

    kind: str = "report"


REF_TYPES: dict[str, type[ArtifactRef]] = {"dataset": DatasetRef, "model": ModelRef, "report": ReportRef}


def make_ref(artifact_id: str, kind: str) -> ArtifactRef:
    """Build the typed reference for ``kind`` (falls back to :class:`ArtifactRef`)."""
    cls = REF_TYPES.get(kind)
    return cls(id=artifact_id) if cls else ArtifactRef(id=artifact_id, kind=kind)  # type: ignore[call-arg]
