"""The search's cuts (reads first, symmetry, the models' ``hopeless``)
never change a verdict: on thousands of small random histories of the kv,
register and cas-register models, ``check`` agrees with a brute force over
every order that respects real time (an op of unknown outcome taking effect
anywhere after its call, or never)."""

from __future__ import annotations

from itertools import permutations

import pytest

from dst.check.linearizability import INF, UNKNOWN, Operation, check
from dst.check.models.kv import KvModel
from dst.check.models.register import RegisterModel
from dst.rng import Rng


def _brute(model, ops) -> bool:
    done = [op for op in ops if op.ret != INF]
    unknown = [op for op in ops if op.ret == INF]
    for mask in range(1 << len(unknown)):
        chosen = done + [op for n, op in enumerate(unknown) if mask >> n & 1]
        for order in permutations(chosen):
            if any(b.ret < a.call for i, a in enumerate(order) for b in order[i + 1:]):
                continue          # b returned before a was called, yet comes after it
            state = model.init()
            for op in order:
                ok, state = model.step(state, op.input, op.output)
                if not ok:
                    break
            else:
                return True
    return False


def _history(kind: str, rng: Rng, n: int) -> list[Operation]:
    ops = []
    for i in range(n):
        call = rng.between(0, 12)
        unknown = rng.chance(150_000)
        ret = INF if unknown else call + rng.between(0, 8)
        roll = rng.below(100)
        if kind == "kv":
            if roll < 45:
                f, inp = "get", ("get", "k")
                out = "" if rng.chance(250_000) else "".join(rng.choice("ab") for _ in range(rng.below(3)))
                if unknown:
                    out = UNKNOWN
            else:
                f = "put" if roll < 60 else "append"
                inp = (f, "k", rng.choice(("a", "b", "ab")))
                out = UNKNOWN if unknown else None
        else:
            cas = kind == "cas-register"
            if roll < 45:
                f, inp, out = "read", ("read",), rng.choice((None, 1, 2))
            elif cas and roll < 75:
                f, inp = "cas", ("cas", rng.choice((None, 1, 2)), rng.choice((1, 2)))
                out = rng.choice((True, False))
            else:
                f, inp, out = "write", ("write", rng.choice((1, 2))), None
            if unknown:
                out = UNKNOWN
        ops.append(Operation(i, i, f, inp, out, call, ret))
    return ops


@pytest.mark.parametrize("kind", ["kv", "register", "cas-register"])
def test_cuts_never_change_a_verdict(kind):
    rng = Rng(20261207).fork(f"cuts-{kind}")
    seen = {True: 0, False: 0}
    for case in range(1500):
        ops = _history(kind, rng, rng.between(2, 6))
        model = KvModel() if kind == "kv" else RegisterModel(cas=kind == "cas-register")
        want = _brute(model, ops)
        got = check(model, ops, use_witness=False).verdict
        assert got == ("ok" if want else "violation"), (case, ops)
        seen[want] += 1
    # Both verdicts are well represented, or the agreement proves little.
    assert min(seen.values()) >= 200, seen


def _kv_history(rng: Rng, n: int) -> list[Operation]:
    """Small kv histories on one or two keys, linearizable by construction
    (each op takes effect at a drawn instant of its interval) unless one
    get's output is then replaced: puts between reads are common, and so
    are stale reads."""
    drawn = []
    for i in range(n):
        call = rng.between(0, 12)
        ret = call + rng.between(0, 4)
        key = "k" if rng.chance(800_000) else "j"
        roll = rng.below(100)
        f = "get" if roll < 50 else "put" if roll < 65 else "append"
        value = None if f == "get" else rng.choice(("a", "b", "ab", "")) if f == "put" else rng.choice(("a", "b"))
        drawn.append((rng.between(call, ret), i, call, ret, key, f, value))
    values: dict[str, str] = {}
    ops = []
    for effect, i, call, ret, key, f, value in sorted(drawn):
        if f == "get":
            out = values.get(key, "")
        else:
            values[key] = value if f == "put" else values.get(key, "") + value
            out = None
        if rng.chance(150_000):
            out, ret = (UNKNOWN, INF) if f != "get" or rng.chance(500_000) else (out, ret)
        ops.append(Operation(i, i, f, (f, key) if f == "get" else (f, key, value), out, call, ret))
    ops.sort(key=lambda op: op.id)
    gets = [op for op in ops if op.f == "get" and op.output is not UNKNOWN]
    if gets and rng.chance(600_000):      # a stale read (a shorter value), or any value
        g = rng.choice(gets)
        g.output = (g.output[:rng.below(len(g.output))] if g.output and rng.chance(900_000)
                    else rng.choice((None, "", "a", "b", "ab", "ba", "aa")))
    return ops


