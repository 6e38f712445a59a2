"""The ANN recall gate is never skipped: measured along the linearization
the checker found (witness or full search, so threads mode too), else from
the quiescent probes; a floor with no measurement is exit 4, never 0."""

import json

import numpy as np
import pytest

from dst.check.linearizability import INF, UNKNOWN, Operation, check
from dst.sim.gates import evaluate
from dst.check.models.vector import VectorModel
from dst.sim.runner import SeedResult, run_seed
from dst.sim.scenario import load
from tests.conftest import run_cli

WORST = "tests.broken_backends:worst_topk"
pytest_plugins = ["pytester"]


@pytest.mark.parametrize("concurrency", ["sim", "threads"])
def test_an_index_answering_the_worst_top_k_fails_the_recall_gate(concurrency, in_tmp, capsys):
    # Before the gate was measured along the full search's linearization,
    # threads mode had no recall at all and this backend passed there.
    code = run_cli("run", "--backend", WORST, "--scenario", "ann", "--seeds", "2",
                   "--concurrency", concurrency)
    err = capsys.readouterr().err
    (run_dir,) = list((in_tmp / "reports").iterdir())
    res = json.loads((run_dir / "result.json").read_text())
    assert code == 1, err
    assert all(r["verdict"] == "ok" for r in res["results"])   # no single answer is wrong
    assert res["verdict"] == "violation"
    rec = res["recall"]
    assert rec["searches"] > 50 and rec["mean"] < 0.1 and not rec["passed"]
    assert "BELOW THE FLOOR" in err


def test_the_linearization_the_search_found_is_returned_and_valid():
    vecs = [np.array(v, dtype=np.float32) for v in ([1, 0], [0, 1], [1, 1])]
    m = VectorModel(vecs, dim=2)
    # Two concurrent stores and a get that saw the second: only one order works.
    ops = [Operation(0, 0, "store", ("store", "a", 0, None), None, 0, 10, None, 0),
           Operation(1, 1, "store", ("store", "a", 1, None), None, 1, 10, None, 1),
           Operation(2, 2, "get", ("get", "a", None), 0, 11, 12, None, 2),
           Operation(3, 3, "store", ("store", "b", 2, None), UNKNOWN, 13, INF, None, 3)]
    r = check(m, ops, use_witness=False)
    assert r.verdict == "ok" and not r.witness
    assert sorted(op.id for op in r.order) == [0, 1, 2, 3]
    assert [op.id for op in r.order][:3] == [1, 0, 2]
    state = m.init()
    for op in r.order:
        ok, state = m.step(state, op.input, op.output)
        assert ok, op
    # the witness order, when it proves the history, is the order given
    d = [Operation(o.id, o.process, o.f, o.input, o.output, o.call, o.ret, dispatch, o.index)
         for o, dispatch in zip(ops, (1, 0, 2, None))]
    r = check(m, d)
    assert r.witness and [op.id for op in r.order] == [1, 0, 2, 3]
    # no order for a violation
    bad = ops[:2] + [Operation(2, 2, "get", ("get", "a", None), 2, 11, 12, None, 2)]
    assert check(m, bad).order is None


def test_threads_mode_measures_recall_on_a_correct_store():
    r, _ = run_seed(load("ann"), 0, WORST, concurrency="threads")
    assert r.verdict == "ok" and not r.exact
    total, n = r.recall
    assert n > 20 and total / n < 0.1


def test_without_a_linearization_the_probes_measure_recall():
    # A budget too small for any linearization: the verdict is unknown, and
    # the recall still comes from the quiescent probes' searches.
    r, _ = run_seed(load("ann"), 0, WORST, budget_steps=1)
    assert r.verdict == "unknown"
    assert r.recall[1] >= 1


def test_a_recall_floor_never_measured_is_not_a_pass():
    def seed(recall):
        return SeedResult(seed=0, verdict="ok", ops=10, fired={}, enabled=[], exact=False, recall=recall)
    g = evaluate([seed((0.0, 0)), seed((0.0, 0))], 0, 0.9)
    assert g.recall_unmeasured and g.not_proven and not g.violated
    assert "the ANN recall floor 0.9 was never measured" in " ".join(g.sentences())
    g = evaluate([seed((0.0, 0)), seed((1.9, 2))], 0, 0.9)
    assert not g.recall_unmeasured and g.recall["mean"] == pytest.approx(0.95) and g.recall["passed"]
    g = evaluate([seed((0.5, 2))], 0, 0.9)
    assert g.recall_failed and g.violated
    assert not evaluate([seed((0.0, 0))], 0, 0.0).not_proven      # a floor of 0 gates nothing
    exact = SeedResult(seed=0, verdict="ok", ops=10, fired={}, enabled=[])
    assert evaluate([exact], 0, 0.9).recall is None                # exact search: no gate


def test_a_run_whose_ann_searches_never_answer_exits_4(in_tmp, capsys):
    # Every op gets an injected error: nothing is stored, every search
    # (the probes' too) answers an empty list, so recall is never measured.
    path = in_tmp / "no-answers.toml"
    path.write_text("ops_per_seed = 30\n[ops]\nstore = 1\nsearch = 1\n[faults]\nerror = 1.0\n")
    code = run_cli("run", "--backend", WORST, "--scenario", str(path), "--seeds", "2")
    err = capsys.readouterr().err
    (run_dir,) = list((in_tmp / "reports").iterdir())
    res = json.loads((run_dir / "result.json").read_text())
    assert code == 4, err
    assert res["recall_unmeasured"] and res["recall"]["searches"] == 0
    assert "the ANN recall floor 0.9 was never measured" in err


def test_the_pytest_plugin_fails_on_recall_below_the_floor(pytester, monkeypatch):
    from tests.conftest import ROOT
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_user=f"""
        def test_ann(dst_run):
            dst_run(backend="{WORST}", scenario="ann", seeds=2)
    """)
    # No -q: inside a checkout (a basetemp under it) pytest would add the
    # project's own -q, and -qq prints no summary line to parse.
    result = pytester.runpytest_subprocess("-o", "addopts=")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*vector-dst: 2 seeds of ann on *worst_topk: recall@k 0.0* is below "
                                 "the scenario's floor 0.8*"])
