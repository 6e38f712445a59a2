"""Filters and metrics in the pgvector backend, against a real PostgreSQL
(the embedded pgserver, or DST_PG_DSN). Never skipped.

Every filtered answer is compared with ``dst.filters.matches`` over the
rows stored; hostile attribute values, missing attributes, int/bool/str
types, 64-bit extremes, each metric's scores against ``dst.metrics``, the
index per metric, and the short answer a selective filter gets from HNSW
(pgvector 0.6.2) with ``complete=true`` covering it.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from backends.pgvector import open_backend, where_sql
from dst import filters, metrics, pg_embedded
from dst.backend import BackendConfig
from dst.sim.workload import HOSTILE_VALUES

ROOT = Path(__file__).resolve().parents[2]
PGDATA = ROOT / pg_embedded.SERVERS[pg_embedded.DEFAULT_SERVER].default_dir   # pg18
PREFIX = f"f{os.getpid()}_"


@pytest.fixture(scope="module")
def dsn():
    return os.environ.get(pg_embedded.DSN_ENV) or pg_embedded.ensure_server(PGDATA).dsn()


@pytest.fixture
def make(dsn, request):
    made = []

    def _make(dim=3, metric="cosine", suffix="", **options):
        name = (PREFIX + re.sub(r"[^a-z0-9_]", "_", request.node.name.lower()) + suffix)[:63]
        b = open_backend(BackendConfig(dim=dim, location=dsn, namespace=name, fresh=True,
                                       metric=metric, options=options))
        made.append((name, b))
        return b

    yield _make
    for name, b in made:
        b.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def _ids(hits):
    return sorted(h.id for h in hits)


def _expect(rows, where):
    return sorted(i for i, a in rows.items() if filters.matches(filters.canonical(where), a))


ROWS = {
    "a": {"s": "x", "n": 1, "b": True},
    "b": {"s": "1", "n": 0, "b": False},
    "c": {"n": True},                 # bool, not int
    "d": {"s": 1},                    # int, not str
    "e": {},
    "f": {"big": -2 ** 63}, "g": {"big": 2 ** 63 - 1}, "h": {"big": 2 ** 63 - 2},
}

WHERES = [
    {"eq": ["s", "x"]}, {"eq": ["s", "1"]}, {"eq": ["s", 1]}, {"eq": ["n", 1]}, {"eq": ["n", True]},
    {"ne": ["s", "x"]}, {"not": {"eq": ["s", "x"]}}, {"not": {"ne": ["s", "x"]}},
    {"in": ["n", [0, 1]]}, {"in": ["n", [True]]}, {"lt": ["n", 1]}, {"ge": ["n", 0]},
    {"gt": ["big", 2 ** 63 - 2]}, {"ge": ["big", 2 ** 63 - 2]}, {"le": ["big", -2 ** 63]},
    {"lt": ["big", -2 ** 63]}, {"exists": "s"}, {"not": {"exists": "s"}},
    {"and": []}, {"or": []}, {"not": {"lt": ["s", 3]}}, {"or": [{"eq": ["b", False]}, {"exists": "big"}]},
    {"and": [{"exists": "n"}, {"not": {"eq": ["n", 1]}}]},
]


def test_filters_agree_with_matches_types_missing_and_extremes(make):
    b = make(dim=2)
    b.store_batch([(i, np.array([1.0, k + 1.0], np.float32), a) for k, (i, a) in enumerate(ROWS.items())])
    for i, a in ROWS.items():
        assert b.get_attrs(i) == a
    for w in WHERES:
        for exact in (False, True):
            hits = (b.search_exact if exact else b.search)(np.array([1.0, 1.0], np.float32), 50, where=w)
            assert _ids(hits) == _expect(ROWS, w), w
    # the brief's two: `not eq` keeps the row without the attribute, `ne` does not
    q = np.array([1.0, 1.0], np.float32)
    assert "e" in _ids(b.search(q, 50, where={"not": {"eq": ["s", "x"]}}))
    assert "e" not in _ids(b.search(q, 50, where={"ne": ["s", "x"]}))
    assert "e" in _ids(b.search(q, 50, where={"not": {"ne": ["s", "x"]}}))
    assert b.get_attrs("zz") is None


def test_hostile_values_round_trip_and_filter(make):
    b = make(dim=2)
    rows = {f"h{k:02d}": {"label": v, "k": k} for k, v in enumerate(HOSTILE_VALUES)}
    for k, (i, a) in enumerate(rows.items()):
        if k % 2:
            b.store(i, np.array([1.0, k + 1.0], np.float32), a)
        else:
            b.store_batch([(i, np.array([1.0, k + 1.0], np.float32), a)])
    q = np.array([1.0, 0.5], np.float32)
    for i, a in rows.items():
        assert b.get_attrs(i) == a
        for w in ({"eq": ["label", a["label"]]}, {"ne": ["label", a["label"]]},
                  {"in": ["label", [a["label"], "'"]]}, {"exists": a["label"]} if re.fullmatch(
                      r"[a-z][a-z0-9_]{0,31}", a["label"]) else {"exists": "label"}):
            assert _ids(b.search(q, 100, where=w)) == _expect(rows, w), w
    assert b.count() == len(rows)


def test_where_sql_is_parameterised():
    # Every value and name travels as a parameter: the SQL text is the same
    # whatever the value, and the value is found among the parameters.
    def tree(name, v):
        return filters.canonical({"or": [{"eq": [name, v]}, {"not": {"ne": [name, v]}},
                                         {"in": [name, [v]]}, {"exists": name}]})

    base, _ = where_sql(tree("zz", "zz"))
    for v in HOSTILE_VALUES:
        cond, params = where_sql(tree("label", v))
        assert cond.as_string(None) == base.as_string(None), v
        assert any(isinstance(x, list) and json_has(x[0], v) or isinstance(x, str) and json_has(x, v)
                   for x in params.values())
    ints = [where_sql(filters.canonical({op: ["big", v]}))[0].as_string(None)
            for op in ("lt", "ge") for v in (2 ** 63 - 1, -2 ** 63)]
    assert ints[0] == ints[1] and ints[2] == ints[3] and "9223372036854775807" not in ints[0]


def json_has(text, v):
    import json
    try:
        return json.loads(text).get("label") == v
    except (ValueError, AttributeError):
        return False


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_metric_scores_and_index(make, metric):
    rng = np.random.default_rng(7)
    m = rng.normal(size=(60, 4)).astype(np.float32)
    if metric != "cosine":
        m[0] = 0.0       # valid under l2 and dot
    b = make(dim=4, metric=metric, index="hnsw", ef_search=100)
    b.store_batch([(f"r{k:02d}", m[k], {"n": k}) for k in range(len(m))])
    q = rng.normal(size=4).astype(np.float32)
    want = sorted(((metrics.score(metric, m[k].astype(np.float64), q.astype(np.float64)), f"r{k:02d}")
                   for k in range(len(m))), key=lambda t: (-t[0], t[1]))[:10]
    for phase in ("exact", "index"):
        if phase == "index":
            b.maintenance("index")
            plan = "\n".join(b.explain_search(q, 10))
            assert "dst_ann_" in plan, plan
        hits = b.search(q, 10)
        assert [h.id for h in hits] == [i for _, i in want]
        for h, (s, _) in zip(hits, want):
            assert abs(h.score - s) <= metrics.tolerance(metric, 1e-5, s), (h, s)
    with psycopg.connect(b._dsn) as conn:
        ops = conn.execute("SELECT opcname FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0] "
                           "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
                           (b._idx_name,)).fetchone()[0]
    assert ops == {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "dot": "vector_ip_ops"}[metric]


def _selective(make, complete):
    rng = np.random.default_rng(3)
    m = rng.normal(size=(400, 8)).astype(np.float32)
    b = make(dim=8, index="hnsw", ef_search=40, complete=complete, suffix=str(complete).lower())
    b.store_batch([(f"r{k:03d}", m[k], {"tenant": "rare" if k % 100 == 0 else "common"})
                   for k in range(len(m))])
    b.maintenance("index")
    w = {"eq": ["tenant", "rare"]}
    return b, [b.search(rng.normal(size=8).astype(np.float32), 4, where=w) for _ in range(10)]


def test_selective_filter_short_answer_on_hnsw(make):
    b, answers = _selective(make, False)
    # 4 rows match; HNSW collects ef_search=40 of 400 candidates, then filters.
    assert min(len(a) for a in answers) < 4, [len(a) for a in answers]


def test_complete_true_covers_filtered_search(make):
    b, answers = _selective(make, True)
    assert all(len(a) == 4 for a in answers)
    assert b.fallbacks > 0


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_dst_run_per_metric(metric, tmp_path):
    r = subprocess.run([str(Path(sys.executable).parent / "dst"), "run", "--backend", "pgvector", "--scenario", "search-heavy", "--seeds", "2",
                        "--ops", "60", "--metric", metric, "--report-dir", str(tmp_path / "out")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_table_from_before_attributes_gets_the_column_on_open(make, dsn):
    b = make(dim=2)
    b.store("old", np.array([1.0, 2.0], np.float32))
    name = b.namespace
    b.close()
    with psycopg.connect(dsn, autocommit=True) as conn:   # the table as the old adapter made it
        conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN attrs").format(sql.Identifier(name)))
    again = open_backend(BackendConfig(dim=2, location=dsn, namespace=name, fresh=False))
    try:
        assert again.get_attrs("old") == {}
        again.store("new", np.array([2.0, 1.0], np.float32), {"tenant": "t1"})
        assert _ids(again.search(np.array([1.0, 1.0], np.float32), 5, where={"eq": ["tenant", "t1"]})) == ["new"]
    finally:
        again.close()
