"""A general linearizability checker over pure models.

Wing & Gong's search with Lowe's memoisation (as in Porcupine): walk the
history's call/return entries, linearize a pending call whenever the model
accepts it, backtrack at a return that was not linearized in time, and
remember every (set of linearized ops, model state) already explored.

* ``info`` ops (and invokes that never complete) have an unknown output and
  an open interval: they may take effect at any time after their call, or
  never (taking effect last is the same as never for what anyone saw).
* The budget is counted in search steps, not seconds, so a verdict does not
  depend on the machine. Out of budget is ``unknown``, never a pass.
* Fast path: the recorded witness order (the ``dispatch`` sequence) is
  tried first. It can only ever prove ``ok``; a violation is reported only
  when a full search finds no linearization. When the witness fails at an
  op that returned at time T, the history cut at T (ops still open then
  become unknown) is searched first: linearizability is prefix-closed, so a
  violation there is a violation of the whole, found in a smaller space.
* P-compositionality: when the model partitions the ops (e.g. by key), each
  part is checked alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()  # the output of an op whose outcome is unknown
INF = float("inf")

DEFAULT_BUDGET_STEPS = 5_000_000


@dataclass(slots=True)
class Operation:
    """One call, as the checker sees it. ``ret`` is INF for unknown outcomes."""

    id: int
    process: Any
    f: str
    input: Any
    output: Any
    call: float
    ret: float
    dispatch: int | None = None
    index: int | None = None     # history index of the invoke event


class Model(Protocol):
    """A pure sequential specification (Porcupine's Model, knossos's step).

    ``step`` never mutates ``state``; it returns ``(ok, next_state)``. States
    must be hashable and comparable (the memo key); make ``__hash__`` cheap.
    ``output`` is ``UNKNOWN`` for an op whose result was never seen.
    """

    name: str

    def init(self) -> Any: ...

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]: ...


@dataclass
class Failure:
    """Why no linearization exists, at the deepest point the search reached."""

    op: Operation                       # the op that had to go next but could not
    explanation: str
    state: Any
    prefix: list[Operation]             # longest linearizable prefix found
    unplaced: list[Operation]           # ops pending there, none of which fit
    # Where the recorded dispatch order broke: the op, why, and the state
    # the witness had reached (the most readable account of a violation).
    witness_op: Operation | None = None
    witness_explanation: str | None = None
    witness_state: Any = None


@dataclass
class CheckResult:
    verdict: str                        # ok | violation | unknown
    steps: int = 0
    witness: bool = False               # ok proved by the witness order alone
    partitions: int = 1
    failure: Failure | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def check(model: Model, ops: Sequence[Operation], budget_steps: int = DEFAULT_BUDGET_STEPS,
          use_witness: bool = True,
          explain: Callable[[Any, Operation], str] | None = None) -> CheckResult:
    """Is ``ops`` linearizable with respect to ``model``?"""
    parts = None
    partition = getattr(model, "partition", None)
    if partition is not None:
        parts = partition(ops)
    if not parts:
        parts = [list(ops)]
    total_steps = 0
    verdict = CheckResult("ok", partitions=len(parts), witness=True)
    for part in parts:
        remaining = max(budget_steps - total_steps, 0)
        r = _check_one(model, part, remaining, use_witness, explain)
        total_steps += r.steps
        if r.verdict == "violation":
            r.partitions, r.steps = len(parts), total_steps
            return r
        if r.verdict == "unknown":
            verdict = r
        elif verdict.verdict == "ok":
            verdict.witness = verdict.witness and r.witness
    verdict.steps = total_steps
    verdict.partitions = len(parts)
    return verdict


def _check_one(model: Model, ops: list[Operation], budget: int, use_witness: bool,
               explain: Callable[[Any, Operation], str] | None) -> CheckResult:
    if not ops:
        return CheckResult("ok", witness=True)
    if not use_witness:
        return _search(model, ops, budget, explain)
    ok, steps, fail_at, fail_state = _witness(model, ops)
    if ok:
        return CheckResult("ok", steps=steps, witness=True)
    r = None
    if fail_at is not None and fail_at.ret != INF:
        cut = _cut(ops, fail_at.ret)
        if len(cut) < len(ops):
            r = _search(model, cut, budget - steps, explain)
            r.steps += steps
            steps = r.steps
            if r.verdict != "violation":
                r = None
    if r is None:
        r = _search(model, ops, budget - steps, explain)
        r.steps += steps
    if r.failure is not None and fail_at is not None:
        r.failure.witness_op = fail_at
        r.failure.witness_state = fail_state
        r.failure.witness_explanation = explain(fail_state, fail_at) if explain else None
    return r


def _witness(model: Model, ops: list[Operation]) -> tuple[bool, int, Operation | None, Any]:
    """Step the ops in dispatch order. Proves ok, or says where it broke."""
    order = [op for op in ops if op.dispatch is not None]
    rest = [op for op in ops if op.dispatch is None]
    if any(op.ret != INF for op in rest):
        return False, 0, None, None  # an op that completed has no witness position
    order.sort(key=lambda op: (op.dispatch, op.id))
    # The witness must respect real time: no later op may have returned
    # before an earlier one was called.
    suffix_min = INF
    for op in reversed(order):
        if suffix_min < op.call:
            return False, 0, None, None
        suffix_min = min(suffix_min, op.ret)
    state = model.init()
    steps = 0
    for op in order:
        steps += 1
        ok, nxt = model.step(state, op.input, op.output)
        if not ok:
            return False, steps, op, state
        state = nxt
    for op in rest:  # unknown outcome, never dispatched: taking effect last
        ok, nxt = model.step(state, op.input, op.output)
        if not ok:
            return False, steps, op, state
        state = nxt
    return True, steps, None, None


def _cut(ops: list[Operation], t: float) -> list[Operation]:
    """The history as it stood at time t: later calls gone, open ops unknown."""
    out = []
    for op in ops:
        if op.call > t:
            continue
        if op.ret > t and op.ret != INF:
            op = Operation(op.id, op.process, op.f, op.input, UNKNOWN, op.call, INF,
                           op.dispatch, op.index)
        out.append(op)
    return out


class _Entry:
    __slots__ = ("op", "is_call", "match", "prev", "next")

    def __init__(self, op: Operation | None, is_call: bool):
        self.op = op
        self.is_call = is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build(ops: list[Operation]) -> _Entry:
    keyed = []
    for op in ops:
        call, ret = _Entry(op, True), _Entry(op, False)
        call.match = ret
        # Calls sort before returns at equal times: intervals are closed,
        # so ops touching at one instant are concurrent.
        keyed.append(((op.call, 0, op.id), call))
        keyed.append(((op.ret, 1, op.id), ret))
    keyed.sort(key=lambda x: x[0])
    head = _Entry(None, False)
    prev = head
    for _, e in keyed:
        prev.next = e
        e.prev = prev
        prev = e
    return head


def _lift(e: _Entry) -> None:
    e.prev.next = e.next
    if e.next is not None:
        e.next.prev = e.prev
    m = e.match
    m.prev.next = m.next
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e: _Entry) -> None:
    m = e.match
    m.prev.next = m
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e
    if e.next is not None:
        e.next.prev = e


def _search(model: Model, ops: list[Operation], budget: int,
            explain: Callable[[Any, Operation], str] | None) -> CheckResult:
    ops = sorted(ops, key=lambda op: (op.call, op.id))
    # Renumber locally so the linearized set is a compact bitset.
    local = {id(op): n for n, op in enumerate(ops)}
    head = _build(ops)
    state = model.init()
    linearized = 0
    memo: set[tuple[int, Any]] = set()
    stack: list[tuple[_Entry, Any]] = []
    best: list[Operation] = []
    best_state, best_bits = state, 0
    step = model.step
    steps = 0
    entry = head.next
    while head.next is not None:
        if steps >= budget:
            return CheckResult("unknown", steps=steps,
                               reason=f"search budget of {budget} steps exhausted "
                                      f"({len(best)} of {len(ops)} ops linearized at most)")
        steps += 1
        if entry.is_call:
            op = entry.op
            ok, new_state = step(state, op.input, op.output)
            if ok:
                bits = linearized | (1 << local[id(op)])
                key = (bits, new_state)
                if key not in memo:
                    memo.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, bits
                    _lift(entry)
                    if len(stack) > len(best):
                        best = [e.op for e, _ in stack]
                        best_state, best_bits = state, bits
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if not stack:
                return _violation(model, ops, local, best, best_state, best_bits, steps, explain)
            entry, state = stack.pop()
            linearized &= ~(1 << local[id(entry.op)])
            _unlift(entry)
            entry = entry.next
    return CheckResult("ok", steps=steps)


def _violation(model: Model, ops: list[Operation], local: dict[int, int], best: list[Operation],
               state: Any, bits: int, steps: int,
               explain: Callable[[Any, Operation], str] | None) -> CheckResult:
    pending = [op for op in ops if not bits >> local[id(op)] & 1]
    first_ret = min(op.ret for op in pending)
    unplaced = [op for op in pending if op.call <= first_ret]
    # The op that had to be linearized next: the first to return.
    culprit = min((op for op in pending if op.ret == first_ret), key=lambda op: op.id)
    why = explain(state, culprit) if explain else "the model rejects this output in every order tried"
    return CheckResult("violation", steps=steps,
                       failure=Failure(culprit, why, state, best, unplaced))
