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
partial-write  store_batch cut mid-way, then errors          info
batch-error    (what partial-write can do on an atomic      info
               store): error before or after the batch
crash          handle dropped, backend reopened             info
=============  ==========================================  =========

A fault is counted under the name of what it really did (``Outcome.fired``),
never under the name it was drawn as. A drawn ``partial-write`` cuts a batch
in one of three ways (``batch_mode``), by what the backend allows:

* ``split``: the backend declares ``atomic_batches = False``; the harness
  applies the recorded strict subset of the batch, then the client sees an
  error. Counted ``partial-write``. The subset is a proper split (some
  items applied, some not); a batch of one cannot be split, so it is
  applied whole or not at all and counted ``batch-error``.
* ``kill``: an atomic backend offering ``kill_mid_batch(items, rows)``
  (pgvector) runs the batch and has its own connection killed after
  ``rows`` rows are in flight: a real mid-batch failure that tests the
  atomicity claim. Counted ``partial-write`` when the kill interrupted
  the batch; a batch that completed all the same is an ordinary ``ok``.
* ``whole``: an atomic backend the harness cannot cut (sim, lance): the
  error is raised before the batch (nothing applied) or after it (all
  applied), as recorded. Counted ``batch-error``; the history's nemesis
  event says which, with the ids applied.

Every firing is counted and becomes a ``nemesis`` event in the history.

The boundary also holds backends to the protocol's output types (a str id
and a finite number per hit, ``dim`` float32 components from get, an int
count, a bool from delete and exists). An answer of another type is
recorded as an ``info`` op with error ``ContractViolation`` (what the store
did is unknown), and ``contract_violations`` turns those into findings of
kind ``contract``: the runner reports them first, ``dst check`` finds them
again in the recorded history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dst.backend import SearchHit, exact_view
from dst.errors import BackendError, InvalidInput
from dst.history import VectorTable
from dst.rng import PPM, Rng
from dst.sim.scenario import FAULT_CLASSES
from dst.validate import batch_problem

# Faults decided per operation, in the order they are drawn. Crash is
# decided separately (it hits the whole backend, not one op).
OP_FAULTS = ("error", "lost-ack", "timeout", "partial-write", "latency")

# The ops a lost acknowledgement can hide an effect of. A read whose answer
# is lost changed nothing and proves nothing, so lost-ack is not drawn for
# reads (nor for maintenance, which changes no content).
ACK_OPS = ("store", "store_batch", "delete")

# Every name a firing is counted under: the scenario's classes, and what a
# partial write is on a store whose batches cannot be cut.
BATCH_ERROR = "batch-error"
FIRED_CLASSES = FAULT_CLASSES + (BATCH_ERROR,)


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
        # An op's draw is below(span) when total > 0 (no draw otherwise);
        # a draw at or past total is no fault.
        self.total = edge
        self.span = max(edge, PPM)
        self._crash_ppm = self.ppm["crash"]

    def enabled(self) -> list[str]:
        return [k for k in FAULT_CLASSES if self.ppm[k] > 0]

    def op_fault(self, f: str) -> str | None:
        """Which fault this op gets: one draw, each class a band of it.

        The bands are exclusive (an op gets one fault at most), so each class
        fires with exactly its rate; rates adding up past 1 are scaled down.
        ``partial-write`` only applies to store_batch and ``lost-ack`` only
        to writes (``ACK_OPS``); other ops drawing their band get no fault.
        """
        total = self.total
        if total == 0:
            return None
        x = self.rng.below(self.span)
        if x >= total:      # past every band: no fault (most ops)
            return None
        return self.fault_at(x, f)

    def fault_at(self, x: int, f: str) -> str | None:
        """The fault an op of kind ``f`` gets for its draw ``x`` (below
        ``total``): the class whose band holds x, if it applies to f."""
        for k, hi in self._bands:
            if x < hi:
                if (k == "partial-write" and f != "store_batch") or (k == "lost-ack" and f not in ACK_OPS):
                    return None
                return k
        return None

    def crash(self) -> bool:
        return self.rng.chance(self._crash_ppm)


