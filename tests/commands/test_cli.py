"""Command-line behaviour: exit codes, one-line errors, reports."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

DST = str(Path(sys.executable).parent / "dst")


def dst(*argv, cwd):
    env = dict(os.environ)
    return subprocess.run([DST, *argv], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("argv, message", [
    (["run", "--scenario", "nope"], "unknown scenario 'nope'"),
    (["run", "--seeds", "abc"], "--seeds: expected a whole number, got 'abc'"),
    (["run", "--seeds", "0"], "--seeds: expected a number of at least 1, got 0"),
    (["run", "--backend", "nope"], "unknown backend 'nope'"),
    (["run", "--backend", "no_such_pkg.mod:open"], "cannot import 'no_such_pkg'"),
    (["run", "--backend", "tests.broken_backends:nothing_here"], "has no callable 'nothing_here'"),
    (["run", "--shard", "3/2"], "shard I/N needs 1 <= I <= N"),
    (["run", "--opt", "novalue"], "expected KEY=VALUE"),
    (["replay", "--seed", "1", "--concurrency", "threads"], "threads-mode runs are not replayable"),
    (["run", "--concurrency", "fibers"], "invalid choice: 'fibers'"),
    (["replay", "missing.jsonl"], "no such file 'missing.jsonl'"),
    (["replay"], "give a history FILE or --seed N"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "name a command"),
])
def test_bad_usage_is_one_line_and_exit_2(argv, message, tmp_path):
    p = dst(*argv, cwd=ROOT if "tests.broken" in " ".join(argv) else tmp_path)
    assert p.returncode == 2, p
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert message in lines[0]
    assert "Traceback" not in p.stderr


def test_replay_of_a_file_that_is_not_a_history(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text("hello\n")
    p = dst("replay", str(bad), cwd=tmp_path)
    assert p.returncode == 2 and "x.jsonl:1: not JSON" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_run_passes_and_writes_reports(in_tmp, capsys):
    assert run_cli("run", "--backend", "sim", "--seeds", "5", "--scenario", "crash") == 0
    (run_dir,) = list((in_tmp / "reports").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["verdict"] == "ok" and result["exit_code"] == 0
    assert result["fault_counts"]["crash"] > 0
    assert (run_dir / "history.jsonl").stat().st_size > 0
    err = capsys.readouterr().err
    assert "PASS" in err and "fault crash" in err


def test_unfired_fault_class_exits_4_naming_it(in_tmp, capsys):
    sc = in_tmp / "rare.toml"
    sc.write_text('ops_per_seed = 20\n[ops]\nstore = 1\n[faults]\ncrash = 0.000001\nlatency = 0.5\n')
    assert run_cli("run", "--backend", "sim", "--scenario", str(sc), "--seeds", "2") == 4
    err = capsys.readouterr().err
    assert "fault class crash enabled but never fired in 2 seeds" in err


def test_unknown_verdict_exits_3(in_tmp, capsys):
    assert run_cli("run", "--backend", "tests.broken_backends:lost_write", "--seeds", "1",
                   "--budget-steps", "1") == 3
    assert "budget" in capsys.readouterr().err


def test_violation_beats_unknown_and_unfired(in_tmp, capsys):
    sc = in_tmp / "rare.toml"
    sc.write_text('ops_per_seed = 60\n[ops]\nstore = 5\nget = 5\ncount = 1\n[faults]\ncrash = 0.000001\n')
    assert run_cli("run", "--scenario", str(sc), "--seeds", "3",
                   "--backend", "tests.broken_backends:lost_write") == 1


def test_shards_are_disjoint_and_cover(in_tmp, capsys):
    seen = []
    for i in (1, 2, 3):
        assert run_cli("run", "--backend", "sim", "--seeds", "10", "--seed", "100", "--shard", f"{i}/3", "--ops", "30",
                       "--quiet", "--report-dir", f"r{i}") in (0, 4)
        (d,) = list((in_tmp / f"r{i}").iterdir())
        seen.append(json.loads((d / "result.json").read_text())["seeds"])
    flat = sorted(s for part in seen for s in part)
    assert flat == list(range(100, 110))
    assert all(set(a).isdisjoint(b) for a in seen for b in seen if a is not b)


def test_junit_has_one_case_per_seed_and_the_replay(in_tmp, capsys):
    junit = in_tmp / "out" / "junit.xml"
    assert run_cli("run", "--backend", "tests.broken_backends:count_drift", "--seeds", "4",
                   "--junit", str(junit), "--quiet") == 1
    root = ET.parse(junit).getroot()
    cases = root.findall("testcase")
    assert len(cases) == 4 and root.get("tests") == "4"
    failed = [c for c in cases if c.find("failure") is not None]
    assert failed and "dst replay --seed" in failed[0].find("failure").text


def test_replay_by_seed_without_recording(in_tmp, capsys):
    assert run_cli("replay", "--backend", "sim", "--seed", "3", "--scenario", "crud") == 0
    assert "no recording to compare" in capsys.readouterr().err


def test_replay_detects_divergence(in_tmp, capsys):
    assert run_cli("run", "--backend", "sim", "--seeds", "1", "--scenario", "crud", "--quiet") == 0
    (d,) = list((in_tmp / "reports").iterdir())
    lines = (d / "history.jsonl").read_text().splitlines()
    # Tamper with one event's time: the replay must say where it diverged.
    idx = next(i for i, l in enumerate(lines) if '"index":7,' in l)
    rec = json.loads(lines[idx])
    rec["time"] += 1
    lines[idx] = json.dumps(rec, separators=(",", ":"))
    (d / "history.jsonl").write_text("\n".join(lines) + "\n")
    assert run_cli("replay", str(d / "history.jsonl")) == 5
    assert "diverged at op 7" in capsys.readouterr().err


def test_lance_is_the_default_backend(in_tmp, capsys):
    assert run_cli("run", "--seeds", "1", "--ops", "30", "--scenario", "crud",
                   "--location", str(in_tmp / "db"), "--quiet") in (0, 4)
    res, _ = _result(in_tmp / "reports")
    assert res["backend"] == "lance"


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = [l for l in ci.splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    assert test_cmd == ["./scripts/test"]
    assert "\n./scripts/test\n" in readme
    script = (ROOT / "scripts" / "test").read_text()
    assert "python3 -m venv .venv" in script and "-m pytest" in script
    run_cmd = "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[lance]' && .venv/bin/dst run"
    assert run_cmd in readme


def _result(d):
    (run_dir,) = [p for p in d.iterdir()]
    return json.loads((run_dir / "result.json").read_text()), run_dir


def test_jobs_give_the_same_results_as_one_process(in_tmp, capsys):
    argv = ["run", "--seeds", "24", "--backend", "tests.broken_backends:stale_get", "--quiet"]
    assert run_cli(*argv, "--report-dir", "one") == 1
    assert run_cli(*argv, "--jobs", "2", "--report-dir", "two") == 1
    a, da = _result(in_tmp / "one")
    b, db = _result(in_tmp / "two")
    assert a["results"] == b["results"] and a["fault_counts"] == b["fault_counts"]
    assert (da / "history.jsonl").read_bytes() == (db / "history.jsonl").read_bytes()
    assert sorted(p.name for p in (da / "histories").iterdir()) == \
        sorted(p.name for p in (db / "histories").iterdir())


def test_time_budget_stops_cleanly_and_reports_what_ran(in_tmp, capsys):
    code = run_cli("run", "--backend", "sim", "--seeds", "100000", "--time-budget", "1", "--ops", "20")
    assert code in (0, 4)
    res, _ = _result(in_tmp / "reports")
    assert res["stopped_early"] and 0 < len(res["results"]) < 100000
    assert "time budget reached" in capsys.readouterr().err


def test_json_output_is_one_document_and_nothing_else(in_tmp, capsys):
    code = run_cli("run", "--backend", "tests.broken_backends:count_drift", "--seeds", "3", "--json")
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert code == 1 and doc["verdict"] == "violation" and doc["exit_code"] == 1
    assert doc["replay"].startswith("dst replay ")
    assert out.err == ""
    assert run_cli("replay", doc["replay"].split()[-1], "--json") == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["match"] == "exact" and rep["verdict"] == "violation"


def test_run_replay_and_check_write_html_reports(in_tmp, capsys):
    assert run_cli("run", "--backend", "tests.broken_backends:lost_write", "--seeds", "2",
                   "--quiet", "--report-dir", "r") == 1
    res, run_dir = _result(in_tmp / "r")
    page = (run_dir / "report.html").read_text()
    assert "<script" in page and "http://" not in page and "https://" not in page
    assert run_cli("replay", str(run_dir / "history.jsonl"), "--quiet", "--report-dir", "rr") == 1
    _, replay_dir = _result(in_tmp / "rr")
    assert (replay_dir / "report.html").stat().st_size > 1000
    out = in_tmp / "check.html"
    assert run_cli("check", str(run_dir / "history.jsonl"), "--model", "vector", "--html", str(out)) == 1
    assert out.stat().st_size > 1000


def test_tolerant_replay_match_ignores_tie_order_only():
    from dst.check.compare import tolerant_match
    from dst.history import History
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    _, h = run_seed(load("ties"), 0, "sim")
    swapped = History.from_bytes(h.to_bytes())
    for e in swapped.events:
        hits = e["value"] if e["type"] == "ok" and e["f"] == "search" else None
        if hits and len(hits) >= 2 and abs(hits[0][1] - hits[1][1]) <= 1e-4 and hits[0][0] != hits[1][0]:
            hits[0], hits[1] = hits[1], hits[0]
            break
    else:
        raise AssertionError("no tied pair in the ties scenario")
    assert tolerant_match(swapped, h, 1e-4).startswith("exact (up to tie order")
    changed = History.from_bytes(h.to_bytes())
    ev = next(e for e in changed.events if e["type"] == "ok" and e["f"] == "count")
    ev["value"] += 1
    assert tolerant_match(changed, h, 1e-4).startswith("diverged at op ")
    assert "count: different answers" in tolerant_match(changed, h, 1e-4)


def test_a_setup_error_during_a_run_is_one_line(tmp_path):
    p = dst("run", "--seeds", "1", "--backend", "lance", "--location", "/proc/no-such-dir", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith("error: lance: cannot open"), repr(p.stderr)   # no stray blank line
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_a_failed_index_build_stops_the_run(in_tmp, capsys):
    mod = in_tmp / "failing_index.py"
    mod.write_text(
        "from backends.sim import SimBackend\n"
        "from dst.errors import BackendError\n"
        "class B(SimBackend):\n"
        "    def maintenance(self, kind):\n"
        "        raise BackendError('index build ran out of memory')\n"
        "def open_backend(config):\n"
        "    return B(config)\n")
    assert run_cli("run", "--backend", "failing_index:open_backend", "--scenario", "search-heavy",
                   "--seeds", "1", "--quiet") == 2
    err = capsys.readouterr().err
    assert "setup failed: the load phase's maintenance('index') did not succeed: index build ran out of memory" in err
