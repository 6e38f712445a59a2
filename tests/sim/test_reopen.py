"""A store that cannot be reopened after a crash is a durability finding
(exit 1, kind durability:reopen), with its history, report and replay
command, and it shrinks; never a setup error (exit 2, empty report)."""

import json

from dst.history import History
from dst.sim.runner import run_seed
from dst.sim.scenario import load
from dst.sim.shrink import violation_kind
from tests.conftest import run_cli

BACKEND = "tests.broken_backends:cannot_reopen"


def test_a_failed_reopen_is_a_durability_violation_with_history_report_and_replay(in_tmp, capsys):
    code = run_cli("run", "--backend", BACKEND, "--scenario", "crash", "--seeds", "3", "--quiet")
    out = capsys.readouterr().out
    assert code == 1
    (run_dir,) = list((in_tmp / "reports").iterdir())
    res = json.loads((run_dir / "result.json").read_text())
    assert res["verdict"] == "violation" and res["exit_code"] == 1
    bad = [r for r in res["results"] if r["verdict"] == "violation"][0]
    v = bad["violations"][0]
    assert v["kind"] == "durability:reopen" and v["when"] == "crash-1"
    assert "write-ahead log is corrupt" in v["message"]
    # the history up to the crash, ending with the crash and the failed reopen
    h = History.read(run_dir / "history.jsonl")
    nem = [e for e in h.events if e["process"] == "nemesis"]
    assert [e["f"] for e in nem[-2:]] == ["crash", "reopen"]
    assert nem[-1]["value"]["ok"] is False
    assert any(e["process"] != "nemesis" and e["type"] == "ok" for e in h.events)
    assert (run_dir / "report.html").stat().st_size > 1000
    cmd = [line for line in out.splitlines() if line.startswith("replay: ")][0]
    assert run_cli(*cmd.split()[2:]) == 1
    assert ": exact; verdict violation" in capsys.readouterr().err


def test_a_failed_reopen_shrinks_and_the_case_replays(in_tmp, capsys):
    assert run_cli("run", "--backend", BACKEND, "--scenario", "crash", "--seeds", "3",
                   "--fail-fast", "--quiet") == 1
    hist = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("replay: ")][0].split()[-1]
    assert run_cli("shrink", hist, "--out", "seeds/reopen.json", "--time-budget", "20", "--quiet") == 1
    case = json.loads((in_tmp / "seeds" / "reopen.json").read_text())
    assert case["expected"] == {"verdict": "violation", "kind": "durability:reopen"}
    assert case["ops"] <= 3   # one op with a crash after it is all it takes
    assert run_cli("replay", "seeds/reopen.json") == 1
    assert "as expected" in capsys.readouterr().err


def test_the_correct_store_reopens_and_passes_the_same_seeds():
    sc = load("crash")
    crashed = 0
    for seed in range(3):
        r, _ = run_seed(sc, seed, "sim")
        assert r.verdict == "ok", r.violations
        crashed += r.crashes
        bad, _ = run_seed(sc, seed, BACKEND)
        if r.crashes:
            assert violation_kind(bad) == "durability:reopen"
    assert crashed > 0
