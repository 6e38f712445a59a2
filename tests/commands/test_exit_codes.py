"""Exit codes mean one thing each (issue 10, item 7).

* Input that cannot be read (a non-UTF-8 history, scenario or case file, a
  --report-dir that cannot hold folders) is exit 2: one line, no traceback.
* A backend answering in a shape the protocol forbids is a finding: exit 1,
  violation kind ``contract``, naming the op and what was wrong.
* An exception escaping the harness itself is exit 6: one line on stderr,
  the traceback saved where that line says.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from dst.console import EXIT_INTERNAL, EXIT_USAGE, EXIT_VIOLATION
from dst.sim.faults import CONTRACT_ERROR, Boundary
from dst.history import VectorTable
from dst.rng import Rng
from tests.broken_contract import CONTRACT_BROKEN
from tests.conftest import ROOT, run_cli

NOT_UTF8 = b'{"format": "vector-dst/history", "version": 1, "meta": {}}\n\xff\xfe oops\n'


def _one_error_line(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# -- exit 2: input that cannot be read ---------------------------------------------

@pytest.mark.parametrize("argv", [
    ["check", "{h}", "--model", "vector"],
    ["check", "{h}", "--model", "kv"],
    ["check", "{h}", "--model", "register", "--format", "jsonl"],
    ["replay", "{h}"],
    ["shrink", "{h}"],
])
def test_non_utf8_history_is_exit_2(argv, in_tmp, capsys):
    h = in_tmp / "bad.jsonl"
    h.write_bytes(NOT_UTF8)
    code = run_cli(*[a.format(h=h) for a in argv])
    assert code == EXIT_USAGE
    _one_error_line(capsys.readouterr().err, "bad.jsonl:2", "not UTF-8")


@pytest.mark.parametrize("command", ["replay", "shrink"])
@pytest.mark.parametrize("meta, needle", [
    ([1], "meta is not a JSON object"),
    ({"seed": 0, "backend": "sim"}, "lacks what a replay needs"),
])
def test_history_without_what_a_replay_needs_is_exit_2(command, meta, needle, in_tmp, capsys):
    h = in_tmp / "h.jsonl"
    h.write_text(json.dumps({"format": "vector-dst/history", "version": 1, "meta": meta}) + "\n")
    assert run_cli(command, str(h)) == EXIT_USAGE
    _one_error_line(capsys.readouterr().err, "h.jsonl", needle)


@pytest.mark.parametrize("command", ["replay", "shrink"])
def test_non_utf8_case_file_is_exit_2(command, in_tmp, capsys):
    case = in_tmp / "case.json"
    case.write_bytes(b'{"format": "\xff"}')
    assert run_cli(command, str(case)) == EXIT_USAGE
    _one_error_line(capsys.readouterr().err, "case.json", "not UTF-8")


@pytest.mark.parametrize("command", ["replay", "shrink"])
@pytest.mark.parametrize("damage, needle", [
    (lambda c: {"format": c["format"], "version": c["version"]}, "not a complete case (no name"),
    (lambda c: {**c, "schedule": {**c["schedule"], "clients": "x"}}, "a damaged case"),
    (lambda c: {**c, "seed": "one"}, "a damaged case"),
])
def test_damaged_case_file_is_exit_2(command, damage, needle, in_tmp, capsys):
    good = json.loads((ROOT / "seeds" / "broken-lost_write.json").read_text())
    case = in_tmp / "case.json"
    case.write_text(json.dumps(damage(good)))
    assert run_cli(command, str(case)) == EXIT_USAGE
    _one_error_line(capsys.readouterr().err, "case.json", needle)


def test_non_utf8_scenario_file_is_exit_2(in_tmp, capsys):
    sc = in_tmp / "mine.toml"
    sc.write_bytes(b'name = "mine"\ndescription = "caf\xe9"\n')
    assert run_cli("run", "--backend", "sim", "--scenario", str(sc), "--seeds", "1") == EXIT_USAGE
    _one_error_line(capsys.readouterr().err, "mine.toml", "not UTF-8")


@pytest.mark.parametrize("argv", [
    ["run", "--backend", "sim", "--seeds", "1", "--ops", "10"],
    ["replay", "--seed", "0", "--backend", "sim", "--ops", "10"],
    ["conform", "--backends", "sim,tests.broken_contract:float_count", "--seeds", "1", "--ops", "10"],
])
def test_report_dir_that_cannot_hold_folders_is_exit_2(argv, in_tmp, capsys):
    # A file where the folder should be: mkdir fails (root may write anywhere,
    # so a read-only folder would not test this as root).
    blocker = in_tmp / "taken"
    blocker.write_text("not a folder\n")
    for where in (blocker, blocker / "below"):
        assert run_cli(*argv, "--report-dir", str(where)) == EXIT_USAGE
        _one_error_line(capsys.readouterr().err, "--report-dir", "cannot make a folder")


@pytest.mark.parametrize("argv, flag", [
    (["shrink", "--seed", "0", "--backend", "sim", "--out", "{blocked}/case.json"], "--out"),
    (["bench", "--quick", "--backends", "sim", "--report-dir", "{blocked}/bench"], "--report-dir"),
])
def test_unwritable_output_is_refused_before_the_work(argv, flag, in_tmp, capsys):
    blocker = in_tmp / "taken"
    blocker.write_text("not a folder\n")
    assert run_cli(*[a.format(blocked=blocker) for a in argv]) == EXIT_USAGE
    _one_error_line(capsys.readouterr().err, flag, "taken")


def test_unreadable_input_through_the_console_script(tmp_path):
    """The installed command behaves as main() does: exit 2, one line."""
    h = tmp_path / "bad.jsonl"
    h.write_bytes(NOT_UTF8)
    p = subprocess.run([sys.executable, "-m", "dst.cli", "check", str(h), "--model", "vector"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode == EXIT_USAGE, p
    _one_error_line(p.stderr, "not UTF-8")


# -- exit 1, kind contract: a backend answer of the wrong type ------------------------

def _run_json(backend: str, *extra: str, capsys) -> dict:
    code = run_cli("run", "--backend", backend, "--scenario", "crud", "--seeds", "2", "--ops", "60",
                   "--json", *extra)
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == code
    return doc


@pytest.mark.parametrize("name", sorted(CONTRACT_BROKEN))
def test_malformed_answer_is_a_contract_violation(name, in_tmp, capsys):
    _, op = CONTRACT_BROKEN[name]
    doc = _run_json(f"tests.broken_contract:{name}", capsys=capsys)
    assert doc["exit_code"] == EXIT_VIOLATION
    found = [v for r in doc["results"] for v in r["violations"]]
    contract = [v for v in found if v["kind"] == "contract"]
    assert contract, found
    first = contract[0]
    assert first["check"] == op and first["op"]["f"] == op
    assert first["message"].startswith(f"the backend broke the protocol: {op}")
    assert first["op"]["output"]["error"] == CONTRACT_ERROR
    # The contract finding leads: it is what is wrong, whatever else follows.
    assert all(r["violations"][0]["kind"] == "contract" for r in doc["results"] if r["violations"])


def test_correct_backend_has_no_contract_violation(in_tmp, capsys):
    doc = _run_json("sim", capsys=capsys)
    assert not [v for r in doc["results"] for v in r["violations"]]


def test_contract_violation_in_threads_mode(in_tmp, capsys):
    doc = _run_json("tests.broken_contract:text_scores", "--concurrency", "threads", capsys=capsys)
    assert doc["exit_code"] == EXIT_VIOLATION
    kinds = {v["kind"] for r in doc["results"] for v in r["violations"]}
    assert "contract" in kinds


def test_contract_violation_is_found_again_by_dst_check(in_tmp, capsys):
    _run_json("tests.broken_contract:matrix_get", capsys=capsys)
    (run_dir,) = (in_tmp / "reports").iterdir()
    assert run_cli("check", str(run_dir / "history.jsonl"), "--model", "vector") == EXIT_VIOLATION
    out = capsys.readouterr().out
    assert "VIOLATION, contract" in out and "get returned a vector of shape (1, " in out


@pytest.mark.parametrize("hits, why", [
    ([("a", 0.5)], "not a SearchHit"),
    ("a,b", "not a list of SearchHit"),
])
def test_boundary_names_what_was_wrong(hits, why):
    class Answers:
        dim = 2

        def search(self, query, limit):
            return hits
    table = VectorTable()
    q = table.ref(np.ones(2, dtype=np.float32))
    out = Boundary(table, Rng(0)).call(Answers(), "search", {"vector": q, "limit": 3}, None)
    assert out.type == "info" and out.output["error"] == CONTRACT_ERROR
    assert why in out.output["message"]


# -- exit 6: an exception escaping the harness ------------------------------------------

def _harness_bug(*args, **kwargs):
    raise RuntimeError("a bug planted in the harness for this test")


def test_internal_error_in_a_run_is_exit_6_with_traceback_in_the_run_folder(in_tmp, capsys, monkeypatch):
    # No real bug of the harness is known to reproduce on demand, so one is
    # planted: the checker step raises as a buggy harness would.
    import dst.sim.runner
    monkeypatch.setattr(dst.sim.runner, "check_history", _harness_bug)
    code = run_cli("run", "--backend", "sim", "--seeds", "1", "--ops", "10")
    assert code == EXIT_INTERNAL
    (run_dir,) = (in_tmp / "reports").iterdir()
    tb = run_dir / "traceback.txt"
    text = tb.read_text()
    assert "Traceback (most recent call last)" in text and "a bug planted in the harness" in text
    line = _one_error_line(capsys.readouterr().err, "internal error", "RuntimeError", str(tb.relative_to(in_tmp)))
    assert line.startswith("internal error")


def test_internal_error_without_a_run_folder_says_where_the_traceback_went(in_tmp, capsys, monkeypatch):
    import dst.commands.check
    monkeypatch.setattr(dst.commands.check, "check_file", _harness_bug)
    h = in_tmp / "h.edn"
    h.write_text("{:process 0, :type :invoke, :f :read, :value nil}\n")
    assert run_cli("check", str(h), "--model", "register") == EXIT_INTERNAL
    line = _one_error_line(capsys.readouterr().err, "internal error", "traceback in ")
    (saved,) = (in_tmp / "reports").glob("traceback-*.txt")
    assert str(saved.relative_to(in_tmp)) in line
    assert "a bug planted in the harness" in saved.read_text()


def test_findings_and_usage_errors_are_not_internal(in_tmp, capsys):
    """The wrapper catches only what escaped: a usage error stays 2 and a
    finding stays 1, with no traceback file anywhere."""
    assert run_cli("run", "--backend", "nope") == EXIT_USAGE
    assert run_cli("run", "--backend", "tests.broken_contract:float_count", "--scenario", "crud",
                   "--seeds", "1", "--ops", "30", "--quiet") == EXIT_VIOLATION
    assert not list(in_tmp.rglob("traceback*.txt"))


def test_a_factory_that_cannot_open_the_store_is_a_setup_error(in_tmp, capsys):
    # A user's driver exception at the first open is not a bug of the
    # harness (exit 6) but a store that cannot be set up: one line, exit 2.
    code = run_cli("run", "--backend", "tests.broken_contract:factory_raises", "--seeds", "1")
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "ConnectionRefusedError" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_run_that_ran_no_seed_is_not_a_pass(in_tmp, capsys, monkeypatch):
    # A time budget spent before the first seed: nothing was verified, so
    # the run is not proven (exit 4), never a pass.
    from dst import wallclock
    monkeypatch.setattr(wallclock.Deadline, "expired", lambda self: True)
    code = run_cli("run", "--backend", "sim", "--seeds", "3", "--time-budget", "5")
    assert code == 4
    assert "no seed ran" in capsys.readouterr().err
