"""The check of sim histories alone (``check_history``: encode, search,
verdict) in instructions per seed, which the machine's load does not move:
callgrind counts a run of seeds 0 to ``--seeds`` with each history checked
once more after it, and the same run without the extra checks; the
difference over ``--seeds`` is what one check costs (seed 0's extra check is
in both, so first-call warm-up is left out).

    PYTHONPATH=$PWD python scripts/check_instructions.py --seeds 30

Needs ``valgrind``. Measures the code on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import os

# scripts/ is on sys.path when this runs as a script
from harness_instructions import callgrind_count


def body(scenario: str, seeds: int, again: bool) -> None:
    from dst.sim.runner import check_history, run_seed
    from dst.sim.scenario import load
    sc = load(scenario)
    histories = [run_seed(sc, s, "sim")[1] for s in range(seeds + 1)]
    for n, h in enumerate(histories):
        if n == 0 or again:
            check_history(h)


def collected(scenario: str, seeds: int, again: bool) -> int:
    return callgrind_count([os.path.abspath(__file__), "--scenario", scenario, "--seeds", str(seeds),
                            "--body", "again" if again else "once"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--body", choices=("once", "again"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.body is not None:
        body(a.scenario, a.seeds, a.body == "again")
        return
    body(a.scenario, 0, False)       # bytecode caches written first
    base = collected(a.scenario, a.seeds, False)
    total = collected(a.scenario, a.seeds, True)
    print(f"{a.scenario}: check_history {(total - base) / a.seeds / 1e6:.2f} million instructions "
          f"per seed (seeds 1 to {a.seeds}; {total:,} less {base:,})")


if __name__ == "__main__":
    main()
