"""What process isolation costs, and what kills find (issue 15).

``python -m dst.bench.isolate ops --backend sim``: ops/s of a fixed op mix
(store, get, search, count) on one handle, in-process and isolated.
``python -m dst.bench.isolate cycle --backend lance``: the time of a kill +
reopen cycle (SIGKILL the child, open the namespace in a new child with
fresh=False, first answer), as the harness does it (a spare child started
ahead).
``python -m dst.bench.isolate durability --backend sim --kills 1000``: the
``kill`` scenario's seeds until that many kills fired (or the time budget
ran out), and what the checker found: acknowledged writes lost, batches
half-applied, reopen failures, the store's own errors after recovery.

Each prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from typing import Any

import numpy as np

from dst import wallclock
from dst.backend import BackendConfig, resolve_backend
from dst.isolate import KILL_KINDS, KILL_LATE, isolated_factory


def _vectors(n: int, dim: int) -> np.ndarray:
    # A fixed, seeded pool (numpy's generator with an explicit seed).
    return np.random.Generator(np.random.PCG64(7)).standard_normal((n, dim)).astype(np.float32)


def ops_per_s(backend: str, isolate: str, n_ops: int, dim: int, location: str | None) -> dict[str, Any]:
    factory = isolated_factory(backend) if isolate == "process" else resolve_backend(backend)
    b = factory(BackendConfig(dim=dim, location=location, namespace=f"bench_iso_{isolate}"))
    vecs = _vectors(64, dim)
    try:
        for i in range(32):        # warm up: a table with rows, the first calls paid
            b.store(f"w{i}", vecs[i])
        t0 = wallclock.monotonic_s()
        for i in range(n_ops):
            k = i % 4
            if k == 0:
                b.store(f"k{i % 50}", vecs[i % 64])
            elif k == 1:
                b.get(f"k{i % 50}")
            elif k == 2:
                b.search(vecs[(i * 7) % 64], 10)
            else:
                b.count()
        dt = wallclock.monotonic_s() - t0
    finally:
        drop = getattr(b, "drop", None)
        if callable(drop):
            drop()
        kill = getattr(b, "kill_process", None)
        if callable(kill):
            kill()
    return {"backend": backend, "isolate": isolate, "ops": n_ops, "seconds": round(dt, 3),
            "ops_per_s": round(n_ops / dt, 1), "us_per_op": round(1e6 * dt / n_ops, 1)}


def cycle(backend: str, cycles: int, dim: int, location: str | None, settle_s: float = 0.0) -> dict[str, Any]:
    """``settle_s``: a pause between cycles (not timed) so the spare child is
    up, as when kills are spread over a run; 0 measures back-to-back kills."""
    factory = isolated_factory(backend)
    config = BackendConfig(dim=dim, location=location, namespace="bench_iso_cycle")
    b = factory(config)
    vecs = _vectors(64, dim)
    b.store_batch([(f"k{i}", vecs[i]) for i in range(64)])
    times = []
    for _ in range(cycles):
        wallclock.sleep_s(settle_s)
        t0 = wallclock.monotonic_s()
        b.kill_process()
        b = factory(BackendConfig(dim=dim, location=location, namespace="bench_iso_cycle", fresh=False))
        n = b.count()
        times.append(wallclock.monotonic_s() - t0)
        assert n == 64, f"the reopened store counts {n} rows, not 64"
    drop = getattr(b, "drop", None)
    if callable(drop):
        drop()
    b.kill_process()
    return {"backend": backend, "cycles": cycles, "settle_s": settle_s, "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3), "max_s": round(max(times), 3)}


def durability(backend: str, kills: int, time_budget_s: float, location: str | None,
               first_seed: int = 0, ops: int | None = None, keep: str | None = None,
               progress: Any = None) -> dict[str, Any]:
    """``keep``: a folder where the history of every seed that did not pass
    is written (seed-N.jsonl), for dst replay and dst shrink. ``progress``:
    a text stream that gets one JSON line per seed as it ends (the CLI
    passes stderr)."""
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    sc = load("kill").with_overrides(ops=ops)
    deadline = wallclock.Deadline(time_budget_s)
    fired = {k: 0 for k in ("kill",) + KILL_KINDS + (KILL_LATE, "crash")}
    found = {"acknowledged_write_lost_or_wrong_read": 0, "batch_half_applied_or_lost": 0,
             "reopen_failures": 0, "invariant": 0, "contract": 0, "other": 0}
    own_errors = 0
    bad_seeds: list[dict[str, Any]] = []
    seeds = 0
    t0 = wallclock.monotonic_s()
    seed = first_seed
    while fired["kill"] < kills and not deadline.expired():
        r, h = run_seed(sc, seed, backend, location=location, token="dur")
        if r.verdict != "ok" and keep:
            from pathlib import Path
            Path(keep).mkdir(parents=True, exist_ok=True)
            h.write(Path(keep) / f"seed-{seed}.jsonl")
        seeds += 1
        for k in fired:
            fired[k] += r.fired.get(k, 0)
        own_errors += sum(int(v.get("own", 0)) for v in r.availability.values())
        for v in r.violations:
            kind = v.get("kind", "")
            if kind == "linearizability":
                f = (v.get("op") or {}).get("f")
                found["batch_half_applied_or_lost" if f == "store_batch" else
                      "acknowledged_write_lost_or_wrong_read"] += 1
            elif kind == "durability:reopen":
                found["reopen_failures"] += 1
            elif kind in found:
                found[kind] += 1
            else:
                found["other"] += 1
        if r.verdict != "ok":
            bad_seeds.append({"seed": seed, "verdict": r.verdict,
                              "first": (r.violations[0].get("message", "") if r.violations else r.reason)[:300]})
        if progress is not None:    # one line per seed, flushed: a sweep that dies keeps what it measured
            progress.write(json.dumps({"seed": seed, "verdict": r.verdict,
                                       "fired": {k: r.fired.get(k, 0) for k in fired},
                                       "violations": len(r.violations), "kills_so_far": fired["kill"]}) + "\n")
            progress.flush()
        seed += 1
    return {"backend": backend, "scenario": sc.name, "seeds": seeds, "first_seed": first_seed,
            "wall_s": round(wallclock.monotonic_s() - t0, 1), "kills": fired,
            "violations": found, "own_errors_after_recovery": own_errors, "seeds_not_ok": bad_seeds[:20],
            "kills_asked": kills, "complete": fired["kill"] >= kills}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dst.bench.isolate", description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("ops", "cycle", "durability"))
    p.add_argument("--backend", default="sim")
    p.add_argument("--location", default=None, help="folder for the store (default: a new temporary one)")
    p.add_argument("--ops", type=int, default=2000, help="ops: calls per measurement")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--cycles", type=int, default=10)
    p.add_argument("--settle-s", type=float, default=0.0, help="cycle: untimed pause between kills")
    p.add_argument("--kills", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seed-ops", type=int, default=None, help="durability: ops per seed (default: the scenario's)")
    p.add_argument("--keep", default=None, help="durability: write failing seeds' histories here")
    p.add_argument("--time-budget", type=float, default=3600.0, help="durability: stop after this many seconds")
    a = p.parse_args(argv)
    location = a.location or (tempfile.mkdtemp(prefix="dst-bench-iso-") if a.backend != "sim" else None)
    if a.what == "ops":
        out: Any = [ops_per_s(a.backend, iso, a.ops, a.dim, location) for iso in ("none", "process")]
    elif a.what == "cycle":
        out = cycle(a.backend, a.cycles, a.dim, location, a.settle_s)
    else:
        out = durability(a.backend, a.kills, a.time_budget, location, a.seed, a.seed_ops, a.keep,
                         progress=sys.stderr)
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
