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
