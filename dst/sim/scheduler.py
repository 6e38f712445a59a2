"""The discrete-event scheduler: C closed-loop clients in virtual time.

Each operation has three moments: *invoke* (the client asks), *dispatch*
(the harness calls the backend, synchronously, in queue order) and
*complete* (the client sees the answer). Random delays between them make
operations overlap, so concurrent histories arise deterministically. The
dispatch order is recorded on each op (``dispatch``) and is the witness
order the checker tries first.

Like Jepsen, a client whose op ended ``info`` continues under a new process
id, so no process ever has two open operations.

After every crash (and at the end) the harness probes the quiet store:
count, exists and get of every id of the universe, and an exhaustive
search. The probe ops are in the history, so the linearizability checker
holds them to every acknowledged write; ``probe_findings`` holds the direct
cross-checks between them (count = live ids = search length, ...).

On a backend whose search is an ANN index (``exact = False``) the probe then
asks for reachability: a sample of at most ``reachability_sample`` live ids
(drawn from the seed's ``reach`` child rng), each searched by its own stored
vector through the ANN ``search`` with limit ``reachability_k``. These
searches are recorded with ``"reach": id`` in their value (the backend never
sees the keys ``reach`` and ``when``); ``dst.sim.reach`` scores them from the
history.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from dst import filters
from dst.backend import BackendConfig, check_maintenance_kinds, open_backend
from dst.clock import VirtualClock
from dst.errors import BackendError, UsageError
from dst.history import History
from dst.isolate import KILL
from dst.rng import Rng
from dst.sim.availability import Tally
from dst.sim.faults import FIRED_CLASSES, Boundary, Outcome, batch_mode
from dst.sim.scenario import SeedParams

# What a kill is counted under: the nemesis, and each moment it can hit
# (kill-late: a "during" kill whose call returned first; dst.isolate).
KILL_COUNTED = (KILL, "kill-before", "kill-during", "kill-after-reply", "kill-mid-batch", "kill-late")

# Bound on events per seed: a run that needs more is a harness bug, not a
# long workload (each op schedules at most four events).
EVENTS_PER_OP_MAX = 16


@dataclass(eq=False, slots=True)
class _Op:
    client: int
    process: int
    f: str                     # the op and its input (its plan's)
    value: Any
    fault: str | None
    plan: Any                  # its OpPlan
    state: str = "invoked"     # invoked | dispatched | done | abandoned | cancelled
    dispatch: int | None = None
    outcome: Outcome | None = None
    completion: dict | None = None   # the history event that closed it


@dataclass
class SeedRun:
    history: History
    fired: dict[str, int]
    probe_findings: list[dict[str, Any]] = field(default_factory=list)
    crashes: int = 0
    availability: dict[str, dict[str, Any]] = field(default_factory=dict)   # dst.sim.availability.Tally
    # Set when the store could not be reopened after a crash: a durability
    # finding; the run stopped there.
    reopen_failure: dict[str, Any] | None = None


class Scheduler:
    LOCKED_TALLY = False     # whether several threads count availability at once

    def __init__(self, params: SeedParams, decider: Any, factory: Callable[[BackendConfig], Any],
                 config: BackendConfig, history: History, boundary_rng: Rng,
                 reach_rng: Rng | None = None):
        self.p = params
        self.s = params.scenario
        self.decider = decider
        self.factory = factory
        self.config = config
        self.history = history
        self.clock = VirtualClock()
        # A schedule may ask for whole-batch faults (dst conform does, to
        # compare backends that would cut batches differently).
        self.boundary = Boundary(history.table, boundary_rng,
                                 whole_batches=getattr(decider, "whole_batches", False))
        self.clients = decider.clients
        # Which live ids the reachability probes sample (a child of its own,
        # so sampling never shifts another draw).
        self.reach_rng = reach_rng if reach_rng is not None else boundary_rng.fork("reach")
        self.fired = {k: 0 for k in FIRED_CLASSES}
        self.findings: list[dict[str, Any]] = []
        # (time, sequence, handler, payload): the sequence is unique, so
        # handlers are never compared.
        self._queue: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._seq = 0
        self._dispatch_seq = 0
        self._next_process = self.clients
        self._process = list(range(self.clients))   # client -> current process id
        self._open: dict[int, _Op] = {}      # client -> its open op
        self._crash_pending = False
        self._crashes = 0
        self._restart_think: dict[int, int] = {}
        # One thread counts here (threads mode overrides LOCKED_TALLY).
        self.availability = Tally(locked=self.LOCKED_TALLY)
        # Backend errors the harness caused: a nemesis that fired may break
        # the next call too (a kill that landed after its call returned), and
        # every call between a server crash and the probe after it.
        self._nemesis_grace = 0
        self._server_down = False
        self._crash_carrier: int | None = None   # dispatch of the op a crash nemesis fired under
        self.reopen_failure: dict[str, Any] | None = None
        self._died_of: Any = _NO_HANDLE      # the handle _died_fn is the child_died of
        self._died_fn: Any = None
        self.backend = open_backend(factory, config)
        self.has_maintenance = callable(getattr(self.backend, "maintenance", None))
        self.has_search_exact = callable(getattr(self.backend, "search_exact", None))
        try:
            self.maintenance_kinds = check_maintenance_kinds(self.backend, self._wanted_kinds())
        except UsageError:
            _discard(self.backend)   # a setup error: leave no namespace behind
            raise
        self.batch_mode = batch_mode(self.backend, self.boundary.whole_batches)
        self._load_nemeses()
        for name in self.s.nemesis_ppm:
            self.fired.setdefault(name, 0)
        self._kills = 0
        self._deaths = 0
        if self.killable:
            for name in KILL_COUNTED:
                self.fired.setdefault(name, 0)

    def _wanted_kinds(self) -> list[str]:
        """The maintenance kinds this run may invoke: a schedule's, or the
        scenario's when it draws maintenance (at any swarm weight)."""
        sched = getattr(self.decider, "sched", None)
        if sched is not None:
            return [str((p.value or {}).get("kind")) for plans in sched.clients for p in plans
                    if p.f == "maintenance"]
        return list(self.s.maintenance_kinds) if self.s.op_weights.get("maintenance", 0) > 0 else []

    def _load_nemeses(self) -> None:
        """The backend's own faults (optional capability), by name."""
        get = getattr(self.backend, "nemeses", None)
        self.nemeses: dict[str, Callable[[], Any]] = dict(get()) if callable(get) else {}
        # An isolated backend (dst.isolate) can be killed at chosen moments.
        self.killable = callable(getattr(self.backend, "arm_kill", None))
        self.nemesis_names = tuple(sorted(n for n in self.nemeses if self.s.nemesis_ppm.get(n, 0) > 0))

    # -- queue ------------------------------------------------------------
    def _at(self, t: int, handler: Callable[[Any], None], payload: Any) -> None:
        heapq.heappush(self._queue, (t, self._seq, handler, payload))
        self._seq += 1

    # -- the run ------------------------------------------------------------
    def run(self) -> SeedRun:
        self._load()
        for c in range(self.clients):
            self._at(self.clock.now_us + self.decider.first_think(c), self._on_invoke, c)
        budget = EVENTS_PER_OP_MAX * (self.s.ops + sum(self._plans_hint()) + self.clients + 8)
        steps = 0
        clock = self.clock
        queue, pop, advance_to = self._queue, heapq.heappop, clock.advance_to
        while queue:
            steps += 1
            assert steps <= budget, "scheduler event budget exceeded"
            t, _, handler, payload = pop(queue)
            if type(t) is int and t >= clock.now_us:
                clock.now_us = t      # advance_to's checks passed: its move, without the call
            else:
                advance_to(t)         # refuses it, as it must
            handler(payload)
        if self.reopen_failure is None:    # no store to probe or close after a failed reopen
            self._probe("final")
            close = getattr(self.backend, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001
                    self.findings.append({"kind": "close", "message": f"close() raised {exc!r}"})
        return SeedRun(self.history, self.fired, self.findings, self._crashes,
                       self.availability.to_dict(), self.reopen_failure)

    def _load(self) -> None:
        """The load phase. Its index build is setup, not a checked op: if it
        fails, the run would test a store other than the one asked for."""
        kinds = self.maintenance_kinds
        for op in self.decider.load_ops(self.has_maintenance and (kinds is None or "index" in kinds)):
            out = self._sync_op("load", op["f"], op["value"])
            if op["f"] == "maintenance" and out.type != "ok":
                raise BackendError(f"setup failed: the load phase's maintenance({op['value'].get('kind')!r}) "
                                   f"did not succeed: {(out.output or {}).get('message', out.output)}")

    def _plans_hint(self) -> list[int]:
        sched = getattr(self.decider, "sched", None)
        return [len(c) for c in sched.clients] if sched is not None else [0]

    def _sync_op(self, process: Any, f: str, value: dict[str, Any]) -> Outcome:
        """An op at quiescence: invoke, dispatch and complete, no faults."""
        h = self.history
        h.add(self.clock.now_us, process, "invoke", f, value)
        d = self._dispatch_seq
        self._dispatch_seq += 1
        shadowed = self._shadowed() if self._server_down or self._nemesis_grace > 0 else False
        out = self.boundary.call(self.backend, f, value, None)
        died = self._child_died() if self._died_fn is not None or self.backend is not self._died_of else None
        if died is not None:
            # The store's process died under a quiescent op: reopened at once
            # (the probe goes on against the new process).
            self._revive(died)
        # The probes' exact search is its own path (search_exact): its ok must
        # not stand for the ANN search the scenario draws.
        kind = f
        if f == "search":
            if "reach" in value:
                kind = "search_reach"     # the harness's own probe: not the scenario's search
            elif value.get("exact") is True:
                kind = "search_exact"
        if out.own and not shadowed:
            self.availability.own(kind, out.output)
        self.availability.done(kind, out.type)
        clock = self.clock
        clock.advance_by(1)
        h.add(clock.now_us, process, out.type, f, out.output, d)
        clock.advance_by(1)
        return out

    # -- events -------------------------------------------------------------
    def _on_invoke(self, client: int) -> None:
        plan = self.decider.plan(client, self.has_maintenance, self.nemesis_names)
        if plan is None:
            return
        now = self.clock.now_us
        process = self._process[client]
        f, value, fault = plan.f, plan.value, plan.fault
        op = _Op(client, process, f, value, fault, plan)
        self._open[client] = op
        self.history.add(now, process, "invoke", f, value)
        if plan.crash_us is not None and not self._crash_pending:
            self._crash_pending = True
            self._at(now + plan.crash_us, self._on_crash, None)
        if fault is not None:
            if fault == "latency":
                self._nemesis("latency", {"process": process, "delay_us": plan.d1})
            elif fault == "timeout":
                self._at(now + self.s.timeout_us, self._on_giveup, op)
                if plan.never:
                    return  # never dispatched
        # _at, written out (every op's path)
        heapq.heappush(self._queue, (now + plan.d1, self._seq, self._on_dispatch, op))
        self._seq += 1

    def _on_dispatch(self, op: _Op) -> None:
        if op.state not in ("invoked", "abandoned"):
            return  # cancelled by a crash
        if op.fault == "error":
            self._nemesis("error", {"process": op.process})
            op.outcome = Outcome("fail", {"error": "InjectedError", "message": "injected before dispatch"})
            op.state = "dispatched"
            self._at(self.clock.now_us + op.plan.d2, self._on_complete, op)
            return
        plan = op.plan
        name = plan.nemesis
        kill = plan.kill if name == KILL and self.killable else None
        if kill == "before":
            self._kill_before(op)
            return
        op.dispatch = self._dispatch_seq
        self._dispatch_seq += 1
        # _shadowed, called only when there is a shadow to use up
        shadowed = self._shadowed() if self._server_down or self._nemesis_grace > 0 else False
        if name is None:
            out = self.boundary.call(self.backend, op.f, op.value, op.fault, plan.keep)
        elif kill is not None:
            self.backend.arm_kill(kill, op.plan.kill_at_ppm)
            out = self.boundary.call(self.backend, op.f, op.value, op.fault, keep=op.plan.keep)
            report = self.backend.take_kill()
            if report is not None:
                self._count_kill(op, report)
                self._after_kill(op, out)
                return
        elif name is not None and name in self.nemeses:
            from dst.sim.nemesis import call_during, is_crash
            out, report = call_during(
                lambda: self.boundary.call(self.backend, op.f, op.value, op.fault,
                                           keep=op.plan.keep),
                self.nemeses[name], op.plan.nemesis_us)
            if report.get("fired"):
                self._nemesis(name, {"process": op.process, "dispatch": op.dispatch, **report})
                shadowed = True            # this call's error is the nemesis's
                self._nemesis_grace = 1
                if is_crash(name):
                    self._server_down = True
                    self._crash_carrier = op.dispatch
                    self._at(self.clock.now_us, self._on_server_crash, name)
            else:
                self.history.add(self.clock.now_us, "nemesis", "info", name,
                                 {"process": op.process, "dispatch": op.dispatch, **report})
                if "error" in report:
                    # It started and broke off (raised, or did not return):
                    # what it did is unknown, so errors now are not the store's.
                    shadowed = True
                    self._nemesis_grace = 1
                    if is_crash(name):     # the server may be down: probe after recovery
                        self._server_down = True
                        self._crash_carrier = op.dispatch
                        self._at(self.clock.now_us, self._on_server_crash, name)
        else:
            out = self.boundary.call(self.backend, op.f, op.value, op.fault, keep=plan.keep)
        if out.fired is not None:   # counted as what it did, only if it did it
            self._nemesis(out.fired, {"process": op.process, "dispatch": op.dispatch, **(out.detail or {})})
        # _child_died, called only for a handle that may report a death
        died = self._child_died() if self._died_fn is not None or self.backend is not self._died_of else None
        if died is not None:
            self._count_own(op.f, out, shadowed)
            self._after_kill(op, out, label=died)
            return
        # Counted at the call, so the error of a call whose client gave up
        # already (a timeout dispatched late) is counted too.
        if out.own and not shadowed:
            self.availability.own(op.f, out.output)
        if op.state == "abandoned":
            # The client gave up already; record when the call really ran.
            op.completion["dispatch"] = op.dispatch
            op.state = "done"
            return
        op.outcome = out
        op.state = "dispatched"
        heapq.heappush(self._queue, (self.clock.now_us + plan.d2, self._seq, self._on_complete, op))
        self._seq += 1

    def _on_complete(self, op: _Op) -> None:
        """_complete and _finish, written out (every op's path)."""
        if op.state != "dispatched":
            return
        out = op.outcome
        now = self.clock.now_us
        type_ = out.type
        client = op.client
        op.completion = self.history.add(now, op.process, type_, op.f, out.output, op.dispatch)
        op.state = "done"
        self.availability.done(op.f, type_)
        if self._open.get(client) is op:
            del self._open[client]
        if type_ == "info":
            self._fresh_process(client)
        heapq.heappush(self._queue, (now + op.plan.think_us, self._seq, self._on_invoke, client))
        self._seq += 1

    def _complete(self, op: _Op, out: Any) -> None:
        """Record the op's completion with ``out`` and let its client go on."""
        op.completion = self.history.add(self.clock.now_us, op.process, out.type, op.f, out.output,
                                         op.dispatch)
        op.state = "done"
        self.availability.done(op.f, out.type)
        self._finish(op, out.type)

    def _on_giveup(self, op: _Op) -> None:
        if op.state not in ("invoked", "dispatched"):
            return
        self._nemesis("timeout", {"process": op.process})
        extra = {} if op.dispatch is None else {"dispatch": op.dispatch}
        op.completion = self.history.add(self.clock.now_us, op.process, "info", op.f,
                                         {"error": "Timeout", "message": "client gave up"}, **extra)
        self.availability.done(op.f, "info")
        # Given up before its dispatch, which is still to come (a timeout
        # that is never dispatched is done).
        op.state = "abandoned" if op.state == "invoked" and not op.plan.never else "done"
        self._finish(op, "info")

    def _finish(self, op: _Op, type_: str) -> None:
        if self._open.get(op.client) is op:
            del self._open[op.client]
        if type_ == "info":
            self._fresh_process(op.client)
        self._at(self.clock.now_us + op.plan.think_us, self._on_invoke, op.client)

    def _fresh_process(self, client: int) -> None:
        """After an info op the client goes on as a new process (Jepsen)."""
        self._process[client] = self._next_process
        self._next_process += 1

    def _shadowed(self) -> bool:
        """Whether the call about to be made falls in a nemesis's shadow
        (its error is the nemesis's, not the store's); uses up the grace."""
        shadowed = self._server_down or self._nemesis_grace > 0
        if self._nemesis_grace > 0:
            self._nemesis_grace -= 1
        return shadowed

    def _count_own(self, f: str, out: Outcome, shadowed: bool) -> None:
        if out.own and not shadowed:
            self.availability.own(f, out.output)

    def _nemesis(self, f: str, value: dict[str, Any]) -> None:
        self.fired[f] = self.fired.get(f, 0) + 1
        self.history.add(self.clock.now_us, "nemesis", "info", f, value)

    def _on_crash(self, _: Any) -> None:
        self._crash_pending = False
        self._crashes += 1
        self._nemesis("crash", {"crash": self._crashes})
        # Drop the handle without close(), as a crash would, and reopen. An
        # isolated backend's process is SIGKILLed: the crash is real.
        kill = getattr(self.backend, "kill_process", None)
        if callable(kill):
            kill()
        self._reopen(f"crash-{self._crashes}", {"crash": self._crashes},
                     f"crash {self._crashes}")

    def _reopen(self, when: str, mark: dict[str, Any], what: str) -> None:
        """After a crash or a kill: ops in flight resolved, the store reopened
        with fresh=False, probed, and the clients restarted."""
        self._resolve_in_flight()
        self.backend = None
        try:
            self.backend = self.factory(replace(self.config, fresh=False))
        except Exception as exc:  # noqa: BLE001 - the store's failure, a finding
            self._reopen_failed(exc, when, mark, what)
            return
        self._load_nemeses()
        self.clock.advance_by(self.s.recovery_us)
        self._probe(when)
        self._restart_clients()

    def _reopen_failed(self, exc: Exception, when: str, mark: dict[str, Any], what: str) -> None:
        """The store would not reopen after a crash: what it acknowledged is
        out of reach, a durability finding. The run ends here; the history
        up to the crash is checked as usual."""
        why = f"{type(exc).__name__}: {exc}"[:500]
        self.history.add(self.clock.now_us, "nemesis", "info", "reopen",
                         {**mark, "ok": False, "error": why})
        self.reopen_failure = {"kind": "durability:reopen", "when": when,
                               "message": f"the store could not be reopened after {what}: "
                                          f"factory(fresh=False) raised {why}"}
        self._queue.clear()

    # -- kills of an isolated backend's process (dst.isolate) ------------------
    def _kill_before(self, op: _Op) -> None:
        """SIGKILL the child before the request is written: the op failed."""
        self.backend.kill_process()
        self._kills += 1
        self.fired[KILL] = self.fired.get(KILL, 0) + 1
        self._nemesis("kill-before", {"kill": self._kills, "process": op.process})
        out = Outcome("fail", {"error": "KilledBefore",
                               "message": "the backend's process was killed before the request was written"})
        self._after_kill(op, out)

    def _count_kill(self, op: _Op, report: dict[str, Any]) -> None:
        """A kill that landed, counted under the moment it really hit."""
        at = report.get("at")
        kind = {"after-reply": "kill-after-reply", "late": "kill-late"}.get(
            at, "kill-mid-batch" if op.f == "store_batch" else "kill-during")
        self._kills += 1
        self.fired[KILL] = self.fired.get(KILL, 0) + 1
        value: dict[str, Any] = {"kill": self._kills, "process": op.process, "dispatch": op.dispatch}
        for k in ("event", "where", "reply_discarded"):
            if k in report:
                value[k] = report[k]
        value["sigkill"] = report.get("exit") == -9
        self._nemesis(kind, value)

    def _child_died(self) -> str | None:
        """An isolated backend's process died by itself (or hung and was
        killed): recorded, and the store reopened as after a crash."""
        b = self.backend
        if b is not self._died_of:       # looked up once per handle, not per call
            self._died_of, self._died_fn = b, getattr(b, "child_died", None)
        fn = self._died_fn
        info = fn() if callable(fn) else None
        if info is None:
            return None
        self._deaths += 1
        self.history.add(self.clock.now_us, "nemesis", "info", "child-died",
                         {"death": self._deaths, "exit": info.get("exit"), "why": str(info.get("why", "")),
                          "output": str(info.get("output", ""))[-500:]})
        return f"child-died-{self._deaths}"

    def _revive(self, label: str) -> None:
        """Reopen (fresh=False) after a death found at quiescence."""
        try:
            self.backend = self.factory(replace(self.config, fresh=False))
        except Exception as exc:  # noqa: BLE001 - the store's failure, a finding
            self.backend = _Dead()
            self._reopen_failed(exc, label, {"death": self._deaths}, f"its process died ({label})")
            return
        self._load_nemeses()

    def _after_kill(self, op: _Op, out: Outcome, label: str | None = None) -> None:
        """The killed op completes now with what the kill made of it; then
        the store is reopened (fresh=False) and probed, as after a crash."""
        if op.state == "abandoned":
            if op.dispatch is not None:
                op.completion["dispatch"] = op.dispatch
            op.state = "done"
        else:
            self._complete(op, out)
            self._restart_think[op.client] = op.plan.think_us
        if label is None:
            label = f"kill-{self._kills}"
            self._reopen(label, {"kill": self._kills}, f"kill {self._kills}")
        else:
            self._reopen(label, {"death": self._deaths}, f"its process died ({label})")

    def _on_server_crash(self, name: str) -> None:
        """A backend nemesis took the store down (and brought it back): ops
        in flight are resolved as for a crash; the backend keeps its handle
        and must reconnect by itself; then the store is probed."""
        self._resolve_in_flight()
        self.clock.advance_by(self.s.recovery_us)
        self._server_down = False      # the store must be back for its probe
        if getattr(self.backend, "crash_empties", False) is True:
            self._wipe(name)
        self._probe(f"after-{name}")
        self._restart_clients()

    def _wipe(self, name: str) -> None:
        """The backend declares that a server crash empties the namespace
        (``crash_empties``: an unlogged table). The history gets a ``wipe``
        op, after the crash and before the probe: the checker then expects
        the namespace empty after recovery, no more (a row that survived)
        and no less; every op still open at the crash ends before the wipe
        (its session died with the server), so none may come back after it;
        except the op the nemesis fired under (``carrier``): the crash may
        have come before that call reached the store, which then ran it
        after recovery."""
        self.clock.advance_by(1)
        d = self._dispatch_seq
        self._dispatch_seq += 1
        self.history.add(self.clock.now_us, "wipe", "invoke", "wipe",
                         {"after": name, "carrier": self._crash_carrier})
        self.history.add(self.clock.now_us, "wipe", "ok", "wipe", None, dispatch=d)
        self.clock.advance_by(1)

    def _resolve_in_flight(self) -> None:
        # Ops dispatched and not completed: outcome unknown. Ops not yet
        # dispatched: never will be, so they failed. Abandoned timeouts whose
        # dispatch was still queued: dropped (their info already stands).
        now = self.clock.now_us
        for client in sorted(self._open):
            op = self._open[client]
            if op.state == "dispatched" and op.dispatch is not None:
                type_, err = "info", {"error": "Crashed", "message": "backend crashed in flight"}
                extra = {"dispatch": op.dispatch}
            elif op.state in ("invoked", "dispatched"):
                type_, err, extra = "fail", {"error": "Crashed", "message": "crashed before dispatch"}, {}
            else:
                continue
            op.state = "cancelled"
            self._restart_think[client] = op.plan.think_us
            op.completion = self.history.add(now, op.process, type_, op.f, err, **extra)
            self.availability.done(op.f, type_)
            if type_ == "info":
                self._fresh_process(op.client)
        # An op whose dispatch is still queued (an abandoned timeout) never
        # runs: the queue is cleared before anything else happens.
        self._open.clear()

    def _restart_clients(self) -> None:
        # Every pending event belonged to the old handle or to a moment
        # before recovery; each client starts again after the probe.
        # A pending server_crash event may be dropped with the queue (a crash
        # came first): its shadow must not outlive it.
        self._server_down = False
        self._nemesis_grace = 0
        self._queue.clear()
        self._crash_pending = False
        for c in range(self.clients):
            self._at(self.clock.now_us + self._restart_think.get(c, 0), self._on_invoke, c)
        self._restart_think.clear()

    # -- quiescent probe ------------------------------------------------------
    def _probe(self, when: str) -> None:
        d = self.decider
        p = "probe"
        count = self._sync_op(p, "count", {})
        live_exists, live_get = set(), set()
        live_refs: dict[str, int] = {}
        # The cross-checks compare against exists(); one that did not answer
        # leaves the live set unknown, so they would accuse a correct store.
        exists_known = True
        for i, (e, g) in zip(d.ids, self._probe_reads(("exists", "get"), d.ids)):
            exists_known = exists_known and e.type == "ok"
            if e.output is True:
                live_exists.add(i)
            if g.type == "ok" and isinstance(g.output, int):
                live_get.add(i)
                live_refs[i] = g.output
            if e.type == "ok" and g.type == "ok" and (e.output is True) != isinstance(g.output, int):
                self.findings.append({"when": when, "kind": "exists-get",
                                      "message": f"exists({i!r}) is {e.output} but get returned "
                                                 f"{'a vector' if isinstance(g.output, int) else g.output}"})
        # Exhaustive: the probe checks what is stored, not what an ANN index
        # finds, so it asks for the exact path where the backend has one
        # (search_exact; recorded as "exact": true and checked as exact).
        # A cap seed's bulk rows are not visited one by one: the model holds
        # count and this search to them; here they are set apart.
        bulk = set(getattr(d, "bulk", ()))
        query = {"vector": d.probe_query, "limit": len(d.ids) + len(bulk) + 1}
        if self.has_search_exact:
            query["exact"] = True
        s = self._sync_op(p, "search", query)
        if count.type == s.type == "ok" and isinstance(count.output, int) and isinstance(s.output, list):
            found = [h[0] for h in s.output]
            n_bulk = len(bulk.intersection(found))
            if bulk:
                found = [i for i in found if i not in bulk]
            if exists_known and count.output != len(live_exists) + n_bulk:
                self.findings.append({"when": when, "kind": "count",
                                      "message": f"count() is {count.output} but exists() is true "
                                                 f"for {len(live_exists)} ids"
                                                 + (f" and the search found {n_bulk} bulk rows" if bulk else "")})
            dups = sorted({i for i in found if found.count(i) > 1})
            if dups:
                self.findings.append({"when": when, "kind": "search",
                                      "message": f"an exhaustive search returned id {dups[0]!r} "
                                                 f"more than once ({len(dups)} ids duplicated)"})
            elif exists_known and sorted(found) != sorted(live_exists):
                missing = sorted(live_exists - set(found))[:5]
                extra = sorted(set(found) - live_exists)[:5]
                self.findings.append({"when": when, "kind": "search",
                                      "message": f"an exhaustive search returned {len(found)} ids, "
                                                 f"{len(live_exists)} exist; missing {missing}, "
                                                 f"unexpected {extra}"})
        self._probe_reach(when, live_refs)
        if self.history.meta.get("filters") is True:
            self._probe_filters(when, live_exists if exists_known else None, bulk, query)

    def _probe_reads(self, fs: tuple[str, ...], ids: list[str]) -> list[list[Outcome]]:
        """The probe's reads of every id, each of ``fs`` in turn for one id
        (exists and get; get_attrs): for each read, the events and counts of
        ``_sync_op``, in one loop (a probe reads every id of the universe)."""
        h, boundary, tally, clock = self.history, self.boundary, self.availability, self.clock
        add = h.add
        step = type(clock) is VirtualClock     # threads mode stamps wall-clock times: no steps
        outs = []
        for i in ids:
            row = []
            for f in fs:
                value = {"id": i}
                add(clock.now_us, "probe", "invoke", f, value)
                d = self._dispatch_seq
                self._dispatch_seq = d + 1
                shadowed = self._shadowed() if self._server_down or self._nemesis_grace > 0 else False
                out = boundary.read(self.backend, f, value)
                if self._died_fn is not None or self.backend is not self._died_of:
                    died = self._child_died()
                    if died is not None:
                        self._revive(died)     # reopened at once, as in _sync_op
                if out.own and not shadowed:
                    tally.own(f, out.output)
                tally.done(f, out.type)
                if step:
                    clock.now_us += 1
                    add(clock.now_us, "probe", out.type, f, out.output, d)
                    clock.now_us += 1
                else:
                    add(clock.now_us, "probe", out.type, f, out.output, d)
                row.append(out)
            outs.append(row)
        return outs

    def _probe_reach(self, when: str, live_refs: dict[str, int]) -> None:
        """ANN reachability: search a sample of live ids by their own stored
        vectors (``live_refs``: id -> vector ref, from the probe's gets).
        Nothing on an exact backend: there the exhaustive search above, held
        to the exact rules, already shows every live id ranked where it must
        be, so reachability is implied."""
        if bool(getattr(self.backend, "exact", True)) or not live_refs or self.s.reachability_sample == 0:
            return
        ids = [i for i in self.decider.ids if i in live_refs]    # the universe's order: deterministic
        n = min(len(ids), self.s.reachability_sample)
        picked = set(self.reach_rng.sample(ids, n)) if n < len(ids) else set(ids)
        for i in ids:
            if i in picked:
                self._sync_op("probe", "search", {"vector": live_refs[i], "limit": self.s.reachability_k,
                                                  "reach": i, "when": when})

    def _probe_filters(self, when: str, live: set[str] | None, bulk: set[str],
                       query: dict[str, Any]) -> None:
        """With filters in use: get_attrs of every id, then exact searches
        under PROBE_FILTERS, each held to the rows get_attrs reported."""
        d = self.decider
        p = "probe"
        attrs: dict[str, dict] = {}
        attrs_known = True
        for i, (a,) in zip(d.ids, self._probe_reads(("get_attrs",), d.ids)):
            attrs_known = attrs_known and a.type == "ok"
            if a.type == "ok" and isinstance(a.output, dict):
                attrs[i] = a.output.get("attrs") or {}
            if live is not None and a.type == "ok" and (i in live) != isinstance(a.output, dict):
                self.findings.append({"when": when, "kind": "exists-get_attrs",
                                      "message": f"exists({i!r}) is {i in live} but get_attrs "
                                                 f"returned {a.output!r}"})
        for where in PROBE_FILTERS:
            s = self._sync_op(p, "search", {**query, "where": where})
            if not (attrs_known and live is not None and s.type == "ok" and isinstance(s.output, list)):
                continue
            found = sorted(h[0] for h in s.output if h[0] not in bulk)
            test = filters.matcher(where)     # the tree walked once, not once per row
            want = sorted(i for i in live if i in attrs and test(attrs[i]))
            if found != want:
                missing = sorted(set(want) - set(found))[:5]
                extra = sorted(set(found) - set(want))[:5]
                self.findings.append({"when": when, "kind": "search",
                                      "message": f"an exhaustive search with filter {filters.show(where)} "
                                                 f"returned {len(found)} ids, get_attrs says {len(want)} "
                                                 f"match; missing {missing}, unexpected {extra}"})


# The probes' filtered exact searches (canonical trees): a disjunction over
# tenant and a small range of n, and a negated range (true for rows without n).
PROBE_FILTERS = (
    filters.canonical({"or": [{"eq": ["tenant", "t0"]}, {"lt": ["n", 10]}]}),
    filters.canonical({"not": {"ge": ["n", 500]}}),
)


_NO_HANDLE = object()


class _Dead:
    """The store after a failed reopen in the middle of a probe: every call
    fails as not applied (the run ends at the reopen failure)."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kw: Any) -> Any:
            raise BackendError("the store could not be reopened")
        return fail


def _discard(backend: Any) -> None:
    """Close a handle the run will not use, and drop what it created."""
    for name in ("drop", "close"):
        fn = getattr(backend, name, None)
        if callable(fn):
            try:
                fn()
                return
            except Exception:  # noqa: BLE001 - best effort; the setup error is what counts
                pass
