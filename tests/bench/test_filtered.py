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


def test_filter_runs_name_the_index_alternatives():
    from dst.bench.filtered import filter_runs
    assert [r[0] for r in filter_runs("lance-hnsw-sq")] == ["lance-hnsw-sq", "lance-hnsw-sq-postfilter"]
    assert filter_runs("pgvector-hnsw-complete") == [
        ("pgvector-hnsw-complete", "pgvector hnsw, complete=true", "pgvector", {"index": "hnsw", "complete": "true"})]
    assert filter_runs("lance") == [("lance", "lance (exact)", "lance", {})]
    assert filter_runs("sim")[0][2] == "sim"


def test_bench_rows_for_sim(tmp_path):
    from dst.bench.suite import filtered_rows
    (row,) = filtered_rows(["sim"], 1000, None)
    assert row["variant"] == "sim" and row["selectivity"]["1%"]["completeness"] == 1.0


def test_lance_postfilter_answers_short_and_prefilter_does_not(tmp_path):
    # LanceDB documents it: prefilter=False filters the candidates the vector
    # search already cut to `limit`, so fewer rows come back. The bench builds
    # the index (maintenance) and counts what came back, whatever it is.
    pre = filtered_figures("lance", n=1000, dim=16, queries=5, location=str(tmp_path / "a"),
                           options={"index": "IVF_FLAT"})
    post = filtered_figures("lance", n=1000, dim=16, queries=5, location=str(tmp_path / "b"),
                            options={"index": "IVF_FLAT", "prefilter": "false"})
    assert pre["index_build_s"] >= 0 and post["index_build_s"] >= 0
    assert pre["selectivity"]["1%"]["completeness"] == 1.0
    assert post["selectivity"]["1%"]["completeness"] < 1.0
    assert post["selectivity"]["50%"]["completeness"] < 1.0
