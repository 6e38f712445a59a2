"""md5 of the sim history bytes and the verdict, per (scenario, seed).

Used to show a harness speed-up changes nothing on sim:

    PYTHONPATH=$PWD python scripts/history_digest.py --out /tmp/before.json
    (change the code)
    PYTHONPATH=$PWD python scripts/history_digest.py --compare /tmp/before.json

The history bytes are exactly what ``dst run`` writes as
``reports/<run>/history.jsonl`` (``History.write``), one seed at a time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from dst.sim.runner import run_seed
from dst.sim.scenario import load

SCENARIOS = ["default", "crud", "crash", "filters", "hostile-ids", "partial-writes", "ties",
             "upsert-race", "search-heavy", "ann", "filters-ann", "ann-churn"]


def digests(scenarios: list[str], seeds: int, first: int) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        for name in scenarios:
            sc = load(name)
            for seed in range(first, first + seeds):
                r, h = run_seed(sc, seed, "sim")
                h.write(path)
                out[f"{name}/{seed}"] = {"md5": hashlib.md5(path.read_bytes()).hexdigest(),
                                         "verdict": r.verdict}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--compare")
    a = ap.parse_args()
    got = digests(a.scenarios.split(","), a.seeds, a.seed)
    if a.out:
        Path(a.out).write_text(json.dumps(got, indent=1, sort_keys=True))
        print(f"{len(got)} digests written to {a.out}")
    if a.compare:
        want = json.loads(Path(a.compare).read_text())
        bad = [k for k in want if k in got and got[k] != want[k]]
        missing = [k for k in want if k not in got]
        for k in bad:
            print(f"DIFFERENT {k}: {want[k]} -> {got[k]}")
        print(f"{len(got)} compared, {len(bad)} different, {len(missing)} not run")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