def split_mask(rng: Rng, n: int) -> list[bool]:
    """Which items of an ``n``-item batch a partial write applies.

    For n >= 2 a proper split: at least one item applied and one not (so a
    non-atomic store really ends half-written). A batch of one cannot be
    split: its one item is applied or not, a coin flip.
    """
    mask = [rng.below(2) == 0 for _ in range(n)]
    if n >= 2 and all(m == mask[0] for m in mask):
        i = rng.below(n)
        mask[i] = not mask[i]
    return mask


def batch_mode(backend: Any, whole: bool = False) -> str:
    """How a partial-write fault cuts a batch on ``backend`` (module doc).

    ``whole=True`` asks for the form every backend can take alike (``dst
    conform`` uses it to compare backends that would cut batches differently).
    """
    if whole:
        return "whole"
    if not getattr(backend, "atomic_batches", False):
        return "split"
    return "kill" if callable(getattr(backend, "kill_mid_batch", None)) else "whole"


def fires_as(fault: str, mode: str) -> str:
    """The name a drawn fault class is counted under on a backend whose
    batches are cut in ``mode``: what the fault-coverage gate must see."""
    return BATCH_ERROR if fault == "partial-write" and mode == "whole" else fault


@dataclass(slots=True)
class Outcome:
    type: str                          # ok | fail | info
    output: Any                        # history value of the completion
    fired: str | None = None           # the fault that really took effect, by its honest name
    detail: dict[str, Any] | None = None   # what it did (its nemesis event's value)
    # The backend raised (BackendError, or a driver exception) in a call the
    # harness did not tamper with: its own error (dst.sim.availability). The
    # scheduler may still attribute it to a nemesis in flight.
    own: bool = False


# float32, as a dtype: ``is`` against it is the cheap test (any other
# float32 dtype takes the general path, with the same result).
_F32 = np.dtype(np.float32)

# The outcome of every call that returned nothing (writes, a get of a
# missing id): one shared record, as no Outcome is ever changed.
_OK_NONE = Outcome("ok", None)
_OK_TRUE = Outcome("ok", True)
_SUM = np.add.reduce
_OK_FALSE = Outcome("ok", False)


def error_value(exc: BaseException) -> dict[str, str]:
    return {"error": type(exc).__name__, "message": str(exc)[:500]}


def _classify(exc: BaseException) -> Outcome:
    if isinstance(exc, ContractBreach):
        # The backend answered, in a shape no answer may have: what it did is
        # unknown (info), and the checker reports the breach (kind contract).
        return Outcome("info", {"error": CONTRACT_ERROR, "message": str(exc)[:500]})
    if isinstance(exc, InvalidInput):
        # An answer, not a failure: the model checks it was right to refuse.
        return Outcome("ok", {"error": "InvalidInput", "message": str(exc)[:500]})
    if isinstance(exc, BackendError):
        return Outcome("fail" if exc.applied is False else "info", error_value(exc), own=True)
    # A driver exception that escaped the adapter: its effect is unknown.
    return Outcome("info", {"error": "Unclassified", "message": f"{type(exc).__name__}: {exc}"[:500]},
                   own=True)


