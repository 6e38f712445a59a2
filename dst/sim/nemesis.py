"""Firing a backend's own nemeses while one of its calls is in flight.

A backend may offer ``nemeses() -> {name: fn}``: real faults it inflicts on
itself (kill its connection, crash its server). Fired between two calls
they would mostly go unseen (the next call reconnects), so the harness fires
one from a second thread a little after the op's call began. Which op and
how long after come from the plan; what the call then meets is up to the
operating system, so these runs replay as ``exact`` or ``diverged``, never
byte for byte.

A nemesis whose name starts with ``crash`` takes the whole store down: the
harness treats it like its own crash fault (ops in flight become info,
queued ones fail) except that the backend keeps its handle and must
reconnect by itself; the store is probed as soon as it is back.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from dst import wallclock

JOIN_TIMEOUT_S = 120  # a nemesis that takes longer than this is itself broken


def is_crash(name: str) -> bool:
    return name.startswith("crash")


def call_during(call: Callable[[], Any], nemesis: Callable[[], Any], delay_us: int) -> tuple[Any, dict]:
    """Run ``call``; ``delay_us`` after it starts, fire ``nemesis`` from another thread.

    Returns the call's result and what the nemesis reported (or its error).
    """
    report: dict[str, Any] = {}

    def fire() -> None:
        wallclock.sleep_s(delay_us / 1e6)
        try:
            info = nemesis()
            report.update(info if isinstance(info, dict) else {"result": repr(info)})
            report["fired"] = True
        except Exception as exc:  # noqa: BLE001 - reported, never raised into the run
            report.update({"fired": False, "error": f"{type(exc).__name__}: {exc}"})

    t = threading.Thread(target=fire, name="dst-nemesis", daemon=True)
    t.start()
    try:
        result = call()
    finally:
        t.join(JOIN_TIMEOUT_S)
    if t.is_alive():
        report.update({"fired": False, "error": f"the nemesis did not return in {JOIN_TIMEOUT_S} s"})
    return result, report
