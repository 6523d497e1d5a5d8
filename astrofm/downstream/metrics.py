"""Metrics of probes, retrieval and anomaly rankings, computed with scikit-learn and torchmetrics.

- regression: R², MAE; for redshift also NMAD = 1.4826 · median(|δ − median δ|) with
  δ = (z_pred − z_true) / (1 + z_true), and the outlier fraction |δ| > 0.15;
- classification: accuracy, macro-F1, confusion matrix (rows: true class, columns: predicted);
- rankings: precision in the top k, recall@k of neighbour lists;
- any of them: a bootstrap interval over the objects (how much a figure moves with the sample).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from astrofm.errors import ConfigError

#: |Δz| / (1 + z) above which a redshift is an outlier.
OUTLIER_THRESHOLD = 0.15
_NMAD_SCALE = 1.4826


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """R² and MAE (scikit-learn)."""
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    return {
        "r2": float(r2_score(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "n": len(y_true),
    }


def redshift_metrics(z_true: Any, z_pred: Any) -> dict[str, float]:
    """R², MAE, NMAD and the outlier fraction |Δz|/(1+z) > 0.15."""
    from sklearn.metrics import median_absolute_error

    z_true, z_pred = np.asarray(z_true, np.float64), np.asarray(z_pred, np.float64)
    delta = (z_pred - z_true) / (1.0 + z_true)
    nmad = _NMAD_SCALE * median_absolute_error(delta, np.full_like(delta, np.median(delta)))
    return {
        **regression_metrics(z_true, z_pred),
        "nmad": float(nmad),
        "outlier_fraction": float(np.mean(np.abs(delta) > OUTLIER_THRESHOLD)),
    }


def classification_metrics(y_true: Any, y_pred: Any, labels: Sequence[Any] | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, the majority-class accuracy and the confusion matrix (scikit-learn).

    The confusion matrix spans ``labels`` (e.g. the training classes) and every class of ``y_true`` and
    ``y_pred``, so it counts every object; macro-F1 averages the classes of ``y_true`` and ``y_pred``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    present = np.union1d(y_true, y_pred)
    labels = list(present if labels is None else np.union1d(labels, present))
    _, counts = np.unique(y_true, return_counts=True)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "majority_accuracy": float(counts.max() / len(y_true)) if len(y_true) else 0.0,
        "n": len(y_true),
        "labels": [_plain(label) for label in labels],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def precision_at_k(relevant: Any, scores: Any, k: int) -> float:
    """Fraction of relevant items among the ``k`` highest ``scores`` (torchmetrics retrieval precision)."""
    import torch
    from torchmetrics.functional.retrieval import retrieval_precision

    relevant_t = torch.as_tensor(np.asarray(relevant, bool))
    scores_t = torch.as_tensor(np.asarray(scores, np.float64))
    return float(retrieval_precision(scores_t, relevant_t, top_k=int(k)))


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of the true neighbours (``truth`` (q, k)) present in ``found`` (q, ≥k).

    Negative entries (-1: fewer than k neighbours exist, or none was found) are no neighbours.
    """
    found, truth = np.asarray(found), np.asarray(truth)
    real = truth >= 0
    hits = sum(len(np.intersect1d(f, t[keep])) for f, t, keep in zip(found, truth, real))
    total = int(real.sum())
    return hits / total if total else 0.0


def bootstrap_interval(statistic: Callable[..., float], *columns: Any, level: float = 0.95, resamples: int = 1000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*columns)``: the objects (rows, shared by all ``columns``) are
    resampled with replacement ``resamples`` times; returns the (lower, upper) quantiles at ``level``."""
    arrays = [np.asarray(c) for c in columns]
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1 or 0 in lengths:
        raise ConfigError(f"bootstrap_interval needs columns of one non-zero length, not lengths {sorted(lengths)}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"bootstrap level must lie in (0, 1), not {level}")
    n = lengths.pop()
    rng = np.random.default_rng(seed)
    values = [statistic(*(a[rows] for a in arrays)) for rows in rng.integers(0, n, size=(resamples, n))]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
