"""The vector model's ``replay`` (the witness order walked on one state
changed in place) says exactly what ``step`` says, op after op, from
``init()``: on thousands of small random op sequences with attributes,
filters, wipes, refused input, unknown outcomes and wrong answers, and on
recorded sim histories (their witness order, and the same with one answer
changed). After the ops that fit, probes of every id (get, get_attrs) and
searches of every query vector at every limit pin the in-place state to the
one ``step`` reached, so a write applied wrongly in place cannot hide.
"""

from __future__ import annotations

import numpy as np
import pytest

from dst.check.linearizability import INF, UNKNOWN, Operation
from dst.check.models.vector import INVALID, VectorModel
from dst.history import pair
from dst.rng import Rng
from dst.sim.runner import run_seed
from dst.sim.scenario import load

IDS = ("a", "b", "c", "d")
VECTORS = [np.array([np.cos(t), np.sin(t)], dtype=np.float32) for t in (0.0, 0.7, 1.9, 3.0)]
ATTRS = ({"t": 1}, {"t": 2, "f": True}, {"t": 1, "f": False})
WHERES = ({"eq": ["t", 1]}, {"exists": "f"})


def _stepped(model, ops):
    """How many ops fit in order with ``step``, and the state they reach."""
    state = model.init()
    for n, op in enumerate(ops):
        ok, nxt = model.step(state, op.input, op.output)
        if not ok:
            return n, state
        state = nxt
    return len(ops), state


def _answer(model, state, inp):
    """The right output of a read in ``state``."""
    f = inp[0]
    if f == "get":
        return state.items.get(inp[1])
    if f == "exists":
        return inp[1] in state.items
    if f == "get_attrs":
        return model.stored_attrs(state, inp[1])
    if f == "count":
        return len(state.items)
    items = model.matching(state.items, state.attrs, inp[3])
    sc = model.true_scores(inp[1])
    ranked = sorted(items.items(), key=lambda kv: (-sc[kv[1]], kv[0]))[:inp[2]]
    return tuple((id_, sc[ref]) for id_, ref in ranked)


def _probes(model, state, start):
    """Reads whose right answers, all together, pin ``state``: every id's
    vector and attributes, the count, every query at every limit."""
    inps = [("get", i, None) for i in IDS] + [("get_attrs", i, None) for i in IDS] + [("count", None)]
    inps += [("search", q, k, w, None) for q in range(len(VECTORS)) for k in (1, 2, 3, 4)
             for w in (None, 0, 1)]
    return [Operation(start + n, "probe", inp[0], inp, _answer(model, state, inp), 0, 0)
            for n, inp in enumerate(inps)]


def _random_ops(model, arefs, wrefs, rng, n):
    ops = []
    state = model.init()
    for i in range(n):
        roll = rng.below(100)
        id_ = rng.choice(IDS)
        if roll < 25:
            inp = ("store", id_, rng.below(len(VECTORS)), rng.choice(arefs), None)
        elif roll < 33:
            ids = [x for x in IDS if rng.chance(500_000)] or [id_]
            rows = tuple((x, rng.below(len(VECTORS)), rng.choice(arefs)) if rng.chance(700_000)
                         else (x, rng.below(len(VECTORS))) for x in ids)
            inp = ("batch", rows, None)
        elif roll < 43:
            inp = ("delete", id_, None)
        elif roll < 45:
            inp = ("wipe", None, None)
        elif roll < 48:
            inp = ("store", id_, 0, None, "bad input")
        elif roll < 60:
            inp = ("get", id_, None)
        elif roll < 68:
            inp = ("exists", id_, None)
        elif roll < 76:
            inp = ("get_attrs", id_, None)
        elif roll < 82:
            inp = ("count", None)
        else:
            inp = (rng.choice(("search", "search_exact")), rng.below(len(VECTORS)), rng.between(1, 3),
                   rng.choice(wrefs), None)
        f = inp[0]
        if inp[-1] is not None:
            out = INVALID
        elif f in ("store", "batch", "wipe"):
            out = None
        elif f == "delete":
            out = id_ in state.items
        else:
            out = _answer(model, state, inp)
        roll = rng.below(100)
        if f in ("search", "search_exact") and inp[-1] is None and roll < 30:
            # The best hit left out, the next one taken in: only the
            # left-out rule (and the live ids per vector it counts) sees it.
            ranked = _answer(model, state, ("search", inp[1], len(IDS), inp[3], None))
            if len(ranked) > inp[2]:
                out = ranked[1:inp[2] + 1]
        elif roll < 8:
            out = UNKNOWN
        elif roll < 14:                     # a wrong answer (or a wrong kind of answer)
            out = rng.choice((None, True, False, 0, 3, INVALID, {"t": 1}, (), (("a", 1.0),)))
        op = Operation(i, i % 3, f, inp, out, i, INF if out is UNKNOWN else i)
        ok, nxt = model.step(state, inp, out)
        if ok or rng.chance(300_000):
            state = nxt if ok else state
        ops.append(op)
    return ops


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "ann"])
def test_replay_agrees_with_step_on_random_sequences(exact):
    rng = Rng(20261208).fork(f"vector-replay-{exact}")
    model = VectorModel(VECTORS, 2, exact=exact)
    arefs = [None] + [model.attr_ref(a) for a in ATTRS]
    wrefs = [None] + [model.where_ref(w) for w in WHERES]
    stopped = whole = 0
    for case in range(1000):
        ops = _random_ops(model, arefs, wrefs, rng, rng.between(1, 25))
        fit, state = _stepped(model, ops)
        assert model.replay(ops) == fit, (case, ops)
        probes = _probes(model, state, len(ops))
        assert model.replay(ops[:fit] + probes) == fit + len(probes), (case, ops[:fit])
        stopped += fit < len(ops)
        whole += fit == len(ops)
    assert min(stopped, whole) >= 200, (stopped, whole)


def test_replay_agrees_with_step_on_sim_histories():
    changed = 0
    for name, seeds in (("default", 3), ("filters", 2), ("crash", 2), ("partial-writes", 1)):
        sc = load(name)
        for seed in range(seeds):
            _, h = run_seed(sc, seed, "sim")
            m = h.meta
            model = VectorModel(h.table.vectors, int(m["dim"]), float(m["score_eps"]),
                                exact=bool(m["exact"]), metric=str(m["metric"]))
            ops = model.operations(pair(h.events), bool(m["atomic_batches"]))
            order = sorted((op for op in ops if op.dispatch is not None), key=lambda op: (op.dispatch, op.id))
            assert model.replay(order) == _stepped(model, order)[0]
            rng = Rng(seed).fork(name)
            reads = [n for n, op in enumerate(order) if op.f in ("get", "exists", "count", "search")]
            for _ in range(3):            # one answer changed: where does each stop?
                n = rng.choice(reads)
                op = order[n]
                bad = Operation(op.id, op.process, op.f, op.input, ("a",) if op.output is None else None,
                                op.call, op.ret, op.dispatch, op.index)
                wrong = order[:n] + [bad] + order[n + 1:]
                fit = _stepped(model, wrong)[0]
                assert model.replay(wrong) == fit
                changed += fit == n
    assert changed >= 15, changed
