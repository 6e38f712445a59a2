import json
from pathlib import Path

import pytest

from dst.check.compare import compare_attrs, compare_search
from tests.conftest import run_cli


def test_compare_search_tolerates_ties_only():
    e = 1e-4
    assert compare_search([["a", 1.0], ["b", 0.5]], [["a", 1.0], ["b", 0.5]], e) is None
    # a tie at the cut-off may go either way
    assert compare_search([["a", 1.0], ["b", 0.5]], [["a", 1.0], ["c", 0.50005]], e) is None
    assert compare_search([["a", 1.0], ["b", 0.5]], [["a", 1.0], ["c", 0.6]], e)
    assert "hits" in compare_search([["a", 1.0]], [], e)
    assert "scored 1.0 vs 0.9" in compare_search([["a", 1.0]], [["a", 0.9]], e)
    # tied pair in swapped order agrees
    assert compare_search([["a", 0.7], ["b", 0.7]], [["b", 0.7], ["a", 0.7]], e) is None


def test_compare_search_takes_the_ranking_rule_over_all_pairs():
    e = 1e-4
    a, b, c = ["a", 0.5], ["b", 0.50009], ["c", 0.50018]
    # A run of near-ties ordered two ways the contract both allows (each hit
    # at most eps above every one ranked before it): they agree, although
    # rank 1 holds c (0.50018) in one and a (0.5) in the other.
    assert compare_search([b, c, a], [c, a, b], e) is None
    # a ranked above c, 1.8 eps apart, is not a tie: the pair decides
    assert "ranks 'c'" in compare_search([a, b, c], [c, b, a], e)
    assert "second answer ranks 'c'" in compare_search([c, b, a], [a, b, c], e)


def _result(d):
    (run_dir,) = [p for p in d.iterdir() if p.is_dir()]
    return json.loads((run_dir / "result.json").read_text())


def test_sim_and_lance_agree(in_tmp, capsys):
    code = run_cli("conform", "--backends", "sim,lance", "--scenario", "crud", "--seeds", "2",
                   "--location", str(in_tmp / "db"), "--ops", "80")
    assert code == 0, capsys.readouterr().err
    res = _result(in_tmp / "reports")
    agree = res["agreement"]["lance"]
    assert agree["get"]["agree"] > 0 and all(v["differ"] == 0 for v in agree.values())


def test_a_disagreement_is_reported_and_shrunk(in_tmp, capsys):
    code = run_cli("conform", "--backends", "sim,tests.broken_backends:rescaled_scores",
                   "--scenario", "search-heavy", "--seeds", "2", "--ops", "60", "--shrink")
    assert code == 1
    err = capsys.readouterr()
    assert "first disagreement, sim vs tests.broken_backends:rescaled_scores" in err.err
    assert "search" in err.err
    (case,) = list((in_tmp / "seeds").glob("conform-*.json"))
    data = json.loads(case.read_text())
    assert data["conform"] == ["sim", "tests.broken_backends:rescaled_scores"]
    assert data["ops"] <= 8
    # result.json lists every disagreement, not only the first
    res = _result(in_tmp / "reports")
    listed = res["disagreements"]["tests.broken_backends:rescaled_scores"]
    assert len(listed) > 1 and {d["f"] for d in listed} == {"search"}
    assert {d["seed"] for d in listed} == {0, 1}
    # and names each seed the backend's own check failed, with its history
    bad = res["not_ok"]["tests.broken_backends:rescaled_scores"]
    assert [(n["seed"], n["verdict"]) for n in bad] == [(0, "violation"), (1, "violation")]
    assert "score" in bad[0]["why"] and Path(bad[0]["history"]).is_file()
    assert res["not_ok"]["sim"] == []
    assert "rescaled_scores seed 0: violation:" in err.err


def test_conform_needs_two_backends(in_tmp, capsys):
    assert run_cli("conform", "--backends", "sim") == 2
    assert "two or more different backends" in capsys.readouterr().err


@pytest.mark.parametrize("backends", [["sim", "tests.recording:nonatomic_sim"],
                                      ["tests.recording:nonatomic_sim", "sim"]], ids=["atomic-ref", "split-ref"])
def test_an_atomic_and_a_non_atomic_store_agree_under_partial_writes(in_tmp, capsys, backends):
    # The atomic sim can only take an error around the whole batch; the
    # non-atomic one would be cut to the recorded subset. Compared as
    # recorded, every read after a cut batch "disagrees" by the harness's
    # choice; conform runs such pairs with whole-batch faults instead.
    code = run_cli("conform", "--backends", ",".join(backends),
                   "--scenario", "partial-writes", "--seeds", "3", "--ops", "80")
    assert code == 0, capsys.readouterr().err
    res = _result(in_tmp / "reports")
    agree = res["agreement"][backends[1]]
    assert agree["get"]["agree"] > 0 and all(v["differ"] == 0 for v in agree.values())
    assert res["fault_counts"]["sim"]["batch-error"] > 0


