"""One seed, start to verdict: schedule, record, check.

``run_seed`` is deterministic for the sim backend: the same (scenario,
seed, backend) gives the same history bytes. Wall-clock time is read only
for the timings it reports, never for anything in the history.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field, replace
from functools import partial, wraps
from typing import Any, Callable

from dst import wallclock
from dst.backend import BackendConfig, check_filters, check_metric, resolve_backend
from dst.check import worst
from dst.errors import UsageError
from dst.check.linearizability import DEFAULT_BUDGET_STEPS, CheckResult, check
from dst.check.models.vector import VectorModel
from dst.history import History, pair
from dst.rng import Rng
from dst.sim import availability
from dst.sim.faults import contract_violations, fires_as
from dst.sim.reach import seed_reachability
from dst.sim.scenario import FAULT_CLASSES, Scenario, parse
from dst.sim.schedule import RandomDecider, Schedule, ScriptedDecider
from dst.sim.scheduler import Scheduler


@dataclass
class SeedResult:
    seed: int
    verdict: str                          # ok | violation | unknown
    ops: int                              # client + probe ops in the history
    fired: dict[str, int]
    enabled: list[str]                    # fault classes with a non-zero rate this seed
    crashes: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    steps: int = 0
    witness: bool = False
    run_s: float = 0.0
    check_s: float = 0.0
    recall: tuple[float, int] | None = None   # ANN only: (sum of recall@k, searches)
    recall_floor: float | None = None
    schedule: Any = None                     # the explicit Schedule, when recorded
    offered: list[str] = field(default_factory=list)   # the backend's nemeses
    realised: dict[str, str] = field(default_factory=dict)  # scenario class -> name it fires as here
    exact: bool = True                       # the backend's search is exact (no recall gate)
    # Per op kind: ok / fail / info / own (the backend's own errors) and the
    # first messages (dst.sim.availability); and the kinds this seed's op mix draws.
    availability: dict[str, dict[str, Any]] = field(default_factory=dict)
    drawn_ops: list[str] = field(default_factory=list)
    # What the store reports it runs (the optional ``versions()``), or {}.
    versions: dict[str, str] = field(default_factory=dict)
    # ANN only: the probes' reachability searches scored (dst.sim.reach).
    reach: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        return {"seed": self.seed, "verdict": self.verdict, "ops": self.ops,
                "fired": self.fired, "enabled": self.enabled, "crashes": self.crashes,
                "violations": self.violations, "reason": self.reason,
                "realised": self.realised, "check_steps": self.steps, "witness": self.witness,
                "availability": self.availability, "drawn_ops": self.drawn_ops,
                **({"versions": self.versions} if self.versions else {}),
                "reachability": self.reach,
                "recall": None if self.recall is None else
                {"mean": self.recall[0] / self.recall[1] if self.recall[1] else None,
                 "searches": self.recall[1]}}


def namespace_for(scenario: str, seed: int, token: str) -> str:
    """The table name of one seed of one run: the run's token and the seed
    come first, so cutting to 63 characters (PostgreSQL's limit) never
    makes two seeds or two runs share a table."""
    raw = f"dst_{token}_{seed}_{scenario}".lower()
    return re.sub(r"[^a-z0-9_]", "_", raw)[:63]


# CPython's cyclic GC collects its youngest generation every 700 new
# container objects. A seed makes a few hundred thousand short-lived ones
# (plans, events, hits), nearly none of them in a cycle, so most of those
# passes scan objects that survive anyway: 7 to 9% of a sim seed's CPU time.
# While a seed runs, the youngest generation waits for this many instead
# (the older generations' thresholds and everything else unchanged; the
# caller's threshold comes back when the seed ends).
SEED_GC_THRESHOLD = 20_000


def _young_gc_relaxed(fn: Callable) -> Callable:
    @wraps(fn)
    def run(*args: Any, **kw: Any) -> Any:
        old = gc.get_threshold()
        gc.set_threshold(SEED_GC_THRESHOLD, *old[1:])
        try:
            return fn(*args, **kw)
        finally:
            gc.set_threshold(*old)
    return run


@_young_gc_relaxed
def run_seed(scenario: Scenario, seed: int, backend: str, *, location: str | None = None,
             options: dict[str, Any] | None = None, token: str = "run",
             factory: Callable | None = None, budget_steps: int = DEFAULT_BUDGET_STEPS,
             drop_passing: bool = True, concurrency: str = "sim",
             schedule: "Schedule | None" = None, record: bool = False) -> tuple[SeedResult, History]:
    """Run one seed (or, with ``schedule``, one explicit case) and check it.

    ``record=True`` keeps the drawn plans: ``result.schedule`` is then the
    explicit Schedule that replays this run.
    """
    options = dict(options or {})
    if scenario.isolate == "process":
        # The backend in a child process the crash fault and the kill nemesis
        # SIGKILL (dst.isolate); the child resolves the factory itself.
        from dst.isolate import KILL, factory_spec, isolated_factory
        spec = factory_spec(backend, factory)
        if factory is None:
            resolve_backend(backend)     # a bad name is a usage error here, not in the child
        factory = isolated_factory(spec, count_events=scenario.nemesis_ppm.get(KILL, 0) > 0)
    factory = factory or resolve_backend(backend)
    rng = Rng(seed)
    params = scenario.for_seed(rng.fork("swarm"))
    if schedule is not None:
        params = replace(params, dim=schedule.dim)
    config = BackendConfig(dim=params.dim, location=location,
                           namespace=namespace_for(scenario.name, seed, token),
                           fresh=True, options=options, metric=scenario.metric)
    history = History()
    t0 = wallclock.monotonic_s()
    if schedule is not None:
        history.table = schedule.table()
        decider: Any = ScriptedDecider(schedule)
    else:
        decider = RandomDecider(params, rng, history.table, record=record)
    if concurrency == "threads":
        from dst.sim.threads import THREAD_FAULTS, ThreadRunner
        sched = ThreadRunner(params, decider, factory, config, history, rng)
        enabled_classes = THREAD_FAULTS
    else:
        sched = Scheduler(params, decider, factory, config, history, rng.fork("partial"),
                          reach_rng=rng.fork("reach"))
        enabled_classes = FAULT_CLASSES
    b = sched.backend
    exact = bool(getattr(b, "exact", True))
    atomic = bool(getattr(b, "atomic_batches", False))
    try:
        use_filters = _filters_in_use(scenario, b, schedule)
        versions = backend_versions(b)
    except UsageError:
        close = getattr(b, "close", None)
        if callable(close):
            close()
        raise
    if schedule is None:
        decider.workload.use_filters = use_filters
    history.meta = {
        "scenario": scenario.name, "seed": seed, "backend": backend, "options": options,
        "concurrency": concurrency,
        "dim": params.dim, "exact": exact, "atomic_batches": atomic, "batch_faults": sched.batch_mode,
        "score_eps": scenario.score_eps, "params": params.to_dict(),
        "metric": scenario.metric, "filters": use_filters,
        "scenario_config": scenario.to_dict(),
        # Only when isolated, so other histories stay byte for byte as they were.
        **({"isolate": scenario.isolate} if scenario.isolate != "none" else {}),
    }
    if versions:
        history.meta["versions"] = versions
    run = sched.run()
    t1 = wallclock.monotonic_s()
    result = check_history(history, budget_steps=budget_steps, findings=run.probe_findings,
                           reopen_failure=run.reopen_failure)
    t2 = wallclock.monotonic_s()
    result.seed = seed
    result.fired = run.fired
    result.availability = run.availability
    result.drawn_ops = _drawn_ops(params, schedule, sched.has_maintenance)
    result.versions = versions
    own = availability.violations(run.availability, scenario.backend_error_ppm, whole_run=False)
    if own:
        result.violations.extend(own)
        result.verdict = "violation"
    # Enabled under the names the classes fire as on this backend: an atomic
    # store the harness cannot cut must show batch-errors, not partial writes.
    drawn = [k for k in enabled_classes if params.fault_ppm.get(k, 0) > 0]
    result.enabled = [fires_as(k, sched.batch_mode) for k in drawn]
    result.realised = {k: fires_as(k, sched.batch_mode) for k in drawn if fires_as(k, sched.batch_mode) != k}
    if concurrency != "threads":
        result.enabled += [k for k, v in sorted(scenario.nemesis_ppm.items()) if v > 0]
        if scenario.nemesis_ppm.get("kill", 0) > 0 and getattr(sched, "killable", False):
            # Each moment of the kill nemesis must hit on purpose (a batch
            # killed mid-way only where the mix draws batches).
            result.enabled += ["kill-before", "kill-during", "kill-after-reply"]
            if params.op_weights.get("store_batch", 0) > 0:
                result.enabled.append("kill-mid-batch")
    result.offered = sorted(getattr(sched, "nemeses", {}))
    result.crashes = run.crashes
    result.run_s, result.check_s = t1 - t0, t2 - t1
    result.recall_floor = scenario.recall_floor
    if record and schedule is None and concurrency != "threads":
        result.schedule = decider.schedule(history.table)
    if drop_passing and result.verdict == "ok":
        drop = getattr(sched.backend, "drop", None)
        if callable(drop):
            drop()
    return result, history


def backend_versions(backend: Any) -> dict[str, str]:
    """The optional capability ``versions() -> dict[str, str]``: what the
    store reports it runs (e.g. ``{"postgresql": "18.6", "pgvector":
    "0.8.6"}``), read from the store, not assumed. {} when absent; a
    backend whose versions() fails or returns something else is a bug in
    its adapter, said in one line."""
    fn = getattr(backend, "versions", None)
    if not callable(fn):
        return {}
    got = fn()
    if not isinstance(got, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in got.items()):
        raise UsageError(f"backend {getattr(backend, 'name', '?')}: versions() must return a dict of "
                         f"strings, got {got!r}")
    return {k: got[k] for k in sorted(got)}


def _filters_in_use(scenario: Scenario, backend: Any, schedule: "Schedule | None") -> bool:
    """Whether this seed's ops carry attributes and filters: the scenario's
    ``[filters] use`` and what the backend declares (a recorded case: what
    its ops hold). A backend serving another metric than the run's, or
    without the filters the scenario needs, is a setup error."""
    check_metric(backend, scenario.metric)
    if schedule is not None:
        needed = schedule.uses_filters()
        check_filters(backend, needed)
        return needed
    check_filters(backend, scenario.filters == "on")
    return scenario.filters != "off" and getattr(backend, "filters", False) is True


def _drawn_ops(params: Any, schedule: "Schedule | None", has_maintenance: bool) -> list[str]:
    """The op kinds this seed's workload can draw: a non-zero weight (and a
    backend that has maintenance, for maintenance); for an explicit case,
    the kinds its plans hold. Probes and the load phase draw nothing."""
    if schedule is not None:
        return sorted({p.f for plans in schedule.clients for p in plans})
    return sorted(k for k, w in params.op_weights.items()
                  if w > 0 and (k != "maintenance" or has_maintenance))


def check_history(history: History, budget_steps: int = DEFAULT_BUDGET_STEPS,
                  findings: list[dict[str, Any]] | None = None,
                  reopen_failure: dict[str, Any] | None = None) -> SeedResult:
    """Check a recorded vector-store history with the oracle.

    ``reopen_failure``: the store could not be reopened after a crash (the
    scheduler's finding); the history ends there and is checked as it is.
    """
    m = history.meta
    model = VectorModel(history.table.vectors, int(m["dim"]), float(m.get("score_eps", 1e-4)),
                        exact=bool(m.get("exact", True)), metric=str(m.get("metric", "cosine")))
    pairs = pair(history.events)
    ops = model.operations(pairs, bool(m.get("atomic_batches", False)))
    # Threads mode records no dispatch order, so there is no witness to try.
    witness = m.get("concurrency", "sim") != "threads"
    res = check(model, ops, budget_steps=budget_steps, explain=model.explain, use_witness=witness)
    # A backend answer of the wrong type is a finding of its own (kind
    # contract): the op was recorded as info, so the search could not have
    # caught it. What ended the run (a failed reopen) comes first.
    violations: list[dict[str, Any]] = []
    if reopen_failure is not None:
        violations.append(dict(reopen_failure))
    violations += contract_violations(history)
    if res.verdict == "violation":
        violations.append(describe_failure(model, res, history))
    for f in findings or []:
        violations.append({"kind": "invariant", "check": f.get("kind"), "when": f.get("when"),
                           "message": f.get("message", "")})
    verdict = worst(res.verdict, "violation" if violations else "ok")
    recall = None
    if not model.exact:
        # Never skipped: along the linearization the check found (witness or
        # full search), else from the quiescent probes. (0.0, 0) means no
        # search could be measured, which the run's gate does not pass.
        recall = (0.0, 0)
        if res.verdict == "ok" and res.order is not None:
            recall = ann_recall(model, res.order)
            if recall[1] == 0:
                recall = ann_recall(model, res.order, probes=True)
        if recall[1] == 0:
            recall = probe_recall(model, ops)
    reach = None if model.exact else seed_reachability(model, pairs)
    return SeedResult(seed=int(m.get("seed", 0)), verdict=verdict, ops=len(pairs),
                      fired={}, enabled=[], violations=violations, reason=res.reason,
                      steps=res.steps, witness=res.witness, recall=recall, exact=model.exact,
                      reach=reach)


QUIET = ("probe", "load")   # the harness's own quiescent ops, not the scenario's


def _search_recall(model: VectorModel, items: dict[str, int], op: Any) -> float | None:
    """Recall@k of one answered search against the exact answer over ``items``.

    A hit counts as correct when its true score reaches the k-th best true
    score less ``score_eps`` (tied candidates are interchangeable).
    """
    if not (op.f == "search" and op.input[-1] is None and isinstance(op.output, tuple) and op.output):
        return None
    sc = model.true_scores(op.input[1])
    best = sorted((sc[r] for r in items.values()), reverse=True)
    k = len(op.output)
    if len(best) < k:
        return None       # more hits than live ids: the checker has judged it already
    bar = best[k - 1] - model.tol(best[k - 1])
    return sum(1 for hid, _ in op.output if hid in items and sc[items[hid]] >= bar) / k


def ann_recall(model: VectorModel, order: list, probes: bool = False) -> tuple[float, int]:
    """Recall@k of the answered searches along a linearization (``order``,
    from the checker), each in the state it took effect in.

    The scenario's own searches are measured; with ``probes=True`` the
    quiescent probes' searches instead (for a run whose scenario answered
    none).
    """
    state = model.init()
    total, n = 0.0, 0
    for op in order:
        if (op.process in QUIET) == probes:
            items = state.items
            if op.f == "search" and op.input[-1] is None and op.input[3] is not None:
                items = model.matching(items, state.attrs, op.input[3])
            r = _search_recall(model, items, op)
            if r is not None:
                total, n = total + r, n + 1
        _, state = model.step(state, op.input, op.output)
    return total, n


def probe_recall(model: VectorModel, ops: list) -> tuple[float, int]:
    """Recall@k of the probes' searches when no linearization is known: at
    quiescence the probe's own gets say what is live, so the exact answer
    is known without one."""
    total, n = 0.0, 0
    items: dict[str, int] = {}
    for op in sorted(ops, key=lambda o: (o.call, o.id)):
        if op.process != "probe":
            items = {}
            continue
        if op.f == "get" and op.input[-1] is None:
            if isinstance(op.output, int) and not isinstance(op.output, bool):
                items[op.input[1]] = op.output
        elif op.f == "search" and op.input[3] is None:   # the probes' gets do not say what a filter matches
            r = _search_recall(model, items, op)
            if r is not None:
                total, n = total + r, n + 1
            items = {}
    return total, n


def describe_failure(model: VectorModel, res: CheckResult, history: History) -> dict[str, Any]:
    """A violation as data: the op, what was expected, what came back, why.

    The account leads with where the recorded dispatch order broke (the
    order things really happened in), then gives the full search's
    longest linearizable prefix and the ops that could not be placed after it.
    """
    fl = res.failure
    lead = fl.witness_op or fl.op
    state = fl.witness_state if fl.witness_op is not None else fl.state
    message = fl.witness_explanation if fl.witness_op is not None else fl.explanation
    return {
        "kind": "linearizability",
        "op": _op_record(history, lead),
        "message": message,
        "state": model.describe(state),
        "search": {"op": _op_record(history, fl.op), "message": fl.explanation,
                   "state": model.describe(fl.state)},
        "prefix": [o.index for o in fl.prefix],
        "unplaced": [o.index for o in fl.unplaced],
        "steps": res.steps,
    }


def _op_record(history: History, op) -> dict[str, Any]:
    inv = history.events[op.index] if op.index is not None else {}
    done = None
    if op.index is not None:
        done = next((e for e in history.events[op.index + 1:]
                     if e["process"] == inv.get("process") and e["type"] != "invoke"), None)
    return {"index": op.index, "process": op.process, "f": inv.get("f", op.f),
            "input": inv.get("value"), "output": None if done is None else done.get("value"),
            "type": "info" if done is None else done["type"],
            "completed_at": None if done is None else done["index"]}


def replay_config(history: History) -> tuple[Scenario, int, str, dict[str, Any]]:
    """The scenario, seed, backend and options a recorded history ran with."""
    m = history.meta
    cfg = dict(m["scenario_config"])
    raw = scenario_raw(cfg)
    return parse(raw, default_name=cfg["name"], source="<recorded scenario>"), int(m["seed"]), \
        str(m["backend"]), dict(m.get("options") or {})


def scenario_raw(cfg: dict[str, Any]) -> dict[str, Any]:
    """Invert Scenario.to_dict into the TOML shape ``parse`` reads."""
    ppm = 1_000_000
    return {
        "name": cfg["name"], "description": cfg["description"], "clients": cfg["clients"],
        "ops_per_seed": cfg["ops"], "dims": cfg["dims"], "vector_kinds": cfg["vector_kinds"],
        "vector_pool": cfg["vector_pool"], "score_eps": cfg["score_eps"],
        "recall_floor": cfg["recall_floor"],
        # Recordings made before the reachability keys existed ran without the
        # probe's reach searches: they replay without them (sample 0, no floor).
        "reachability_k": cfg.get("reachability_k", 10),
        "reachability_floor": cfg.get("reachability_floor", 0.0),
        "reachability_sample": cfg.get("reachability_sample", 0),
        "invalid_rate": cfg["invalid_ppm"] / ppm,
        # Recordings made before the key existed ran with its default.
        "backend_error_ppm": cfg.get("backend_error_ppm", 0),
        "swarm": cfg["swarm"], "maintenance_kinds": cfg["maintenance_kinds"],
        # Recordings made before these keys existed ran with cosine and no filters.
        "metric": cfg.get("metric", "cosine"),
        "isolate": cfg.get("isolate", "none"),
        "filters": {"use": cfg.get("filters", "off"),
                    "search_share": cfg.get("filter_share_ppm", 0) / ppm,
                    "attrs_share": cfg.get("attrs_share_ppm", 0) / ppm,
                    "get_attrs_share": cfg.get("get_attrs_share_ppm", 0) / ppm},
        "ids": {"hot": cfg["hot_ids"], "cold": cfg["cold_ids"],
                "hot_share": cfg["hot_share_ppm"] / ppm, "hostile_share": cfg["hostile_share_ppm"] / ppm},
        "batch": {"min": cfg["batch_min"], "max": cfg["batch_max"]},
        "limit": {"min": cfg["limit_min"], "max": cfg["limit_max"], "caps": cfg.get("limit_caps", []),
                  "cap_share": cfg.get("cap_share_ppm", 0) / ppm},
        "load": {"items": cfg["load_items"], "batch": cfg["load_batch"]},
        "ops": cfg["op_weights"],
        "faults": {k: v / ppm for k, v in cfg["fault_ppm"].items()},
        "nemeses": {k: v / ppm for k, v in cfg.get("nemesis_ppm", {}).items()},
        "timing": {k: cfg[k] for k in ("dispatch_us_max", "complete_us_max", "think_us_max",
                                       "latency_us_max", "timeout_us", "crash_delay_us_max",
                                       "recovery_us")},
    }


def run_seeds(scenario: Scenario, seeds: list[int], backend: str, *, jobs: int = 1,
              deadline: Any = None, executor: Any = None, **kw: Any):
    """Yield ``(SeedResult, History | None)`` for each seed that ran, in seed order.

    Where seeds run is ``executor`` (``dst.sim.executor``), else ``jobs``
    local processes; results are the same as in one process (each seed is
    independent and deterministic). The history comes back for seeds that
    did not pass and for the last seed; otherwise it is None when seeds ran
    in workers. Stops submitting new seeds once ``deadline.expired()``. A
    seed whose worker died comes back ``unknown``, its reason naming the
    error and the worker's last output, with no history.
    """
    from dst.sim.executor import LocalExecutor, Lost

    if executor is None:
        executor = LocalExecutor(jobs)
    if executor.slots <= 1 and isinstance(executor, LocalExecutor):
        fn: Any = partial(_seed_here, scenario, backend, kw)
    else:
        kw.pop("factory", None)  # workers resolve the backend themselves
        fn = partial(_seed_worker, scenario, backend, seeds[-1] if seeds else None, kw)
    for seed, value in executor.map(fn, seeds, deadline=deadline):
        if isinstance(value, Lost):
            yield lost_result(seed, value.describe()), None
        elif isinstance(value[1], History) or value[1] is None:
            yield value
        else:
            yield value[0], History.from_bytes(value[1])


def lost_result(seed: int, reason: str) -> SeedResult:
    """A seed that produced no verdict because its worker died: unknown, never a pass."""
    return SeedResult(seed=seed, verdict="unknown", ops=0, fired={}, enabled=[], reason=reason)


def _seed_here(scenario: Scenario, backend: str, kw: dict[str, Any], seed: int) -> tuple[SeedResult, History]:
    return run_seed(scenario, seed, backend, **kw)


def _seed_worker(scenario: Scenario, backend: str, last: int | None, kw: dict[str, Any],
                 seed: int) -> tuple[SeedResult, bytes | None]:
    result, history = run_seed(scenario, seed, backend, **kw)
    keep = seed == last or result.verdict != "ok"
    return result, (history.to_bytes() if keep else None)


def run_case(case: dict[str, Any], *, backend: str | None = None, location: str | None = None,
             options: dict[str, Any] | None = None, token: str = "case",
             budget_steps: int = DEFAULT_BUDGET_STEPS) -> tuple[SeedResult, History]:
    """Run a recorded case (a seeds/*.json file's content) and check it."""
    scenario = parse(scenario_raw(case["scenario_config"]), default_name=case["scenario"],
                     source="<recorded scenario>")
    opts = dict(case.get("options") or {})
    opts.update(options or {})
    return run_seed(scenario, int(case["seed"]), backend or case["backend"], location=location,
                    options=opts, token=token, budget_steps=budget_steps,
                    schedule=Schedule.from_dict(case["schedule"]))
