"""Where seeds run, measured: seeds per second of one scenario on sim with
one local process, a local pool of ``jobs`` processes, and a local Ray with
the machine's CPUs; Ray's task start latency; and, from the measured cost
of a seed, a projection (arithmetic, not a measurement) of a long sweep on
N one-CPU workers.

    python -m dst.bench.executor [--seeds 300] [--scenario default] [--jobs 2]

prints one JSON document. Ray's start-up is timed apart from the sweep
(a cluster is started once and serves many runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from typing import Any

from dst import wallclock

PROJECTED_SEEDS = 1_000_000
PROJECTED_WORKERS = (2, 16, 64, 256, 1024)
LATENCY_TASKS = 30      # empty tasks, one after another, for the round trip


def _sweep(scenario: Any, seeds: list[int], **kw: Any) -> float:
    from dst.sim.runner import run_seeds
    t0 = wallclock.monotonic_s()
    n = sum(1 for _ in run_seeds(scenario, seeds, "sim", token="bench", **kw))
    assert n == len(seeds)
    return wallclock.monotonic_s() - t0


def _started_at(_: int) -> float:
    return wallclock.epoch_s()


def _latency(ray: Any) -> dict[str, float]:
    """Submit-to-start and round trip of an empty task on a warm cluster, in ms."""
    remote = ray.remote(_started_at).options(max_retries=0, num_cpus=1)
    ray.get(remote.remote(0))             # a worker is up
    starts, trips = [], []
    for i in range(LATENCY_TASKS):
        t_epoch, t0 = wallclock.epoch_s(), wallclock.monotonic_s()
        began = ray.get(remote.remote(i))
        trips.append((wallclock.monotonic_s() - t0) * 1e3)
        starts.append((began - t_epoch) * 1e3)
    return {"start_ms_median": round(statistics.median(starts), 2),
            "round_trip_ms_median": round(statistics.median(trips), 2),
            "round_trip_ms_max": round(max(trips), 2)}


def _driver_cost(scenario: Any) -> tuple[float, int]:
    """What the driver spends on one passing seed's answer (unpickling it,
    its result.json entry) and the size of that entry, over a few seeds."""
    import pickle
    from dst.sim.runner import run_seed
    answers = [pickle.dumps((run_seed(scenario, s, "sim", token="bench")[0], None)) for s in range(5)]
    t0 = wallclock.monotonic_s()
    sizes = [len(json.dumps(pickle.loads(a)[0].summary())) for a in answers]
    return (wallclock.monotonic_s() - t0) / len(answers), int(statistics.mean(sizes))


def measure(scenario_name: str, n_seeds: int, jobs: int) -> dict[str, Any]:
    from dst.sim.executor import RayExecutor
    from dst.sim.scenario import load

    scenario = load(scenario_name)
    seeds = list(range(n_seeds))
    one = _sweep(scenario, seeds, jobs=1)
    pool = _sweep(scenario, seeds, jobs=jobs)
    t0 = wallclock.monotonic_s()
    with RayExecutor(token="bench", echo=False) as ex:
        ray_start_s = wallclock.monotonic_s() - t0
        t0 = wallclock.monotonic_s()
        _sweep(scenario, [n_seeds + 1], executor=ex)   # a first seed: a worker process up, dst imported
        first_seed_s = wallclock.monotonic_s() - t0
        ray_s = _sweep(scenario, seeds, executor=ex)
        tasks, slots = ex.tasks, ex.slots
        import ray      # connected by the executor
        latency = _latency(ray)
    driver_s, entry_bytes = _driver_cost(scenario)
    per_seed_s = one / n_seeds                         # CPU-seconds of one seed, one process
    ray_rate, pool_rate = n_seeds / ray_s, n_seeds / pool
    efficiency = ray_rate / (slots / per_seed_s)       # of the ideal: every CPU busy on seeds
    # The driver merges every answer: past 1 / driver_s seeds per second, more workers do not help.
    projection = {str(w): round(PROJECTED_SEEDS / min(w * efficiency / per_seed_s, 1 / driver_s) / 3600, 2)
                  for w in PROJECTED_WORKERS}
    return {
        "scenario": scenario_name, "seeds": n_seeds, "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "seeds_per_s": {"jobs_1": round(n_seeds / one, 2), f"jobs_{jobs}": round(pool_rate, 2),
                        f"ray_{slots}_cpus": round(ray_rate, 2)},
        "ray_over_pool": round(ray_rate / pool_rate, 3),
        "ray_tasks": tasks, "ray_start_s": round(ray_start_s, 2), "ray_first_seed_s": round(first_seed_s, 2),
        "ray_task_latency": latency, "driver_ms_per_seed": round(driver_s * 1e3, 3),
        "result_json_bytes_per_seed": entry_bytes,
        "per_seed_cpu_s": round(per_seed_s, 4), "ray_efficiency": round(efficiency, 3),
        "projection": {
            "what": (f"PROJECTION, not a measurement: hours for {PROJECTED_SEEDS:,} seeds of "
                     f"{scenario_name} on sim on N one-CPU Ray workers = seeds / min(N x "
                     f"ray_efficiency / per_seed_cpu_s, 1000 / driver_ms_per_seed); assumes this "
                     f"machine's per-seed cost and no start-up"),
            "hours_by_workers": projection},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dst.bench.executor")
    p.add_argument("--seeds", type=int, default=300)
    p.add_argument("--scenario", default="default")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args(argv)
    print(json.dumps(measure(a.scenario, a.seeds, a.jobs), indent=2))


if __name__ == "__main__":
    main()
