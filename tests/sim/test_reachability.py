"""ANN reachability (issue 13): every probed live id found by a search for
its own vector, scored from the history (dst.sim.reach), gated over the run
(dst.sim.gates)."""

import json
from pathlib import Path

import numpy as np
import pytest

from dst.check.models.vector import VectorModel
from dst.console import EXIT_OK, EXIT_VIOLATION
from dst.history import PairedOp
from dst.sim.gates import evaluate
from dst.sim.reach import seed_reachability
from dst.sim.runner import SeedResult, run_seed
from dst.sim.scenario import ScenarioError, load, parse
from tests.broken_reach import lost
from tests.conftest import run_cli

# A load of 80 rows, then updates, deletes and searches, no faults: enough
# live rows that the broken index's answers stay full length.
REACH_TOML = """
description = "load, then updates, deletes and searches; no faults"
clients = 2
ops_per_seed = 100
dims = [8]
vector_pool = 400
recall_floor = 0.8
reachability_floor = {floor}

[ids]
hot = 20
cold = 60

[load]
items = 80
batch = 40

[ops]
store = 30
delete = 10
search = 30
get = 5
count = 2
"""


def reach_scenario(folder: Path, floor: float = 0.99) -> Path:
    path = folder / f"reach-{floor:g}.toml"
    path.write_text(REACH_TOML.format(floor=floor))
    return path


def run_json(folder: Path, *argv: str) -> tuple[int, dict]:
    code = run_cli("run", "--quiet", "--report-dir", str(folder / "reports"), *argv)
    runs = sorted((folder / "reports").iterdir(), key=lambda p: p.stat().st_mtime)
    return code, json.loads((runs[-1] / "result.json").read_text())


def test_an_index_that_lost_rows_is_caught_by_reachability_and_nothing_else(in_tmp):
    broken = "tests.broken_reach:unreachable_subset"
    code, res = run_json(in_tmp, "--backend", broken, "--scenario", str(reach_scenario(in_tmp)), "--seeds", "2")
    assert code == EXIT_VIOLATION
    reach = res["reachability"]
    assert reach["applies"] and reach["checked"] > 0 and reach["fraction"] < 0.99
    assert res["reachability_violation"]["kind"] == "reachability"
    named = reach["unreachable"]
    assert named and all(lost(u["id"]) for u in named)          # exactly the ids the index lost
    assert all(u["when"] == "final" for u in named)
    # No seed found anything: every answer was admissible, the recall gate held.
    assert all(r["verdict"] == "ok" for r in res["results"])
    assert res["recall"]["passed"] and not res["availability_violations"]
    # ... so with the floor at 0 (reported, not gated) the same run passes.
    code0, res0 = run_json(in_tmp, "--backend", broken, "--scenario", str(reach_scenario(in_tmp, 0.0)),
                           "--seeds", "2")
    assert code0 == EXIT_OK
    assert res0["reachability"]["fraction"] == reach["fraction"]


def test_an_honest_ann_index_reaches_every_row(in_tmp):
    code, res = run_json(in_tmp, "--backend", "tests.broken_reach:honest_ann",
                         "--scenario", str(reach_scenario(in_tmp)), "--seeds", "2")
    assert code == EXIT_OK
    reach = res["reachability"]
    assert reach["applies"] and reach["fraction"] == 1.0
    # Bounded: at most reachability_sample ids per probe (one probe per seed here).
    assert 0 < reach["checked"] <= 2 * 64
    assert res["availability"]["search_reach"]["ok"] == reach["checked"]


def test_an_exact_backend_says_reachability_is_implied(in_tmp):
    code, res = run_json(in_tmp, "--backend", "sim", "--scenario", str(reach_scenario(in_tmp)), "--seeds", "1")
    assert code == EXIT_OK
    assert res["reachability"]["applies"] is False
    assert "exact" in res["reachability"]["why"]
    assert "search_reach" not in res["availability"]       # nothing probed


def test_the_reach_sample_is_deterministic(tmp_path):
    sc = parse({**_raw(), "reachability_sample": 5}, default_name="r")
    one = run_seed(sc, 3, "tests.broken_reach:honest_ann")[1].to_bytes()
    two = run_seed(sc, 3, "tests.broken_reach:honest_ann")[1].to_bytes()
    assert one == two
    assert one.count(b'"reach"') == 5


