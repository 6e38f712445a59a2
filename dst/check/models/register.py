"""The ``register`` and ``cas-register`` models: one value, initially nil.

Ops (history ``f`` and ``value``, Jepsen's conventions):

* ``read``: the completion's value is what was read (nil = None).
* ``write v``: sets the value.
* ``cas [old new]`` (cas-register only): sets ``new`` if the value is
  ``old``. A cas that completed ``ok`` succeeded; one that completed
  ``fail`` did not happen and is dropped before checking. A cas whose
  outcome is unknown (``info``) either happened, which it only could while
  the value was ``old``, or did not.

Inputs are tuples: ``("read",)``, ``("write", v)``, ``("cas", old, new)``.
Outputs: a read's value; None for a write; True for a cas that succeeded
(False, if a history reports a cas that completed ``ok`` with a refusal,
means the value was not ``old``); ``UNKNOWN`` when nobody saw the result.
The state is the register's value itself (hashable EDN values: numbers,
strings, keywords, tuples).
"""

from __future__ import annotations

from typing import Any, Iterable

from dst.check.linearizability import INF, UNKNOWN, Operation
from dst.check.models.base import NO_KEY, Call, same, short
from dst.history import HistoryFormatError


class RegisterModel:
    """A single register; ``cas=True`` gives the cas-register."""

    def __init__(self, cas: bool = False, initial: Any = None):
        self.cas = cas
        self.initial = initial
        self.name = "cas-register" if cas else "register"

    # -- the model --------------------------------------------------------
    def init(self) -> Any:
        return self.initial

    def step(self, state: Any, inp: tuple, out: Any) -> tuple[bool, Any]:
        f = inp[0]
        if f == "read":
            return (out is UNKNOWN or same(out, state)), state
        if f == "write":
            return True, inp[1]
        if f == "cas" and self.cas:
            if same(state, inp[1]):
                # It succeeded (or may have): the value is now ``new``.
                return out is not False, inp[2]
            # The value is not ``old``: only an unseen or refused cas fits,
            # and it changed nothing.
            return (out is UNKNOWN or out is False), state
        raise AssertionError(f"{self.name}: unknown op {f!r}")

    def readonly(self, inp: tuple) -> bool:
        return inp[0] == "read"

    def hopeless(self, state: Any, op: Operation, pending: list[Operation]) -> bool:
        """True when ``op`` is a read of a value the register does not hold
        and no op in ``pending`` (the ops that may go before it) could put
        there: a write of it, or a cas to it."""
        inp = op.input
        if inp[0] != "read" or op.output is UNKNOWN:
            return False
        want = op.output
        if same(want, state):
            return False
        for o in pending:
            i = o.input
            if i[0] == "write":
                if same(i[1], want):
                    return False
            elif i[0] == "cas" and self.cas and o.output is not False and same(i[2], want):
                return False
        return True

    def describe(self, state: Any) -> str:
        return f"value {short(state)}"

    def explain(self, state: Any, op: Operation) -> str:
        inp, out = op.input, op.output
        if inp[0] == "read":
            return f"read returned {short(out)}, but the register holds {short(state)}"
        if inp[0] == "cas":
            if out is False:
                return (f"cas {short(inp[1])} -> {short(inp[2])} was refused, but the register "
                        f"holds {short(state)}")
            return (f"cas {short(inp[1])} -> {short(inp[2])} succeeded, but the register holds "
                    f"{short(state)}")
        return "rejected"

    # -- from a history -----------------------------------------------------
    def operations(self, calls: Iterable[Call], source: str = "<history>"
                   ) -> tuple[list[Operation], list[Call]]:
        """Encode paired calls; returns the ops and, per op id, its call.

        ``fail`` ops did not happen; reads whose result nobody saw
        constrain nothing: both are dropped.
        """
        ops: list[Operation] = []
        origin: list[Call] = []
        for c in calls:
            if c.key is not NO_KEY:
                raise HistoryFormatError(
                    f"{source}:{c.line}: {c.f} has a :key ({short(c.key)}); the {self.name} "
                    "model is one register (use --model kv for keyed histories)")
            if c.type == "fail":
                continue
            unknown = c.type != "ok"
            if c.f == "read":
                if unknown:
                    continue
                inp: tuple = ("read",)
                out = c.output
            elif c.f == "write":
                inp = ("write", c.input)
                out = None
            elif c.f == "cas" and self.cas:
                v = c.input
                if not isinstance(v, (tuple, list)) or len(v) != 2:
                    raise HistoryFormatError(
                        f"{source}:{c.line}: cas needs a value [old new], got {short(v)}")
                inp = ("cas", v[0], v[1])
                out = True
                if not unknown and c.output is False:
                    out = False
            elif c.f == "cas":
                raise HistoryFormatError(
                    f"{source}:{c.line}: cas is not an op of the register model "
                    "(use --model cas-register)")
            else:
                ops_known = "read, write, cas" if self.cas else "read, write"
                raise HistoryFormatError(
                    f"{source}:{c.line}: {c.f!r} is not an op of the {self.name} model "
                    f"({ops_known})")
            try:
                hash(inp)
            except TypeError:
                raise HistoryFormatError(f"{source}:{c.line}: {c.f} value {short(c.input)} is "
                                         "not a plain value (maps cannot be register values)") from None
            if unknown:
                out = UNKNOWN
            ret = INF if unknown else c.ret
            ops.append(Operation(len(ops), c.process, inp[0], inp, out, c.call, ret, None, c.line))
            origin.append(c)
        return ops, origin
