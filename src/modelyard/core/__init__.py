"""Shared vocabulary: artifact refs and manifests, hashing, errors, the plugin Registry.

No torch here: everything in ``core`` imports in milliseconds.
"""

from __future__ import annotations

from modelyard.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from modelyard.core.errors import (
    ArtifactError,
    AuthError,
    ConfigError,
    DataError,
    NotFoundError,
    PluginError,
    StoreError,
    TrainingError,
    YardError,
)
from modelyard.core.hashing import sha256_bytes, sha256_file, tree_digest
from modelyard.core.manifest import Manifest, build_manifest, read_manifest, verify_tree
from modelyard.core.names import check_name
from modelyard.core.refs import ArtifactRef, DatasetRef, ModelRef, ReportRef, make_ref
from modelyard.core.registry import Registry

__all__ = [
    "ArtifactError", "ArtifactRef", "AuthError", "ConfigError", "DataError", "DatasetRef", "Manifest",
    "ModelRef", "NotFoundError", "PluginError", "Registry", "ReportRef", "StoreError", "TrainingError",
    "YardError", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "build_manifest",
    "check_name", "make_ref", "read_manifest", "sha256_bytes", "sha256_file", "tree_digest", "verify_tree",
]
