"""The planner's written-out draws equal the Rng methods they stand for:
every plan of many seeds of every scenario, side by side with the planning
code as it was (tests/sim/plan_reference.py), and each generator left at
the same point (its next draw agrees). A plan's bytes in the history come
from these draws, so a difference here is a history difference."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from dst.history import VectorTable
from dst.rng import PPM, Rng
from dst.sim.scenario import load
from dst.sim.schedule import RandomDecider
from dst.sim.workload import Workload, drawn_attrs
from tests.sim.plan_reference import RefPlanner, RefRng, pool_vectors

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.toml"))


def _order(seed: int, clients: int):
    """Which client asks next: the interleaving differs per seed."""
    r = random.Random(seed)
    return lambda live: live[r.randrange(len(live))]


def _side_by_side(scenario: str, seed: int, filters: bool, nemeses: tuple[str, ...]) -> int:
    sc = load(scenario)
    made = []
    for _ in range(2):
        rng = Rng(seed)
        params = sc.for_seed(rng.fork("swarm"))
        table = VectorTable()
        d = RandomDecider(params, rng, table, record=True)
        d.workload.use_filters = filters
        made.append((d, table))
    (new, new_table), (old_d, old_table) = made
    old = RefPlanner(old_d.workload, seed)
    assert new.load_ops(True) == old.load_ops(True)
    assert [new.first_think(c) for c in range(new.clients)] == [old.first_think(c) for c in range(new.clients)]
    pick = _order(seed, new.clients)
    live, n = list(range(new.clients)), 0
    while live:
        c = pick(live)
        p, q = new.plan(c, True, nemeses), old.plan(c, True, nemeses)
        if p is None or q is None:
            assert p is None and q is None, (scenario, seed, n)
            live.remove(c)
            continue
        assert p.to_dict() == q.to_dict(), (scenario, seed, n)
        n += 1
    # Every generator stopped where the reference's did.
    w = new.workload
    pairs = [(new.timing, old.timing), (new.partial, old.partial), (new.nemesis_rng, old.nemesis_rng),
             (new.faults.rng, old.faults.rng)]
    pairs += list(zip(new.client_rngs, old.client_rngs))
    pairs += [(w._flt[k], old.flt[k]) for k in old.flt]
    pairs += [(w._bad[k], old.bad[k]) for k in old.bad]
    assert sorted(w._bad) == sorted(old.bad)
    for a, b in pairs:
        assert a.below(2 ** 40) == b.below(2 ** 40), (scenario, seed)
    assert [v.tobytes() for v in new_table.vectors] == [v.tobytes() for v in old_table.vectors]
    return n


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_plans_equal_the_reference_draw_for_draw(scenario):
    sc = load(scenario)
    # The long scenarios (1,500 ops, pools of thousands) take a few seeds.
    seeds = 3 if sc.ops > 300 or sc.vector_pool > 500 else 8
    ops = 0
    for seed in range(seeds):
        filters = seed % 4 != 3          # mostly on (more draws), sometimes off
        nemeses = ("kill", "pause") if seed % 2 == 0 else ()
        ops += _side_by_side(scenario, seed, filters, nemeses)
    assert ops > 0


KIND_MIXES = [("gaussian",), ("clustered",), ("duplicates",), ("near-duplicates",),
              ("gaussian", "clustered", "duplicates", "near-duplicates"), ("duplicates", "near-duplicates")]


@pytest.mark.parametrize("kinds", KIND_MIXES, ids="+".join)
def test_pool_equals_the_vectors_made_one_by_one(kinds):
    """The pool made in whole-array steps: the same float32 vectors, in the
    same order, the same table numbers, as made one by one."""
    from dataclasses import replace
    sc = load("default")
    for seed, dim in enumerate((1, 2, 3, 8, 64, 300) * 3):
        params = replace(sc.for_seed(Rng(seed).fork("swarm")), dim=dim, vector_kinds=kinds)
        table = VectorTable()
        w = Workload(params, Rng(seed).fork("workload"), table)
        want = pool_vectors(Rng(seed).fork("workload").fork("vectors"), dim, kinds, sc.vector_pool)
        got = [table[r] for r in w.pool]
        assert [v.tobytes() for v in got] == [v.tobytes() for v in want], (kinds, seed, dim)
        ref = VectorTable()
        assert w.pool == [ref.ref(v) for v in want]


@pytest.mark.parametrize("weights", [{"store": 3, "get": 2, "count": 1},
                                     {"store": 3000, "get": 2000, "search": 1000}])
def test_op_kind_is_the_weighted_draw(weights):
    """The kind looked up in a list (small mixes) or among running totals
    (past OP_TABLE_MAX): rng.weighted's pick either way."""
    from dataclasses import replace

    from dst.sim.workload import OP_TABLE_MAX
    sc = load("default")
    params = replace(sc.for_seed(Rng(0).fork("swarm")), op_weights=weights)
    w = Workload(params, Rng(0).fork("workload"), VectorTable())
    assert (w._op_of is None) == (sum(weights.values()) > OP_TABLE_MAX)
    got = [w.next_op(Rng(seed), True).f for seed in range(400)]
    assert got == [RefRng(seed).weighted(list(weights), list(weights.values())) for seed in range(400)]
    assert set(got) == set(weights)


