"""Availability: how often each op kind answered, as Jepsen reports it.

A pass says the backend answered and every answer was right, so the
backend's own failures are findings too. Per op kind the run counts the
client-visible outcomes (``ok``, ``fail``, ``info``) and the backend's own
errors: a call that raised ``BackendError`` (or let a driver exception
escape) although the harness injected nothing into it. Errors the harness
caused stay attributed to the fault: an injected error, a lost ack, a
partial write's mid-batch kill, a backend nemesis fired during the call
(and the next call, which a kill that landed late may break), anything
between a server crash and the probe that follows it.

Every call the harness makes is counted: the scenario's ops, the load
phase and the quiescent probes. A probe that answered ``ok`` counts as a
completion of its kind (it is checked like any op), but only the
scenario's op mix decides which kinds a run must see complete (``drawn``).

The rules (DESIGN "What a pass means"):

* own errors of a kind at most ``backend_error_ppm`` of that kind's calls
  over the whole run, else a violation of kind ``availability``. With the
  default 0, any own error is also a violation of the seed it happened in
  (so the seed has its history, report and replay command); a non-zero
  rate is judged over the run only, since one seed is too short to
  measure a small rate;
* every drawn kind completed ``ok`` at least once in the run, else exit 4.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

from dst.rng import PPM

MESSAGES_MAX = 3   # the first few own-error messages per kind, enough to see the pattern
TYPES = ("ok", "fail", "info")


class Tally:
    """Per op kind: outcomes by type, own errors and their first messages.

    Thread-safe (threads mode counts from every client thread); with
    ``locked=False`` (the one-thread scheduler) ``done`` takes no lock.
    """

    def __init__(self, locked: bool = True) -> None:
        self.kinds: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._locked = locked

    def _row(self, f: str) -> dict[str, Any]:
        row = self.kinds.get(f)
        if row is None:
            row = self.kinds[f] = {"ok": 0, "fail": 0, "info": 0, "own": 0, "messages": []}
        return row

    def done(self, f: str, type_: str) -> None:
        """An op of kind ``f`` completed as the client saw it."""
        assert type_ in TYPES, type_
        if not self._locked:     # one thread: counted as is
            row = self.kinds.get(f)
            if row is None:
                row = self._row(f)
            row[type_] += 1
            return
        with self._lock:
            row = self.kinds.get(f)
            if row is None:
                row = self._row(f)
            row[type_] += 1

    def own(self, f: str, output: Any) -> None:
        """The backend's own error in a call of kind ``f``."""
        with self._lock:
            row = self._row(f)
            row["own"] += 1
            if len(row["messages"]) < MESSAGES_MAX:
                row["messages"].append(error_text(output))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {f: {**r, "messages": list(r["messages"])} for f, r in sorted(self.kinds.items())}


def error_text(output: Any) -> str:
    if isinstance(output, dict):
        name, msg = output.get("error", "error"), output.get("message", "")
        return f"{name}: {msg}"[:300]
    return repr(output)[:300]


def merge(tallies: Iterable[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per-kind totals over several seeds (first messages kept in seed order)."""
    out: dict[str, dict[str, Any]] = {}
    for t in tallies:
        for f, r in t.items():
            row = out.setdefault(f, {"ok": 0, "fail": 0, "info": 0, "own": 0, "messages": []})
            for k in (*TYPES, "own"):
                row[k] += int(r.get(k, 0))
            for m in r.get("messages", []):
                if len(row["messages"]) < MESSAGES_MAX:
                    row["messages"].append(m)
    return {f: out[f] for f in sorted(out)}


def ops_of(row: dict[str, Any]) -> int:
    return sum(int(row.get(k, 0)) for k in TYPES)


def allowed(ppm: int, ops: int) -> int:
    """Own errors tolerated among ``ops`` calls at ``ppm`` (rounded down)."""
    return max(ppm, 0) * ops // PPM


def violations(tally: dict[str, dict[str, Any]], ppm: int, *, whole_run: bool) -> list[dict[str, Any]]:
    """``availability`` violations: kinds whose own errors exceed the budget.
    A seed alone (``whole_run=False``) is judged only at ``ppm == 0``."""
    if not whole_run and ppm > 0:
        return []
    out = []
    for f, r in sorted(tally.items()):
        n, own = ops_of(r), int(r.get("own", 0))
        cap = allowed(ppm, n)
        if own > cap:
            first = (r.get("messages") or ["?"])[0]
            where = "over the run" if whole_run else "in this seed"
            out.append({"kind": "availability", "f": f, "own_errors": own, "ops": n, "allowed": cap,
                        "message": f"{f}: {own} of {n} calls failed with the backend's own error {where} "
                                   f"(backend_error_ppm={ppm} allows {cap}); first: {first}"})
    return out


def never_ok(tally: dict[str, dict[str, Any]], drawn: Iterable[str]) -> list[str]:
    """Drawn op kinds that never completed ``ok``, in a stable order."""
    return sorted(f for f in set(drawn) if int((tally.get(f) or {}).get("ok", 0)) == 0)

