"""Metrics: ``fn(*, y_true, y_pred, y_prob=None) -> float`` registered in ``METRICS``."""
