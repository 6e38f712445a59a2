"""One run: seeds of one scenario against one backend, gated as a whole.

What ``dst run`` does between parsing its flags and printing, shared with
``dst matrix`` (one campaign per cell), so both judge a run alike: every
seed's verdict, fault classes enabled but never fired, and the run-level
gates of ``dst.sim.gates`` (availability, ANN recall, ANN reachability).

The outcome, in the priority DESIGN gives exit codes: ``violation`` (a
seed's violation or a gate's finding), then ``unknown`` (a check ran out of
budget), then ``not proven`` (a fault class or op kind never exercised, a
quality floor never measured, or no seed ran at all), else ``ok``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dst import wallclock
from dst.history import History
from dst.sim.gates import RunGates, evaluate
from dst.sim.runner import SeedResult, run_seeds
from dst.sim.scenario import FAULT_CLASSES, Scenario

OUTCOMES = ("violation", "unknown", "not proven", "ok")


@dataclass
class Campaign:
    scenario: Scenario
    backend: str
    options: dict[str, Any]
    seeds: list[int]                                   # requested
    results: list[SeedResult] = field(default_factory=list)
    fired: dict[str, int] = field(default_factory=dict)
    enabled: set[str] = field(default_factory=set)
    first_fail: tuple[SeedResult, History] | None = None
    lost_first: SeedResult | None = None              # the first seed whose worker died
    last_history: History | None = None
    stopped_early: bool = False
    elapsed_s: float = 0.0
    gates: RunGates | None = None

    @property
    def unfired(self) -> list[str]:
        return [k for k in sorted(self.enabled, key=fault_order) if self.fired.get(k, 0) == 0]

    @property
    def violations(self) -> list[SeedResult]:
        return [r for r in self.results if r.verdict == "violation"]

    @property
    def unknowns(self) -> list[SeedResult]:
        return [r for r in self.results if r.verdict == "unknown"]

    @property
    def outcome(self) -> str:
        g = self.gates
        if self.violations or (g is not None and g.violated):
            return "violation"
        if self.unknowns:
            return "unknown"
        if self.unfired or (g is not None and g.not_proven) or not self.results:
            return "not proven"      # a run that ran no seed proves nothing
        return "ok"

    @property
    def shown(self) -> History | None:
        """The history the report draws: the first failure's, else the last seed's."""
        return self.first_fail[1] if self.first_fail else self.last_history

    def finding_kind(self) -> str | None:
        """The kind of the first finding: the first failing seed's first
        violation, else the first gate that failed (availability, recall,
        reachability)."""
        if self.first_fail is not None and self.first_fail[0].verdict == "violation":
            vs = self.first_fail[0].violations
            return str(vs[0].get("kind", "violation")) if vs else "violation"
        g = self.gates
        if g is None:
            return None
        if g.availability_violations:
            return "availability"
        if g.recall_failed:
            return "recall"
        if g.reachability_violation is not None:
            return "reachability"
        return None

    def versions(self) -> dict[str, str]:
        """What the store reported it runs (the backend's optional
        ``versions()``), over the run's seeds; a key that changed between
        seeds (a server upgraded mid-run) lists every value seen."""
        seen: dict[str, list[str]] = {}
        for r in self.results:
            for k, v in r.versions.items():
                if v not in seen.setdefault(k, []):
                    seen[k].append(v)
        return {k: " / ".join(v) for k, v in sorted(seen.items())}

    def summary(self, run_name: str, exit_code: int, replay: str | None,
                executor: str = "local") -> dict[str, Any]:
        """result.json's content (the keys ``dst run`` has always written)."""
        g = self.gates
        s = self.scenario
        last = self.last_history
        outcome = self.outcome
        return {
            "run": run_name, "scenario": s.name, "backend": self.backend,
            "metric": s.metric, "filters": {
                "use": s.filters, "in_use": None if last is None else bool(last.meta.get("filters"))},
            "options": self.options, "versions": self.versions(), "executor": executor,
            "seeds": [r.seed for r in self.results],
            "seeds_requested": len(self.seeds), "stopped_early": self.stopped_early,
            "verdict": outcome if outcome in ("violation", "unknown") else "ok",
            "outcome": outcome,
            "exit_code": exit_code, "fault_counts": self.fired, "faults_enabled": sorted(self.enabled),
            "faults_never_fired": self.unfired, "ops": sum(r.ops for r in self.results),
            "recall": g.recall,
            # ANN reachability over the run (dst.sim.reach); on exact backends
            # "applies": false with the reason.
            "reachability": g.reachability, "reachability_violation": g.reachability_violation,
            # Per op kind over the run: ok / fail / info / own (the backend's own
            # errors) and their first messages; the gates' findings beside it.
            "availability": g.availability, "backend_error_ppm": s.backend_error_ppm,
            "availability_violations": g.availability_violations,
            "ops_drawn": g.drawn, "ops_never_ok": g.never_ok,
            "recall_unmeasured": g.recall_unmeasured,
            "reachability_unmeasured": g.reachability_unmeasured,
            # A scenario class the backend cannot take as such, and what it fired as instead.
            "faults_realised_as": {k: v for r in self.results for k, v in sorted(r.realised.items())},
            "timings": {"wall_s": round(self.elapsed_s, 3),
                        "run_s": round(sum(r.run_s for r in self.results), 3),
                        "check_s": round(sum(r.check_s for r in self.results), 3)},
            "replay": replay,
            "results": [r.summary() for r in self.results],
        }