def test_two_non_atomic_stores_share_the_recorded_subsets(in_tmp, capsys):
    # Both cut batches: each applies the same recorded strict subset.
    code = run_cli("conform", "--backends", "sim,tests.recording:nonatomic_sim",
                   "--scenario", "partial-writes", "--seeds", "3", "--ops", "80",
                   "--opt", "atomic_batches=false")
    assert code == 0, capsys.readouterr().err
    res = _result(in_tmp / "reports")
    assert all(v["differ"] == 0 for v in res["agreement"]["tests.recording:nonatomic_sim"].values())
    for b in ("sim", "tests.recording:nonatomic_sim"):
        assert res["fault_counts"][b]["partial-write"] > 0
        assert res["fault_counts"][b]["batch-error"] == 0


def test_compare_attrs_tells_bool_from_int():
    assert compare_attrs(None, None) is None
    assert compare_attrs({"attrs": {"a": True, "n": 1}}, {"attrs": {"n": 1, "a": True}}) is None
    assert "'a'" in compare_attrs({"attrs": {"a": True}}, {"attrs": {"a": 1}})
    assert "only on one side" in compare_attrs({"attrs": {"a": "x", "b": 2}}, {"attrs": {"a": "x"}})
    assert compare_attrs({"attrs": {}}, None)
    assert compare_attrs({"attrs": {"a": "x"}}, {"attrs": {"a": "y"}})


def test_conform_compares_get_attrs_answers(in_tmp, capsys):
    # bools answered as ints: equal to Python, a disagreement to conform.
    b = "tests.broken_backends:bool_attrs_as_int"
    code = run_cli("conform", "--backends", f"sim,{b}", "--scenario", "filters",
                   "--seeds", "1", "--ops", "60")
    assert code == 1
    err = capsys.readouterr().err
    res = _result(in_tmp / "reports")
    got = res["agreement"][b]["get_attrs"]
    assert got["differ"] > 0, got
    assert res["first_disagreement"][b]["f"] == "get_attrs"
    assert "get_attrs" in err and "attribute 'flag': True vs 1" in err


@pytest.mark.parametrize("backends", [["sim", "tests.recording:ann_sim"],
                                      ["tests.recording:ann_sim", "sim"]], ids=["exact-ref", "ann-ref"])
def test_a_store_without_search_exact_lines_up_with_one_that_has_it(in_tmp, capsys, backends):
    # The probe asks sim for its exact path ("exact": true) and the ANN store,
    # which has none, for a plain search, then runs reachability searches on
    # the ANN store only: the same op asked two ways, which must line up, and
    # an answer from an index, counted as ann, not held to the exact rules.
    code = run_cli("conform", "--backends", ",".join(backends), "--scenario", "crud", "--seeds", "1",
                   "--ops", "60")
    assert code == 0, capsys.readouterr().err
    res = _result(in_tmp / "reports")
    agree = res["agreement"][backends[1]]
    assert agree["search"]["ann"] > 0 and agree["get"]["agree"] > 0
    assert all(v["differ"] == 0 for v in agree.values())


def _one_search(metric: str, hits: list):
    from dst.history import History
    h = History(meta={"metric": metric, "exact": True})
    v = h.table.ref([1.0, 2.0])
    h.add(0, 0, "invoke", "search", {"vector": v, "limit": len(hits)})
    h.add(1, 0, "ok", "search", hits)
    return h


def test_search_scores_are_compared_with_the_checkers_tolerance_per_metric():
    # Under dot (and l2) scores grow with the norms and a store computes them
    # in float32: the checker allows score_eps times the score's magnitude,
    # and so must the comparison (seen: sim's true 1558.48368 vs pgvector's
    # and Milvus's float32 1558.48389, default seed 0 under --metric dot).
    from dst.check.compare import compare_histories
    true, f32 = [["k5", 1558.4836772772633]], [["k5", 1558.48388671875]]
    assert compare_search(true, f32, 1e-4, "dot") is None
    assert compare_search(true, f32, 1e-4, "l2") is None
    assert "scored" in compare_search(true, f32, 1e-4, "cosine")
    assert "scored" in compare_search(true, [["k5", 1558.7]], 1e-4, "dot")
    counts, diffs = compare_histories(_one_search("dot", true), _one_search("dot", f32), 1e-4, False)
    assert counts["search"]["agree"] == 1 and not diffs
    # the bar at the cut-off and the order rule scale the same way
    assert compare_search([["a", 2000.0], ["b", 1000.0]], [["a", 2000.0], ["c", 1000.09]], 1e-4, "dot") is None
    assert compare_search([["a", 1000.0], ["b", 1000.09]], [["a", 1000.0], ["b", 1000.09]], 1e-4, "dot") is None
    assert compare_search([["a", 1000.0], ["b", 1000.2]], [["a", 1000.0], ["b", 1000.2]], 1e-4, "dot")
