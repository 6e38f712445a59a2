"""The ``kv`` model: string keys, every key initially "" (Porcupine's kv).

Ops: ``get k`` returns the value; ``put k v`` sets it; ``append k v``
concatenates ``v`` to it. In a history the key comes as ``:key "k"`` with
the value in ``:value`` (Porcupine's files), or as ``:value [k v]``
(Knossos's multi-register, whose ``read``/``write`` are taken as
``get``/``put``). A get that returns nil matches the initial "".

Keys are independent, so the model partitions the history by key
(P-compositionality): ``partition`` gives one part per key, in order of
first appearance, and each part is checked alone. Checked whole, the state
is a ``MapState`` (key -> value, hash kept incrementally).

Inputs: ``("get", k)``, ``("put", k, v)``, ``("append", k, v)``. Outputs:
a get's value; None for put and append; ``UNKNOWN`` when nobody saw it.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from dst.check.linearizability import INF, UNKNOWN, Operation
from dst.check.models.base import NO_KEY, Call, MapState, group_by, same, short
from dst.history import HistoryFormatError

INITIAL = ""
ALIASES = {"get": "get", "read": "get", "put": "put", "write": "put", "append": "append"}


class KvModel:
    name = "kv"

    # -- the model --------------------------------------------------------
    def init(self) -> MapState:
        return MapState()

    def step(self, state: MapState, inp: tuple, out: Any) -> tuple[bool, MapState]:
        # The checker's hot path: MapState.set and same() inlined.
        f, key = inp[0], inp[1]
        items = state.items
        cur = items.get(key, INITIAL)
        if f == "get":
            if out is UNKNOWN:
                return True, state
            if out == cur:
                return isinstance(out, bool) is isinstance(cur, bool), state
            return (out is None and cur == INITIAL), state
        if f == "put":
            value = inp[2]
            if value == cur and isinstance(value, bool) is isinstance(cur, bool):
                return True, state
        elif f == "append":
            if cur.__class__ is not str:
                return False, state      # a put left a non-string there
            if not inp[2]:
                return True, state
            value = cur + inp[2]
        else:
            raise AssertionError(f"kv: unknown op {f!r}")
        h = state.h
        new = items.copy()
        if key in items:
            h ^= hash((key, cur))
            del new[key]
        if value != INITIAL or isinstance(value, bool):
            new[key] = value
            h ^= hash((key, value))
        return True, MapState(new, h)

    def readonly(self, inp: tuple) -> bool:
        return inp[0] == "get"

    def hopeless(self, state: MapState, op: Operation, pending: list[Operation]) -> bool:
        """True when ``op``, a get that must take effect before any op
        outside ``pending`` (the ops that may still go before it), cannot
        fit whatever of ``pending`` goes first: appends only lengthen a
        string, so without a put among them the value read must start with
        the value held now, and be no longer than all of them can make it."""
        inp = op.input
        if inp[0] != "get" or op.output is UNKNOWN:
            return False
        want = op.output
        if want is None:
            want = INITIAL
        if want.__class__ is not str:
            return False
        key = inp[1]
        cur = state.items.get(key, INITIAL)
        if cur.__class__ is not str:
            return False
        if len(want) < len(cur) or not want.startswith(cur):
            pass
        else:
            room = len(want) - len(cur)
            total = 0
            for o in pending:
                i = o.input
                if i[1] != key:
                    continue
                if i[0] == "put":
                    return False
                if i[0] == "append":
                    total += len(i[2])
            return total < room
        for o in pending:
            i = o.input
            if i[0] == "put" and i[1] == key:
                return False
        return True

    def refute(self, ops: Sequence[Operation]) -> tuple[Operation, str] | None:
        """A stale read that no order can explain, found in one sweep, or None.

        Two gets g1, g2 of one key with g1 returning before g2 was called
        take effect in that order in every linearization, and an op placed
        between them has an interval meeting [g1.call, g2.ret]. When no put
        of the key meets it, only appends (which only lengthen a string) and
        gets go between, so g2's string must start with g1's. Returns g2
        (the earliest to return) and why, for the longest such g1.
        Incomplete (finds stale reads only) but exact: it never names an op
        of a linearizable history.
        """
        events = []
        for n, op in enumerate(ops):
            f = op.input[0]
            if f == "append":
                if op.input[2].__class__ is not str:
                    return None          # the model would reject it: not this test's case
                continue
            if f == "get":
                out = op.output
                if out is not None and out.__class__ is not str:
                    continue             # unknown, or a value a put left (not a string)
            # Calls sort before returns at an instant: touching intervals meet.
            events.append((op.call, 0, n, op))
            if op.ret != INF:
                events.append((op.ret, 1, n, op))
        events.sort()                    # (time, kind, n) is unique: ops never compared
        # Per key: [puts called so far, puts open now, longest get of the
        # window (value, op)]; the window ends at every put call.
        keys: dict[Any, list[Any]] = {}
        at_call: dict[int, tuple[int, bool, Any]] = {}     # by position in ops
        for _, kind, n, op in events:
            k = keys.get(op.input[1])
            if k is None:
                k = keys[op.input[1]] = [0, 0, None]
            if op.input[0] == "put":
                if kind == 0:
                    k[0] += 1
                    k[1] += 1
                    k[2] = None
                else:
                    k[1] -= 1
                continue
            if kind == 0:
                at_call[n] = (k[0], k[1] == 0, k[2])
                continue
            puts_then, free, before = at_call.pop(n)
            if puts_then != k[0]:
                continue                 # a put was called while this get was open
            out = INITIAL if op.output is None else op.output
            if before is not None and not out.startswith(before[0]):
                g1 = before[1]
                where = f"line {g1.index}" if g1.index is not None else f"op {g1.id}"
                return op, (f"get {short(op.input[1])} returned {short(out)}, but the get at "
                            f"{where} returned {short(before[0])} before this one was called, "
                            "with no put of the key that could go between, and appends only "
                            "lengthen the value")
            if free and (k[2] is None or len(out) > len(k[2][0])):
                k[2] = (out, op)
        return None

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        return group_by(ops, lambda op: op.input[1])

    def describe_partition(self, ops: Sequence[Operation]) -> str:
        return f"key {short(ops[0].input[1])}" if ops else "no ops"

    def describe(self, state: MapState) -> str:
        keys = sorted(state.items, key=repr)
        shown = ", ".join(f"{short(k)}: {short(state.items[k])}" for k in keys[:8])
        more = f", ... ({len(keys)} keys)" if len(keys) > 8 else ""
        return "{" + shown + more + "}" + (" (other keys \"\")" if keys else " (every key \"\")")

    def explain(self, state: MapState, op: Operation) -> str:
        f, key = op.input[0], op.input[1]
        if f == "get":
            cur = state.items.get(key, INITIAL)
            return f"get {short(key)} returned {short(op.output)}, but the key holds {short(cur)}"
        if f == "append":
            return f"append to {short(key)}, which holds the non-string {short(state.items.get(key))}"
        return "rejected"

    # -- from a history -----------------------------------------------------
    def operations(self, calls: Iterable[Call], source: str = "<history>"
                   ) -> tuple[list[Operation], list[Call]]:
        """Encode paired calls; returns the ops and, per op id, its call.

        ``fail`` ops did not happen; gets whose result nobody saw
        constrain nothing: both are dropped.
        """
        ops: list[Operation] = []
        origin: list[Call] = []
        for c in calls:
            f = ALIASES.get(c.f)
            if f is None:
                raise HistoryFormatError(f"{source}:{c.line}: {c.f!r} is not an op of the kv "
                                         "model (get, put, append; or read, write)")
            key, value, output = _split(c, source)
            if c.type == "fail":
                continue
            unknown = c.type != "ok"
            if f == "get":
                if unknown:
                    continue
                inp: tuple = ("get", key)
                out = output
            else:
                if f == "append" and not isinstance(value, str):
                    raise HistoryFormatError(f"{source}:{c.line}: append needs a string value, "
                                             f"got {short(value)}")
                inp = (f, key, value)
                out = UNKNOWN if unknown else None
            try:
                hash(inp)
            except TypeError:
                raise HistoryFormatError(f"{source}:{c.line}: {c.f} key or value is not a plain "
                                         "value (maps cannot be keys or values)") from None
            ret = INF if unknown else c.ret
            ops.append(Operation(len(ops), c.process, f, inp, out, c.call, ret, None, c.line))
            origin.append(c)
        return ops, origin


def _split(c: Call, source: str) -> tuple[Any, Any, Any]:
    """(key, input value, output value) of a call, from :key or :value [k v]."""
    if c.key is not NO_KEY:
        return c.key, c.input, c.output
    pairs = []
    for v, where in ((c.input, c.line), (c.output, c.end_line)):
        if v is None and where == c.end_line:
            pairs.append(None)
            continue
        if not isinstance(v, (tuple, list)) or len(v) != 2:
            raise HistoryFormatError(f"{source}:{where}: a kv op needs :key, or a :value [k v]; "
                                     f"got {short(v)}")
        pairs.append(v)
    key = pairs[0][0]
    if pairs[1] is not None and not same(pairs[1][0], key):
        raise HistoryFormatError(f"{source}:{c.end_line}: completes key {short(pairs[1][0])} "
                                 f"but line {c.line} invoked key {short(key)}")
    return key, pairs[0][1], (pairs[1][1] if pairs[1] is not None else None)
