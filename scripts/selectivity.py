"""The selectivity spread of a scenario's filtered searches, measured: per
filtered search (the scenario's ops, not the probes), the fraction of live
ids the filter matches at that moment, bucketed. Runs the sim backend with
a wrapper that counts; prints one line for the scenario file's comment.

    .venv/bin/python scripts/selectivity.py --scenario filters --seeds 20
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from backends.sim import SimBackend  # noqa: E402
from dst.filters import matches  # noqa: E402
from dst.sim.runner import run_seed  # noqa: E402
from dst.sim.scenario import load  # noqa: E402

BUCKETS = ((0.0, "0%"), (0.002, "<=0.2%"), (0.02, "<=2%"), (0.15, "<=15%"),
           (0.6, "<=60%"), (0.9999, "<100%"), (1.0, "100%"))
FRACTIONS: list[float] = []


class Counting(SimBackend):
    def raw_search(self, query, limit, exact, where=None):
        if where is not None and not exact:
            st = self._store
            live = sorted(st.data)
            if live:
                FRACTIONS.append(sum(matches(where, st.attrs.get(i)) for i in live) / len(live))
        return super().raw_search(query, limit, exact, where)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="filters")
    ap.add_argument("--seeds", type=int, default=10)
    a = ap.parse_args()
    sc = load(a.scenario)
    for seed in range(a.seeds):
        run_seed(sc, seed, "sim", factory=Counting)
    n = len(FRACTIONS)
    counts = {label: 0 for _, label in BUCKETS}
    for f in FRACTIONS:
        for hi, label in BUCKETS:
            if f <= hi:
                counts[label] += 1
                break
    tiny = sorted(x for x in FRACTIONS if 0 < x <= 0.02)
    print(f"{a.scenario}, {a.seeds} seeds, {n} filtered searches: "
          + ", ".join(f"{label} {100 * c / max(n, 1):.1f}%" for label, c in counts.items()))
    if tiny:
        print(f"  smallest non-zero fractions: {', '.join(f'{100 * x:.2f}%' for x in tiny[:5])}")


if __name__ == "__main__":
    main()