class Boundary:
    """Calls a backend with table refs resolved, under an optional fault."""

    def __init__(self, table: VectorTable, rng: Rng, whole_batches: bool = False):
        self.table = table
        self.rng = rng
        self.whole_batches = whole_batches
        self._finite_refs: dict[int, bool] = {}

    def _finite(self, n: int) -> bool:
        """Whether table vector ``n`` has only finite components (once per vector)."""
        ok = self._finite_refs.get(n)
        if ok is None:
            # A float64 sum of float32 components cannot overflow: it is
            # finite exactly when every component is (one reduction).
            ok = self._finite_refs[n] = math.isfinite(_SUM(self.table.vectors[n], dtype=np.float64))
        return ok

    def call(self, backend: Any, f: str, value: dict[str, Any], fault: str | None,
             keep: list[bool] | None = None) -> Outcome:
        if fault == "partial-write" and f == "store_batch":
            return self._batch_fault(backend, value, keep)
        # _attempt, written out: this is every op's path.
        try:
            out = self._invoke(backend, f, value)
        except BaseException as exc:  # noqa: BLE001 - classified, never escapes
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            # An ack can only be lost if there was one: a call that raised
            # (refused, failed) is reported as it is, and no fault is counted.
            return _classify(exc)
        if fault == "lost-ack":
            return Outcome("info", {"error": "LostAck", "message": "applied, but the acknowledgement was lost"},
                           fired="lost-ack")
        return Outcome("ok", out) if out is not None else _OK_NONE

    def read(self, backend: Any, f: str, value: dict[str, Any]) -> Outcome:
        """``call`` for a read of one id with no fault (exists, get or
        get_attrs: the probes' reads), the same outcome on a shorter path."""
        try:
            if f == "exists":
                x = backend.exists(value["id"])
                return _OK_TRUE if (x if type(x) is bool else _as_bool("exists", x)) else _OK_FALSE
            out = self._invoke(backend, f, value)
        except BaseException as exc:  # noqa: BLE001 - classified, never escapes
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return _classify(exc)
        return Outcome("ok", out) if out is not None else _OK_NONE

    def _attempt(self, backend: Any, f: str, value: dict[str, Any]) -> tuple[Outcome, bool]:
        """The call, classified, and whether it returned (did not raise)."""
        try:
            out = self._invoke(backend, f, value)
        except BaseException as exc:  # noqa: BLE001 - classified, never escapes
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return _classify(exc), False
        return Outcome("ok", out), True

    def _invoke(self, backend: Any, f: str, value: dict[str, Any]) -> Any:
        """The backend call, its output normalised for the history.

        An output of the wrong type or shape raises ``ContractBreach``
        (``_attempt`` makes it an ``info`` op and the checker a ``contract``
        violation): the protocol fixes these types, so no answer of another
        type can be right, and guessing what it meant would hide the bug.
        """
        t = self.table
        vectors = t.vectors      # the table's list: no __getitem__ call per vector
        if f == "store":
            if "attrs" in value:
                backend.store(value["id"], vectors[value["vector"]], value["attrs"])
            else:
                backend.store(value["id"], vectors[value["vector"]])
            return None
        if f == "store_batch":
            backend.store_batch(resolve_items(t, value["items"]))
            return None
        if f == "delete":
            return _as_bool("delete", backend.delete(value["id"]))
        if f == "get":
            v = backend.get(value["id"])
            if v is None:
                return None
            dim = getattr(backend, "dim", None)
            if type(v) is np.ndarray and v.dtype is _F32 and v.ndim == 1 and v.shape[0] == dim:
                # A vector the table holds (the common case): its number,
                # its finiteness checked once per vector, not per get.
                n = t.find(v)
                if n is not None and self._finite(n):
                    return n
            return t.ref(_as_vector(v, dim))
        if f == "get_attrs":
            a = backend.get_attrs(value["id"])
            return None if a is None else {"attrs": _as_attrs(a)}
        if f == "exists":
            return _as_bool("exists", backend.exists(value["id"]))
        if f == "count":
            return _as_count(backend.count())
        if f == "search" and value.get("exact") is True:
            backend = exact_view(backend)   # the probes' exhaustive search (search_exact)
        if f == "search":
            if "where" in value:
                return _as_hits(backend.search(vectors[value["vector"]], value["limit"], where=value["where"]))
            return _as_hits(backend.search(vectors[value["vector"]], value["limit"]))
        if f == "maintenance":
            run = getattr(backend, "maintenance", None)
            if run is not None:     # a store without maintenance has nothing to do
                run(value["kind"])
            return None
        raise AssertionError(f"unknown op {f!r}")

    def _batch_fault(self, backend: Any, value: dict[str, Any], mask: list[bool] | None) -> Outcome:
        """A drawn partial write, done the way this backend allows (module doc)."""
        items = value["items"]
        resolved = resolve_items(self.table, items)
        if not items or batch_problem(resolved, getattr(backend, "dim", 0), getattr(backend, "metric", "cosine")):
            # Nothing to cut, or an invalid batch that must change nothing:
            # the plain call, refused whole (or a no-op), and no fault.
            return self._attempt(backend, "store_batch", value)[0]
        if mask is None or len(mask) != len(items):
            mask = split_mask(self.rng, len(items))
        mode = batch_mode(backend, self.whole_batches)
        if mode == "kill":
            return self._killed(backend, resolved, sum(mask))
        if mode == "split":
            keep = [it for it, k in zip(items, mask) if k]
            if 0 < len(keep) < len(items):
                sub, returned = self._attempt(backend, "store_batch", {"items": keep})
                if not returned:
                    return sub   # the backend's own failure, not the fault's
                ids = [it[0] for it in keep]
                return Outcome("info", {"error": "PartialWrite",
                                        "message": f"applied {len(keep)} of {len(items)} items"},
                               fired="partial-write", detail={"applied": ids, "of": len(items)})
            after = bool(keep)   # a batch of one (or a recorded mask that did not split)
        else:
            after = bool(mask[0])
        return self._around(backend, value, after)

    def _around(self, backend: Any, value: dict[str, Any], after: bool) -> Outcome:
        """An error raised around the whole batch: before it or after it."""
        items = value["items"]
        if after:
            out, returned = self._attempt(backend, "store_batch", value)
            if not returned:
                return out
            return Outcome("info", {"error": "BatchError", "message": "error after the whole batch was applied"},
                           fired=BATCH_ERROR, detail={"when": "after", "applied": [it[0] for it in items]})
        return Outcome("info", {"error": "BatchError", "message": "error before the batch; nothing applied"},
                       fired=BATCH_ERROR, detail={"when": "before", "applied": []})

    def _killed(self, backend: Any, items: list, rows: int) -> Outcome:
        """The backend's own connection killed with ``rows`` rows of the batch
        in flight. What was applied is for the checker to find out."""
        try:
            backend.kill_mid_batch(items, rows)
        except BaseException as exc:  # noqa: BLE001 - classified, never escapes
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            out = _classify(exc)
            if out.type == "ok":
                return out   # refused (InvalidInput): nothing was cut
            return replace(out, fired="partial-write", own=False,   # the harness's kill, not the store
                           detail={"how": "connection killed mid-batch", "rows_written": rows, "of": len(items)})
        return Outcome("ok", None)   # the kill missed: the batch completed and was acknowledged


