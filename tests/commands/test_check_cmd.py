"""``dst check HISTORY --model M``: exit codes, output, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dst.commands.check import STEPS_PER_SECOND, add_parser, check_file, main, sniff_format
from dst.check.linearizability import DEFAULT_BUDGET_STEPS
from dst.console import Parser
from dst.errors import UsageError
from dst.history import History
from tests.conftest import ROOT

DATA = Path(__file__).resolve().parents[1] / "data" / "porcupine-kv"
C01_OK, C01_BAD, C10_OK = (str(DATA / f"{n}.txt") for n in ("c01-ok", "c01-bad", "c10-ok"))
PYTHON = sys.executable
DST = str(Path(sys.executable).parent / "dst")


def parse(*argv):
    """The check subcommand on a parser like the CLI's (usage errors raise)."""
    top = Parser(prog="dst")
    add_parser(top.add_subparsers(dest="command", parser_class=Parser))
    return top.parse_args(["check", *argv])


def run(capsys, *argv):
    code = main(parse(*argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- verdicts and exit codes ------------------------------------------------------------

def test_linearizable_is_exit_0(capsys):
    code, out, err = run(capsys, C01_OK, "--model", "kv")
    assert code == 0 and err == ""
    assert out.strip() == f"{C01_OK}: linearizable (model kv, 58 ops in 10 parts, 58 search steps)"


def test_violation_is_exit_1_with_a_brief_witness(capsys):
    code, out, err = run(capsys, C01_BAD, "--model", "kv")
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"{C01_BAD}: NOT LINEARIZABLE (model kv, 38 ops in 8 parts")
    assert "no linearization in key '7' (5 ops): the longest linearizable prefix has 3 ops" in out
    assert "line 55: process 0 append '7' 'x 0 3 y' ok" in out
    assert "state there: {'7': 'x 0 0 yx 0 3 y'}" in out
    assert "line 59: process 0 get '7' -> 'x 0 0 y'" in out
    assert len(lines) < 15


def test_a_part_the_model_refutes_does_not_claim_the_longest_prefix(capsys):
    # c50-bad's reported part is proved by the kv model's stale-read sweep,
    # with no search: its prefix is a linearizable one, not the longest.
    code, out, _ = run(capsys, str(DATA / "c50-bad.txt"), "--model", "kv")
    assert code == 1
    assert "(refuted by the model, no search): a linearizable prefix has" in out
    assert "the longest linearizable prefix" not in out


def test_violation_whole_history(capsys):
    code, out, _ = run(capsys, C01_BAD, "--model", "kv", "--no-partition")
    assert code == 1
    assert "38 ops," in out and "no linearization:" in out


def test_budget_out_is_exit_3_never_a_pass(capsys):
    code, out, _ = run(capsys, C10_OK, "--model", "kv", "--no-partition", "--budget-steps", "1000")
    assert code == 3
    assert "UNKNOWN" in out and "search budget of 1000 steps exhausted" in out
    assert "not a pass" in out


def test_budget_seconds_are_a_fixed_number_of_steps(capsys):
    code, out, _ = run(capsys, C10_OK, "--model", "kv", "--no-partition", "--budget-s", "0.002",
                       "--json")
    assert code == 3
    result = json.loads(out)
    assert result["budget_steps"] == round(0.002 * STEPS_PER_SECOND) == result["steps"]
    assert result["verdict"] == "unknown"
    assert DEFAULT_BUDGET_STEPS == 10 * STEPS_PER_SECOND


def test_json_result_carries_the_witness(capsys):
    code, out, _ = run(capsys, C01_BAD, "--model", "kv", "--json")
    assert code == 1
    r = json.loads(out)
    assert (r["verdict"], r["model"], r["format"], r["ops"], r["partitions"]) == \
        ("violation", "kv", "edn", 38, 8)
    v = r["violation"]
    assert v["partition"] == "key '7'" and v["partition_ops"] == 5
    assert [o["line"] for o in v["prefix"]] == [3, 37, 55]
    assert [o["line"] for o in v["unplaced"]] == [59]
    assert v["op"] == {"line": 59, "end_line": 60, "process": 0, "f": "get", "type": "ok",
                       "value": None, "output": "x 0 0 y", "key": "7"}
    assert v["state_data"] == {"7": "x 0 0 yx 0 3 y"}
    assert v["message"] == "get '7' returned 'x 0 0 y', but the key holds 'x 0 0 yx 0 3 y'"
    assert r["violations"] == [v]
    verdicts = {p["label"]: p["verdict"] for p in r["parts"]}
    assert verdicts["key '7'"] == "violation"


def test_check_file_returns_data():
    r = check_file(C01_OK, "kv")
    assert r["verdict"] == "ok" and r["violation"] is None and r["partitions"] == 10


# -- register histories, EDN and our JSONL ---------------------------------------------------

REGISTER_BAD = """{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :invoke, :f :cas, :value [1 2]}
{:process 1, :type :ok, :f :cas, :value [1 2]}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value 1}
"""


def test_cas_register_edn(tmp_path, capsys):
    p = tmp_path / "reg.edn"
    p.write_text(REGISTER_BAD)
    code, out, _ = run(capsys, str(p), "--model", "cas-register")
    assert code == 1
    assert "state there: value 2" in out
    assert "first to return: line 5: read returned 1, but the register holds 2" in out
    p.write_text(REGISTER_BAD.replace(":value 1}\n{:process 2", ":value 1}\n{:process 2")
                 .replace("{:process 2, :type :ok, :f :read, :value 1}", "{:process 2, :type :ok, :f :read, :value 2}"))
    assert run(capsys, str(p), "--model", "cas-register")[0] == 0


def test_register_history_in_our_jsonl_format(tmp_path, capsys):
    h = History(meta={"model": "register"})
    h.add(0, 0, "invoke", "write", 1)
    h.add(1, 0, "ok", "write", 1)
    h.add(2, 1, "invoke", "read", None)
    h.add(3, 1, "ok", "read", 1)
    h.add(4, 2, "invoke", "write", 2)
    h.add(5, 2, "info", "write", 2)
    p = tmp_path / "reg.jsonl"
    h.write(p)
    code, out, _ = run(capsys, str(p), "--model", "register")
    assert code == 0 and "linearizable" in out
    h.add(6, 3, "invoke", "read", None)
    h.add(7, 3, "ok", "read", 3)
    h.write(p)
    code, out, _ = run(capsys, str(p), "--model", "register", "--json")
    assert code == 1
    assert json.loads(out)["violation"]["op"]["line"] == 8   # header, then events from line 2


# -- the vector model on dst run histories --------------------------------------------------------

def test_vector_model_on_a_recorded_history(tmp_path, capsys):
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    _, h = run_seed(load("crud"), 0, "sim")
    p = tmp_path / "history.jsonl"
    h.write(p)
    code, out, _ = run(capsys, str(p), "--model", "vector")
    assert code == 0 and "linearizable (model vector" in out


def test_vector_model_finds_a_broken_backend(tmp_path, capsys):
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    from tests.broken_backends import BROKEN
    sc = load("crud")
    for seed in range(60):
        r, h = run_seed(sc, seed, "lost_write", factory=BROKEN["lost_write"])
        if r.verdict == "violation":
            break
    else:
        pytest.fail("lost_write never caught in 60 crud seeds")
    p = tmp_path / "history.jsonl"
    h.write(p)
    code, out, _ = run(capsys, str(p), "--model", "vector")
    assert code == 1
    assert "NOT LINEARIZABLE (model vector" in out and "why: " in out
    code, out, _ = run(capsys, str(p), "--model", "vector", "--json")
    assert json.loads(out)["violation"]["kind"] == "linearizability"


# -- bad usage: exit 2, one line ------------------------------------------------------------------

def _one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_malformed_edn_names_file_and_line(tmp_path, capsys):
    p = tmp_path / "bad.txt"
    p.write_text("{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n"
                 "{:process 0, :type :ok, :f :get, :key \"a\", :value \"\"}\n"
                 "{:process 0, :type :invoke, :f :get, :key \"a\" :value nil\n")
    code, out, err = run(capsys, str(p), "--model", "kv")
    assert code == 2 and out == ""
    assert _one_line(err) == f"error: {p}:3: unclosed '{{': no matching '}}' before the end of the file"


@pytest.mark.parametrize("make, argv, message", [
    (None, ["nope.edn", "--model", "kv"], "dst check: no such file 'nope.edn'"),
    ("edn", ["--model", "vector"], "the vector model reads vector-dst JSONL histories"),
    ("edn", ["--model", "kv", "--format", "jsonl"], ":1: not JSON"),
    ("edn", ["--model", "register"], ":1: append has a :key ('0'); the register model is one register"),
    ("jsonl-empty", ["--model", "vector"], "no vector-dst/history header line"),
    ("twice", ["--model", "register"], ":2: process 0 invokes again while its op from line 1 is still open"),
])
def test_bad_input_is_exit_2_with_one_line(make, argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if make == "edn":
        argv = [C01_OK, *argv]
    elif make == "jsonl-empty":
        (tmp_path / "e.jsonl").write_text("")
        argv = ["e.jsonl", *argv]
    elif make == "twice":
        (tmp_path / "t.edn").write_text("{:process 0, :type :invoke, :f :write, :value 1}\n" * 2)
        argv = ["t.edn", *argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in _one_line(err)


@pytest.mark.parametrize("argv, message", [
    (["h.edn"], "the following arguments are required: --model"),
    (["h.edn", "--model", "graph"], "invalid choice: 'graph'"),
    (["h.edn", "--model", "kv", "--budget-steps", "0"], "expected a number of at least 1"),
    (["h.edn", "--model", "kv", "--budget-s", "-1"], "expected a positive number of seconds"),
    (["h.edn", "--model", "kv", "--budget-s", "1", "--budget-steps", "5"], "not allowed with"),
    (["h.edn", "--model", "kv", "--format", "xml"], "invalid choice: 'xml'"),
])
def test_usage_errors_raise_one_sentence(argv, message):
    with pytest.raises(UsageError) as info:
        parse(*argv)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_format_sniffing(tmp_path):
    assert sniff_format(Path(C01_OK)) == "edn"
    p = tmp_path / "h.txt"
    History(meta={}).write(p)
    assert sniff_format(p) == "jsonl"
    assert sniff_format(tmp_path / "x.jsonl") == "jsonl"
    assert sniff_format(tmp_path / "x.edn") == "edn"


# -- as a program ------------------------------------------------------------------------------

def _cli_has_check():
    from dst.cli import build_parser
    try:
        build_parser().parse_args(["check", "x", "--model", "kv"])
    except Exception:  # noqa: BLE001 - not wired yet: any refusal
        return False
    return True


def _prog(argv, cwd):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=dict(os.environ),
                          timeout=120)


@pytest.mark.parametrize("how", ["module", "dst"])
def test_exit_codes_as_a_program(how, tmp_path):
    assert _cli_has_check(), "dst check must be a dst subcommand"
    prefix = [PYTHON, "-m", "dst.commands.check"] if how == "module" else [DST, "check"]
    bad = tmp_path / "bad.edn"
    bad.write_text("{:process 0, :type :invoke, :f :read\n")
    cases = [([C01_OK, "--model", "kv"], 0), ([C01_BAD, "--model", "kv"], 1),
             ([C10_OK, "--model", "kv", "--no-partition", "--budget-steps", "500"], 3),
             ([str(bad), "--model", "register"], 2), ([C01_OK, "--model", "nope"], 2),
             (["missing.edn", "--model", "kv"], 2)]
    for argv, want in cases:
        p = _prog([*prefix, *argv], cwd=ROOT)
        assert p.returncode == want, (argv, p.stdout, p.stderr)
        if want == 2:
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
            assert "Traceback" not in p.stderr and p.stdout == ""
        else:
            assert p.stderr == ""


@pytest.mark.parametrize("hits", [[["x", "not a score"]], [["x"]] * 8])
def test_a_search_answer_that_is_not_hits_is_named_as_such(capsys, tmp_path, hits):
    """An ok search whose output is not (id, score) hits (a hand-edited or
    foreign history): a violation that says so, never a count of its parts."""
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    _, h = run_seed(load("search-heavy"), 1, "sim")
    h.write(tmp_path / "h.jsonl")
    lines = (tmp_path / "h.jsonl").read_text().splitlines()
    at = next(i for i, ln in enumerate(lines)
              if '"type":"ok"' in ln and '"f":"search"' in ln and '"value":[[' in ln)
    event = json.loads(lines[at])
    event["value"] = hits
    lines[at] = json.dumps(event)
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, str(tmp_path / "bad.jsonl"), "--model", "vector")
    assert code == 1 and err == ""
    assert "search output is not a list of (id, score) hits" in out