def _raw():
    import tomllib
    return tomllib.loads(REACH_TOML.format(floor=0.99))


def _op(n, f, value, output, process="probe"):
    return PairedOp(process=process, f=f, input=value, type="ok", output=output, call=n, ret=n + 0.5,
                    dispatch=n, index=n)


def test_a_row_with_an_identical_vector_stands_in_and_an_outranked_one_is_not_measured():
    vecs = [np.array([1, 0], np.float32), np.array([0, 1], np.float32), np.array([3, 0], np.float32)]
    cos = VectorModel(vecs, 2, exact=False, metric="cosine")
    pairs = [_op(0, "get", {"id": "a"}, 0), _op(1, "get", {"id": "b"}, 0), _op(2, "get", {"id": "c"}, 1),
             _op(3, "search", {"vector": 0, "limit": 1, "reach": "a", "when": "final"}, [["b", 1.0]]),
             _op(4, "search", {"vector": 1, "limit": 1, "reach": "c", "when": "final"}, [["a", 0.0]])]
    r = seed_reachability(cos, pairs)
    assert (r["checked"], r["found"]) == (2, 1)              # a found through b (same vector)
    assert r["unreachable"] == [{"id": "c", "when": "final"}]
    # Under dot, [1, 0] is not its own best match when [3, 0] is live: the
    # exact top 1 is the other row, so the query proves nothing either way.
    dot = VectorModel(vecs, 2, exact=False, metric="dot")
    pairs = [_op(0, "get", {"id": "a"}, 0), _op(1, "get", {"id": "d"}, 2),
             _op(2, "search", {"vector": 0, "limit": 1, "reach": "a", "when": "final"}, [["d", 3.0]])]
    r = seed_reachability(dot, pairs)
    assert (r["checked"], r["outranked"]) == (0, 1)
    # A live set from an earlier probe does not carry over (a client op ends it).
    pairs = [_op(0, "get", {"id": "a"}, 0), _op(1, "count", {}, 1, process=0),
             _op(2, "search", {"vector": 0, "limit": 1, "reach": "a", "when": "final"}, [])]
    assert seed_reachability(cos, pairs)["unanswered"] == 1


def _seed(reach, exact=False):
    return SeedResult(seed=0, verdict="ok", ops=1, fired={}, enabled=[], exact=exact, reach=reach)


def test_a_floor_with_nothing_measured_is_not_a_pass():
    empty = {"checked": 0, "found": 0, "outranked": 0, "unanswered": 0, "unreachable": [],
             "unreachable_count": 0}
    g = evaluate([_seed(empty)], 0, 0.0, 0.99)
    assert g.reachability_unmeasured and g.not_proven and not g.violated
    assert any("never measured" in s for s in g.sentences())
    # On an exact backend: implied, stated, no gate.
    g = evaluate([_seed(None, exact=True)], 0, 0.0, 0.99)
    assert g.reachability["applies"] is False and not g.not_proven and not g.violated
    lost_one = {**empty, "checked": 100, "found": 99, "unreachable": [{"id": "x", "when": "crash-1"}],
                "unreachable_count": 1}
    g = evaluate([_seed(lost_one)], 0, 0.0, 0.99)
    assert not g.violated                                   # 0.99 reaches the floor
    g = evaluate([_seed(lost_one)], 0, 0.0, 0.995)
    assert g.violated and g.reachability_violation["unreachable"] == [{"seed": 0, "id": "x", "when": "crash-1"}]
    assert "'x' (seed 0, crash-1)" in g.reachability_violation["message"]


def test_scenario_keys():
    sc = load("ann-churn")
    assert (sc.reachability_k, sc.reachability_floor, sc.reachability_sample) == (10, 0.99, 64)
    with pytest.raises(ScenarioError, match="reachability_sample of at least 1"):
        parse({"reachability_sample": 0}, default_name="x")
    assert parse({"reachability_sample": 0, "reachability_floor": 0}, default_name="x").reachability_sample == 0


def test_conform_lines_up_an_ann_backend_whose_probes_add_reach_searches(in_tmp):
    # Only the ANN side searches for reachability: without leaving those
    # searches out, the op sequences diverge at the first probe.
    code = run_cli("conform", "--quiet", "--backends", "sim,tests.broken_reach:honest_ann",
                   "--scenario", "crash", "--seeds", "2")
    assert code == EXIT_OK
