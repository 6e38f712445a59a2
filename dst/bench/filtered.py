"""Filtered search and metric figures (issue 12), through the protocol only.

``filtered_figures`` stores ``n`` rows with one int attribute ``bucket``
(row i has ``i % 100``) by ``store_batch`` triples, then searches with
``where=`` at 1% (``bucket = 0``) and 50% (``bucket < 50``) selectivity.
Per selectivity: search p50 (ms), recall@k against the exact top-k of the
matching rows (float64, the backend's metric), and completeness: the share
of searches that returned ``min(limit, matching)`` rows. A backend without
``filters = True`` gets ``"n/a"`` with the reason, never a number.
``metric_figures``: unfiltered search p50 under each metric.

A variant with an ``index`` option builds it (``maintenance("index")``)
after the load, so the searches go through the store's ANN index and its
filtering strategy: ``FILTER_VARIANTS`` adds, per bench variant, the runs
that differ only in how a filter meets the index (LanceDB ``prefilter``
false: the filter applied after the ANN search; pgvector ``complete=true``:
a short answer re-asked exactly).

``python -m dst.bench.filtered VARIANT [N] [DIM]`` prints the figures as JSON
(VARIANT: a backend, a ``dst bench`` variant such as ``pgvector-hnsw``, or a
FILTER_VARIANTS name such as ``lance-hnsw-sq-postfilter``).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from typing import Any

import numpy as np

from dst import wallclock
from dst.backend import BackendConfig, open_backend, resolve_backend
from dst.bench.backends import VARIANTS, make_data, median, row_id

SELECTIVITIES = {"1%": {"eq": ["bucket", 0]}, "50%": {"lt": ["bucket", 50]}}
K = 10
# bench variant -> the filtered-search runs it stands for: (name, label, options)
FILTER_VARIANTS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "lance-hnsw-sq": [("lance-hnsw-sq", "lance IVF_HNSW_SQ, prefilter (default)", {"index": "IVF_HNSW_SQ"}),
                      ("lance-hnsw-sq-postfilter", "lance IVF_HNSW_SQ, prefilter=false",
                       {"index": "IVF_HNSW_SQ", "prefilter": "false"})],
    "pgvector-hnsw": [("pgvector-hnsw", "pgvector hnsw (ef_search 40)", {"index": "hnsw"}),
                      ("pgvector-hnsw-complete", "pgvector hnsw, complete=true",
                       {"index": "hnsw", "complete": "true"})],
}


def filter_runs(variant: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, label, backend, options) of the filtered runs a bench variant
    (or one FILTER_VARIANTS name) stands for."""
    for v, runs in FILTER_VARIANTS.items():
        for name, label, opts in runs:
            if variant == name and name != v:
                return [(name, label, VARIANTS[v][0], opts)]
    if variant in FILTER_VARIANTS:
        return [(name, label, VARIANTS[variant][0], opts) for name, label, opts in FILTER_VARIANTS[variant]]
    if variant in VARIANTS:
        backend, opts, label = VARIANTS[variant]
        return [(variant, label, backend, dict(opts))]
    return [(variant, variant, variant, {})]


def _scores(data: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    d = data.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "cosine":
        return (d @ q) / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))
    if metric == "dot":
        return d @ q
    return -np.linalg.norm(d - q, axis=1)


def _open(backend: str, dim: int, metric: str, location: str | None, options: dict[str, Any] | None = None):
    factory = resolve_backend(backend)
    return open_backend(factory, BackendConfig(dim=dim, location=location, namespace="dst_bench_filtered",
                                               fresh=True, metric=metric, options=dict(options or {})))


def filtered_figures(backend: str, n: int = 10_000, dim: int = 128, queries: int = 50,
                     metric: str = "cosine", location: str | None = None, seed: int = 0,
                     options: dict[str, Any] | None = None, label: str | None = None) -> dict[str, Any]:
    data, qs = make_data(n, dim, queries, seed)
    qs = qs[:queries]
    ids = [row_id(i) for i in range(n)]
    bucket = np.arange(n) % 100
    out: dict[str, Any] = {"backend": backend, "label": label or backend, "options": dict(options or {}),
                           "n": n, "dim": dim, "k": K, "metric": metric,
                           "queries": len(qs), "selectivity": {}}
    b = _open(backend, dim, metric, location, options)
    try:
        if not getattr(b, "filters", False):
            reason = f"{backend} does not declare filters = True (no attributes or where=)"
            out["selectivity"] = {s: {"p50_ms": "n/a", "recall": "n/a", "completeness": "n/a",
                                      "reason": reason} for s in SELECTIVITIES}
            return out
        for a in range(0, n, 1000):
            b.store_batch([(ids[i], data[i], {"bucket": int(bucket[i])}) for i in range(a, min(n, a + 1000))])
        if (options or {}).get("index"):
            t0 = wallclock.monotonic_s()
            b.maintenance("index")
            out["index_build_s"] = round(wallclock.monotonic_s() - t0, 2)
        for name, where in SELECTIVITIES.items():
            mask = bucket == 0 if name == "1%" else bucket < 50
            idx = np.nonzero(mask)[0]
            want_len = min(K, len(idx))
            times, recalls, complete = [], [], 0
            for q in qs:
                t0 = wallclock.monotonic_s()
                hits = b.search(q, K, where=where)
                times.append(wallclock.monotonic_s() - t0)
                sc = _scores(data[idx], q, metric)
                order = sorted(range(len(idx)), key=lambda j: (-sc[j], ids[idx[j]]))[:want_len]
                truth = {ids[idx[j]] for j in order}
                got = [h.id for h in hits]
                recalls.append(len(truth & set(got)) / want_len if want_len else 1.0)
                complete += len(got) == want_len
            out["selectivity"][name] = {"matching": int(len(idx)), "p50_ms": median(times) * 1000,
                                        "recall": float(np.mean(recalls)),
                                        "completeness": complete / len(qs)}
        return out
    finally:
        done = getattr(b, "drop", None) or b.close
        done()


def metric_figures(backend: str = "sim", n: int = 10_000, dim: int = 128, queries: int = 50,
                   location: str | None = None, seed: int = 0) -> dict[str, Any]:
    data, qs = make_data(n, dim, queries, seed)
    ids = [row_id(i) for i in range(n)]
    out: dict[str, Any] = {"backend": backend, "n": n, "dim": dim, "metrics": {}}
    for metric in ("cosine", "l2", "dot"):
        b = _open(backend, dim, metric, location)
        try:
            for a in range(0, n, 1000):
                b.store_batch([(ids[i], data[i]) for i in range(a, min(n, a + 1000))])
            times = []
            for q in qs[:queries]:
                t0 = wallclock.monotonic_s()
                b.search(q, K)
                times.append(wallclock.monotonic_s() - t0)
            out["metrics"][metric] = {"p50_ms": median(times) * 1000}
        finally:
            b.close()
    return out


def main(argv: list[str]) -> int:
    variant = argv[0] if argv else "sim"
    n = int(argv[1]) if len(argv) > 1 else 10_000
    dim = int(argv[2]) if len(argv) > 2 else 128
    runs = filter_runs(variant)
    backend = runs[0][2]
    loc = tempfile.mkdtemp(prefix="dst-bench-filtered-") if backend != "pgvector" else None
    try:
        out: dict[str, Any] = {"filtered": [filtered_figures(b, n, dim, location=loc, options=o, label=lab)
                                            for _, lab, b, o in runs]}
        if variant == backend:
            out["metrics"] = metric_figures(backend, n, dim, location=loc)
        print(json.dumps(out, indent=1))
    finally:
        if loc:
            shutil.rmtree(loc, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
