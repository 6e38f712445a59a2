"""Threads mode: the clients on real threads against a real backend.

Not replayable: the interleaving is the operating system's, and times are
wall-clock microseconds. It exercises what the discrete-event scheduler
cannot, the backend's own concurrency: each client gets its own handle
(opened with ``fresh=False`` on the namespace the run created), so a
backend that keeps per-handle snapshots or races on upserts shows it.

Op streams stay seeded (each client draws from its own child RNG); only
the interleaving is real. No dispatch order is known, so the checker runs
the full linearizability search, without the witness.

Fault classes here: ``error``, ``lost-ack`` and ``partial-write`` (drawn
per op at the boundary, counted as what they did, as in ``dst.sim.faults``: a
partial write on a store the harness cannot cut is a ``batch-error``).
``latency``, ``timeout`` and ``crash`` are virtual-time faults of the
scheduler and are off in this mode.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Callable

from dst import wallclock
from dst.backend import BackendConfig, open_backend
from dst.history import History
from dst.rng import Rng
from dst.sim.faults import Boundary, FaultPlan
from dst.sim.scenario import SeedParams
from dst.sim.scheduler import Scheduler, SeedRun

THREAD_FAULTS = ("error", "lost-ack", "partial-write")
JOIN_TIMEOUT_S = 600  # a client stuck this long in one backend call is a hung backend


class ThreadRunner(Scheduler):
    """The scheduler's setup, load phase and probes; real threads between."""

    LOCKED_TALLY = True      # every client thread counts availability

    def __init__(self, params: SeedParams, decider: Any, factory: Callable[[BackendConfig], Any],
                 config: BackendConfig, history: History, rng: Rng):
        if not hasattr(decider, "workload"):
            raise ValueError("threads mode draws its own ops; it cannot replay a schedule")
        # The scheduler's setup: the primary handle, the boundary, counters.
        super().__init__(params, decider, factory, config, history, rng.fork("partial"))
        self.rng = rng
        self.workload = decider.workload
        self.client_rngs = decider.client_rngs
        self.fault_ppm = {k: (v if k in THREAD_FAULTS else 0) for k, v in params.fault_ppm.items()}
        self._lock = threading.Lock()
        self._t0 = wallclock.monotonic_us()
        self.clock = _WallClockShim(self)      # load phase and probes stamp wall-clock times
        self._left = self.s.ops
        self._errors: list[BaseException] = []

    def _now(self) -> int:
        return wallclock.monotonic_us() - self._t0

    def _take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def _add(self, process: Any, type_: str, f: str, value: Any) -> None:
        with self._lock:
            self.history.add(self._now(), process, type_, f, value)

    def run(self) -> SeedRun:
        self._load()
        handles = [open_backend(self.factory, replace(self.config, fresh=False)) for _ in range(self.s.clients)]
        threads = [threading.Thread(target=self._client, args=(c, handles[c]), daemon=True,
                                    name=f"dst-client-{c}") for c in range(self.s.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_TIMEOUT_S)
            if t.is_alive():
                raise RuntimeError(f"{t.name} did not finish in {JOIN_TIMEOUT_S} s: the backend hangs")
        if self._errors:
            raise self._errors[0]
        for h in handles:
            close = getattr(h, "close", None)
            if close is not None:
                close()
        self._probe("final")
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()
        # No dispatch order is known in threads mode: drop the numbers the
        # quiescent ops got, so nothing poses as a witness.
        for e in self.history.events:
            e.pop("dispatch", None)
        return SeedRun(self.history, self.fired, self.findings, 0, self.availability.to_dict())

    def _client(self, c: int, backend: Any) -> None:
        try:
            rng = self.client_rngs[c]
            faults = FaultPlan(self.fault_ppm, self.rng.fork(f"faults-{c}"))
            boundary = Boundary(self.history.table, self.rng.fork(f"partial-{c}"))
            process = c
            while self._take():
                spec = self.workload.next_op(rng, self.has_maintenance)
                fault = faults.op_fault(spec.f)
                self._add(process, "invoke", spec.f, spec.value)
                if fault == "error":
                    self._fire("error", {"process": process})
                    self._add(process, "fail", spec.f,
                              {"error": "InjectedError", "message": "injected before dispatch"})
                    self.availability.done(spec.f, "fail")
                    continue
                out = boundary.call(backend, spec.f, spec.value, fault)
                if out.fired is not None:
                    self._fire(out.fired, {"process": process, **(out.detail or {})})
                self._add(process, out.type, spec.f, out.output)
                self._count_own(spec.f, out, False)   # no nemesis runs in this mode
                self.availability.done(spec.f, out.type)
                if out.type == "info":
                    with self._lock:           # Jepsen: go on as a new process
                        process = self._next_process
                        self._next_process += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised by run()
            self._errors.append(exc)

    def _fire(self, f: str, value: dict[str, Any]) -> None:
        with self._lock:
            self.fired[f] += 1
            self.history.add(self._now(), "nemesis", "info", f, value)


class _WallClockShim:
    """Lets the scheduler's quiescent helpers stamp wall-clock times."""

    def __init__(self, runner: ThreadRunner):
        self.r = runner

    @property
    def now_us(self) -> int:
        return self.r._now()

    def advance_by(self, dt_us: int) -> None:
        pass
