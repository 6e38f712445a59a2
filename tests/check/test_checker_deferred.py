"""Deferred ops of unknown outcome never change a verdict.

The vector model gives the checker each op's ``footprint`` (the ids it
touches), and the search then places an op that never returned (``info``:
killed mid-op, a lost ack) only right before an op it does not commute
with: a write touching one of its ids, a count or search, or a read that
fits only with it. On thousands of small random vector histories with many
such ops (some never applied, some acknowledged writes lost, some reads
seeing a value no write produced), ``check`` agrees with a brute force over
every order that respects real time, where an op of unknown outcome takes
effect anywhere after its call or never; and the search without deferral
(a model with no ``footprint``) agrees too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dst.check.linearizability import INF, UNKNOWN, Operation, check
from dst.check.models.vector import INVALID, VectorModel
from dst.history import History, pair
from dst.rng import Rng
from dst.sim.runner import check_history

IDS = ("a", "b", "c")
# Four unit vectors at distinct angles: cosine ranks them without ties.
VECTORS = [np.array([np.cos(t), np.sin(t)], dtype=np.float32) for t in (0.0, 0.7, 1.9, 3.0)]


class Undeferred(VectorModel):
    """The same model without ``footprint`` and ``projections``: the search
    as it was."""

    footprint = None
    projections = None


def _brute(model, ops) -> bool:
    """Some order of every op that returned, and any of the others, each
    after every op that returned before its call, fits the model."""
    def go(state, left) -> bool:
        if all(op.ret == INF for op in left):
            return True
        first_ret = min(op.ret for op in left)
        for n, op in enumerate(left):
            if op.call > first_ret:
                continue              # an op still to place returned before this one was called
            ok, nxt = model.step(state, op.input, op.output)
            if ok and go(nxt, left[:n] + left[n + 1:]):
                return True
        return False
    return go(model.init(), list(ops))


def _search_out(model, items, qref, limit):
    sc = model.true_scores(qref)
    ranked = sorted(items.items(), key=lambda kv: (-sc[kv[1]], kv[0]))[:limit]
    return tuple((id_, sc[ref]) for id_, ref in ranked)


def _history(model: VectorModel, rng: Rng, n: int) -> tuple[list[Operation], str]:
    """A small history, mostly taking effect at drawn instants of the ops'
    intervals; about a third of the writes are info (half of those never
    applied, the others at any instant after their call); then maybe one
    fault no linearization explains, or may: a read given another answer, an
    acknowledged write whose effect is lost, a delete answering wrongly."""
    drawn = []
    for i in range(n):
        call = rng.between(0, 14)
        ret = call + rng.between(0, 5)
        roll = rng.below(100)
        id_ = rng.choice(IDS)
        if roll < 34:
            inp = ("store", id_, rng.below(len(VECTORS)), None, None)
        elif roll < 42:
            ids = [x for x in IDS if rng.chance(600_000)] or [id_]
            inp = ("batch", tuple((x, rng.below(len(VECTORS)), None) for x in ids), None)
        elif roll < 54:
            inp = ("delete", id_, None)
        elif roll < 57:
            inp = ("store", id_, 0, None, "bad input")    # refused whatever the state
        elif roll < 72:
            inp = ("get", id_, None)
        elif roll < 80:
            inp = ("exists", id_, None)
        elif roll < 90:
            inp = ("count", None)
        else:
            inp = ("search", rng.below(len(VECTORS)), rng.between(1, 2), None, None)
        write = inp[0] in ("store", "batch", "delete")
        info = write and rng.chance(450_000)
        applied = not info or rng.chance(500_000)
        effect = rng.between(call, call + 12) if info else rng.between(call, ret)
        drawn.append([effect, i, call, INF if info else ret, inp, applied])
    fault = rng.below(4) if rng.chance(750_000) else None
    if fault == 1:                    # an acknowledged write lost
        acked = [d for d in drawn if d[4][0] in ("store", "batch") and d[3] != INF and d[4][-1] is None]
        if acked:
            rng.choice(acked)[5] = False
        else:
            fault = None
    items: dict[str, int] = {}
    out: dict[int, object] = {}
    for effect, i, call, ret, inp, applied in sorted(drawn, key=lambda d: (d[0], d[1])):
        f = inp[0]
        if inp[-1] is not None:
            out[i] = INVALID
        elif f == "store":
            if applied:
                items[inp[1]] = inp[2]
            out[i] = None
        elif f == "batch":
            if applied:
                items.update((x, r) for x, r, _ in inp[1])
            out[i] = None
        elif f == "delete":
            out[i] = inp[1] in items
            if applied:
                items.pop(inp[1], None)
        elif f == "get":
            out[i] = items.get(inp[1])
        elif f == "exists":
            out[i] = inp[1] in items
        elif f == "count":
            out[i] = len(items)
        else:
            out[i] = _search_out(model, items, inp[1], inp[2])
    # The witness order: as the ops took effect (the unapplied ones where
    # they were drawn), two of them swapped now and then.
    rank = {d[1]: n for n, d in enumerate(sorted(drawn, key=lambda d: (d[0], d[1])))}
    if n > 1 and rng.chance(300_000):
        a, b = rng.below(n), rng.below(n)
        rank[a], rank[b] = rank[b], rank[a]
    ops = []
    for effect, i, call, ret, inp, applied in drawn:
        o = UNKNOWN if ret == INF else out[i]
        ops.append(Operation(i, i, inp[0], inp, o, call, ret, rank[i]))
    reads = [op for op in ops if op.f in ("get", "exists", "count")]
    if fault in (0, 2) and reads:     # a read given another answer
        op = rng.choice(reads)
        choices = {"get": (None, 0, 1, 2, 3), "exists": (True, False), "count": (0, 1, 2, 3)}[op.f]
        op.output = rng.choice([v for v in choices if v != op.output or v is not op.output])
    deletes = [op for op in ops if op.f == "delete" and op.ret != INF]
    if fault == 3 and deletes:        # a delete that says the wrong thing
        op = rng.choice(deletes)
        op.output = not op.output
    return ops, ("fault %s" % fault) if fault is not None else "clean"


def test_deferral_never_changes_a_verdict():
    rng = Rng(20261207).fork("deferred-vector")
    model = VectorModel(VECTORS, 2)
    plain = Undeferred(VECTORS, 2)
    seen = {True: 0, False: 0}
    busy = {True: 0, False: 0}         # three info ops or more
    witnessed = 0
    for case in range(2000):
        ops, how = _history(model, rng, rng.between(3, 10))
        want = _brute(model, ops)
        got = check(model, ops, use_witness=False)
        assert got.verdict == ("ok" if want else "violation"), (case, how, ops)
        assert check(plain, ops, use_witness=False).verdict == got.verdict, (case, how, ops)
        # With the witness order first (unknown ops at their place or never).
        fast = check(model, ops)
        assert fast.verdict == got.verdict, (case, how, ops)
        if want:
            _assert_linearization(model, ops, got.order)
            _assert_linearization(model, ops, fast.order)
            witnessed += fast.witness
        seen[want] += 1
        if sum(op.ret == INF for op in ops) >= 3:
            busy[want] += 1
    # Both verdicts well represented, also among the histories with many
    # info ops, or the agreement proves little.
    assert min(seen.values()) >= 500, seen
    assert min(busy.values()) >= 100, busy
    assert witnessed >= 500, witnessed


def _assert_linearization(model, ops, order) -> None:
    """``order`` holds every op once, keeps real time and fits the model."""
    assert sorted(op.id for op in order) == sorted(op.id for op in ops)
    state = model.init()
    for n, op in enumerate(order):
        assert not any(later.ret < op.call for later in order[n + 1:])
        ok, state = model.step(state, op.input, op.output)
        assert ok, (n, op)


KILLED = Path(__file__).resolve().parent / "data" / "milvus-kill-seed-58.jsonl"


def _kill_history():
    """A Milvus Lite history of the ``kill`` scenario (seed 58): three
    batches killed mid-way (16 stores of unknown outcome, ids written by up
    to three of them), then the probes of every id after the restart. The
    checker used to spend its whole budget on it and end unknown."""
    return History.read(KILLED)


def test_a_kill_heavy_history_is_decided():
    h = _kill_history()
    r = check_history(h)
    assert (r.verdict, r.violations) == ("ok", [])
    assert r.steps < 20_000, r.steps         # it was 5,000,000 (the budget), unknown
    m = h.meta
    model = VectorModel(h.table.vectors, int(m["dim"]), float(m["score_eps"]), exact=bool(m["exact"]))
    ops = model.operations(pair(h.events), bool(m["atomic_batches"]))
    res = check(model, ops)
    assert res.verdict == "ok"
    _assert_linearization(model, ops, res.order)


def test_a_lost_acknowledged_write_after_kills_is_caught():
    # The probes after the second restart say k12 is gone, though the batch
    # that stored it (vector #7) was acknowledged and nothing deleted it.
    h = _kill_history()
    done = h.events[250]
    assert (done["f"], done["type"], done["value"], h.events[249]["value"]) == ("get", "ok", 7, {"id": "k12"})
    done["value"] = None
    r = check_history(h)
    assert r.verdict == "violation"
    found = r.violations[-1]["search"]
    assert found["op"]["index"] == 249 and "get('k12') should return vector #7, got None" in found["message"]
    assert r.steps < 100_000, r.steps        # it was 5,000,000 (the budget), unknown
