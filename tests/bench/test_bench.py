"""dst bench end to end on a tiny configuration: every figure present and
sane per row, the SVG written and well-formed, a backend that cannot
start reported in its row. No timing thresholds: speed goals belong to
the benchmark, not to the tests."""

import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from dst import pg_embedded
from dst.bench.backends import ROW_KEYS, Truth, make_data, parse_variants, row_id
from dst.report.svg import Chart, Series, grid
from tests.conftest import ROOT, run_cli

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def dsn():
    return os.environ.get(pg_embedded.DSN_ENV) or pg_embedded.ensure_server(ROOT / pg_embedded.DEFAULT_DIR).dsn()   # pg18


def _positive(x):
    return isinstance(x, (int, float)) and x > 0


def test_bench_tiny_all_backends(in_tmp, dsn, capsys, monkeypatch):
    import dst.bench.suite
    # Isolation's cost on sim only: a lance child takes tens of seconds to
    # start and warm up on a busy machine (same code, with a folder).
    monkeypatch.setattr(dst.bench.suite, "ISOLATE_BACKENDS", ("sim",))
    code = run_cli("bench", "--sizes", "300", "--dims", "8", "--queries", "20", "--upserts", "10",
                   "--backends", "sim,lance,pgvector", "--scenario", "default", "--seeds", "3",
                   "--pg-location", dsn, "--report-dir", "out", "--json", "--isolate-ops", "20")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    files = sorted((in_tmp / "out").iterdir())
    jsons = [f for f in files if f.suffix == ".json"]
    svgs = [f for f in files if f.suffix == ".svg"]
    assert len(jsons) == 1 and len(svgs) == 1 and jsons[0].stem == svgs[0].stem
    out = json.loads(jsons[0].read_text())
    assert json.loads(captured.out) == out            # --json prints the same document
    assert "reach@10" in captured.err                  # the tables go to stderr with --json
    assert out["plot"] == svgs[0].name

    rows = out["backends"]
    assert [r["variant"] for r in rows] == parse_variants("sim,lance,pgvector")
    for r in rows:
        assert set(ROW_KEYS) <= set(r), r["variant"]
        assert r["status"] == "ok", (r["variant"], r["error"])
        assert (r["n"], r["dim"], r["queries"]) == (300, 8, 20)
        assert _positive(r["insert_rows_per_s"]) and _positive(r["insert_s"])
        assert _positive(r["upsert_p50_ms"]) and r["upsert_p95_ms"] >= r["upsert_p50_ms"]
        assert _positive(r["search_p50_ms"]) and r["search_p95_ms"] >= r["search_p50_ms"]
        assert 0.0 <= r["recall_at_10"] <= 1.0
        assert r["reach_checked"] == 200 and 0.0 <= r["reachability"] <= 1.0   # 300 rows: a sample of 200
        if r["exact"]:
            assert r["recall_at_10"] == 1.0, r["variant"]
            assert r["reachability"] == 1.0, r["variant"]
            assert r["index_build_s"] is None
        else:
            assert r["index_build_s"] is not None and r["index_build_s"] >= 0
        assert isinstance(r["rss_growth_mb"], float)
        assert r["peak_rss_growth_mb"] is None or r["peak_rss_growth_mb"] >= 0
        if r["backend"] == "sim":
            assert r["disk_mb"] is None and r["overhead"] is None and r["raw"] is None
        else:
            assert _positive(r["disk_mb"])
            assert set(r["overhead"]) == {"insert", "upsert", "search"}
            assert all(_positive(v) for v in r["overhead"].values()), r["overhead"]
            # the insert comparison: the adapter's interleaved loads against the raw driver's
            assert _positive(r["raw"]["adapter_insert_s"]) and _positive(r["raw"]["insert_ratio"])
            assert r["raw"]["insert_ratio"] == round(r["raw"]["insert_s"] / r["raw"]["adapter_insert_s"], 3)
            assert _positive(r["raw"]["insert_rows_per_s"]) and _positive(r["raw"]["search_p50_ms"])
            assert 0.0 <= r["raw"]["recall_at_10"] <= 1.0
            if r["exact"]:
                assert r["raw"]["recall_at_10"] == 1.0
    pg = [r for r in rows if r["backend"] == "pgvector"]
    assert captured.err.count(" rows/s = ") == len([r for r in rows if r["backend"] != "sim"])  # the ratios
    assert all(r["driver"]["pgvector"] for r in pg)
    # filtered search: every variant, with an index also its filter-vs-index alternative
    flt = out["filtered"]
    assert [f["variant"] for f in flt] == ["sim", "lance", "lance-hnsw-sq", "lance-hnsw-sq-postfilter",
                                          "pgvector", "pgvector-hnsw", "pgvector-hnsw-complete"]
    for f in flt:
        assert "error" not in f, f
        assert (f["n"], f["dim"], f["queries"]) == (300, 8, 20)
        assert all(0.0 <= s["completeness"] <= 1.0 and _positive(s["p50_ms"]) for s in f["selectivity"].values())

    (h,) = out["harness"]
    assert h["scenario"] == "default" and h["seeds"] == 3
    assert _positive(h["checked_ops_per_s"]) and _positive(h["seeds_per_s"])
    assert abs(h["goal_ratio"] - h["checked_ops_per_s"] / 50_000) <= 0.01     # printed as "of goal"
    ch = out["checker"]
    assert len(ch["porcupine"]) == 10 and len(ch["synthetic"]) >= 1
    assert ch["etcd_like"]["histories"] > 0 and ch["etcd_like"]["wrong_verdicts"] == 0
    assert ch["etcd_like"]["porcupine_ms"] == [18.5, 19.0]         # the suite Porcupine ran on: seed 0
    assert _positive(ch["etcd_like"]["ratio_vs_porcupine_fastest"])
    assert ch["wrong_verdicts"] == []
    assert out["load_avg_start"] is None or len(out["load_avg_start"]) == 3
    # process isolation's cost (pgvector is never measured)
    assert [f["backend"] for f in out["isolation"]] == ["sim"]
    for f in out["isolation"]:
        assert "error" not in f, f
        assert f["ops"] == 20 and _positive(f["in_process_ops_per_s"]) and _positive(f["isolated_ops_per_s"])
        assert f["cost_us_per_op"] == round(f["isolated_us_per_op"] - f["in_process_us_per_op"], 1)
    assert "process isolation" in captured.err

    root = ET.parse(svgs[0]).getroot()
    assert root.tag == f"{SVG_NS}svg"
    assert len(root.findall(f".//{SVG_NS}circle")) >= len(rows)       # a marker per row at least
    assert "search p50" in svgs[0].read_text()
    assert _tables_left(dsn, pg) == []                 # the run's tables are dropped


