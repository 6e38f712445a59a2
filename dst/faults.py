"""Fault injection at the backend boundary, for any backend.

``FaultPlan`` decides, from its own child RNG, which fault (if any) an
operation gets; ``Boundary`` calls the backend, applies the fault's effect
and classifies the result:

=============  ==========================================  =========
fault          effect                                      history
=============  ==========================================  =========
latency        extra virtual delay (scheduler)              ok
error          raised before dispatch; nothing applied      fail
lost-ack       applied, then the client sees an error       info
timeout        client gives up; dispatch later or never     info
partial-write  store_batch applies a subset, then errors    info
crash          handle dropped, backend reopened             info
=============  ==========================================  =========

Where the backend claims ``atomic_batches``, a partial write applies all
of the batch or none of it (the claim itself is tested by real faults).
Every firing is counted and becomes a ``nemesis`` event in the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dst.errors import BackendError, InvalidInput
from dst.history import VectorTable
from dst.rng import PPM, Rng
from dst.scenario import FAULT_CLASSES
from dst.validate import batch_problem

# Faults decided per operation, in the order they are drawn. Crash is
# decided separately (it hits the whole backend, not one op).
OP_FAULTS = ("error", "lost-ack", "timeout", "partial-write", "latency")


class FaultPlan:
    def __init__(self, fault_ppm: dict[str, int], rng: Rng):
        self.ppm = {k: fault_ppm.get(k, 0) for k in FAULT_CLASSES}
        self.rng = rng
        self._bands: list[tuple[str, int]] = []
        edge = 0
        for k in OP_FAULTS:
            if self.ppm[k] > 0:
                edge += self.ppm[k]
                self._bands.append((k, edge))
        self._total = edge

    def enabled(self) -> list[str]:
        return [k for k in FAULT_CLASSES if self.ppm[k] > 0]

    def op_fault(self, f: str) -> str | None:
        """Which fault this op gets: one draw, each class a band of it.

        The bands are exclusive (an op gets one fault at most), so each class
        fires with exactly its rate; rates adding up past 1 are scaled down.
        ``partial-write`` only applies to store_batch; other ops drawing its
        band get no fault.
        """
        if self._total == 0:
            return None
        x = self.rng.below(max(self._total, PPM))
        for k, hi in self._bands:
            if x < hi:
                return k if (k != "partial-write" or f == "store_batch") else None
        return None

    def crash(self) -> bool:
        return self.rng.chance(self.ppm["crash"])


@dataclass(slots=True)
class Outcome:
    type: str            # ok | fail | info
    output: Any          # history value of the completion
    applied: Any = None  # for partial writes: the ids applied


def error_value(exc: BaseException) -> dict[str, str]:
    return {"error": type(exc).__name__, "message": str(exc)[:500]}


def _classify(exc: BaseException) -> Outcome:
    if isinstance(exc, InvalidInput):
        # An answer, not a failure: the model checks it was right to refuse.
        return Outcome("ok", {"error": "InvalidInput", "message": str(exc)[:500]})
    if isinstance(exc, BackendError):
        return Outcome("fail" if exc.applied is False else "info", error_value(exc))
    # A driver exception that escaped the adapter: its effect is unknown.
    return Outcome("info", {"error": "Unclassified", "message": f"{type(exc).__name__}: {exc}"[:500]})


class Boundary:
    """Calls a backend with table refs resolved, under an optional fault."""

    def __init__(self, table: VectorTable, rng: Rng):
        self.table = table
        self.rng = rng

    def call(self, backend: Any, f: str, value: dict[str, Any], fault: str | None,
             keep: list[bool] | None = None) -> Outcome:
        if fault == "partial-write":
            return self._partial(backend, value, keep)
        try:
            out = self._invoke(backend, f, value)
        except BaseException as exc:  # noqa: BLE001 - classified, never escapes
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            outcome = _classify(exc)
        else:
            outcome = Outcome("ok", out)
        if fault == "lost-ack" and outcome.type == "ok":
            outcome = Outcome("info", {"error": "LostAck", "message": "applied, but the acknowledgement was lost"})
        return outcome

    def _invoke(self, backend: Any, f: str, value: dict[str, Any]) -> Any:
        t = self.table
        if f == "store":
            backend.store(value["id"], t[value["vector"]])
            return None
        if f == "store_batch":
            backend.store_batch([(i, t[v]) for i, v in value["items"]])
            return None
        if f == "delete":
            return _as_bool("delete", backend.delete(value["id"]))
        if f == "get":
            v = backend.get(value["id"])
            if v is None:
                return None
            try:
                return t.ref(np.asarray(v, dtype=np.float32))
            except (TypeError, ValueError):
                return _malformed("get", v)
        if f == "exists":
            return _as_bool("exists", backend.exists(value["id"]))
        if f == "count":
            n = backend.count()
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
                return _malformed("count", n)
            return int(n)
        if f == "search":
            hits = backend.search(t[value["vector"]], value["limit"])
            try:
                return [[h.id, float(h.score)] for h in hits]
            except (AttributeError, TypeError, ValueError):
                return _malformed("search", hits)
        if f == "maintenance":
            run = getattr(backend, "maintenance", None)
            if run is not None:     # a store without maintenance has nothing to do
                run(value["kind"])
            return None
        raise AssertionError(f"unknown op {f!r}")

    def _partial(self, backend: Any, value: dict[str, Any], mask: list[bool] | None) -> Outcome:
        """Apply a subset of the batch (``mask``, or drawn here), then fail."""
        items = value["items"]
        dim = getattr(backend, "dim", 0)
        if batch_problem([(i, self.table[v]) for i, v in items], dim):
            # An invalid batch must change nothing; let it be refused whole.
            return self.call(backend, "store_batch", value, None)
        if mask is None or len(mask) != len(items):
            mask = [self.rng.below(2) == 0 for _ in items]
        if getattr(backend, "atomic_batches", False):
            keep = items if mask and mask[0] else []   # all or nothing
        else:
            keep = [it for it, k in zip(items, mask) if k]
        if keep:
            sub = self.call(backend, "store_batch", {"items": keep}, None)
            if sub.type != "ok":
                return sub
        return Outcome("info", {"error": "PartialWrite",
                                "message": f"applied {len(keep)} of {len(items)} items"},
                       applied=[i for i, _ in keep])


def _malformed(f: str, x: Any) -> dict[str, str]:
    """An output of the wrong type: recorded as such, and the model rejects it."""
    return {"malformed": f"{f} returned {type(x).__name__}: {x!r}"[:300]}


def _as_bool(f: str, x: Any) -> Any:
    if not isinstance(x, (bool, np.bool_)):
        return _malformed(f, x)
    return bool(x)