def test_drawn_attrs_equal_row_attrs_of_the_reference():
    seen = set()
    for seed in range(3000):
        got = drawn_attrs(Rng(seed).bits_source())
        assert got == RefPlanner.row_attrs(RefRng(seed)), seed
        assert list(got) == sorted(got)          # name order
        seen.add(tuple(got))
    assert len(seen) > 16          # every attribute is sometimes there, sometimes left out


def test_filters_are_drawn_canonical_and_as_before():
    """pick_where builds its filters in canonical form (no second walk):
    each equals its canonical form, and the reference's (which called
    canonical), with the same draws."""
    from dst import filters
    sc = load("filters")
    w = Workload(sc.for_seed(Rng(0).fork("swarm")), Rng(0).fork("workload"), VectorTable())
    kinds = set()
    for seed in range(3000):
        a, b = Rng(seed), RefRng(seed)
        got = w.pick_where(a)
        assert got == filters.canonical(got) == RefPlanner.pick_where(b), seed
        assert filters.dumps_canonical(got) == filters.dumps(got)
        assert a.below(2 ** 40) == b.below(2 ** 40)
        kinds.add(next(iter(got)))
    assert kinds == {"eq", "ne", "in", "lt", "le", "gt", "ge", "exists", "and", "or", "not"}


def test_rng_draws_are_randranges():
    """below, between, chance, choice, weighted and a loop written out on
    bits_source: the numbers of the standard library's randrange."""
    for seed in range(40):
        a, b, c = Rng(seed), random.Random(seed), Rng(seed)
        bits = c.bits_source()
        for n in (1, 2, 3, 5, 10, 33, 1000, PPM, 2 ** 31 + 1, 10 ** 12):
            x = bits(n.bit_length())
            while x >= n:
                x = bits(n.bit_length())
            want = b.randrange(n)
            assert a.below(n) == want == x
        assert a.between(-3, 7) == b.randrange(11) - 3 == c.between(-3, 7)
        ch = b.randrange(PPM) < 400_000
        assert a.chance(400_000) == ch == c.chance(400_000)
        assert a.chance(0) is False and a.chance(PPM) is True           # no draw either way
        items = ("x", "y", "z", "w", "v")
        assert a.choice(items) == items[b.randrange(5)] == c.choice(items)
        x = b.randrange(10)
        assert a.weighted("pqr", [3, 0, 7]) == ("p" if x < 3 else "r") == c.weighted("pqr", [3, 0, 7])
        assert a.below(2 ** 40) == b.randrange(2 ** 40) == c.below(2 ** 40)
