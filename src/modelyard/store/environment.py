"""Facts recorded with every run: host, package versions, git sha. No torch import."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

TRACKED_PACKAGES = ("modelyard", "torch", "numpy", "pandas", "pyarrow", "scikit-learn", "pydantic",
                    "safetensors", "sqlalchemy", "optuna", "transformers", "onnxruntime")


def host_facts() -> dict[str, object]:
    """Hostname, OS, Python, CPU count and memory of this machine."""
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_sha(cwd: str | Path | None = None) -> str | None:
    """The HEAD commit of the working directory's git checkout, or None."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and len(sha) == 40 else None