def _tables_left(dsn, rows):
    import psycopg
    names = [r["namespace"] for r in rows] + [r["namespace"] + "_raw" for r in rows]
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s)",
                                           (names,)).fetchall()]


def test_a_row_past_its_timeout_is_killed_reported_and_cleaned_up(in_tmp, dsn, capsys, monkeypatch):
    import dst.bench.checker
    monkeypatch.setattr(dst.bench.checker, "checker_figures", lambda: {"porcupine": [], "synthetic": [],
                                                                       "wall_s": 0.0, "wrong_verdicts": []})
    import dst.bench.suite
    monkeypatch.setattr(dst.bench.suite, "filtered_rows", lambda *a, **k: [])   # not what this test is about
    # 300,000 rows take far longer than a second to make, load and index.
    code = run_cli("bench", "--sizes", "300000", "--dims", "32", "--queries", "5", "--upserts", "3",
                   "--backends", "pgvector-hnsw", "--scenario", "crud", "--seeds", "1", "--row-timeout", "1",
                   "--pg-location", dsn, "--report-dir", "out")
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.out + captured.err
    (path,) = (in_tmp / "out").glob("bench-*.json")
    (row,) = json.loads(path.read_text())["backends"]
    assert row["status"] == "error" and row["error"].startswith("timed out after 1 s"), row["error"]
    assert _tables_left(dsn, [row]) == []


