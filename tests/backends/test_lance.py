"""LanceDB-specific behaviour: ownership, atomic batches under a killed
writer, compaction across reopen, and threads-mode showcases (duplicate
rows without the primary key, stale reads without read consistency)."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from backends.lance import open_backend
from dst.backend import BackendConfig
from dst.errors import BackendError, UsageError
from tests.conftest import ROOT, run_cli

DIM = 8


def cfg(tmp_path, ns="t", fresh=True, **options):
    return BackendConfig(dim=DIM, location=str(tmp_path), namespace=ns, fresh=fresh, options=options)


def test_refuses_a_table_it_did_not_create(tmp_path):
    import lancedb
    import pyarrow as pa
    db = lancedb.connect(str(tmp_path))
    schema = pa.schema([pa.field("id", pa.string()), pa.field("vector", pa.list_(pa.float32(), DIM))])
    theirs = db.create_table("theirs", schema=schema)
    theirs.add([{"id": "precious", "vector": [1.0] * DIM}])
    for fresh in (True, False):
        with pytest.raises(BackendError, match="was not created by vector-dst; refusing to touch it"):
            open_backend(cfg(tmp_path, "theirs", fresh=fresh))
    assert db.open_table("theirs").count_rows() == 1      # untouched
    b = open_backend(cfg(tmp_path, "ours"))
    b.drop()
    assert "theirs" in db.list_tables().tables


def test_reopen_of_a_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="no table 'ghost'"):
        open_backend(cfg(tmp_path, "ghost", fresh=False))


def test_unknown_option_is_named(tmp_path):
    with pytest.raises(UsageError, match=r"lance backend: unknown option 'primay_key' \(known: .*primary_key"):
        open_backend(cfg(tmp_path, primay_key=True))


def test_compaction_keeps_data_and_versions_bounded(tmp_path):
    b = open_backend(cfg(tmp_path, compact_every=25))
    rng = np.random.default_rng(0)
    for i in range(100):
        b.store(f"k{i % 30}", rng.standard_normal(DIM).astype(np.float32))
    assert b.count() == 30
    versions = len(b._t.list_versions())
    assert versions < 30, versions          # compaction cleaned old versions
    b.maintenance("compact")
    del b
    again = open_backend(cfg(tmp_path, fresh=False))
    assert again.count() == 30


WRITER = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {root!r})
    from backends.lance import LanceBackend, open_backend
    from dst.backend import BackendConfig
    b = open_backend(BackendConfig(dim={dim}, location={loc!r}, namespace="atomic", fresh=False))
    x = np.random.default_rng(0).standard_normal(({n}, {dim})).astype(np.float32)
    # _rows builds the Arrow table, the last step before merge_insert's
    # execute (the commit): say when it is done, so the test knows a kill
    # after it landed in a running commit, not in the batch's preparation.
    rows = LanceBackend._rows
    def announced(self, ids, matrix, *attrs):
        table = rows(self, ids, matrix, *attrs)
        print("commit", flush=True)
        return table
    LanceBackend._rows = announced
    b.store_batch([(f"b{{i}}", x[i]) for i in range({n})])
    print("done", flush=True)
""")

# Kill delays after the commit began; it takes about 0.1 s for 60,000 rows
# (the preparation before it about 0.2 s, which the test waits out).
COMMIT_KILL_DELAYS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.3, 1.0)
MIN_MID_COMMIT_KILLS = 3


def test_batch_is_atomic_under_a_killed_writer(tmp_path):
    """Kill a writer process while its batch's commit runs: the reopened
    table holds all of the batch or none of it, and all of it if the writer
    had seen the call return. Only kills that interrupted a running commit
    (after it began, before the call returned) count as mid-batch, and
    there must be enough of them, or the test showed nothing."""
    n = 60_000
    mid_commit = acked = 0
    for delay in COMMIT_KILL_DELAYS:
        b = open_backend(cfg(tmp_path, "atomic"))
        b.store("pre", np.ones(DIM, dtype=np.float32))
        b.close()
        code = WRITER.format(root=str(ROOT), dim=DIM, loc=str(tmp_path), n=n)
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "commit"   # blocks until the commit begins
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        returned = "done" in p.stdout.read()
        after = open_backend(cfg(tmp_path, "atomic", fresh=False))
        count = after.count()
        assert after.exists("pre")
        assert count in (1, n + 1), f"half-applied batch: {count} rows after a kill {delay}s into the commit"
        if returned:
            acked += 1
            assert count == n + 1, "an acknowledged batch was lost"
        else:
            mid_commit += 1
        if acked and mid_commit >= MIN_MID_COMMIT_KILLS + 2:
            break
    assert mid_commit >= MIN_MID_COMMIT_KILLS, \
        f"only {mid_commit} kills interrupted a running commit; the test showed too little"


def _result(d):
    (run_dir,) = [p for p in d.iterdir() if p.is_dir()]
    return json.loads((run_dir / "result.json").read_text())


def test_duplicate_rows_without_primary_key_are_caught_and_not_with_it(in_tmp, capsys):
    """LanceDB's default (no primary key): concurrent upserts of one id have
    left duplicate rows with no error (lancedb issue 2463). The harness must
    report it; with the primary key set, the same run passes."""
    loc = str(in_tmp / "db")
    argv = ["run", "--backend", "lance", "--concurrency", "threads", "--scenario", "upsert-race",
            "--location", loc, "--quiet"]
    assert run_cli(*argv, "--seeds", "12", "--fail-fast", "--opt", "primary_key=false",
                   "--report-dir", "off") == 1
    res = _result(in_tmp / "off")
    bad = [r for r in res["results"] if r["verdict"] == "violation"][0]
    text = json.dumps(bad["violations"])
    assert "count()" in text or "more than once" in text
    assert run_cli(*argv, "--seeds", "3", "--opt", "primary_key=true", "--report-dir", "on") == 0


