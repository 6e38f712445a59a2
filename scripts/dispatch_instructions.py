"""The simulation side of a sim seed in instructions per seed, split so the
dispatch and store side can be told from the planning side:

* ``sim``: run_seed with the check left out (``check_history`` answers a
  fixed result): setup, planning, the scheduler, faults, the sim store,
  the probes;
* ``plan``: the planning alone: the seed's RandomDecider built as run_seed
  builds it, and its ``plan`` called in the order the recorded run called
  it (the same draws).

``sim`` less ``plan`` is the dispatch and store side (issue 17, helper hs).
Callgrind counts seeds 1 to ``--seeds`` after seed 0, as
harness_instructions.py does; set PYTHONHASHSEED=0 to compare two trees
(string hashes move the count by a few tenths of a million).

    PYTHONHASHSEED=0 PYTHONPATH=$PWD python scripts/dispatch_instructions.py --seeds 30
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

# scripts/ is on sys.path when this runs as a script
from harness_instructions import callgrind_count


def _stub_check() -> None:
    from dst.sim import runner
    runner.check_history = lambda h, **kw: runner.SeedResult(seed=0, verdict="ok", ops=0, fired={}, enabled=[])


def sim_body(scenario: str, seeds: int) -> None:
    _stub_check()
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    sc = load(scenario)
    for s in range(seeds + 1):
        run_seed(sc, s, "sim")


def record(scenario: str, seeds: int, path: str) -> None:
    """The plan calls of each seed, in order (client, has_maintenance, nemeses)."""
    _stub_check()
    from dst.sim import schedule
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    calls: list = []
    plan = schedule.RandomDecider.plan

    def recording(self, client, has_maintenance, nemeses=()):
        calls.append([client, has_maintenance, list(nemeses)])
        return plan(self, client, has_maintenance, nemeses)

    schedule.RandomDecider.plan = recording
    sc = load(scenario)
    out = {}
    for s in range(seeds + 1):
        calls.clear()
        run_seed(sc, s, "sim")
        out[str(s)] = list(calls)
    schedule.RandomDecider.plan = plan
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f)


def plan_body(scenario: str, seeds: int, path: str) -> None:
    from dst.history import History
    from dst.rng import Rng
    from dst.sim.scenario import load
    from dst.sim.schedule import RandomDecider
    with open(path, encoding="utf-8") as f:
        calls = json.load(f)
    sc = load(scenario)
    for s in range(seeds + 1):
        rng = Rng(s)
        params = sc.for_seed(rng.fork("swarm"))
        d = RandomDecider(params, rng, History().table)
        for c in range(d.clients):
            d.first_think(c)
        for c, has_maintenance, nemeses in calls[str(s)]:
            d.plan(c, has_maintenance, tuple(nemeses))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--body", choices=("sim", "plan"), help=argparse.SUPPRESS)
    ap.add_argument("--calls", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.body == "sim":
        sim_body(a.scenario, a.seeds)
        return
    if a.body == "plan":
        plan_body(a.scenario, a.seeds, a.calls)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "calls.json")
        record(a.scenario, a.seeds, path)
        got = {}
        for body in ("sim", "plan"):
            argv = [os.path.abspath(__file__), "--scenario", a.scenario, "--body", body, "--calls", path]
            base = callgrind_count(argv + ["--seeds", "0"])
            total = callgrind_count(argv + ["--seeds", str(a.seeds)])
            got[body] = (total - base) / a.seeds / 1e6
    print(f"{a.scenario}: simulation {got['sim']:.2f} million instructions per seed (check left out), "
          f"of which planning {got['plan']:.2f}, dispatch and store {got['sim'] - got['plan']:.2f} "
          f"(seeds 1 to {a.seeds})")


if __name__ == "__main__":
    sys.exit(main())