def test_kv_refute_names_only_histories_with_no_linearization():
    """The kv model's ``refute`` (a stale read no order explains) is exact:
    whenever it names an op, the brute force finds no order; and the
    violation ``check`` then reports is coherent (its prefix steps to its
    state, the named op is among those that cannot go next)."""
    rng = Rng(20261207).fork("kv-refute")
    model = KvModel()
    fired = linearizable = 0
    for case in range(1500):
        ops = _kv_history(rng, rng.between(2, 6))
        hit = model.refute(ops)
        want = _brute(model, ops)
        linearizable += want
        if hit is None:
            continue
        fired += 1
        assert not want, (case, ops, hit)
        op, why = hit
        assert op.f == "get" and "appends only lengthen" in why
        r = check(model, ops, partition=False)
        assert r.verdict == "violation" and r.failure.op is op, (case, ops)
        state = model.init()
        for placed in r.failure.prefix:
            ok, state = model.step(state, placed.input, placed.output)
            assert ok
        assert state == r.failure.state and op in r.failure.unplaced
        # and it is a prefix of an order that respects real time
        placed = r.failure.prefix
        for i, x in enumerate(placed):
            assert all(y in placed[:i] for y in ops if y.ret < x.call), (case, ops)
    # The refutation fires often, and on histories of both verdicts' shapes.
    assert fired >= 60 and linearizable >= 600, (fired, linearizable)


def _kv(*rows) -> list[Operation]:
    """(f, value or output, call, ret) rows on key "k"."""
    ops = []
    for i, (f, v, call, ret) in enumerate(rows):
        inp = ("get", "k") if f == "get" else (f, "k", v)
        ops.append(Operation(i, i, f, inp, v if f == "get" else None, call, ret))
    return ops


@pytest.mark.parametrize("rows, refuted", [
    # A put open when the first get was called may go between the two gets.
    ((("append", "b", 0, 1), ("put", "a", 2, 10), ("get", "b", 3, 4), ("get", "a", 5, 6)), False),
    # Intervals touching at an instant are concurrent: a put called as the
    # first get returns, or a second get called as the first returns.
    ((("append", "b", 0, 1), ("get", "b", 2, 4), ("put", "a", 4, 5), ("get", "a", 6, 7)), False),
    ((("append", "b", 0, 9), ("get", "b", 2, 4), ("get", "", 4, 5)), False),
    ((("append", "b", 0, 1), ("get", "b", 2, 4), ("put", "a", 7, 9), ("get", "a", 6, 7)), False),
    # No put can go between: stale.
    ((("append", "b", 0, 1), ("put", "a", 2, 3), ("get", "b", 4, 5), ("get", "a", 6, 7)), True),
    ((("append", "b", 0, 1), ("get", "b", 2, 3), ("put", "a", 0, 1), ("get", "a", 6, 7)), True),
    ((("append", "b", 0, 1), ("get", "b", 2, 3), ("get", "", 4, 5)), True),
    ((("append", "b", 0, 1), ("get", "b", 2, 3), ("append", "a", 3, 9), ("get", "ab", 4, 5)), True),
])
def test_kv_refute_at_the_edges(rows, refuted):
    model = KvModel()
    ops = _kv(*rows)
    assert (model.refute(ops) is not None) == refuted
    assert _brute(model, ops) is not refuted      # the rows not refuted are linearizable
    assert check(model, ops).verdict == ("violation" if refuted else "ok")
