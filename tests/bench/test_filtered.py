"""The filtered-search bench (issue 12): recall and completeness on sim are
exact, a backend ignoring the filter shows it, one without filters says
n/a with the reason (never 0)."""

from __future__ import annotations

from dst.bench.filtered import filtered_figures, metric_figures


def test_sim_is_exact_and_complete(tmp_path):
    f = filtered_figures("sim", n=1000, dim=16, queries=10, location=str(tmp_path))
    for name, m in (("1%", 10), ("50%", 500)):
        row = f["selectivity"][name]
        assert row["matching"] == m
        assert row["recall"] == 1.0 and row["completeness"] == 1.0
        assert row["p50_ms"] > 0


def test_filter_ignored_lowers_recall(tmp_path):
    f = filtered_figures("tests.broken_backends:filter_ignored", n=1000, dim=16, queries=10,
                         location=str(tmp_path))
    assert f["selectivity"]["1%"]["recall"] < 0.5


def test_backend_without_filters_is_na(tmp_path):
    f = filtered_figures("tests.broken_backends:lost_write", n=1000, dim=16, queries=5,
                         location=str(tmp_path))
    row = f["selectivity"]["1%"]
    assert row["p50_ms"] == "n/a" and row["recall"] == "n/a" and "filters" in row["reason"]


def test_metric_rows_on_sim(tmp_path):
    f = metric_figures("sim", n=1000, dim=16, queries=5, location=str(tmp_path))
    assert sorted(f["metrics"]) == ["cosine", "dot", "l2"]
    assert all(v["p50_ms"] > 0 for v in f["metrics"].values())
