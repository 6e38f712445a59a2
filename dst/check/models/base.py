"""What a model is, and the small helpers the models share.

The contract itself is ``dst.check.linearizability.Model``: a pure
sequential specification with ``name``, ``init()`` and ``step(state,
input, output) -> (ok, next_state)``, plus the optional ``partition``,
``describe_partition``, ``describe`` and ``explain``. In short:

* ``step`` never mutates ``state`` and never raises for an impossible
  output: it returns ``(False, state)``. States are hashable and compare by
  value (the checker's memo keys on them), so keep them immutable and
  their hash cheap (see ``MapState``).
* ``output`` is ``UNKNOWN`` when nobody saw the result (``info``): the
  model accepts the op whenever it could have happened. An unknown write
  applies; an unknown read constrains nothing (encoders usually drop it).
* Failed ops (``fail``) did not happen; encoders drop them before checking.

A model also knows how to turn paired history calls (``Call``) into
checker ``Operation``s (``operations(calls)``), since only it knows what an
op's input and output mean. ``pair_calls`` joins raw events (from EDN or
JSON Lines) into ``Call``s, Jepsen style: by process, one open op per
process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

from dst.check.linearizability import INF, Operation
from dst.history import HistoryFormatError


class _NoKey:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_KEY"


NO_KEY: Any = _NoKey()      # an event without a ``key`` field

EVENT_TYPES = ("invoke", "ok", "fail", "info")


@dataclass(slots=True)
class Event:
    """One history event, format-neutral. ``line`` is where it was read."""

    line: int
    process: Any
    type: str              # invoke | ok | fail | info
    f: str
    value: Any
    key: Any = NO_KEY


@dataclass(slots=True)
class Call:
    """An invoke joined with its completion.

    ``type`` is ok, fail or info (info also for an invoke never completed).
    ``call``/``ret`` are monotone integer times (the events' positions);
    ``ret`` is INF for an unknown outcome. ``line``/``end_line`` locate the
    two events in the source file (``end_line`` None if never completed).
    """

    process: Any
    f: str
    key: Any
    input: Any             # the invoke's value
    type: str
    output: Any            # the completion's value (None if never completed)
    call: int
    ret: float
    line: int
    end_line: int | None


def pair_calls(events: Iterable[Event], source: str,
               skip: Callable[[Any], bool] = lambda p: False) -> list[Call]:
    """Join invokes and completions by process, in file order.

    ``skip(process)`` drops a process's events (the nemesis). Raises
    ``HistoryFormatError`` naming ``source`` and the line when a process
    invokes twice without completing, completes an op it never invoked, or
    completes it under another ``f``.
    """
    open_: dict[Any, int] = {}
    calls: list[Call] = []
    for pos, e in enumerate(events):
        if skip(e.process):
            continue
        try:
            slot = open_.get(e.process)
        except TypeError:
            raise HistoryFormatError(f"{source}:{e.line}: process {e.process!r} is not a "
                                     "number or name") from None
        if e.type == "invoke":
            if slot is not None:
                raise HistoryFormatError(
                    f"{source}:{e.line}: process {e.process!r} invokes again while its op "
                    f"from line {calls[slot].line} is still open")
            open_[e.process] = len(calls)
            calls.append(Call(e.process, e.f, e.key, e.value, "info", None, pos, INF, e.line, None))
            continue
        if slot is None:
            raise HistoryFormatError(f"{source}:{e.line}: process {e.process!r} completes "
                                     f"a {e.f!r} it never invoked")
        c = calls[slot]
        if e.f != c.f:
            raise HistoryFormatError(f"{source}:{e.line}: process {e.process!r} completes "
                                     f"{e.f!r} but invoked {c.f!r} (line {c.line})")
        del open_[e.process]
        c.type = e.type
        c.output = e.value
        c.end_line = e.line
        if c.key is NO_KEY:
            c.key = e.key
        if e.type != "info":
            c.ret = pos
    return calls


def group_by(ops: Sequence[Operation], key: Callable[[Operation], Hashable]) -> list[list[Operation]]:
    """Partition ops by ``key``, parts in order of first appearance.

    Dicts keep insertion order, so the parts (and the order in which the
    checker takes turns among them) follow the history, not hash order.
    """
    parts: dict[Any, list[Operation]] = {}
    for op in ops:
        parts.setdefault(key(op), []).append(op)
    return list(parts.values())


def same(a: Any, b: Any) -> bool:
    """Value equality that keeps True apart from 1 and False from 0."""
    return a == b and isinstance(a, bool) is isinstance(b, bool)


class MapState:
    """An immutable key -> value map with an incrementally kept hash.

    The hash is the XOR of the entries' hashes, updated per change, so
    hashing a state for the memo costs nothing however many keys it has.
    Keys whose value equals ``default`` are not stored, so a map always
    has one representation.
    """

    __slots__ = ("items", "h")

    def __init__(self, items: dict[Any, Any] | None = None, h: int = 0):
        self.items = items if items is not None else {}
        self.h = h

    def get(self, key: Any, default: Any) -> Any:
        return self.items.get(key, default)

    def set(self, key: Any, value: Any, default: Any) -> "MapState":
        items = self.items
        old = items.get(key, default)
        if same(old, value):
            return self
        h = self.h
        new = dict(items)
        if key in items:
            h ^= hash((key, old))
            del new[key]
        if not same(value, default):
            new[key] = value
            h ^= hash((key, value))
        return MapState(new, h)

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MapState) and self.h == other.h and self.items == other.items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"MapState({self.items!r})"


def short(value: Any, limit: int = 60) -> str:
    """repr, cut to ``limit`` characters (long kv strings stay readable)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
