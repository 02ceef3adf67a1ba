"""Render runs and their reports to self-contained HTML with embedded matplotlib plots."""

from __future__ import annotations

from modelyard.report.html import render_run_report

__all__ = ["render_run_report"]