def run_campaign(scenario: Scenario, seeds: list[int], backend: str, *, hist_dir: Path,
                 fail_fast: bool = False, on_seed: Callable[[SeedResult], None] | None = None,
                 options: dict[str, Any] | None = None, **kw: Any) -> Campaign:
    """Run ``seeds`` (``kw``: dst.sim.runner.run_seeds' keywords: jobs,
    executor, deadline, location, token, factory, budget_steps, concurrency) and gate
    the run. The history of every seed that did not pass is written to
    ``hist_dir/seed-N.jsonl``. ``on_seed`` is called after each seed (for a
    progress bar)."""
    options = dict(options or {})
    c = Campaign(scenario, backend, options, list(seeds), fired={k: 0 for k in FAULT_CLASSES})
    started = wallclock.monotonic_s()
    for result, history in run_seeds(scenario, c.seeds, backend, options=options, **kw):
        c.results.append(result)
        if history is not None:
            c.last_history = history
        for k, v in result.fired.items():
            c.fired[k] = c.fired.get(k, 0) + v
        c.enabled.update(result.enabled)
        if result.verdict != "ok":
            hist_dir.mkdir(parents=True, exist_ok=True)
            if history is None:      # its worker died: what it said last is all there is
                (hist_dir / f"seed-{result.seed}.lost.txt").write_text(result.reason + "\n")
                if c.lost_first is None:
                    c.lost_first = result
            else:
                history.write(hist_dir / f"seed-{result.seed}.jsonl")
                if c.first_fail is None or (c.first_fail[0].verdict != "violation"
                                            and result.verdict == "violation"):
                    c.first_fail = (result, history)
        if on_seed is not None:
            on_seed(result)
        if fail_fast and result.verdict != "ok":
            c.stopped_early = True
            break
    c.elapsed_s = wallclock.monotonic_s() - started
    if len(c.results) < len(c.seeds):
        c.stopped_early = True   # the first failing seed, or the time budget, stopped new seeds
    c.gates = evaluate(c.results, scenario.backend_error_ppm, scenario.recall_floor,
                       scenario.reachability_floor)
    return c


def fault_order(name: str) -> tuple:
    return (0, FAULT_CLASSES.index(name), "") if name in FAULT_CLASSES else (1, 0, name)


def shrink_seed(scenario: Scenario, seed: int, backend: str, *, options: dict[str, Any],
                out_dir: Path, name: str, time_budget_s: float, budget_steps: int,
                location: str | None = None) -> dict[str, Any]:
    """Shrink one failing seed into ``out_dir/<name>.json`` as ``dst shrink
    --seed`` does (same passes, same predicate: a violation of the same
    kind). Returns what happened: ``{"case": path, "kind", "ops_before",
    "ops", "verdict"}``, or ``{"case": None, "why": ...}`` when the seed
    gives no violation a seed can carry (a run-level gate's finding, such
    as recall or reachability, is judged over many seeds)."""
    from dst.sim.runner import run_seed
    from dst.sim.shrink import Shrinker, case_dict, kinds_of, prune_vectors, violation_kind, write_case
    result, _ = run_seed(scenario, seed, backend, location=location, options=options,
                         budget_steps=budget_steps, record=True)
    kind = violation_kind(result)
    if kind is None or result.schedule is None:
        return {"case": None, "why": f"seed {seed} gives {result.verdict} on a rerun, not a violation of "
                                      f"its own: nothing to shrink"}

    def still_fails(cand: Any) -> bool:
        r, _ = run_seed(scenario, seed, backend, location=location, options=options,
                        budget_steps=budget_steps, schedule=cand)
        return kind in kinds_of(r)

    n0 = result.schedule.n_ops()
    shrinker = Shrinker(still_fails, budget_s=time_budget_s)
    small = shrinker.shrink(result.schedule)
    pruned = prune_vectors(small)      # renumbered: keep it only if it still fails
    if still_fails(pruned):
        small = pruned
    final, _ = run_seed(scenario, seed, backend, location=location, options=options,
                        budget_steps=budget_steps, schedule=small)
    path = out_dir / f"{name}.json"
    write_case(path, case_dict(name=name, scenario=scenario, seed=seed, backend=backend, options=options,
                               schedule=small, expected_verdict=final.verdict,
                               expected_kind=violation_kind(final),
                               note=f"shrunk by dst matrix from seed {seed} ({kind})"))
    return {"case": str(path), "kind": kind, "ops_before": n0, "ops": small.n_ops(),
            "verdict": final.verdict}
