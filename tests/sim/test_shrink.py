"""Shrinking: each broken backend's first failure shrinks to 8 ops or
fewer, keeping the same kind of violation, and the case replays."""

import json

import pytest

from dst.sim.runner import run_seed
from dst.sim.schedule import Schedule
from dst.sim.scenario import load
from dst.sim.shrink import Shrinker, _ddmin, kinds_of, listing, violation_kind
from tests.broken_backends import BROKEN
from tests.conftest import run_cli

SC = load("default")


def first_failure(backend, limit=300):
    for seed in range(limit):
        r, _ = run_seed(SC, seed, backend, record=True)
        if r.verdict == "violation":
            return seed, r
    pytest.fail(f"{backend} not caught in {limit} seeds")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_backend_shrinks_to_eight_ops_or_fewer(name):
    backend = f"tests.broken_backends:{name}"
    seed, r = first_failure(backend)
    kind = violation_kind(r)

    def still(cand):
        rr, _ = run_seed(SC, seed, backend, schedule=cand)
        return kind in kinds_of(rr)

    small = Shrinker(still, budget_s=60).shrink(r.schedule)
    assert small.n_ops() <= 8, "\n".join(listing(small))
    assert small.n_ops() < r.schedule.n_ops()
    again, _ = run_seed(SC, seed, backend, schedule=small)
    assert violation_kind(again) == kind


def test_schedule_round_trips_and_replays_the_same_history():
    r, h = run_seed(SC, 4, "sim", record=True)
    s2 = Schedule.from_dict(json.loads(json.dumps(r.schedule.to_dict())))
    _, h2 = run_seed(SC, 4, "sim", schedule=s2)
    assert h2.to_bytes() == h.to_bytes()


def test_ddmin_finds_a_minimal_subset():
    need = {3, 17, 29}
    got = _ddmin(list(range(40)), lambda items: need <= set(items))
    assert got == [3, 17, 29]


def test_a_passing_seed_is_not_shrunk(in_tmp, capsys):
    assert run_cli("shrink", "--seed", "1", "--backend", "sim", "--scenario", "crud") == 2
    assert "not a violation: nothing to shrink" in capsys.readouterr().err


def test_dst_shrink_writes_a_case_that_replays(in_tmp, capsys):
    assert run_cli("run", "--backend", "tests.broken_backends:stale_get", "--seeds", "50",
                   "--fail-fast", "--quiet") == 1
    out = capsys.readouterr().out
    hist = [l for l in out.splitlines() if l.startswith("replay: ")][0].split()[-1]
    assert run_cli("shrink", hist, "--out", "seeds/stale.json", "--time-budget", "30") == 1
    out = capsys.readouterr().out
    assert "store(" in out and "wrote seeds/stale.json" in out
    case = json.loads((in_tmp / "seeds" / "stale.json").read_text())
    assert case["format"] == "vector-dst/case" and case["expected"]["verdict"] == "violation"
    assert case["ops"] <= 8
    assert run_cli("replay", "seeds/stale.json") == 1
    assert "as expected" in capsys.readouterr().err


def test_load_rows_are_shrunk_and_unused_vectors_pruned():
    from dst.sim.shrink import prune_vectors
    sc = load("search-heavy")
    backend = "tests.broken_backends:off_by_one_topk"
    seed, r = None, None
    for s in range(20):
        rr, _ = run_seed(sc, s, backend, record=True)
        if rr.verdict == "violation":
            seed, r = s, rr
            break
    assert r is not None and len(r.schedule.load[0]["value"]["items"]) == 32
    kind = violation_kind(r)

    def still(cand):
        x, _ = run_seed(sc, seed, backend, schedule=cand)
        return kind in kinds_of(x)

    small = Shrinker(still, budget_s=60).shrink(r.schedule)
    rows = sum(len(op["value"].get("items", [])) for op in small.load)
    assert rows < 32                       # rows inside the load batch went too
    pruned = prune_vectors(small)
    assert len(pruned.vectors) < len(small.vectors)
    assert still(pruned)


def test_plan_round_trip_keeps_zero_valued_decisions():
    from dst.sim.schedule import OpPlan
    p = OpPlan("store", {"id": "a", "vector": 0}, think_us=0, d1=0, d2=1, crash_us=0, nemesis_us=0)
    back = OpPlan.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p and back.crash_us == 0        # a crash at once is still a crash
    q = OpPlan("get", {"id": "a"}, fault="timeout", never=True, keep=[False, True])
    assert OpPlan.from_dict(json.loads(json.dumps(q.to_dict()))) == q
