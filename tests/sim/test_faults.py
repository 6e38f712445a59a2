"""Every fault class fires, is counted, and has the effect DESIGN gives it."""

from collections import Counter

import numpy as np
import pytest

from dst.sim.faults import FaultPlan
from dst.history import pair
from dst.rng import PPM, Rng
from dst.sim.runner import run_seed
from dst.sim.scenario import load
from dst.sim.schedule import OpPlan, Schedule
from tests.recording import Recorder, vec_bytes

# The classes each scenario is meant to exercise, by the names they fire
# as: on the atomic sim a partial write can only be a batch-error; on the
# non-atomic variant it cuts batches for real.
MEANT_FOR = {
    "default": ("latency", "error", "lost-ack", "timeout", "batch-error", "crash"),
    "crud": ("latency", "error", "lost-ack", "timeout"),
    "crash": ("crash", "lost-ack", "latency"),
    "partial-writes": ("batch-error", "lost-ack"),
}
NON_ATOMIC = {"atomic_batches": False}


def _call_of(h, f, value):
    """The call an op makes at the backend boundary, as the recorder logs it."""
    t = h.table
    if f == "store":
        return "store", (value["id"], vec_bytes(t[value["vector"]]))
    if f == "store_batch":
        return "store_batch", tuple((i, vec_bytes(t[v])) for i, v in value["items"])
    if f in ("delete", "get", "exists"):
        return f, value["id"]
    if f == "count":
        return "count", ()
    if f == "search":
        return "search", (vec_bytes(t[value["vector"]]), value["limit"])
    raise AssertionError(f)


def expected_calls(h):
    """What the history says reached the backend: every op with a dispatch
    number, except that a cut or errored batch sent only what it applied."""
    applied = {e["value"]["dispatch"]: e["value"]["applied"] for e in h.events
               if e["process"] == "nemesis" and e["f"] in ("partial-write", "batch-error")}
    calls = Counter()
    for p in pair(h.events):
        if p.dispatch is None or p.f == "maintenance":   # sim has no maintenance to call
            continue
        value = p.input
        if p.dispatch in applied:
            keep = set(applied[p.dispatch])
            value = {"items": [it for it in value["items"] if it[0] in keep]}
            if not value["items"]:
                continue
        calls[_call_of(h, p.f, value)] += 1
    return calls


@pytest.mark.parametrize("options", [{}, NON_ATOMIC], ids=["atomic", "non-atomic"])
@pytest.mark.parametrize("scenario", sorted(MEANT_FOR))
def test_the_backend_saw_exactly_the_calls_the_history_claims(scenario, options):
    # Checked against a log the backend itself keeps: a timeout whose late
    # dispatch never happened, a lost ack that was not applied, a partial
    # write that applied more or less than it recorded all break the equality.
    sc = load(scenario)
    fired = Counter()
    for seed in range(6):
        rec = Recorder()
        r, h = run_seed(sc, seed, "sim", factory=rec.open, options=options)
        assert r.verdict == "ok", r.violations
        seen = Counter((c[1], c[2]) for c in rec.calls if c[1] not in ("open", "close"))
        assert seen == expected_calls(h), seed
        fired.update(r.fired)
    meant = [{"batch-error": "partial-write"}.get(k, k) if options else k for k in MEANT_FOR[scenario]]
    for k in meant:
        assert fired[k] > 0, f"{k} never fired in {scenario}"


def _types(h):
    return Counter((p.type, (p.output or {}).get("error") if isinstance(p.output, dict) else None)
                   for p in pair(h.events))


@pytest.mark.parametrize("options,batch", [({}, "BatchError"), (NON_ATOMIC, "PartialWrite")],
                         ids=["atomic", "non-atomic"])
def test_fault_effects_in_history(options, batch):
    sc = load("default")
    seen = Counter()
    for seed in range(12):
        _, h = run_seed(sc, seed, "sim", options=options)
        seen.update(_types(h))
    assert seen[("fail", "InjectedError")] > 0          # error: nothing applied
    assert seen[("info", "LostAck")] > 0               # lost ack: applied, unknown
    assert seen[("info", "Timeout")] > 0               # timeout: unknown
    assert seen[("info", batch)] > 0                   # the batch fault this store can take
    if batch == "BatchError":
        assert seen[("info", "PartialWrite")] == 0     # an atomic batch is never reported cut
    assert seen[("info", "Crashed")] + seen[("fail", "Crashed")] > 0


