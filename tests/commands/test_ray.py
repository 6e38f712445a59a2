"""`dst run --executor ray`: the same report as a local run, on a real local
Ray (the session's `ray_local`: 2 CPUs, no dashboard), and honest about
workers that die, leak state or print."""

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from functools import partial

import pytest

from tests.conftest import ROOT, run_cli

STALE = "tests.broken_backends:stale_get"


def _run_dir(d):
    (run_dir,) = list(d.iterdir())
    return run_dir, json.loads((run_dir / "result.json").read_text())


def _same_report(a, b):
    (da, ra), (db, rb) = _run_dir(a), _run_dir(b)
    for key in ("results", "seeds", "fault_counts", "verdict", "exit_code", "availability",
                "faults_never_fired", "stopped_early", "ops", "recall"):
        assert ra[key] == rb[key], key
    assert (da / "history.jsonl").read_bytes() == (db / "history.jsonl").read_bytes()
    names = sorted(p.name for p in (da / "histories").iterdir())
    assert names and names == sorted(p.name for p in (db / "histories").iterdir())
    for n in names:
        assert (da / "histories" / n).read_bytes() == (db / "histories" / n).read_bytes(), n
    return ra, rb


def test_ray_run_gives_the_local_report_verdicts_faults_and_history_bytes(ray_local, in_tmp, capsys):
    argv = ["run", "--seeds", "16", "--backend", STALE, "--ops", "60", "--quiet"]
    assert run_cli(*argv, "--report-dir", "local") == 1
    assert run_cli(*argv, "--executor", "ray", "--report-dir", "ray", "--junit", "ray.xml") == 1
    ra, rb = _same_report(in_tmp / "local", in_tmp / "ray")
    assert rb["executor"] == "ray" and any(r["verdict"] == "violation" for r in rb["results"])
    assert sum(rb["fault_counts"].values()) > 0
    # JUnit from the driver: one case per seed, the failing ones failed.
    cases = ET.parse(in_tmp / "ray.xml").getroot().iter("testcase")
    failed = sorted(int(c.get("name").split()[-1]) for c in cases if c.find("failure") is not None)
    assert failed == [r["seed"] for r in rb["results"] if r["verdict"] != "ok"]


def test_fail_fast_and_shrink_of_a_remote_failure_on_the_driver(ray_local, in_tmp, capsys):
    argv = ["run", "--seeds", "30", "--backend", STALE, "--ops", "60", "--quiet", "--fail-fast"]
    assert run_cli(*argv, "--report-dir", "local") == 1
    assert run_cli(*argv, "--executor", "ray", "--report-dir", "ray") == 1
    _, rb = _same_report(in_tmp / "local", in_tmp / "ray")
    assert rb["stopped_early"] and rb["results"][-1]["verdict"] == "violation"
    assert len(rb["results"]) < 30
    # The failing history came back to the driver: shrink it here.
    run_dir, _ = _run_dir(in_tmp / "ray")
    capsys.readouterr()
    assert run_cli("shrink", str(run_dir / "history.jsonl"), "--time-budget", "2", "--out", "case.json",
                   "--quiet") == 1
    case = json.loads((in_tmp / "case.json").read_text())
    assert case["backend"] == STALE and case["seed"] == rb["results"][-1]["seed"]


def test_time_budget_reports_exactly_the_seeds_that_ran(ray_local, in_tmp, capsys):
    code = run_cli("run", "--backend", "sim", "--seeds", "100000", "--ops", "20", "--time-budget", "2",
                   "--executor", "ray")
    assert code in (0, 4)
    _, res = _run_dir(in_tmp / "reports")
    seeds = [r["seed"] for r in res["results"]]
    assert res["stopped_early"] and 0 < len(seeds) < 100000
    assert res["seeds"] == seeds == sorted(seeds) and len(set(seeds)) == len(seeds)
    assert "time budget reached" in capsys.readouterr().err


