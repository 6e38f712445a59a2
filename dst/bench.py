"""``dst bench``: harness figures (backend figures come with the adapters).

Measured here, single process, wall clock (this module and ``wallclock``
are the only places that read it):

* checked ops/s: client and probe ops run *and* checked, end to end, on the
  sim backend for a scenario;
* seeds/s for the same run;
* checker-only ops/s: re-checking the recorded histories, parsing excluded.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from dst import wallclock
from dst.runner import check_history, run_seed
from dst.scenario import load


def harness_figures(scenario: str = "default", seeds: int = 200, first_seed: int = 0) -> dict[str, Any]:
    sc = load(scenario)
    histories = []
    ops = 0
    run_s = check_s = 0.0
    t0 = wallclock.monotonic_s()
    for seed in range(first_seed, first_seed + seeds):
        r, h = run_seed(sc, seed, "sim")
        if r.verdict != "ok":
            raise RuntimeError(f"sim seed {seed} did not pass: {r.verdict}")
        ops += r.ops
        run_s += r.run_s
        check_s += r.check_s
        histories.append(h)
    wall = wallclock.monotonic_s() - t0
    t1 = wallclock.monotonic_s()
    for h in histories:
        check_history(h)
    recheck = wallclock.monotonic_s() - t1
    return {
        "scenario": scenario, "seeds": seeds, "ops": ops,
        "wall_s": round(wall, 3),
        "checked_ops_per_s": round(ops / wall),
        "seeds_per_s": round(seeds / wall, 1),
        "simulate_s": round(run_s, 3), "check_s": round(check_s, 3),
        "checker_only_ops_per_s": round(ops / recheck),
    }


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}


def run_bench(report_dir: str, scenarios: list[str], seeds: int, console) -> tuple[dict, Path]:
    from rich.table import Table
    out: dict[str, Any] = {"machine": machine(), "harness": []}
    for name in scenarios:
        console.print(f"bench: {name}, {seeds} seeds on sim ...", markup=False)
        out["harness"].append(harness_figures(name, seeds))
    t = Table(title="dst bench: harness on the sim backend (one process)")
    for col in ("scenario", "seeds", "ops", "checked ops/s", "seeds/s", "checker-only ops/s"):
        t.add_column(col, justify="right")
    for f in out["harness"]:
        t.add_row(f["scenario"], str(f["seeds"]), str(f["ops"]), f"{f['checked_ops_per_s']:,}",
                  f"{f['seeds_per_s']}", f"{f['checker_only_ops_per_s']:,}")
    console.print(t)
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    path = Path(report_dir) / f"bench-{wallclock.stamp()}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out, path
