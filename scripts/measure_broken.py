"""Per broken backend (tests/broken_backends.py): seeds and seconds to the
first failure on the default scenario (the path dst run --fail-fast takes),
then the shrunk size and the time shrinking took. Prints a markdown table.

    .venv/bin/python scripts/measure_broken.py
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dst.sim.scenario import load
from dst.sim.runner import run_seed
from dst.sim.shrink import Shrinker, kinds_of, violation_kind
from tests.broken_backends import BROKEN
sc = load("default")
print("| broken backend | first failing seed | seeds run | seconds to first failure | kind | shrunk ops | shrink seconds | trials |")
print("|---|---|---|---|---|---|---|---|")
for name in sorted(BROKEN):
    b = f"tests.broken_backends:{name}"
    t0 = time.perf_counter()
    for seed in range(300):
        r, _ = run_seed(sc, seed, b, record=True)
        if r.verdict == "violation":
            break
    t1 = time.perf_counter()
    kind = violation_kind(r)
    def still(c, seed=seed):
        x, _ = run_seed(sc, seed, b, schedule=c)
        return kind in kinds_of(x)
    sh = Shrinker(still, budget_s=120)
    small = sh.shrink(r.schedule)
    t2 = time.perf_counter()
    print(f"| {name} | {seed} | {seed+1} | {t1-t0:.2f} | {kind} | {r.schedule.n_ops()} -> {small.n_ops()} | {t2-t1:.2f} | {sh.trials} |")
