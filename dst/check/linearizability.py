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
* Ops of unknown outcome (kills, lost acks) make the space blow up: each
  may take effect at any point or never. Three measures, each exact: the
  witness is tried again with each of them at its place or never
  (``_witness_optional``, a bounded fast path that can only prove ok); a
  model's ``projections`` (e.g. one id's ops) are searched alone first, a
  violation in one being a violation of the whole; and with the model's
  ``footprint`` the search defers them (see ``_search``).
* Refutation: a model may prove a part not linearizable in one cheap
  sweep (``refute``, e.g. the kv model's stale read); such a part is not
  searched, and its report carries a prefix found without backtracking.
* P-compositionality: when the model partitions the ops (e.g. by key), each
  part is checked alone, and the parts take turns: a part's search hands
  over to the next one every ``SLICE_BACKTRACKS`` backtracks. One
  intractable part that would pass therefore cannot hide an easy part that
  fails; the first violation found ends the check. The turns are counted
  in backtracks, never in time, so the verdict and the steps it took are
  the same on every machine.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Callable, Generator, Protocol, Sequence


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()  # the output of an op whose outcome is unknown
INF = float("inf")

# Sort keys as C functions (a lambda is a Python call per op): the same
# tuples, so the same order.
_BY_CALL = attrgetter("call", "id")
_BY_DISPATCH = attrgetter("dispatch", "id")

DEFAULT_BUDGET_STEPS = 5_000_000

# A part's search gives the turn to the next part after this many
# backtracks. Small enough that an easy failing part among intractable
# passing ones is reached within a few thousand backtracks of each; large
# enough that switching (a generator resume) costs nothing measurable.
SLICE_BACKTRACKS = 256

# How many of the next open returns a point asks the model's ``hopeless``
# about (the cut is exact for any number; more costs more per point).
LOOKAHEAD_RETURNS = 6

# At most this many steps for the witness order with ops of unknown outcome
# left out (a fast path: it can only prove ok; the full search follows).
OPTIONAL_WITNESS_STEPS = 100_000

# At most this many steps for each of a model's ``projections`` (searched
# before the whole history when it has ops of unknown outcome), and a tenth
# of the budget for all of them.
PROJECTION_STEPS = 100_000


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
    index: int | None = None     # history index of the invoke event (a line, for EDN)


class Model(Protocol):
    """A pure sequential specification (Porcupine's Model, knossos's step).

    Required:

    * ``name``: what the CLI calls it.
    * ``init() -> state``: the state before any op.
    * ``step(state, input, output) -> (ok, next_state)``: never mutates
      ``state``. ``ok`` is False when ``output`` is impossible for ``input``
      in ``state`` (inconsistency is a returned value, not an exception).
      ``output`` is ``UNKNOWN`` for an op whose result was never seen; such
      an op must be accepted whenever it could have happened. States must be
      hashable and comparable (the memo key); make ``__hash__`` cheap.

    Optional, found with ``getattr``:

    * ``partition(ops) -> list[list[Operation]]``: split the history into
      parts that are linearizable independently (P-compositionality, e.g.
      one part per key). Parts come in a deterministic order; every op is
      in exactly one part.
    * ``describe_partition(ops) -> str``: names a part ("key 'x'").
    * ``readonly(input) -> bool``: True for an op that never changes the
      state, whatever the state and output (a read). The search places
      such an op as soon as it fits, and tries nothing else there.
    * ``hopeless(state, op, pending) -> bool``: True when ``op``, which
      must take effect before any op outside ``pending``, cannot fit after
      any sequence of ``pending`` from ``state``. Must never say True when
      some sequence fits: it cuts the search there.
    * ``footprint(input) -> tuple | None``: the keys an op reads or
      writes, None for all of them. Two ops whose footprints do not meet
      must commute in every state (same acceptance, same state after both
      orders), and an op whose output is ``UNKNOWN`` must be accepted in
      every state. The search then defers ops that never returned (below).
    * ``projections(ops) -> [(label, ops)]``: sub-histories that must each
      be linearizable for ``ops`` to be (e.g. one id's ops alone); searched
      first, each within ``PROJECTION_STEPS``, when ``ops`` has ops of
      unknown outcome. Must never name one of a linearizable history.
    * ``refute(ops) -> (op, why) | None``: a cheap proof that ``ops`` is
      not linearizable: an op that has no place in any order, and why
      (e.g. the kv model's stale read after a longer read). Incomplete, but
      it must never name an op of a linearizable history: a part it refutes
      is not searched.
    * ``replay(ops) -> int``: how many of ``ops``, stepped in this order
      from ``init()``, fit before the first that does not (``len(ops)``
      when all do). Exactly what ``step`` says, found more cheaply (e.g. on
      one state changed in place); the witness order is tried with it.
    * ``describe(state) -> str``: a short human-readable state.
    * ``explain(state, op) -> str``: why ``op`` cannot go next in ``state``.
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
    # The part of a partitioned history this failure is in (0 when whole).
    partition: int = 0
    # True when the model's ``refute`` proved it without a search: ``prefix``
    # is then a linearizable prefix found greedily, not the longest one.
    refuted: bool = False
    partition_label: str | None = None
    partition_ops: int = 0


@dataclass
class CheckResult:
    verdict: str                        # ok | violation | unknown
    steps: int = 0
    witness: bool = False               # ok proved by the witness order alone
    partitions: int = 1
    failure: Failure | None = None      # the first violation found
    reason: str = ""
    # details["partitions"]: per part {index, label, ops, verdict, steps,
    # witness}; verdict is "undecided" for a part the check never finished.
    details: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)   # every violation found
    # When ok and the history was checked whole (one part): a linearization,
    # the ops in the order they took effect (the witness order, or the one
    # the full search found). What quality gates such as ANN recall are
    # measured along. None otherwise (a partitioned history has one order
    # per part, and no order across them).
    order: list[Operation] | None = None


class _Meter:
    """The step budget shared by all parts of one check."""

    __slots__ = ("budget", "left")

    def __init__(self, budget: int):
        self.budget = budget
        self.left = budget


class _Part:
    __slots__ = ("index", "ops", "label", "steps", "result", "gen")

    def __init__(self, index: int, ops: list[Operation], label: str | None):
        self.index = index
        self.ops = ops
        self.label = label
        self.steps = 0
        self.result: CheckResult | None = None
        self.gen: Generator[None, None, CheckResult] | None = None


def check(model: Model, ops: Sequence[Operation], budget_steps: int = DEFAULT_BUDGET_STEPS,
          use_witness: bool = True,
          explain: Callable[[Any, Operation], str] | None = None,
          partition: bool = True, all_failures: bool = False) -> CheckResult:
    """Is ``ops`` linearizable with respect to ``model``?

    ``explain`` defaults to the model's own ``explain`` when it has one.
    ``partition=False`` checks the history whole even when the model could
    split it. ``all_failures=True`` keeps checking the other parts after a
    violation (within the same budget), to report every failing part.
    """
    if budget_steps < 0:
        raise ValueError(f"budget_steps must be >= 0, got {budget_steps}")
    if explain is None:
        explain = getattr(model, "explain", None)
    parts_ops: list[list[Operation]] | None = None
    split = getattr(model, "partition", None) if partition else None
    if split is not None:
        parts_ops = [list(p) for p in split(ops)]
        if sum(len(p) for p in parts_ops) != len(ops):
            raise ValueError(f"model {model.name!r}: partition() lost or duplicated ops")
    if not parts_ops:
        parts_ops = [list(ops)]
    name_part = getattr(model, "describe_partition", None)
    many = len(parts_ops) > 1
    parts = [_Part(n, p, name_part(p) if (many and name_part is not None and p) else None)
             for n, p in enumerate(parts_ops)]
    meter = _Meter(budget_steps)
    for p in parts:
        p.gen = _part_search(model, p, meter, use_witness, explain)

    # Round robin: each part runs until it ends or has backtracked
    # SLICE_BACKTRACKS times, then waits for its next turn.
    queue = deque(parts)
    failures: list[Failure] = []
    stopped: CheckResult | None = None          # the part that ran out of budget
    while queue:
        p = queue.popleft()
        try:
            next(p.gen)
        except StopIteration as stop:
            r: CheckResult = stop.value
            p.result = r
            if r.verdict == "violation":
                fl = r.failure
                fl.partition, fl.partition_label, fl.partition_ops = p.index, p.label, len(p.ops)
                failures.append(fl)
                if not all_failures:
                    break
            elif r.verdict == "unknown":
                stopped = r
                break
            continue
        queue.append(p)
    for p in parts:       # free the suspended searches (and their memos)
        if p.result is None:
            p.gen.close()

    total = sum(p.steps for p in parts)
    details = {"partitions": [
        {"index": p.index, "label": p.label, "ops": len(p.ops),
         "verdict": p.result.verdict if p.result is not None else "undecided",
         "steps": p.steps, "witness": bool(p.result is not None and p.result.witness)}
        for p in parts]}
    if failures:
        return CheckResult("violation", steps=total, partitions=len(parts), failure=failures[0],
                           failures=failures, details=details)
    if stopped is not None:
        decided = sum(1 for p in parts if p.result is not None and p.result.verdict == "ok")
        reason = stopped.reason
        if many:
            reason += f"; {decided} of {len(parts)} parts decided (all linearizable)"
        return CheckResult("unknown", steps=total, partitions=len(parts), reason=reason,
                           details=details)
    return CheckResult("ok", steps=total, partitions=len(parts), details=details,
                       witness=all(p.result.witness for p in parts),
                       order=parts[0].result.order if len(parts) == 1 else None)


def _part_search(model: Model, part: _Part, meter: _Meter, use_witness: bool,
                 explain: Callable[[Any, Operation], str] | None
                 ) -> Generator[None, None, CheckResult]:
    """One part: the model's refutation, the witness, then the cut history,
    then the full search."""
    ops = part.ops
    if not ops:
        return CheckResult("ok", witness=True, order=[])
    refute = getattr(model, "refute", None)
    if refute is not None:
        # One sweep before any search, not charged to the budget (like
        # ``partition``: bounded, no search step). A violation it proves is
        # reported with a linearizable prefix found without backtracking
        # (the search did not run), the model's account as the message.
        hit = refute(ops)
        if hit is not None:
            culprit, why = hit
            local = sorted(ops, key=_BY_CALL)
            best, state, bits = _greedy_prefix(local, culprit.call, model)
            if model.step(state, culprit.input, culprit.output)[0]:
                best, state, bits = [], model.init(), 0     # it stopped short: as at the root
            r = _violation(local, best, state, bits, part.steps, explain, culprit, model.step)
            r.failure.explanation = why
            r.failure.refuted = True
            return r
    if not use_witness:
        r = _projected(model, ops, meter, part, explain)
        if r is None:
            r = yield from _search(model, ops, meter, part, explain)
        r.steps = part.steps
        return r
    order, steps, fail_at, fail_state = _witness(model, ops, max(meter.left, 0))
    part.steps += steps
    meter.left -= steps
    if order is not None:
        return CheckResult("ok", steps=part.steps, witness=True, order=order)
    if fail_at is not None and any(op.ret == INF for op in ops):
        # Ops of unknown outcome (killed mid-op, lost acks) may not have
        # taken effect: the witness order again, each of them at its place
        # or never.
        order, steps = _witness_optional(model, ops, min(max(meter.left, 0), OPTIONAL_WITNESS_STEPS))
        part.steps += steps
        meter.left -= steps
        if order is not None:
            return CheckResult("ok", steps=part.steps, witness=True, order=order)
    r = _projected(model, ops, meter, part, explain)
    if r is None and fail_at is not None and fail_at.ret != INF:
        cut = _cut(ops, fail_at.ret)
        if len(cut) < len(ops):
            r = yield from _search(model, cut, meter, part, explain)
            if r.verdict != "violation":
                r = None   # ok: the cut proves nothing; unknown: the full search says so too
    if r is None:
        r = yield from _search(model, ops, meter, part, explain)
    r.steps = part.steps
    if r.failure is not None and fail_at is not None:
        r.failure.witness_op = fail_at
        r.failure.witness_state = fail_state
        r.failure.witness_explanation = explain(fail_state, fail_at) if explain else None
    return r


def _projected(model: Model, ops: list[Operation], meter: _Meter, part: _Part,
               explain: Callable[[Any, Operation], str] | None) -> CheckResult | None:
    """A violation in one of the model's ``projections`` of a history with
    ops of unknown outcome, or None. Each projection is searched alone, at
    most PROJECTION_STEPS steps, a tenth of the budget in all (charged to
    ``meter`` and ``part``); one that runs out proves nothing, and neither
    does one that passes."""
    projections = getattr(model, "projections", None)
    if projections is None or not any(op.ret == INF for op in ops):
        return None
    spend = meter.budget // 10      # in all: most of the budget stays for the whole
    for label, sub in projections(ops):
        cap = min(max(meter.left, 0), PROJECTION_STEPS, spend)
        if cap <= 0:
            return None
        sub_meter = _Meter(cap)
        sub_part = _Part(part.index, sub, label)
        gen = _search(model, sub, sub_meter, sub_part, explain)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                r: CheckResult = stop.value
                break
        part.steps += sub_part.steps
        meter.left -= sub_part.steps
        spend -= sub_part.steps
        if r.verdict == "violation":
            r.failure.explanation = f"{r.failure.explanation} (the ops on {label} alone have no linearization)"
            return r
    return None


def _greedy_prefix(ops: list[Operation], before: float, model: Model
                   ) -> tuple[list[Operation], Any, int]:
    """A linearizable prefix of the ops that returned before ``before``,
    without backtracking: at each point a read that real time allows there
    and that fits, or else the first other such op that fits. For the report of a refuted
    part only (it proves nothing). ``ops`` sorted by call; returns the
    prefix, its state and its bits (op n is bit 1 << n)."""
    todo = [(n, op) for n, op in enumerate(ops) if op.ret < before]
    rets = sorted(op.ret for _, op in todo)   # returns still to place, as a multiset
    gone: dict[float, int] = {}
    low = 0
    state, bits, prefix = model.init(), 0, []
    step = model.step
    readonly = getattr(model, "readonly", None)
    while todo:
        while gone.get(rets[low], 0):          # the earliest return still to place
            gone[rets[low]] -= 1
            low += 1
        first_ret = rets[low]
        pick = None
        for i in range(len(todo)):       # the ops called by then: about one per client
            op = todo[i][1]
            if op.call > first_ret:
                break                            # it would go after an op that returned first
            ok, nxt = step(state, op.input, op.output)
            if ok and (pick is None or (readonly is not None and readonly(op.input))):
                pick = (i, nxt)
                if readonly is not None and readonly(op.input):
                    break                        # a read that fits goes first (it changes nothing)
        if pick is None:
            break
        i, state = pick
        n, op = todo.pop(i)
        bits |= 1 << n
        prefix.append(op)
        gone[op.ret] = gone.get(op.ret, 0) + 1
    return prefix, state, bits


def _witness(model: Model, ops: list[Operation], cap: int
             ) -> tuple[list[Operation] | None, int, Operation | None, Any]:
    """Step the ops in dispatch order: dispatched ones by their dispatch
    number, then the never-dispatched unknowns. Proves ok (returns that
    order, a linearization), or says where it broke.

    At most ``cap`` steps (the budget left): a witness cut short proves
    nothing, and the search after it finds the budget spent.
    """
    order = [op for op in ops if op.dispatch is not None]
    rest = [op for op in ops if op.dispatch is None]
    if any(op.ret != INF for op in rest):
        return None, 0, None, None  # an op that completed has no witness position
    order.sort(key=_BY_DISPATCH)
    # The witness must respect real time: no later op may have returned
    # before an earlier one was called.
    suffix_min = INF
    for op in reversed(order):
        if suffix_min < op.call:
            return None, 0, None, None
        if op.ret < suffix_min:
            suffix_min = op.ret
    if len(ops) > cap:
        return None, 0, None, None
    order += rest                    # unknown outcome, never dispatched: taking effect last
    replay = getattr(model, "replay", None)
    if replay is not None:
        fit = replay(order)
        if fit == len(order):
            return order, fit, None, None
        order = order[:fit + 1]      # stepped again below, for the state where it broke
    state = model.init()
    steps = 0
    step = model.step
    for op in order:
        steps += 1
        ok, nxt = step(state, op.input, op.output)
        if not ok:
            return None, steps, op, state
        state = nxt
    if replay is not None:
        raise AssertionError(f"model {model.name!r}: replay() and step() disagree")
    return order, steps, None, None


def _witness_optional(model: Model, ops: list[Operation], cap: int
                      ) -> tuple[list[Operation] | None, int]:
    """The witness order, where each op of unknown outcome takes effect at
    its place in it or never (last). Proves ok (returns the order it
    found) or nothing (None). A depth-first search over the choices, the
    op taking effect tried first, remembering every (place, state) already
    explored; at most ``cap`` steps. Returns (order or None, steps)."""
    order = [op for op in ops if op.dispatch is not None]
    rest = [op for op in ops if op.dispatch is None]
    if any(op.ret != INF for op in rest):
        return None, 0
    order.sort(key=_BY_DISPATCH)
    suffix_min = INF
    for op in reversed(order):
        if suffix_min < op.call:
            return None, 0
        suffix_min = min(suffix_min, op.ret)
    step = model.step
    n = len(order)
    state = model.init()
    i = 0
    steps = 0
    seen: set[tuple[int, Any]] = set()
    # Choices open: (place of an op of unknown outcome taken, state before it).
    choices: list[tuple[int, Any]] = []
    skipped: list[int] = []          # places of the unknown ops left out, in order
    while True:
        if steps >= cap:
            return None, steps
        if i == n:
            # The ops left out, and those never dispatched, take effect last.
            last = [order[j] for j in skipped] + rest
            if steps + len(last) > cap:
                return None, steps
            end = state
            for op in last:
                steps += 1
                ok, end = step(end, op.input, op.output)
                if not ok:
                    break
            else:
                left_out = set(skipped)
                return [op for j, op in enumerate(order) if j not in left_out] + last, steps
        else:
            op = order[i]
            key = (i, state)
            if key not in seen:
                seen.add(key)
                steps += 1
                ok, nxt = step(state, op.input, op.output)
                if op.ret == INF:
                    if ok:
                        choices.append((i, state))
                        state, i = nxt, i + 1
                    else:
                        skipped.append(i)
                        i += 1
                    continue
                if ok:
                    state, i = nxt, i + 1
                    continue
        # A dead end: leave out the latest unknown op that took effect.
        if not choices or steps >= cap:
            return None, steps
        steps += 1
        i, state = choices.pop()
        while skipped and skipped[-1] > i:
            skipped.pop()
        skipped.append(i)
        i += 1


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
    __slots__ = ("op", "is_call", "bit", "match", "prev", "next", "cls", "read", "lazy", "mask")

    def __init__(self, op: Operation | None, is_call: bool, bit: int):
        self.op = op
        self.is_call = is_call
        self.bit = bit              # this op's bit in the linearized set
        self.cls = 0                # symmetry class (calls, in the full search)
        self.read = False           # the model's readonly(input) (calls, in the full search)
        # Deferred (models with ``footprint`` only): an op that never
        # returned, placed only just before an op it does not commute with.
        self.lazy = False
        self.mask = -1              # the footprint as a bit set of keys; -1: everything
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build(ops: list[Operation]) -> _Entry:
    keyed = []
    for n, op in enumerate(ops):
        call, ret = _Entry(op, True, 1 << n), _Entry(op, False, 1 << n)
        call.match = ret
        # Calls sort before returns at equal times: intervals are closed,
        # so ops touching at one instant are concurrent.
        keyed.append(((op.call, 0, n), call))
        keyed.append(((op.ret, 1, n), ret))
    keyed.sort(key=itemgetter(0))
    head = _Entry(None, False, 0)
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


def _search(model: Model, ops: list[Operation], meter: _Meter, part: _Part,
            explain: Callable[[Any, Operation], str] | None
            ) -> Generator[None, None, CheckResult]:
    """The full search over ``ops``; yields every SLICE_BACKTRACKS backtracks.

    Depth first over the points of the search. At a point, the candidates
    are the pending calls before the first open return (Wing & Gong), tried
    in call order (trying them earliest return first was measured: more
    steps on most histories, 100x more on some). Five cuts keep the tree small, each exact (none loses a linearization):

    * memo (Lowe): a (set of linearized ops, state) reached before is not
      searched again;
    * reads first: an op the model calls ``readonly`` (it never changes
      any state) that fits is placed at once and nothing else is tried at
      that point, since it could be moved to the front of any completion
      (every state stays the same, and its call came before the first open
      return). Only for ops read-only in every state: an op that happens to
      change nothing here (an unseen cas that does not match) could change
      the state further on;
    * symmetry: once an op failed at a point, another with the same input
      and output and a return no earlier is not tried there (swap the two
      in any completion);
    * hopeless (the model's, optional): the op that must go first cannot
      fit after any of the candidates, so the point fails at once;
    * deferral (models with ``footprint``): an op that never returned is
      placed only right before an op it does not commute with: a write
      whose footprint meets its own, another deferred op of a class no
      greater (a fixed order among commuting ones), or a read that fits
      only with it (a read that fits before it went first). Any
      linearization can be brought to that form by moving such ops later
      past ops they commute with, which real time allows (they never
      returned) and which keeps every state an op sees. One that commutes
      with everything or changes nothing goes last, never searched; the
      search ends when only deferred ops are left (any state accepts
      them). The memo key of a point right after a deferred op also holds
      its class and the state before it; a point already searched without
      that demand is not searched again with it.

    Steps (model steps and backtracks) are charged to ``meter`` (shared by
    all parts) and ``part`` whenever the search yields or ends.
    """
    ops = sorted(ops, key=_BY_CALL)
    head = _build(ops)
    definite = _classify(head, getattr(model, "readonly", None), getattr(model, "footprint", None))
    state = model.init()
    linearized = 0
    memo: set[tuple] = set()
    # The deferred op placed last, whose successor must not commute with it.
    last: _Entry | None = None
    # The path: (entry placed, state before it, placed as a read, ``last`` before it).
    path: list[tuple[_Entry, Any, bool, _Entry | None]] = []
    # One frame per point on the path and one for the point it reached:
    # [candidates, next index, {class: earliest return failed here}, the
    # op the model found hopeless here (None when the candidates ran out)].
    hopeless = getattr(model, "hopeless", None)
    frames: list[list[Any]] = [_frame(head, state, hopeless, None)]
    # The longest linearizable prefix (the witness of a violation). It is
    # copied only when the search backs out of a new deepest point, not on
    # every push: copying on the way down is quadratic in a long history.
    deepest = 0
    best: list[Operation] = []
    best_state, best_bits = state, 0
    best_stuck: Operation | None = None
    step = model.step
    left = meter.left           # steps this turn may take
    used = 0                    # steps taken this turn, not yet charged
    backtracks = 0
    while definite:
        if used >= left:
            meter.left -= used
            part.steps += used
            return CheckResult("unknown", steps=part.steps,
                               reason=f"search budget of {meter.budget} steps exhausted "
                                      f"({deepest} of {len(ops)} ops linearized at most)")
        used += 1
        frame = frames[-1]
        cands = frame[0]
        i = frame[1]
        if i < len(cands):
            entry = cands[i]
            frame[1] = i + 1
            op = entry.op
            tried = frame[2]
            if tried:
                c = entry.cls
                if c in tried and tried[c] <= op.ret:
                    used -= 1        # not tried: no step
                    continue
            if last is not None and entry.read:
                # A read right after a deferred op must be one that the
                # deferred op made fit: one that fits without it goes first.
                if used >= left:
                    frame[1] = i         # no step left for both: tried again, out of budget
                    continue
                used += 1
                if step(path[-1][1], op.input, op.output)[0]:
                    continue
            ok, new_state = step(state, op.input, op.output)
            if ok:
                bits = linearized | entry.bit
                key = (bits, new_state)
                if key in memo:
                    continue
                if entry.lazy:
                    # Placed here, it must be followed by an op it does not
                    # commute with; the same point without that demand, if
                    # already searched (the key above), had every completion
                    # this one has.
                    key = (bits, new_state, entry.cls, state)
                    if key in memo:
                        continue
                    path.append((entry, state, False, last))
                    last = entry
                else:
                    path.append((entry, state, entry.read, last))
                    last = None
                    definite -= 1
                memo.add(key)
                state, linearized = new_state, bits
                # _lift(entry), inlined (the hot path)
                p, n = entry.prev, entry.next
                p.next = n
                if n is not None:
                    n.prev = p
                m = entry.match
                p, n = m.prev, m.next
                p.next = n
                if n is not None:
                    n.prev = p
                if len(path) > deepest:
                    deepest = len(path)
                frames.append(_frame(head, state, hopeless, last))
            continue
        # Every candidate here failed: back out of this point.
        if not path:
            meter.left -= used
            part.steps += used
            if not best:
                best_stuck = frame[3]
            return _violation(ops, best, best_state, best_bits, part.steps, explain, best_stuck,
                              step)
        if len(path) > len(best):
            best = [e.op for e, _, _, _ in path]
            best_state, best_bits, best_stuck = state, linearized, frame[3]
        backtracks += 1
        if backtracks >= SLICE_BACKTRACKS:
            backtracks = 0
            meter.left -= used
            part.steps += used
            used = 0
            yield
            left = meter.left
        frames.pop()
        entry, state, read, last = path.pop()
        linearized &= ~entry.bit
        if not entry.lazy:
            definite += 1
        # _unlift(entry), inlined
        m = entry.match
        m.prev.next = m
        if m.next is not None:
            m.next.prev = m
        entry.prev.next = entry
        if entry.next is not None:
            entry.next.prev = entry
        frame = frames[-1]
        if read:
            frame[1] = len(frame[0])     # the point before a read fails with it
        else:
            c = entry.cls
            tried = frame[2]
            r = entry.op.ret
            if c not in tried or r < tried[c]:
                tried[c] = r
    meter.left -= used
    part.steps += used
    # Every op that returned is linearized: the path holds them in the order
    # they took effect. Deferred ops not placed yet take effect last (any
    # state accepts them), in call order.
    order = [e.op for e, _, _, _ in path]
    if len(order) < len(ops):
        placed = linearized
        order += [op for n, op in enumerate(ops) if not placed >> n & 1]
    return CheckResult("ok", steps=part.steps, order=order)


def _frame(head: _Entry, state: Any, hopeless: Any, last: _Entry | None) -> list[Any]:
    """A point's frame: the pending calls before the first open return, in
    call order, to be tried from the first.

    No candidates when the model's ``hopeless`` says that the op of one of
    the first ``LOOKAHEAD_RETURNS`` open returns cannot fit after any
    sequence of the calls before its return (the only ops that may go
    before it); that op is kept, to be named if the search ends there.
    """
    out = []
    e = head.next
    while e is not None and e.is_call:
        out.append(e)
        e = e.next
    if hopeless is not None and e is not None and out:
        pending = [c.op for c in out]
        seen = 0
        while True:
            if hopeless(state, e.op, pending):
                return [[], 0, {}, e.op]
            seen += 1
            if seen == LOOKAHEAD_RETURNS:
                break
            e = e.next
            while e is not None and e.is_call:
                pending.append(e.op)
                e = e.next
            if e is None:
                break
    if last is not None:
        mask, cls = last.mask, last.cls
        out = [c for c in out if c.read or c.mask & mask or (c.lazy and c.cls <= cls)]
    return [out, 0, {}, None]


def _classify(head: _Entry, readonly: Callable[[Any], bool] | None,
              footprint: Callable[[Any], Any] | None = None) -> int:
    """Mark each call entry with its symmetry class (ops with equal f,
    input and output share one; an op whose input or output cannot be
    hashed has a class of its own) and whether the model calls it read-only.

    With the model's ``footprint``: mark the ops that never returned as
    deferred, and give every op its footprint as a bit set (-1 for
    everything). Returns how many ops are not deferred."""
    seen: dict[Any, int] = {}
    keys: dict[Any, int] = {}
    definite = 0
    e = head.next
    while e is not None:
        if e.is_call:
            op = e.op
            lazy = footprint is not None and op.ret == INF
            try:
                # A deferred op and one with a return are never symmetric.
                e.cls = seen.setdefault((op.f, _typed(op.input), _typed(op.output), lazy), len(seen))
            except TypeError:
                e.cls = -1 - op.id
            e.read = readonly is not None and bool(readonly(op.input))
            if footprint is not None:
                e.lazy = lazy
                touched = footprint(op.input)
                if touched is not None:
                    mask = 0
                    for k in touched:
                        mask |= 1 << keys.setdefault(k, len(keys))
                    e.mask = mask
                if lazy and (e.read or not e.mask):
                    # It changes nothing, or commutes with everything, and
                    # any state accepts it: it goes last, never searched.
                    _lift(e)
            if not e.lazy:
                definite += 1
        e = e.next
    return definite


def _typed(x: Any) -> Any:
    # 1, 1.0 and True are equal in Python but not to the models.
    if x.__class__ is tuple:
        return tuple(_typed(v) for v in x)
    return (x.__class__, x)


def _violation(ops: list[Operation], best: list[Operation], state: Any, bits: int, steps: int,
               explain: Callable[[Any, Operation], str] | None,
               stuck: Operation | None = None,
               step: Callable[[Any, Any, Any], tuple[bool, Any]] | None = None) -> CheckResult:
    # ops are in the search's local order: op n has bit 1 << n.
    pending = [op for n, op in enumerate(ops) if not bits >> n & 1]
    if stuck is not None and step is not None:
        # The model cut the search where ``stuck`` could not fit after any
        # of the ops pending there. The ops that returned before it was
        # called go before it in every order: stepped (in call order, as
        # far as they fit), they bring the state to what ``stuck`` saw, the
        # account a reader expects ("holds 'xy'", not a state half-way).
        best = list(best)
        where = {id(op): n for n, op in enumerate(ops)}    # ops.index compares fields: slow
        for op in sorted(pending, key=_BY_CALL):
            if op.ret < stuck.call:
                ok, nxt = step(state, op.input, op.output)
                if not ok:
                    break
                state = nxt
                best.append(op)
                bits |= 1 << where[id(op)]
        pending = [op for n, op in enumerate(ops) if not bits >> n & 1]
    first_ret = min(op.ret for op in pending)
    unplaced = [op for op in pending if op.call <= first_ret]
    # The op that had to be linearized next: the one the model found
    # hopeless there, or else the first to return.
    culprit = stuck if stuck is not None else min(
        (op for op in pending if op.ret == first_ret), key=lambda op: op.id)
    if stuck is not None and step is not None:
        # A cut point: ops pending there may fit, though no order of them
        # lets ``stuck`` fit later; name the ones that do not fit now.
        unplaced = [op for op in unplaced if op is culprit or not step(state, op.input, op.output)[0]]
        if culprit not in unplaced:
            unplaced.append(culprit)
    why = explain(state, culprit) if explain else "the model rejects this output in every order tried"
    return CheckResult("violation", steps=steps,
                       failure=Failure(culprit, why, state, best, unplaced))
