"""Facts recorded with every run: host, package versions, git sha. No torch import."""

from __future__ import annotations

import functools
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


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    # Looked up once per process: a search creates a run per trial, and the metadata scan costs ~40 ms.
    out = []
    for name in TRACKED_PACKAGES:
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            continue
    return tuple(out)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    return dict(_package_versions())


def git_sha(cwd: str | Path | None = None) -> str | None:
    """The HEAD commit of the working directory's git checkout, or None.

    Asked once per process and folder: the code a process runs is what it imported when it
    started, so a commit made while it runs does not change what its runs used (and a search
    creating a run per trial does not start ``git`` each time).
    """
    return _git_sha(str(Path(cwd or os.getcwd()).resolve()))


@functools.lru_cache(maxsize=8)
def _git_sha(cwd: str) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and len(sha) == 40 else None


def process_cpu_seconds() -> float:
    """CPU seconds (user + system) this process and its finished children have used so far."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system + getattr(times, "children_user", 0.0)
                 + getattr(times, "children_system", 0.0))


def peak_rss_mb() -> float | None:
    """The highest resident memory of this process so far, in MiB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1 << 20) if platform.system() == "Darwin" else peak / 1024, 1)