# -- each effect, on a case written out op by op -----------------------------------

V = [np.array(x, dtype=np.float32) for x in
     ([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0])]
ZERO = 5   # the zero vector: a store of it is refused (InvalidInput)


def _case(plans, ids, clients=None):
    return Schedule(dim=4, ids=list(ids), probe_query=0, vectors=list(V),
                    clients=clients or [plans], start_us=[0] * len(clients or [plans]))


def _run(plans, ids, options=None, scenario="crud", clients=None):
    rec = Recorder()
    r, h = run_seed(load(scenario), 0, "sim", factory=rec.open, options=options or {},
                    schedule=_case(plans, ids, clients))
    client = []
    for c in rec.calls:               # the client ops come before the final probe's count()
        if c[1] == "count":
            break
        if c[1] != "open":
            client.append((c[1], c[2]))
    return r, h, rec, client


def _completion(h, f, **match):
    for p in pair(h.events):
        if p.f == f and p.process not in ("probe", "load") and all(p.input.get(k) == v for k, v in match.items()):
            return p
    raise AssertionError(f"no {f} {match}")


def _final(h, f, id_):
    return [p for p in pair(h.events) if p.process == "probe" and p.f == f and p.input["id"] == id_][-1].output


def test_a_timed_out_op_is_dispatched_late_or_never():
    late = 3 * load("crud").timeout_us      # well after the client gave up
    r, h, rec, client = _run([
        OpPlan("store", {"id": "a", "vector": 0}, fault="timeout", d1=late, think_us=10),
        OpPlan("store", {"id": "b", "vector": 1}, fault="timeout", never=True, think_us=10),
        OpPlan("get", {"id": "a"}, fault="timeout", d1=late),
    ], ids=["a", "b"])
    assert r.verdict == "ok" and r.fired["timeout"] == 3
    # The late store reached the store, after its client had given up...
    a = _completion(h, "store", id="a")
    assert a.type == "info" and a.output["error"] == "Timeout" and a.dispatch is not None
    assert client.count(("store", ("a", vec_bytes(V[0])))) == 1
    assert _final(h, "get", "a") is not None
    # ...the one never dispatched did not...
    b = _completion(h, "store", id="b")
    assert b.type == "info" and b.dispatch is None
    assert not [c for c in client if c[0] == "store" and c[1][0] == "b"]
    assert _final(h, "exists", "b") is False
    # ...and a timed-out read is served late too, its answer unseen.
    g = _completion(h, "get", id="a")
    assert g.type == "info" and g.output["error"] == "Timeout" and g.dispatch is not None
    assert ("get", "a") in client


def test_a_lost_ack_write_is_applied_and_only_a_returned_call_loses_its_ack():
    r, h, rec, client = _run([
        OpPlan("store", {"id": "c", "vector": 2}, fault="lost-ack", think_us=10),
        OpPlan("store", {"id": "fail-x", "vector": 1}, fault="lost-ack", think_us=10),
        OpPlan("store", {"id": "d", "vector": ZERO}, fault="lost-ack", think_us=10),
    ], ids=["c", "fail-x", "d"])
    c = _completion(h, "store", id="c")
    assert c.type == "info" and c.output["error"] == "LostAck"
    assert ("store", ("c", vec_bytes(V[2]))) in client        # it reached the store
    assert _final(h, "get", "c") is not None                 # and was applied
    # The failed call and the refused one keep their own outcomes, and no
    # lost ack is counted for them.
    x = _completion(h, "store", id="fail-x")
    assert x.output["error"] == "BackendError"
    d = _completion(h, "store", id="d")
    assert d.type == "ok" and d.output["error"] == "InvalidInput"
    assert r.fired["lost-ack"] == 1
    assert [e["f"] for e in h.events if e["process"] == "nemesis"] == ["lost-ack"]


def test_lost_acks_are_drawn_for_writes_only():
    plan = FaultPlan({"lost-ack": PPM}, Rng(1).fork("faults"))
    for f in ("store", "store_batch", "delete"):
        assert plan.op_fault(f) == "lost-ack"
    for f in ("get", "exists", "count", "search", "maintenance"):
        assert plan.op_fault(f) is None, f


BATCH = [["p0", 0], ["p1", 1], ["p2", 2], ["p3", 3]]