def test_stale_snapshots_without_read_consistency_are_caught(in_tmp, capsys):
    loc = str(in_tmp / "db")
    argv = ["run", "--backend", "lance", "--concurrency", "threads", "--scenario", "upsert-race",
            "--location", loc, "--quiet", "--seeds", "2"]
    assert run_cli(*argv, "--opt", "consistency=none", "--report-dir", "stale") == 1
    assert run_cli(*argv, "--opt", "consistency=strong", "--report-dir", "strong") == 0


def test_default_scenario_passes_on_lance(in_tmp, capsys):
    code = run_cli("run", "--backend", "lance", "--location", str(in_tmp / "db"), "--seeds", "4",
                   "--ops", "120", "--quiet")
    assert code in (0, 4), capsys.readouterr()
    res = _result(in_tmp / "reports")
    assert all(r["verdict"] == "ok" for r in res["results"])


def test_crash_scenario_on_lance_keeps_acknowledged_writes(in_tmp, capsys):
    code = run_cli("run", "--backend", "lance", "--location", str(in_tmp / "db"), "--seeds", "3",
                   "--scenario", "crash", "--ops", "120", "--quiet")
    res = _result(in_tmp / "reports")
    assert res["fault_counts"]["crash"] > 0
    assert code == 0, res


def test_ann_index_passes_with_recall_and_unrefined_scores_are_caught(in_tmp, capsys):
    """With an HNSW-SQ index the adapter re-scores candidates (refine), so
    scores are true and recall is measured; without the refine step the
    quantized distances are not true cosines and the checker says so."""
    loc = str(in_tmp / "db")
    base = ["run", "--backend", "lance", "--scenario", "ann", "--seeds", "1", "--ops", "80",
            "--location", loc, "--opt", "index=IVF_HNSW_SQ"]
    code = run_cli(*base, "--report-dir", "refined")
    res = _result(in_tmp / "refined")
    assert [r["verdict"] for r in res["results"]] == ["ok"]     # every score true: no seed violation
    assert res["recall"]["searches"] > 0 and res["recall"]["mean"] >= res["recall"]["floor"]
    # LanceDB's IVF_HNSW_SQ build is not the same from run to run, and now
    # and then one live id is not among the top k of a search by its own
    # vector (docs/findings.md): the run then fails on the reachability gate
    # alone, which is that gate doing its job, not this test's subject.
    reach = res["reachability"]
    assert reach["measured"] and reach["checked"] > 0
    assert code == (0 if reach["passed"] else 1)
    raw = [a for a in base if a not in ("--seeds", "1", "--ops", "80")]
    assert run_cli(*raw, "--seeds", "8", "--fail-fast", "--opt", "refine_factor=0",
                   "--report-dir", "raw") == 1
    res = _result(in_tmp / "raw")
    msg = [r for r in res["results"] if r["violations"]][0]["violations"][0]["message"]
    assert "true cosine" in msg


def test_recall_below_the_floor_fails_the_run(in_tmp, capsys):
    sc = in_tmp / "strict.toml"
    src = (ROOT / "scenarios" / "ann.toml").read_text().replace("recall_floor = 0.8", "recall_floor = 1.0")
    sc.write_text(src)
    code = run_cli("run", "--backend", "lance", "--scenario", str(sc), "--seeds", "1", "--ops", "60",
                   "--location", str(in_tmp / "db"), "--opt", "index=IVF_PQ")
    res = _result(in_tmp / "reports")
    assert res["recall"]["mean"] < 1.0
    assert code == 1 and not res["recall"]["passed"]
    assert "BELOW THE FLOOR" in capsys.readouterr().err


def test_passing_seeds_leave_no_tables_behind(in_tmp, capsys):
    loc = in_tmp / "db"
    assert run_cli("run", "--backend", "lance", "--location", str(loc), "--seeds", "2", "--ops", "40",
                   "--scenario", "crud", "--quiet") in (0, 4)
    assert [p.name for p in loc.iterdir()] == []
    # drop() works on a handle already closed (the harness closes, then drops)
    b = open_backend(cfg(loc, "closed"))
    b.close()
    b.drop()
    assert not (loc / "closed.lance").exists()


def test_unknown_index_type_is_refused_at_open(tmp_path):
    with pytest.raises(BackendError, match="lance: index must be one of IVF_FLAT, .*, got 'BOGUS'"):
        open_backend(cfg(tmp_path, index="BOGUS"))


@pytest.mark.parametrize("native", [True, False])
def test_batches_replace_whole_rows_through_either_merge_path(tmp_path, native):
    """store_batch through lancedb's native merge_insert (the default, on
    the pinned lancedb) and through its public builder: an upsert replaces
    the vector and the attributes (none given: none kept), inserts new ids,
    and a batch of the same size as the last reuses its null slot columns
    without mixing rows up."""
    b = open_backend(cfg(tmp_path, native_merge=native))
    assert (b._native is not None) is native
    ones, twos = np.ones(DIM, dtype=np.float32), np.full(DIM, 2.0, dtype=np.float32)
    b.store_batch([("a", ones, {"color": "red", "n": 3}), ("b", ones, {"flag": True})])
    b.store_batch([("a", twos), ("c", twos)])
    b.store_batch([("b", twos), ("d", ones)])
    assert b.count() == 4
    assert [b.get_attrs(i) for i in "abcd"] == [{}, {}, {}, {}]
    assert [float(b.get(i)[0]) for i in "abcd"] == [2.0, 2.0, 2.0, 1.0]
    hits = b.search_exact(ones, 4, where={"exists": "color"})
    assert hits == []
    b.drop()