def test_a_backend_that_cannot_start_is_an_error_row(in_tmp, capsys, monkeypatch):
    import dst.bench.checker
    monkeypatch.setattr(dst.bench.checker, "checker_figures", lambda: {"porcupine": [], "synthetic": [],
                                                                       "wall_s": 0.0, "wrong_verdicts": []})
    dead = f"host={in_tmp / 'no-server-here'} port=5999 dbname=dst connect_timeout=2"
    code = run_cli("bench", "--sizes", "200", "--dims", "4", "--queries", "5", "--upserts", "3",
                   "--backends", "sim,pgvector", "--scenario", "crud", "--seeds", "1",
                   "--pg-location", dead, "--report-dir", "out", "--isolate-ops", "0")
    captured = capsys.readouterr()
    assert code == 0
    assert "Traceback" not in captured.out + captured.err
    (path,) = (in_tmp / "out").glob("bench-*.json")
    rows = json.loads(path.read_text())["backends"]
    assert [r["status"] for r in rows] == ["ok", "error", "error"]
    for r in rows[1:]:
        assert "OperationalError" in r["error"] or "connect" in r["error"]
        assert r["search_p50_ms"] is None
    assert "error" in captured.out
    flt = json.loads(path.read_text())["filtered"]
    assert [("error" in f) for f in flt] == [False, True, True, True]


def test_bad_flags_are_usage_errors(in_tmp, capsys):
    assert run_cli("bench", "--backends", "sim,nosuch") == 2
    assert "unknown backend 'nosuch'" in capsys.readouterr().err
    assert run_cli("bench", "--sizes", "10,x") == 2
    assert run_cli("bench", "--isolate-ops", "-1") == 2
    assert "--isolate-ops needs 0 or more" in capsys.readouterr().err
    assert run_cli("bench", "--store-dir", str(in_tmp / "no-such-folder")) == 2
    assert "--store-dir" in capsys.readouterr().err
    assert run_cli("bench", "--dims", "0") == 2


def test_variants_and_data():
    assert parse_variants("lance") == ["lance", "lance-hnsw-sq"]
    assert parse_variants("pgvector-hnsw,sim") == ["sim", "pgvector-hnsw"]
    d1, q1 = make_data(50, 16, 7, seed=3)
    d2, q2 = make_data(80, 16, 7, seed=3)
    assert d1.dtype == np.float32 and d1.shape == (50, 16) and q1.shape == (7, 16)
    assert np.array_equal(q1, q2)                       # every size gets the same queries
    assert np.array_equal(make_data(50, 16, 7, seed=3)[0], d1)
    assert np.all(np.linalg.norm(d1, axis=1) > 0)


def test_recall_is_tie_tolerant_and_counts_each_id_once():
    data = np.array([[1, 0], [1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0]], dtype=np.float32)
    t = Truth(data, queries, k=2)
    assert t.recall([[row_id(0), row_id(1)]]) == 1.0
    assert t.recall([[row_id(1), row_id(0)]]) == 1.0
    assert t.recall([[row_id(0), row_id(2)]]) == 0.5
    assert t.recall([[row_id(0), row_id(0)]]) == 0.5    # a duplicate counts once
    assert t.recall([["nope", row_id(1)]]) == 0.5
    # ties at the k-th place: either tied id is right
    t1 = Truth(data, queries, k=1)
    assert t1.recall([[row_id(1)]]) == 1.0


def test_svg_plot_is_well_formed_with_odd_input():
    c1 = Chart("p50 <ms> & more", "n", "ms", series=[Series('a "quoted" <name>', [(300.0, 0.02)]),
                                                    Series("empty", [])])
    c2 = Chart("recall", "n", "recall", log_y=False, y_min=0, y_max=1,
               series=[Series("b", [(1e3, 0.9), (1e4, 0.95), (1e5, 1.0)])])
    c3 = Chart("nothing", "n", "y")
    text = grid([[c1, c2], [c3]], title="t & <t>", subtitle="s")
    root = ET.fromstring(text.encode())
    assert root.tag == f"{SVG_NS}svg"
    assert len(root.findall(f".//{SVG_NS}polyline")) == 1
    assert "no data" in text
