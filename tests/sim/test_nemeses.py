"""Backend nemeses: real faults fired mid-operation, counted, and checked."""

import json

from dst.history import History
from tests.conftest import run_cli


def _result(d):
    (run_dir,) = [p for p in d.iterdir() if p.is_dir()]
    return json.loads((run_dir / "result.json").read_text()), run_dir


def test_pgvector_survives_killed_connections_and_server_crashes(in_tmp, capsys):
    code = run_cli("run", "--backend", "pgvector", "--scenario", "pg-faults", "--seeds", "3",
                   "--location", str(in_tmp / "pgdata"), "--quiet")
    res, run_dir = _result(in_tmp / "reports")
    assert code == 0, res
    assert res["fault_counts"]["kill-connection"] > 0 and res["fault_counts"]["crash-server"] > 0
    # after each server crash the store was probed
    h = History.read(run_dir / "history.jsonl")
    crashes = [e for e in h.events if e["process"] == "nemesis" and e["f"] == "crash-server"]
    if crashes:
        after = [e for e in h.events[crashes[0]["index"]:] if e["process"] == "probe"]
        assert after and after[0]["f"] == "count"


def test_a_store_that_loses_writes_in_a_server_crash_is_caught(in_tmp, capsys):
    code = run_cli("run", "--backend", "tests.broken_backends:server_crash_loses_writes",
                   "--scenario", "pg-faults", "--seeds", "20", "--fail-fast", "--quiet")
    assert code == 1
    res, _ = _result(in_tmp / "reports")
    bad = [r for r in res["results"] if r["verdict"] == "violation"][0]
    assert bad["fired"]["crash-server"] > 0


def test_nemeses_the_backend_lacks_never_fire_and_the_run_says_so(in_tmp, capsys):
    assert run_cli("run", "--backend", "sim", "--scenario", "pg-faults", "--seeds", "2") == 4
    err = capsys.readouterr().err
    assert "crash-server, kill-connection enabled but never fired" in err
    assert "sim offers no nemesis crash-server, kill-connection; it offers none" in err
