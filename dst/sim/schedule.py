"""Explicit schedules: every decision of a run, as data.

The scheduler asks a *decider* for each operation's plan: what to invoke,
which fault, the delays, whether a crash follows. ``RandomDecider`` draws
plans from the seed's RNG children; ``Schedule`` records them, and a
``Schedule`` replays them exactly (``ScriptedDecider``). That is what
``dst shrink`` reduces and what ``seeds/*.json`` store: a case that no
longer depends on the RNG, so dropping an op does not reshuffle the rest.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from dst.history import VectorTable
from dst.isolate import KILL
from dst.rng import PPM, PPM_BITS, Rng, fixed_chance
from dst.sim.faults import FaultPlan, split_mask
from dst.sim.scenario import SeedParams
from dst.sim.workload import Workload

KILL_MOMENTS = ("before", "during", "after-reply")
KILL_MOMENTS_BATCH = ("before", "during", "during", "after-reply")

CASE_FORMAT = "vector-dst/case"
CASE_VERSION = 1


@dataclass(slots=True)     # one per op: no __dict__ to fill and collect
class OpPlan:
    f: str
    value: dict[str, Any]
    think_us: int = 0              # after this op completes, before the client's next
    fault: str | None = None
    d1: int = 0                    # invoke -> dispatch (latency and timeouts included)
    d2: int = 1                    # dispatch -> complete
    never: bool = False            # a timeout whose dispatch never happens
    crash_us: int | None = None    # a crash this long after the invoke
    # Partial write: which items a non-atomic store applies; how many rows are
    # in flight when a mid-batch kill lands (the count of True); whether a
    # whole-batch error comes after the batch or before it (the first item).
    keep: list[bool] | None = None
    nemesis: str | None = None     # a backend nemesis fired while this op runs
    nemesis_us: int = 0            # ... this long (wall clock) into the call
    # The kill nemesis (dst.isolate): when the backend's process is killed
    # (before | during | after-reply), and for "during" at which of the
    # Python calls inside the store call, as a fraction in ppm.
    kill: str | None = None
    kill_at_ppm: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Fields that differ from their defaults (``f`` and ``value`` always).

        Compared by identity of kind as well as value: ``crash_us=0`` (a
        crash at once) is not the default ``None``, though ``0 == False``.
        """
        d = asdict(self)
        return {k: v for k, v in d.items()
                if k in ("f", "value") or type(v) is not type(_PLAN_DEFAULTS[k]) or v != _PLAN_DEFAULTS[k]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OpPlan":
        return cls(**d)


_PLAN_DEFAULTS = {f.name: f.default for f in fields(OpPlan) if f.name not in ("f", "value")}
_new = object.__new__


@dataclass
class Schedule:
    """A whole case: universe, vectors, load phase and each client's plans."""

    dim: int
    ids: list[str]
    probe_query: int
    vectors: list[np.ndarray]
    load: list[dict[str, Any]] = field(default_factory=list)     # (f, value) of load ops
    clients: list[list[OpPlan]] = field(default_factory=list)
    start_us: list[int] = field(default_factory=list)            # each client's first invoke
    # Partial writes error before or after the whole batch, never cut it:
    # the one form every backend takes alike (``dst conform`` sets it to
    # compare backends that would cut a batch differently; see dst.sim.faults).
    whole_batches: bool = False

    def n_ops(self) -> int:
        return sum(len(c) for c in self.clients)

    def uses_filters(self) -> bool:
        """Whether any op of the case carries attributes or a filter."""
        values = [op.get("value") or {} for op in self.load]
        values += [p.value for plans in self.clients for p in plans]
        for v in values:
            if not isinstance(v, dict):
                continue
            if "attrs" in v or "where" in v:
                return True
            if any(isinstance(it, (list, tuple)) and len(it) == 3 for it in v.get("items") or ()):
                return True
        return any(p.f == "get_attrs" for plans in self.clients for p in plans)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dim": self.dim, "ids": list(self.ids), "probe_query": self.probe_query,
            "vectors": [{"dim": int(v.shape[0]),
                         "data": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")}
                        for v in self.vectors],
            "load": self.load,
            "clients": [[p.to_dict() for p in plans] for plans in self.clients],
            "start_us": list(self.start_us),
            # Written only when set, so every case recorded before it existed
            # reads (and writes back) unchanged.
            **({"whole_batches": True} if self.whole_batches else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Schedule":
        vecs = [np.frombuffer(base64.b64decode(v["data"]), dtype="<f4").astype(np.float32)
                for v in d["vectors"]]
        return cls(dim=int(d["dim"]), ids=list(d["ids"]), probe_query=int(d["probe_query"]),
                   vectors=vecs, load=list(d.get("load", [])),
                   clients=[[OpPlan.from_dict(p) for p in plans] for plans in d["clients"]],
                   start_us=[int(x) for x in d.get("start_us", [])],
                   whole_batches=d.get("whole_batches", False) is True)

    def table(self) -> VectorTable:
        """A vector table holding this schedule's vectors at their numbers."""
        t = VectorTable()
        for v in self.vectors:
            t.ref(v)
        if len(t) != len(self.vectors):
            raise ValueError("a case's vector table repeats a vector")
        return t


class RandomDecider:
    """Draws plans from the seed: the normal way a run is made."""

    def __init__(self, params: SeedParams, rng: Rng, table: VectorTable, record: bool = False):
        self.p = params
        self.s = params.scenario
        self.workload = Workload(params, rng.fork("workload"), table)
        self.faults = FaultPlan(params.fault_ppm, rng.fork("faults"))
        self.timing = rng.fork("timing")
        self.partial = rng.fork("partial")
        self.nemesis_rng = rng.fork("nemeses")
        self.client_rngs = [rng.fork(f"client-{c}") for c in range(self.s.clients)]
        self.clients = self.s.clients
        self.ids = self.workload.ids
        self.bulk: list[str] = []     # loaded ids the probes do not visit one by one
        self.probe_query = self.workload.pool[0]
        self._left = self.s.ops
        # Every op's draws written out on the children's getrandbits (the
        # numbers of the methods they stand for; tests/sim/test_plan_equivalence.py):
        # the fault (FaultPlan.op_fault: one below(span), placed among the
        # classes' bands by fault_at; no draw without a class on), the crash
        # (its chance) and the timing (between(0, hi), below(hi + 1): _below_of).
        faults = self.faults
        self._fbits = faults.rng.bits_source()
        self._fspan = _below_of(faults.span - 1) if faults.total else (0, 0)
        self._crash_ppm = faults.ppm["crash"]
        self._crash_fixed = fixed_chance(self._crash_ppm)
        self._tbits = self.timing.bits_source()
        self._dispatch = _below_of(self.s.dispatch_us_max)
        self._complete = _below_of(self.s.complete_us_max)
        self._think = _below_of(self.s.think_us_max)
        self.recorded: list[list[OpPlan]] | None = [[] for _ in range(self.clients)] if record else None
        self.recorded_load: list[dict[str, Any]] = []
        self.recorded_start: list[int] = [0] * self.clients

    def _delay(self, hi: int) -> int:
        return self.timing.between(0, hi) if hi > 0 else 0

    def load_ops(self, has_maintenance: bool) -> list[dict[str, Any]]:
        n = self.s.load_items
        ops: list[dict[str, Any]] = []
        if n > 0:
            w, rng = self.workload, self.client_rngs[0].fork("load")
            ids = list(w.ids)
            for i in range(len(ids), n):   # the universe first, then numbered extras
                ids.append(f"load{i}")
            ids = ids[:n]
            if len(ids) > len(self.ids):
                self.ids = ids            # probe every id the load wrote
            attr_rng = self.client_rngs[0].fork("load-attrs")
            for start in range(0, n, self.s.load_batch):
                items = [[i, w.pick_vector(rng)] for i in ids[start:start + self.s.load_batch]]
                items = w.with_attrs(items, attr_rng)
                ops.append({"f": "store_batch", "value": {"items": items}})
            if has_maintenance:
                ops.append({"f": "maintenance", "value": {"kind": "index"}})
        # A cap seed's bulk rows (after any index build: they are there to
        # be counted and searched, not to train an index).
        bulk = self.workload.bulk_items()
        self.bulk = [it[0] for it in bulk]
        for start in range(0, len(bulk), self.s.load_batch):
            ops.append({"f": "store_batch", "value": {"items": bulk[start:start + self.s.load_batch]}})
        self.recorded_load = ops
        return ops

    def first_think(self, client: int) -> int:
        t = self._delay(self.s.think_us_max)
        self.recorded_start[client] = t
        return t

    def plan(self, client: int, has_maintenance: bool,
             nemeses: tuple[str, ...] = ()) -> OpPlan | None:
        if self._left <= 0:
            return None
        self._left -= 1
        s = self.s
        f, value = self.workload.next_op(self.client_rngs[client], has_maintenance)
        bits = self._fbits
        fault = None                        # self.faults.op_fault(f)
        n, k = self._fspan
        if n:
            x = bits(k)
            while x >= n:
                x = bits(k)
            if x < self.faults.total:       # else past every band: no fault (most ops)
                fault = self.faults.fault_at(x, f)
        crash = self._crash_fixed           # self.faults.crash()
        if crash is None:
            x = bits(PPM_BITS)
            while x >= PPM:
                x = bits(PPM_BITS)
            crash = x < self._crash_ppm
        crash_us = self._delay(s.crash_delay_us_max) if crash else None
        # The timing draws, in their order: d1, the fault's, d2, think (each
        # between(0, hi) written out on the timing child's bits: _below_of).
        bits = self._tbits
        n, k = self._dispatch
        d1 = 0
        if n:
            d1 = bits(k)
            while d1 >= n:
                d1 = bits(k)
        never = False
        keep = None
        if fault is not None:
            timing = self.timing
            if fault == "latency":
                d1 += timing.between(1, s.latency_us_max)
            elif fault == "timeout":
                if timing.below(3) == 0:
                    never = True
                else:
                    d1 = timing.between(s.timeout_us // 2, 3 * s.timeout_us)
        n, k = self._complete
        d2 = 0
        if n:
            d2 = bits(k)
            while d2 >= n:
                d2 = bits(k)
        d2 += 1
        if fault is not None:
            if fault == "latency":
                d2 += self.timing.between(0, s.latency_us_max)
            elif fault == "partial-write":
                keep = split_mask(self.partial, len(value.get("items", [])))
        # After this op, before the client's next.
        n, k = self._think
        think_us = 0
        if n:
            think_us = bits(k)
            while think_us >= n:
                think_us = bits(k)
        # OpPlan(f, value, think_us, fault, d1, d2, never, crash_us, keep)
        # without its __init__ call: every field is set here.
        p = _new(OpPlan)
        p.f = f
        p.value = value
        p.think_us = think_us
        p.fault = fault
        p.d1 = d1
        p.d2 = d2
        p.never = never
        p.crash_us = crash_us
        p.keep = keep
        p.nemesis = None
        p.nemesis_us = 0
        p.kill = None
        p.kill_at_ppm = 0
        for name in nemeses:   # only names the backend offers and the scenario rates
            if self.nemesis_rng.chance(s.nemesis_ppm.get(name, 0)) and p.nemesis is None:
                p.nemesis = name
                p.nemesis_us = self.nemesis_rng.between(0, 2_000)
                if name == KILL:
                    # A batch is killed inside the call half the time (the
                    # atomicity claim); every op may be killed before its
                    # request, inside the store call, or after the reply.
                    moments = KILL_MOMENTS_BATCH if p.f == "store_batch" else KILL_MOMENTS
                    p.kill = self.nemesis_rng.choice(moments)
                    p.kill_at_ppm = self.nemesis_rng.below(PPM)
        if self.recorded is not None:
            self.recorded[client].append(p)
        return p

    def schedule(self, table: VectorTable) -> Schedule:
        """What was drawn, as an explicit schedule (needs record=True)."""
        assert self.recorded is not None
        return Schedule(dim=self.p.dim, ids=list(self.ids), probe_query=self.probe_query,
                        vectors=list(table.vectors),
                        load=self.recorded_load, clients=self.recorded,
                        start_us=list(self.recorded_start))


def _below_of(hi: int) -> tuple[int, int]:
    """(n, bits) of ``between(0, hi)``, which is below(n) for n = hi + 1
    (n.bit_length() bits until under n); (0, 0) for hi <= 0, no draw."""
    return (hi + 1, (hi + 1).bit_length()) if hi > 0 else (0, 0)


class ScriptedDecider:
    """Replays a Schedule exactly."""

    def __init__(self, schedule: Schedule):
        self.sched = schedule
        self.clients = len(schedule.clients)
        self.ids = schedule.ids
        self.probe_query = schedule.probe_query
        self.whole_batches = schedule.whole_batches
        self._next = [0] * self.clients
        # Loaded ids outside the universe are a cap seed's bulk rows.
        universe = set(schedule.ids)
        self.bulk = list(dict.fromkeys(
            it[0] for op in schedule.load if op["f"] == "store_batch"
            for it in op["value"].get("items", []) if it[0] not in universe))

    def load_ops(self, has_maintenance: bool) -> list[dict[str, Any]]:
        return [op for op in self.sched.load if op["f"] != "maintenance" or has_maintenance]

    def first_think(self, client: int) -> int:
        st = self.sched.start_us
        return st[client] if client < len(st) else 0

    def plan(self, client: int, has_maintenance: bool,
             nemeses: tuple[str, ...] = ()) -> OpPlan | None:
        plans = self.sched.clients[client]
        i = self._next[client]
        if i >= len(plans):
            return None
        self._next[client] = i + 1
        return plans[i]
