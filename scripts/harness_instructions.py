"""Harness work on sim in instructions per seed, which the machine's load
does not move (CPU time does): callgrind counts a run of seed 0 and then
``--seeds`` more seeds, and a run of seed 0 alone; the difference over
``--seeds`` is what one seed costs (simulate and check), imports and
first-call warm-up left out.

    PYTHONPATH=$PWD python scripts/harness_instructions.py --seeds 30

Needs ``valgrind``. Measures the code on PYTHONPATH, so two trees compare
by running it with each (``--body`` is the run valgrind is pointed at).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile


def body(scenario: str, seeds: int) -> None:
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    sc = load(scenario)
    for s in range(seeds + 1):     # seed 0 warms up (first calls, caches), then the measured ones
        run_seed(sc, s, "sim")


def collected(scenario: str, seeds: int) -> int:
    return callgrind_count([os.path.abspath(__file__), "--scenario", scenario, "--body", str(seeds)])


def callgrind_count(argv: list[str]) -> int:
    """Instructions callgrind counts in ``python argv...`` (also used by
    scripts/check_instructions.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.path.join(tmp, 'cg.out')}",
             sys.executable, *argv],
            capture_output=True, text=True, check=True,
            # Pinned: str hashing's seed moves set and dict layouts, and BLAS
            # threads spin; either moves the count by up to 1% between runs.
            env={**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--body", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.body is not None:
        body(a.scenario, a.body)
        return
    # Bytecode caches written first where Python may write them; where it
    # may not (PYTHONDONTWRITEBYTECODE), both counted runs compile the same
    # modules, and the difference leaves that out too.
    body(a.scenario, 0)
    base = collected(a.scenario, 0)
    total = collected(a.scenario, a.seeds)
    print(f"{a.scenario}: {(total - base) / a.seeds / 1e6:.1f} million instructions per seed "
          f"(seeds 1 to {a.seeds} after seed 0; {total:,} less {base:,})")


if __name__ == "__main__":
    main()
