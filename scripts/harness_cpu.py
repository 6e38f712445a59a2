"""Harness throughput on sim in process CPU time (the machine is shared, so
wall time is noisy): checked ops per CPU second for one scenario, best of 3.

    PYTHONPATH=$PWD python scripts/harness_cpu.py --seeds 100 --scenario default

The same work as ``dst bench``'s harness figure (run_seed: simulate and
check each seed), timed with time.process_time instead of the wall clock.
"""
from __future__ import annotations

import argparse
import time

from dst.sim.runner import run_seed
from dst.sim.scenario import load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    sc = load(a.scenario)
    best = None
    ops = 0
    for _ in range(a.repeat):
        t = time.process_time()
        ops = 0
        for s in range(a.seeds):
            r, _h = run_seed(sc, s, "sim")
            ops += r.ops
        cpu = time.process_time() - t
        best = cpu if best is None or cpu < best else best
    print(f"{a.scenario}: {a.seeds} seeds, {ops} ops, best CPU {best:.3f} s of {a.repeat}, "
          f"{ops / best:,.0f} checked ops per CPU second")


if __name__ == "__main__":
    main()
