"""Planning's own work on sim: the decider alone (dst.sim.schedule's
RandomDecider and the workload it draws from), without the store, the
scheduler's events or the checker.

    PYTHONPATH=$PWD python scripts/plan_instructions.py --seeds 30
        callgrind counts of making each seed's decider (setup) and of its
        plans (every op of the seed), per seed and per op
    PYTHONPATH=$PWD python scripts/plan_instructions.py --digest --seeds 300
        md5 of every plan drawn for each (scenario, seed): run it on two
        trees (PYTHONPATH) and the two outputs must be the same text

Each seed is planned as the scheduler plans it (load ops, each client's
first think, then one plan per invoke), the clients taken in an order
drawn from a generator of this script's own, so any interleaving is
exercised; filters on as on a backend that takes them (sim). Needs
``valgrind`` for the counts.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness_instructions import callgrind_count  # noqa: E402  (the script's own neighbour)


def decider(scenario, seed: int, record: bool = False):
    from dst.history import VectorTable
    from dst.rng import Rng
    from dst.sim.schedule import RandomDecider
    rng = Rng(seed)
    params = scenario.for_seed(rng.fork("swarm"))
    table = VectorTable()
    d = RandomDecider(params, rng, table, record=record)
    d.workload.use_filters = scenario.filters != "off"
    return d, table


def start(d) -> None:
    """The load phase's ops and each client's first think, as the scheduler asks."""
    d.load_ops(True)
    for c in range(d.clients):
        d.first_think(c)


def plans(d, seed: int, nemeses: tuple[str, ...] = ()):
    """Every plan of the seed, as (client, plan), the clients in an order
    of this script's own: a small linear congruential generator seeded by
    ``seed`` (cheap, so the counts are mostly the decider's)."""
    live = list(range(d.clients))
    x = seed
    while live:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        c = live[(x >> 16) % len(live)]
        p = d.plan(c, True, nemeses)
        if p is None:
            live.remove(c)
            continue
        yield c, p


def body(mode: str, scenario_name: str, seeds: int) -> None:
    from dst.sim.scenario import load
    sc = load(scenario_name)
    for s in range(seeds + 1):     # seed 0 warms up, then the measured ones
        d, _ = decider(sc, s)
        # The clients in turn (made in every mode, so the difference is the
        # plans alone): any order gives the seed's ops, then one None each.
        order = [i % d.clients for i in range(sc.ops + d.clients)]
        if mode != "setup":
            start(d)
        if mode == "plan":
            plan = d.plan
            for c in order:
                plan(c, True, ())


def digest(scenarios: list[str], seeds: int, nemeses: tuple[str, ...]) -> dict[str, str]:
    from dst.sim.scenario import load
    out = {}
    for name in scenarios:
        sc = load(name)
        for s in range(seeds):
            d, table = decider(sc, s)
            h = hashlib.md5()
            h.update(json.dumps([d.ids, d.probe_query, d.load_ops(True), d.bulk], default=repr).encode())
            h.update(json.dumps([d.first_think(c) for c in range(d.clients)]).encode())
            for c, p in plans(d, s, nemeses):
                h.update(json.dumps([c, p.to_dict()], default=repr).encode())
            h.update(repr([v.tobytes() for v in table.vectors]).encode())
            out[f"{name}/{s}"] = h.hexdigest()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--scenarios", default="default,crud,crash,filters,hostile-ids,partial-writes,ties,"
                                           "upsert-race,search-heavy,ann,filters-ann,kill")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--digest", action="store_true")
    ap.add_argument("--nemeses", default="", help="nemesis names offered to plan (digest)")
    ap.add_argument("--body", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.body is not None:
        body(a.body, a.scenario, a.seeds)
        return
    if a.digest:
        nem = tuple(n for n in a.nemeses.split(",") if n)
        got = digest(a.scenarios.split(","), a.seeds, nem)
        whole = hashlib.md5(json.dumps(got, sort_keys=True).encode()).hexdigest()
        for k, v in got.items():
            print(k, v)
        print(f"all {len(got)}: {whole}")
        return
    me = os.path.abspath(__file__)
    # One BLAS thread and a fixed str hash: numpy's BLAS threads spin (their
    # instructions vary run to run by a few per cent of a count this size)
    # and set and dict work varies with the hash seed.
    os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    body("setup", a.scenario, 0)         # bytecode caches written first
    count = {}
    for mode in ("setup", "load", "plan"):
        base = callgrind_count([me, "--scenario", a.scenario, "--seeds", "0", "--body", mode])
        total = callgrind_count([me, "--scenario", a.scenario, "--seeds", str(a.seeds), "--body", mode])
        count[mode] = (total - base) / a.seeds
    from dst.sim.scenario import load
    ops = load(a.scenario).ops
    per_op = (count["plan"] - count["load"]) / ops
    print(f"{a.scenario}: setup {count['setup'] / 1e6:.3f} M instructions per seed; "
          f"load ops {(count['load'] - count['setup']) / 1e6:.3f} M; "
          f"plans {(count['plan'] - count['load']) / 1e6:.3f} M per seed, {per_op:,.0f} per op "
          f"({ops} ops per seed, seeds 1 to {a.seeds} after seed 0)")


if __name__ == "__main__":
    main()
