"""ANN completeness under churn (issue 7, item 5): the ann-churn scenario on
pgvector 0.6.2 with an HNSW index (the embedded server from pgserver, or
the one DST_PG_DSN names). See docs/findings.md.

* pgvector's HNSW scan comes back short under churn: it returns at most
  hnsw.ef_search heap rows, and dead rows (deleted, or the old version of
  an updated row) still take candidate slots until VACUUM. The backend
  returns the scan's answer as it is (the default, complete=false), and the
  checker reports the completeness condition: "search(limit=k) returned n
  hits; m ids are live, so k were expected".
* The adapter's mitigation (complete=true: ef_search raised to the limit,
  a short scan answered by the exact query) passes; so does exact search.
* The shrunk case seeds/pgvector-hnsw-dead-tuple-completeness.json (4 ops
  on 52 rows) fails every time; ef_search=54, a VACUUM before the search,
  or complete=true make it pass.
"""

import copy
import os
import re
from pathlib import Path

import pytest

from backends.pgvector import PgvectorBackend
from dst import pg_embedded
from dst.backend import BackendConfig
from dst.sim.runner import namespace_for, run_case, run_seed
from dst.sim.scenario import load
from dst.sim.shrink import read_case, violation_kind

ROOT = Path(__file__).resolve().parents[2]
PGDATA = ROOT / ".dst" / "pgdata"    # pg16: pgvector 0.6.2, the version these findings are about
CASE = ROOT / "seeds" / "pgvector-hnsw-dead-tuple-completeness.json"
# Tables carry the test process's pid: two sessions on one server never meet.
TOKEN = f"ac{os.getpid()}"
COMPLETENESS = re.compile(r"search\(limit=(\d+)\) returned (\d+) hits; (\d+) ids are live, "
                          r"so (\d+) were expected")


@pytest.fixture(scope="module")
def dsn():
    return os.environ.get(pg_embedded.DSN_ENV) or pg_embedded.ensure_server(PGDATA, "pg16").dsn()


@pytest.fixture
def leftovers(dsn):
    """(namespace, dim) of runs that did not pass (the runner keeps their
    tables for inspection); dropped after the test."""
    tables: list[tuple[str, int]] = []
    yield tables
    for namespace, dim in tables:
        PgvectorBackend(BackendConfig(dim=dim, location=dsn, namespace=namespace, fresh=False,
                                      options={})).drop()


def _index_built(history) -> bool:
    return any(e["process"] == "load" and e["f"] == "maintenance" and e["type"] == "ok"
               for e in history.events)


def _short(result) -> tuple[int, int]:
    m = COMPLETENESS.search(result.violations[0]["message"])
    assert m, result.violations[0]["message"]
    limit, got, live, want = map(int, m.groups())
    assert want == min(limit, live) and got < want
    return got, want


def _run(sc, seed, dsn, leftovers, tag, options):
    token = f"{TOKEN}{tag}"
    result, history = run_seed(sc, seed, "pgvector", location=dsn, options=options, token=token)
    if result.verdict != "ok":
        leftovers.append((namespace_for(sc.name, seed, token), history.meta["dim"]))
    return result, history


def test_hnsw_scan_under_churn_is_reported_incomplete(dsn, leftovers):
    sc = load("ann-churn")
    result, history = _run(sc, 0, dsn, leftovers, "raw", {"index": "hnsw"})
    assert history.meta["exact"] is False and _index_built(history)
    assert result.verdict == "violation"
    assert violation_kind(result) == "linearizability:search:length"
    _short(result)
    # A scenario search came back short, not a probe: those search exactly.
    assert result.violations[0]["op"]["process"] != "probe"


def test_the_complete_mitigation_and_exact_search_pass(dsn, leftovers):
    sc = load("ann-churn")
    result, history = _run(sc, 0, dsn, leftovers, "mit", {"index": "hnsw", "complete": True})
    assert _index_built(history)
    assert result.verdict == "ok", result.violations
    total, n = result.recall
    assert n > 300 and total / n >= sc.recall_floor
    result, history = _run(sc, 0, dsn, leftovers, "exact", {})
    assert history.meta["exact"] is True
    assert result.verdict == "ok", result.violations


def _case_run(case, dsn, leftovers, tag, **kw):
    token = f"{TOKEN}{tag}"
    result, history = run_case(case, location=dsn, token=token, **kw)
    if result.verdict != "ok":
        leftovers.append((namespace_for(case["scenario"], int(case["seed"]), token),
                          case["schedule"]["dim"]))
    return result


def test_shrunk_case_fails_and_passes_with_each_remedy(dsn, leftovers):
    case = read_case(CASE)
    assert case["backend"] == "pgvector" and case["options"]["ef_search"] == 53
    assert case["expected"] == {"verdict": "violation", "kind": "linearizability:search:length"}
    raw = _case_run(case, dsn, leftovers, "r")
    assert raw.verdict == "violation"
    assert _short(raw) == (52, 53)
    # One more graph candidate than the limit covers the one dead row.
    assert _case_run(case, dsn, leftovers, "e", options={"ef_search": 54}).verdict == "ok"
    # The adapter's mitigation.
    assert _case_run(case, dsn, leftovers, "c", options={"complete": True}).verdict == "ok"
    # VACUUM before the search takes the dead row out of the graph.
    vac = copy.deepcopy(case)
    plans = vac["schedule"]["clients"][0]
    assert plans[-1]["f"] == "search"
    plans.insert(len(plans) - 1, {"f": "maintenance", "value": {"kind": "vacuum"}, "d2": 1})
    assert _case_run(vac, dsn, leftovers, "v").verdict == "ok"
