"""Every fault class fires, is counted, and has the effect DESIGN gives it."""

from collections import Counter

import pytest

from dst.history import pair
from dst.runner import run_seed
from dst.scenario import FAULT_CLASSES, load

MEANT_FOR = {
    "default": FAULT_CLASSES,
    "crud": ("latency", "error", "lost-ack", "timeout"),
    "crash": ("crash", "lost-ack", "latency"),
    "partial-writes": ("partial-write", "lost-ack"),
}


@pytest.mark.parametrize("scenario", sorted(MEANT_FOR))
def test_fault_classes_fire_and_are_counted(scenario):
    sc = load(scenario)
    fired = Counter()
    for seed in range(8):
        r, h = run_seed(sc, seed, "sim")
        assert r.verdict == "ok", r.violations
        nemesis = Counter(e["f"] for e in h.events if e["process"] == "nemesis")
        # every firing is an event in the history, and the counters agree
        assert {k: v for k, v in r.fired.items() if v} == dict(nemesis)
        fired.update(r.fired)
    for k in MEANT_FOR[scenario]:
        assert fired[k] > 0, f"{k} never fired in {scenario}"


def _types(h):
    return Counter((p.type, (p.output or {}).get("error") if isinstance(p.output, dict) else None)
                   for p in pair(h.events))


def test_fault_effects_in_history():
    sc = load("default")
    seen = Counter()
    for seed in range(12):
        _, h = run_seed(sc, seed, "sim")
        seen.update(_types(h))
    assert seen[("fail", "InjectedError")] > 0          # error: nothing applied
    assert seen[("info", "LostAck")] > 0               # lost ack: applied, unknown
    assert seen[("info", "Timeout")] > 0               # timeout: unknown
    assert seen[("info", "PartialWrite")] > 0          # partial write
    assert seen[("info", "Crashed")] + seen[("fail", "Crashed")] > 0


def test_crash_resolves_in_flight_ops_and_probes():
    sc = load("crash")
    for seed in range(10):
        r, h = run_seed(sc, seed, "sim")
        if r.crashes:
            break
    else:
        pytest.fail("no crash in 10 seeds of the crash scenario")
    ev = h.events
    crash_at = [e["index"] for e in ev if e["process"] == "nemesis" and e["f"] == "crash"][0]
    t = ev[crash_at]["time"]
    # Ops closed at the crash: dispatched ones are info, undispatched fail.
    closed = [e for e in ev[crash_at + 1:] if e["time"] == t and e["process"] not in ("probe", "nemesis")]
    for e in closed:
        assert e["type"] in ("info", "fail")
        assert (e["type"] == "info") == ("dispatch" in e)
    # Then, with no client op in between, the quiescent probe: count,
    # exists/get of every id, and an exhaustive search.
    rest = ev[crash_at + 1 + len(closed):]
    block = []
    for e in rest:
        if e["process"] != "probe":
            break
        block.append(e)
    invokes = [e["f"] for e in block if e["type"] == "invoke"]
    assert invokes[0] == "count" and invokes[-1] == "search"
    assert invokes.count("exists") == invokes.count("get") == len(set(
        e["value"]["id"] for e in block if e["type"] == "invoke" and e["f"] == "get"))
    assert all(e["type"] in ("invoke", "ok") for e in block)


def test_info_clients_continue_under_a_new_process():
    _, h = run_seed(load("crud"), 2, "sim")
    open_ = {}
    procs_after_info = set()
    for e in h.events:
        p = e["process"]
        if p in ("nemesis", "probe", "load"):
            continue
        if e["type"] == "invoke":
            assert p not in open_, "a process with two open ops"
            assert p not in procs_after_info, "a process reused after info"
            open_[p] = e
        else:
            open_.pop(p, None)
            if e["type"] == "info":
                procs_after_info.add(p)
    assert procs_after_info


def test_timeouts_may_dispatch_after_the_client_gave_up():
    sc = load("crud")
    late = 0
    for seed in range(15):
        _, h = run_seed(sc, seed, "sim")
        for e in h.events:
            if e["type"] == "info" and isinstance(e["value"], dict) and e["value"].get("error") == "Timeout":
                if "dispatch" in e:
                    late += 1
    assert late > 0