def test_a_worker_that_dies_loses_its_chunk_as_unknown_never_retried(ray_local, in_tmp, capsys):
    # The backend dies the first time seed 5 opens; a retry would pass it.
    code = run_cli("run", "--seeds", "10", "--backend", "tests.ray_backends:dies_once_on_seed_5",
                   "--location", str(in_tmp), "--ops", "30", "--executor", "ray", "--quiet")
    assert code == 3
    run_dir, res = _run_dir(in_tmp / "reports")
    assert [r["seed"] for r in res["results"]] == list(range(10))   # none dropped silently
    lost = [r for r in res["results"] if r["verdict"] != "ok"]
    assert 5 in [r["seed"] for r in lost]
    assert [r["seed"] for r in lost] == list(range(lost[0]["seed"], lost[-1]["seed"] + 1))  # one chunk
    for r in lost:
        assert r["verdict"] == "unknown" and "WorkerCrashedError" in r["reason"]
        assert "seed 5: about to die" in r["reason"]
        assert (run_dir / "histories" / f"seed-{r['seed']}.lost.txt").is_file()
    assert capsys.readouterr().out == ""          # Ray's notices too go to stderr


def _twice(seed, backend):
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    result, history = run_seed(load("default").with_overrides(None, 40, None), seed, backend,
                               token="twice")
    return os.getpid(), result.verdict, history.to_bytes()


def test_a_reused_worker_gives_the_same_seed_the_same_bytes(ray_local):
    from dst.sim.executor import RayExecutor
    with RayExecutor(token="twice", chunk=3, echo=False) as ex:
        out = [v for _, v in ex.map(partial(_twice, backend="tests.ray_backends:leaks_env"), [3, 3, 3])]
    assert len({pid for pid, _, _ in out}) == 1          # one task, one worker process
    assert [v for _, v, _ in out] == ["ok"] * 3 and out[0][2] == out[1][2] == out[2][2]


def test_worker_output_is_never_deduplicated_and_stays_off_stdout(ray_local, in_tmp, capsys):
    code = run_cli("run", "--seeds", "6", "--backend", "tests.ray_backends:chatty", "--ops", "20",
                   "--executor", "ray", "--json")
    out = capsys.readouterr()
    assert json.loads(out.out)["exit_code"] == code      # stdout: the JSON document only
    want = {f"chatty backend {what} for seed {seed}" for seed in range(6) for what in ("opened", "stderr")}
    err = out.err
    deadline = time.monotonic() + 20     # worker lines reach the driver asynchronously
    while not all(w in err for w in want) and time.monotonic() < deadline:
        time.sleep(0.2)
        late = capsys.readouterr()
        assert "chatty" not in late.out
        err += late.err
    assert sorted(w for w in want if w not in err) == []
    assert "repeated" not in err


def _dst(*argv, pre=""):
    code = f"import sys; {pre}from dst.cli import main; sys.exit(main({list(argv)!r}))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    env.pop("DST_PG_DSN", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)


@pytest.mark.parametrize("argv, pre, message", [
    (["--ray-address", "127.0.0.1:9"], "", "--ray-address 127.0.0.1:9: nothing answers there"),
    ([], "sys.modules['ray'] = None; ", "--executor ray needs Ray, which is not installed here: "
                                        "pip install -e '.[ray]'"),
    (["--backend", "pgvector"], "", "pgvector on Ray needs one shared server: set DST_PG_DSN"),
])
def test_bad_ray_setup_is_one_line_and_exit_2(argv, pre, message, tmp_path):
    p = _dst("run", "--backend", "sim", "--seeds", "2", "--executor", "ray", "--report-dir",
             str(tmp_path), *argv, pre=pre)
    assert p.returncode == 2, p
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert not list(tmp_path.iterdir())     # no empty report folder left behind


def test_matrix_on_ray_gives_the_local_grid(ray_local, in_tmp, capsys):
    argv = ["matrix", "--backends", f"sim,{STALE}", "--scenarios", "crud", "--seeds", "6", "--ops", "60",
            "--quiet"]
    assert run_cli(*argv, "--report-dir", "local") == 1
    assert run_cli(*argv, "--executor", "ray", "--report-dir", "ray") == 1
    docs = {}
    for side in ("local", "ray"):
        (mdir,) = [p for p in (in_tmp / side).iterdir() if p.name.startswith("matrix-")]
        docs[side] = json.loads((mdir / "matrix.json").read_text())
    assert docs["ray"]["executor"] == "ray"
    for a, b in zip(docs["local"]["cells"], docs["ray"]["cells"]):
        assert (a["backend"], a["status"], a["kind"], a["seeds_run"]) == \
               (b["backend"], b["status"], b["kind"], b["seeds_run"])
    assert [c["status"] for c in docs["ray"]["cells"]] == ["pass", "violation"]
