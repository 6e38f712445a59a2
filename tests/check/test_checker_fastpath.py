"""The checker's fast path, the recorded witness order, may only prove ok
when that order is a real linearization (issue 10, item 6).

A dispatch order is a shortcut, not evidence: the checker must refuse it
when it breaks real time (an op placed before one that returned before it
was called), when an op that completed has no place in it, and when
stepping it would take more than the budget; and a cut of the history
that passes proves nothing about the whole. Each test below was seen to
fail with the guard it names removed from ``dst/check/linearizability.py``
(``_witness`` / ``_part_search``): without it the checker accepts a stale
read.

Each history is written for three models (register, kv, vector), so the
guards are held on the code path every model shares.

Not guarded here, on purpose: the witness's check of the never-dispatched
``info`` ops stepped last. Dropping it accepts nothing wrong (an op whose
outcome is unknown may never take effect), so no test can tell it apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from dst.check.linearizability import INF, UNKNOWN, Operation, check
from dst.history import History
from dst.check.models.kv import KvModel
from dst.check.models.register import RegisterModel
from dst.check.models.vector import VectorModel
from dst.sim.runner import check_history

V = [np.array([1, 0], dtype=np.float32), np.array([0, 1], dtype=np.float32)]


@dataclass
class Flavour:
    """How one model spells: write value n, read (and what a read returns)."""

    name: str
    model: Any
    write: Any          # n -> input
    read: Any           # input of a read
    seen: Any           # n -> a read's output after write n; None before any write


FLAVOURS = [
    Flavour("register", RegisterModel(), lambda n: ("write", n), ("read",), lambda n: n),
    Flavour("kv", KvModel(), lambda n: ("put", "k", n), ("get", "k"), lambda n: n),
    Flavour("vector", VectorModel(V, dim=2), lambda n: ("store", "a", n, None), ("get", "a", None),
            lambda n: n),
]


class H:
    """Ops with explicit call/return times and dispatch numbers."""

    def __init__(self, fl: Flavour):
        self.fl = fl
        self.ops: list[Operation] = []

    def add(self, inp, out, call, ret, dispatch):
        if ret is None:
            out, ret = UNKNOWN, INF
        n = len(self.ops)
        self.ops.append(Operation(n, n, inp[0], inp, out, call, ret, dispatch, n))
        return self

    def write(self, n, call, ret, dispatch):
        return self.add(self.fl.write(n), None, call, ret, dispatch)

    def read(self, n, call, ret, dispatch):
        return self.add(self.fl.read, None if n is None else self.fl.seen(n), call, ret, dispatch)

    def check(self, **kw):
        m = self.fl.model
        return check(m, self.ops, explain=getattr(m, "explain", None), **kw)


by_model = pytest.mark.parametrize("fl", FLAVOURS, ids=[f.name for f in FLAVOURS])


@by_model
def test_witness_proves_a_good_dispatch_order(fl):
    """The control: a dispatch order that is a linearization is taken."""
    r = H(fl).write(0, 0, 1, 0).read(0, 2, 3, 1).check()
    assert r.verdict == "ok" and r.witness


@by_model
def test_stale_read_dispatched_before_a_completed_write_is_a_violation(fl):
    # The write returned at 1, the read was called at 2 and saw nothing.
    # Dispatch numbers put the read first: the model accepts that order,
    # but it breaks real time, so it must not count as a witness.
    # Guard: the real-time check in _witness (suffix_min < op.call).
    r = H(fl).write(0, 0, 1, dispatch=1).read(None, 2, 3, dispatch=0).check()
    assert r.verdict == "violation"
    assert not r.witness


@by_model
def test_dispatch_order_against_real_time_is_no_witness_even_when_it_passes(fl):
    # Linearizable (write, then both reads in real-time order), but the
    # recorded order puts the second read before the first: the full search
    # proves ok, the witness does not. Guard: the same real-time check.
    h = H(fl).write(0, 0, 1, dispatch=0).read(0, 2, 3, dispatch=2).read(0, 4, 5, dispatch=1)
    r = h.check()
    assert r.verdict == "ok"
    assert not r.witness


@by_model
def test_completed_op_without_a_dispatch_number_is_no_witness(fl):
    # The write completed but carries no dispatch number (a history from
    # elsewhere, or a harness bug): stepping it last, after the read that
    # came later, would accept the stale read.
    # Guard: "an op that completed has no witness position" in _witness.
    r = H(fl).write(0, 0, 1, dispatch=None).read(None, 2, 3, dispatch=0).check()
    assert r.verdict == "violation"
    assert not r.witness


@by_model
def test_a_cut_that_passes_proves_nothing_about_the_whole(fl):
    # The witness breaks at the first read (dispatched before the write it
    # saw); the history cut at that read's return is linearizable; the stale
    # read after the write completed is not. Guard: in _part_search, a cut
    # that is not a violation is dropped and the whole history searched.
    h = (H(fl).write(0, 0, 10, dispatch=1)
         .read(0, 1, 2, dispatch=0)
         .read(None, 20, 21, dispatch=2))
    r = h.check()
    assert r.verdict == "violation"
    assert r.failure.op.call == 20          # the stale read, not the first one


@by_model
def test_the_witness_never_steps_past_the_budget(fl):
    # A good dispatch order of 20 ops and a budget of 5 steps: the witness
    # may not spend what the budget does not have. Guard: len(ops) > cap.
    h = H(fl)
    for n in range(10):
        h.write(n % 2, 4 * n, 4 * n + 1, 2 * n).read(n % 2, 4 * n + 2, 4 * n + 3, 2 * n + 1)
    assert h.check().witness                          # the witness alone proves it
    r = h.check(budget_steps=5)
    assert r.verdict == "unknown"
    assert r.steps <= 5


# -- the same stale read through the real path: a recorded vector-dst history ----

def _history(events: list[tuple]) -> History:
    h = History()
    h.meta = {"dim": 2, "exact": True, "atomic_batches": True, "score_eps": 1e-4,
              "concurrency": "sim", "seed": 0}
    ref = h.table.ref(V[0])
    for time, process, type_, f, value, dispatch in events:
        if f == "store" and type_ == "invoke":
            value = {"id": "a", "vector": ref}
        extra = {} if dispatch is None else {"dispatch": dispatch}
        h.add(time, process, type_, f, value, **extra)
    return h


def test_recorded_history_with_a_stale_read_dispatched_first_is_a_violation():
    # What the scheduler writes: the dispatch number on each completion.
    h = _history([
        (0, 0, "invoke", "store", None, None),
        (1, 0, "ok", "store", None, 1),
        (2, 1, "invoke", "get", {"id": "a"}, None),
        (3, 1, "ok", "get", None, 0),
    ])
    r = check_history(h)
    assert r.verdict == "violation"
    assert not r.witness
    assert r.violations[0]["kind"] == "linearizability"
    assert r.violations[0]["op"]["f"] == "get"


def test_recorded_history_in_real_time_order_is_proved_by_the_witness():
    h = _history([
        (0, 0, "invoke", "store", None, None),
        (1, 0, "ok", "store", None, 0),
        (2, 1, "invoke", "get", {"id": "a"}, None),
        (3, 1, "ok", "get", 0, 1),
    ])
    r = check_history(h)
    assert r.verdict == "ok" and r.witness