# -- output contract ----------------------------------------------------------
# The protocol's output types (DESIGN, "The backend protocol"). Anything else
# is a contract violation of the backend, reported with the op and what was
# wrong; the op itself is recorded as ``info`` (what the store did is unknown).

CONTRACT_ERROR = "ContractViolation"   # the error name of such an op's completion


class ContractBreach(Exception):
    """A backend's output broke the protocol's types. Internal to the
    boundary: never escapes ``Boundary.call``."""


def _show(x: Any) -> str:
    return f"{type(x).__name__} {x!r}"[:120]


def _as_bool(f: str, x: Any) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise ContractBreach(f"{f} returned {_show(x)}, not a bool")
    return bool(x)


def _as_count(n: Any) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise ContractBreach(f"count returned {_show(n)}, not an int")
    return int(n)   # a wrong int (negative, say) is a wrong answer: the model's to judge


def _as_vector(v: Any, dim: Any) -> np.ndarray:
    """get's answer as float32, exactly ``dim`` finite components."""
    try:
        arr = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError):
        raise ContractBreach(f"get returned {_show(v)}, which is not a float32 vector") from None
    want = (dim,) if isinstance(dim, int) else None
    if arr.ndim != 1 or (want is not None and arr.shape != want):
        raise ContractBreach(f"get returned a vector of shape {arr.shape}; the backend's dim is {dim}, "
                             f"so the shape must be ({dim},)")
    if not np.all(np.isfinite(arr)):
        raise ContractBreach("get returned a vector with NaN or infinite components")
    return arr


