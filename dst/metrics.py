"""Distance metrics and their scores (higher is better for every metric).

==========  =====================================================================
``cosine``  the cosine similarity, in [-1, 1] (the default); zero vectors invalid
``l2``      minus the Euclidean distance (not squared): 0 is the query itself
``dot``     the inner product
==========  =====================================================================

The oracle computes every score in float64 from the stored float32
vectors. ``tolerance`` is how far a reported score may be from the true
one: ``score_eps`` under cosine, whose scores are bounded; under ``l2`` and
``dot``, whose scores grow with the vectors' norms (and a store computes
them in float32), ``score_eps`` times the score's magnitude, at least
``score_eps``.
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("cosine", "l2", "dot")
DEFAULT = "cosine"


def metric_problem(metric: object) -> str | None:
    if metric not in METRICS:
        return f"metric must be one of {', '.join(METRICS)}, got {metric!r}"
    return None


def score(metric: str, a: np.ndarray, b: np.ndarray) -> float:
    """The score of two float32 vectors, in float64."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if metric == "cosine":
        return float(a64 @ b64 / (math.sqrt(a64 @ a64) * math.sqrt(b64 @ b64)))
    if metric == "l2":
        d = a64 - b64
        return -math.sqrt(float(d @ d))
    if metric == "dot":
        return float(a64 @ b64)
    raise ValueError(metric_problem(metric))


def scores(metric: str, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The scores of ``query`` against every row of ``rows`` (float64).
    Under cosine, zero rows score 0 (they are never valid)."""
    m = np.asarray(rows, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if m.shape[0] == 0:
        return np.zeros(0)
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", m, m))
        norms[norms == 0] = 1.0
        qn = math.sqrt(float(q @ q)) or 1.0
        return (m @ q) / norms / qn
    if metric == "l2":
        d = m - q
        return -np.sqrt(np.einsum("ij,ij->i", d, d))
    if metric == "dot":
        return m @ q
    raise ValueError(metric_problem(metric))


def tolerance(metric: str, eps: float, true_score: float) -> float:
    """How far a reported score may lie from ``true_score`` (module doc)."""
    if metric == "cosine":
        return eps
    return eps * max(1.0, abs(true_score))
