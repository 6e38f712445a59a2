"""pytest integration: run vector-dst from a user's own test.

Installed as a pytest plugin (entry point ``pytest11``), it offers the
fixture ``dst_run``; the same function can be imported directly::

    def test_my_store_is_linearizable(dst_run):
        dst_run(backend="mypkg.store:open", scenario="default", seeds=200)

A violation, an unknown verdict or a fault class that never fired fails the
test with the seed, the violation and the one command that replays it. So
do the run-level gates ``dst run`` applies (``dst.sim.gates``): the backend's
own errors over ``backend_error_ppm``, an op kind the scenario draws that
never completed ok, and on an ANN backend a mean recall below the
scenario's floor or never measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dst.backend import resolve_backend
from dst.errors import UsageError
from dst.sim.gates import evaluate
from dst.sim.runner import run_seeds
from dst.wallclock import run_token

_CALLS = 0  # dst_run calls in this process: each gets its own tables
from dst.sim.scenario import FAULT_CLASSES, load


def dst_run(backend: str = "sim", scenario: str = "default", seeds: int = 100, *, first_seed: int = 0,
            location: str | None = None, options: dict[str, Any] | None = None,
            ops: int | None = None, clients: int | None = None, concurrency: str = "sim",
            report_dir: str | Path = "reports", require_faults: bool = True) -> dict[str, Any]:
    """Run ``seeds`` seeds; fail the calling test on any violation or unknown.

    Returns a summary (verdicts, fault counts, ops) when everything passed.
    """
    try:
        sc = load(scenario).with_overrides(clients, ops)
        factory = resolve_backend(backend)
    except UsageError as exc:
        pytest.fail(f"vector-dst: {exc}", pytrace=False)
    fired = {k: 0 for k in FAULT_CLASSES}
    enabled: set[str] = set()
    total_ops = 0
    global _CALLS
    _CALLS += 1
    token = run_token(Path(report_dir) / f"pytest-{_CALLS}")
    results = []
    for result, history in run_seeds(sc, list(range(first_seed, first_seed + seeds)), backend,
                                     location=location, options=options or {}, factory=factory,
                                     concurrency=concurrency, token=token):
        total_ops += result.ops
        results.append(result)
        enabled.update(result.enabled)
        for k, v in result.fired.items():
            fired[k] = fired.get(k, 0) + v
        if result.verdict != "ok":
            out = Path(report_dir)
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"dst-{sc.name}-seed-{result.seed}.jsonl"
            history.write(path)
            why = (result.violations[0].get("message", "") if result.violations else result.reason)
            replay = (f"dst replay {path}" if concurrency != "threads"
                      else f"(threads mode is not replayable; history at {path})")
            pytest.fail(f"vector-dst: seed {result.seed} of {sc.name} on {backend}: {result.verdict}: "
                        f"{why}\nreplay: {replay}", pytrace=False)
    gates = evaluate(results, sc.backend_error_ppm, sc.recall_floor, sc.reachability_floor)
    if gates.violated or gates.not_proven:
        pytest.fail(f"vector-dst: {seeds} seeds of {sc.name} on {backend}: "
                    + "; ".join(gates.sentences()), pytrace=False)
    unfired = sorted(k for k in enabled if fired.get(k, 0) == 0)
    if require_faults and unfired:
        pytest.fail(f"vector-dst: fault class(es) {', '.join(unfired)} enabled but never fired in "
                    f"{seeds} seeds of {sc.name}: the run proves nothing about them", pytrace=False)
    return {"seeds": seeds, "ops": total_ops, "fault_counts": fired, "recall": gates.recall,
            "reachability": gates.reachability,
            "availability": gates.availability}


@pytest.fixture(name="dst_run")
def _dst_run_fixture():
    """The ``dst_run`` function, as a fixture."""
    return dst_run