def resolve_items(table: VectorTable, items: list) -> list[tuple]:
    """A recorded batch's items with their vectors: ``(id, vector)``, or
    ``(id, vector, attrs)`` for an item recorded with attributes."""
    vs = table.vectors
    return [(it[0], vs[it[1]]) if len(it) == 2 else (it[0], vs[it[1]], it[2]) for it in items]


def _as_attrs(a: Any) -> dict[str, Any]:
    """get_attrs's answer: a dict of str names to str, int or bool values."""
    if not isinstance(a, dict):
        raise ContractBreach(f"get_attrs returned {_show(a)}, not a dict or None")
    out: dict[str, Any] = {}
    for k in sorted(a, key=str):
        v = a[k]
        if not isinstance(k, str):
            raise ContractBreach(f"get_attrs returned the attribute name {_show(k)}, not a str")
        t = type(v)
        if t is str or t is int or t is bool:     # the common case, as the general path takes it
            out[k] = v
            continue
        if isinstance(v, np.bool_):
            v = bool(v)
        elif isinstance(v, np.integer):
            v = int(v)
        if not isinstance(v, (str, int, bool)):
            raise ContractBreach(f"get_attrs returned {k!r}: {_show(v)}, not a str, int or bool")
        out[k] = v
    return out


def _as_hits(hits: Any) -> list[list[Any]]:
    """search's answer as [[id, score], ...]: str ids, finite float scores."""
    if not isinstance(hits, (list, tuple)):
        raise ContractBreach(f"search returned {_show(hits)}, not a list of SearchHit")
    out: list[list[Any]] = []
    for n, h in enumerate(hits):
        if type(h) is SearchHit:
            # The common case, checked without the general path's calls.
            hid, score = h.id, h.score
            if type(hid) is str and type(score) is float and math.isfinite(score):
                out.append([hid, score])
                continue
        hid, score = getattr(h, "id", _MISSING), getattr(h, "score", _MISSING)
        if hid is _MISSING or score is _MISSING:
            raise ContractBreach(f"search hit {n} is {_show(h)}, not a SearchHit (no id/score)")
        if not isinstance(hid, str):
            raise ContractBreach(f"search hit {n} has id {_show(hid)}, not a str")
        if type(score) is not float and (isinstance(score, (bool, np.bool_)) or not isinstance(
                score, (int, float, np.integer, np.floating))):
            raise ContractBreach(f"search hit {n} ({hid!r}) has score {_show(score)}, not a number")
        s = float(score)
        if not math.isfinite(s):    # a Python float: no numpy call per hit
            raise ContractBreach(f"search hit {n} ({hid!r}) has score {s}, not a finite number")
        out.append([hid, s])
    return out


_MISSING = object()


def contract_violations(history: Any) -> list[dict[str, Any]]:
    """The ``contract`` violations a history records, one per op kind that
    broke the protocol (its first breach, with the op and why, and how many
    ops of that kind did), in the order they first happened."""
    # Nearly every history has none: one pass for a completion carrying
    # the error first, and the pairing below only when there is one.
    for e in history.events:
        if e["type"] != "invoke" and e["process"] != "nemesis":
            v = e.get("value")
            if isinstance(v, dict) and v.get("error") == CONTRACT_ERROR:
                break
    else:
        return []
    found: dict[str, dict[str, Any]] = {}
    invokes: dict[Any, dict[str, Any]] = {}
    for e in history.events:
        proc = e["process"]
        if proc == "nemesis":
            continue
        key = tuple(proc) if isinstance(proc, list) else proc
        if e["type"] == "invoke":
            invokes[key] = e
            continue
        inv = invokes.pop(key, None)
        v = e.get("value")
        if not (isinstance(v, dict) and v.get("error") == CONTRACT_ERROR):
            continue
        f = e["f"]
        if f in found:
            found[f]["times"] += 1
            continue
        found[f] = {
            "kind": "contract", "check": f, "times": 1,
            "message": f"the backend broke the protocol: {v.get('message', '')}",
            "op": {"index": None if inv is None else inv["index"], "process": proc, "f": f,
                   "input": None if inv is None else inv.get("value"), "output": v,
                   "type": e["type"], "completed_at": e["index"]},
        }
    return list(found.values())
