"""The crash scenario on LanceDB with --isolate process (issue 15): each
crash SIGKILLs the process the store runs in, a new process reopens the
table (fresh=False), and every acknowledged write must be there."""

from dst.sim.runner import run_seed
from dst.sim.scenario import load


def test_crash_scenario_on_lance_in_a_killed_process(tmp_path):
    # Seed 0 at 20 ops crashes once (the crash draws do not depend on the
    # backend: the same plan as on sim). 20 ops are too few for every fault
    # class of the scenario to fire, so the seed's verdict is what is held.
    sc = load("crash").with_overrides(ops=20, isolate="process")
    r, h = run_seed(sc, 0, "lance", location=str(tmp_path))
    assert r.verdict == "ok", r.violations
    assert r.crashes == 1 and h.meta["isolate"] == "process"
    crash = next(e for e in h.events if e["f"] == "crash")
    probes = [e for e in h.events[crash["index"]:] if e["process"] == "probe" and e["type"] == "ok"]
    assert probes, "no probe after the crash"