def test_a_partial_write_applies_exactly_the_recorded_subset_on_a_non_atomic_store():
    r, h, rec, client = _run([
        OpPlan("store_batch", {"items": BATCH}, fault="partial-write", keep=[True, False, True, False],
               think_us=10),
        OpPlan("store_batch", {"items": [["q0", 0]]}, fault="partial-write", keep=[False], think_us=10),
        OpPlan("store_batch", {"items": [["q1", 1]]}, fault="partial-write", keep=[True]),
    ], ids=["p0", "p1", "p2", "p3", "q0", "q1"], options=NON_ATOMIC)
    assert r.verdict == "ok"
    # Exactly the subset reached the store, and the history says so.
    assert ("store_batch", (("p0", vec_bytes(V[0])), ("p2", vec_bytes(V[2])))) in client
    ev = [e["value"] for e in h.events if e["process"] == "nemesis" and e["f"] == "partial-write"]
    assert [v["applied"] for v in ev] == [["p0", "p2"]]
    assert [_final(h, "exists", i) for i in ("p0", "p1", "p2", "p3")] == [True, False, True, False]
    # A batch of one cannot be split: it is applied whole or not at all,
    # and counted as what it was.
    assert not [c for c in client if c[0] == "store_batch" and c[1][0][0] == "q0"]
    assert ("store_batch", (("q1", vec_bytes(V[1])),)) in client
    assert (_final(h, "exists", "q0"), _final(h, "exists", "q1")) == (False, True)
    assert (r.fired["partial-write"], r.fired["batch-error"]) == (1, 2)


def test_an_atomic_store_gets_an_error_around_the_whole_batch():
    r, h, rec, client = _run([
        OpPlan("store_batch", {"items": BATCH}, fault="partial-write", keep=[True, False, True, False],
               think_us=10),
        OpPlan("store_batch", {"items": [["q0", 0], ["q1", 1]]}, fault="partial-write", keep=[False, True]),
    ], ids=["p0", "p1", "p2", "p3", "q0", "q1"])
    assert r.verdict == "ok"
    # After: the whole batch went to the store; before: nothing did.
    assert [c for c in client if c[0] == "store_batch"] == [
        ("store_batch", tuple((i, vec_bytes(V[v])) for i, v in BATCH))]
    assert all(_final(h, "exists", i) for i in ("p0", "p1", "p2", "p3"))
    assert not _final(h, "exists", "q0") and not _final(h, "exists", "q1")
    ev = [(e["f"], e["value"]["when"]) for e in h.events if e["process"] == "nemesis"]
    assert ev == [("batch-error", "after"), ("batch-error", "before")]
    assert (r.fired["partial-write"], r.fired["batch-error"]) == (0, 2)


def test_the_coverage_gate_expects_the_name_a_partial_write_fires_as():
    sc = load("partial-writes")
    atomic, _ = run_seed(sc, 0, "sim")
    split, _ = run_seed(sc, 0, "sim", options=NON_ATOMIC)
    assert "batch-error" in atomic.enabled and "partial-write" not in atomic.enabled
    assert atomic.realised == {"partial-write": "batch-error"}
    assert "partial-write" in split.enabled and split.realised == {}


def test_a_crash_drops_the_handle_without_close_and_reopens_it():
    r, h, rec, client = _run([
        OpPlan("store", {"id": "f", "vector": 0}, crash_us=5, think_us=50),
        OpPlan("store", {"id": "g", "vector": 1}),
    ], ids=["f", "g"], scenario="crash")
    assert r.crashes == 1
    opens = [(c[0], c[2]) for c in rec.calls if c[1] == "open"]
    assert opens == [(1, True), (2, False)]                 # reopened as it was
    assert [c[0] for c in rec.calls if c[1] == "close"] == [2]   # the first handle never closed
    # Everything after the crash went to the new handle, which found the
    # acknowledged write.
    crash_at = next(n for n, c in enumerate(rec.calls) if c[1] == "open" and c[0] == 2)
    assert {c[0] for c in rec.calls[crash_at:]} == {2}
    assert ("store", ("g", vec_bytes(V[1]))) in [(c[1], c[2]) for c in rec.calls[crash_at:]]
    assert [p.output for p in pair(h.events) if p.process == "probe" and p.f == "exists"
            and p.input["id"] == "f"][0] is True


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
