"""Process isolation and the kill nemesis (issue 15, dst.isolate).

The kill is shown to be real with backends only a dead process exposes
(tests/broken_isolate.py): each passes the in-process crash scenario and
is caught once its process is SIGKILLed.
"""

import os
import signal

import numpy as np
import pytest

from dst import isolate
from dst.backend import BackendConfig, SearchHit
from dst.errors import BackendError, InvalidInput
from dst.history import History
from dst.sim.runner import run_seed
from dst.sim.scenario import load, parse

BROKEN = "tests.broken_isolate"


def kill_scenario(**over):
    """A short kill run: few ops, many kills, batches drawn often."""
    raw = {"name": "kill-test", "clients": 3, "ops_per_seed": over.pop("ops", 70), "isolate": "process",
           "ids": {"hot": 5, "cold": 6}, "batch": {"min": 3, "max": 6},
           "ops": over.pop("ops_mix", {"store": 30, "store_batch": 30, "delete": 10, "get": 20, "count": 5}),
           "nemeses": {"kill": over.pop("kill", 0.1)}}
    raw.update(over)
    return parse(raw, default_name="kill-test")


def kills(result):
    return {k: v for k, v in result.fired.items() if k.startswith("kill") and v}


def test_the_wire_keeps_values_as_they_were():
    v = np.array([1.5, -0.0, np.float32(3.4028235e38), 1e-45], dtype=np.float32)
    value = {"items": [("a", v, {"n": 1, "t": "x\ud800"}), ("b\x00", v[:2], None)], "$odd": (1, 2.5, True),
             "nan": float("nan"), "hit": SearchHit("z", np.float32(0.25)), "big": 2 ** 63}
    blobs = []
    header = isolate.pack({"r": isolate.encode(value, blobs)}, blobs)
    h, bl = isolate.unpack(header)
    back = isolate.decode(h["r"], bl)
    assert back["items"][0][0] == "a" and isinstance(back["items"][0], tuple)
    assert back["items"][0][1].dtype == np.float32 and back["items"][0][1].tobytes() == v.tobytes()
    assert back["items"][0][2] == {"n": 1, "t": "x\ud800"} and back["items"][1][0] == "b\x00"
    assert back["$odd"] == (1, 2.5, True) and back["nan"] != back["nan"] and back["big"] == 2 ** 63
    assert back["hit"] == SearchHit("z", float(np.float32(0.25)))
    # errors keep their class, message and what is known of their effect
    bad = isolate.rebuild_error(isolate.error_header(InvalidInput("bad id")))
    assert type(bad) is InvalidInput and str(bad) == "bad id"
    e = isolate.rebuild_error(isolate.error_header(isolate.ChildGone("gone")))
    assert isinstance(e, BackendError) and e.applied is False
    foreign = isolate.rebuild_error(isolate.error_header(KeyError("k")))
    assert type(foreign).__name__ == "KeyError" and not isinstance(foreign, BackendError)


def test_a_proxy_forwards_the_protocol_and_its_capabilities(tmp_path):
    b = isolate.isolated_factory("sim")(BackendConfig(dim=3, location=str(tmp_path), namespace="p"))
    try:
        assert b.pid != os.getpid() and b.name == "sim" and b.atomic_batches is True and b.filters is True
        assert callable(b.search_exact) and callable(b.get_attrs) and callable(b.drop) and "kill" in b.nemeses()
        v = np.array([1, 2, 3], dtype=np.float32)
        b.store("a", v, {"tenant": "t0"})
        b.store_batch([("b", -v), ("c", v * 2)])
        assert b.count() == 3 and b.get("a").tobytes() == v.tobytes() and b.get_attrs("a") == {"tenant": "t0"}
        hits = b.search(v, 2, where={"eq": ["tenant", "t0"]})
        assert [h.id for h in hits] == ["a"] and isinstance(hits[0], SearchHit)
        with pytest.raises(InvalidInput):
            b.store("", v)
        assert b.delete("b") is True and b.exists("b") is False
    finally:
        b.kill_process()


def test_sim_histories_are_the_same_with_and_without_isolation():
    """Same seed, same events byte for byte; the meta says isolate (by design)."""
    sc = load("crash").with_overrides(ops=80)
    _, plain = run_seed(sc, 3, "sim")
    r, iso = run_seed(sc.with_overrides(isolate="process"), 3, "sim")
    assert r.verdict == "ok" and r.crashes > 0
    assert iso.meta.pop("isolate") == "process"
    assert iso.meta["scenario_config"].pop("isolate") == "process"
    assert iso.meta == plain.meta
    assert History.from_bytes(iso.to_bytes()).events == plain.events
    assert [e for e in iso.events if e["f"] == "crash"]


def test_acknowledged_before_persisted_passes_a_crash_and_is_caught_by_a_kill():
    backend = f"{BROKEN}:ack_before_persist"
    sc = load("crash").with_overrides(ops=80)
    crashed = 0
    for seed in range(2):
        r, _ = run_seed(sc, seed, backend)      # in-process: dropping a handle loses nothing
        assert r.verdict == "ok", r.violations
        crashed += r.crashes
    assert crashed > 0
    sc = kill_scenario(ops_mix={"store": 40, "store_batch": 10, "delete": 10, "get": 10, "count": 2})
    for seed in range(4):
        r, h = run_seed(sc, seed, backend)
        if r.verdict != "ok":
            break
    assert r.verdict == "violation" and r.violations[0]["kind"] == "linearizability", r.violations
    assert r.fired["kill"] > 0
    # and the correct store takes the same kills and passes
    ok, _ = run_seed(sc, seed, "sim")
    assert ok.verdict == "ok" and kills(ok) == kills(r), ok.violations


def test_a_batch_written_row_by_row_is_caught_by_a_kill_mid_batch():
    backend = f"{BROKEN}:batch_rows_one_by_one"
    assert run_seed(load("crash").with_overrides(ops=80), 0, backend)[0].verdict == "ok"
    sc = kill_scenario(ops_mix={"store": 5, "store_batch": 40, "get": 20, "count": 5}, kill=0.15)
    for seed in range(4):
        r, h = run_seed(sc, seed, backend)
        if r.verdict != "ok":
            break
    assert r.verdict == "violation", "no seed caught the non-atomic batch"
    assert r.fired["kill-mid-batch"] > 0
    mid = [e for e in h.events if e["f"] == "kill-mid-batch"]
    assert all(e["value"]["sigkill"] for e in mid)
    ok, _ = run_seed(sc, seed, "sim")
    assert ok.verdict == "ok" and ok.fired["kill"] == r.fired["kill"], ok.violations


def test_each_moment_of_the_kill_fires_and_is_counted():
    r, h = run_seed(kill_scenario(kill=0.2, ops=60), 0, "sim")
    assert r.verdict == "ok", r.violations
    for kind in ("kill-before", "kill-during", "kill-after-reply", "kill-mid-batch"):
        assert kind in r.enabled and r.fired[kind] > 0, (kind, kills(r))
    assert r.fired["kill"] == sum(r.fired[k] for k in isolate.KILL_KINDS + (isolate.KILL_LATE,))
    events = [e for e in h.events if e["process"] == "nemesis" and e["f"].startswith("kill")]
    assert len(events) == r.fired["kill"]
    after = [e for e in events if e["f"] == "kill-after-reply"]
    assert all(e["value"]["reply_discarded"] and e["value"]["sigkill"] for e in after)
    # the op killed before its request was written failed; the others are info
    by_index = {e["index"]: e for e in h.events}
    for e in events:
        if e["f"] == "kill-before":
            done = next(x for x in h.events[e["index"]:] if x["process"] == e["value"]["process"]
                        and x["type"] != "invoke")
            assert done["type"] == "fail" and done["value"]["error"] == "KilledBefore"
    assert by_index and [e for e in h.events if e["process"] == "probe"]


def test_the_kill_nemesis_without_isolation_is_not_offered():
    sc = kill_scenario().with_overrides(isolate="none")
    r, _ = run_seed(sc, 0, "sim")
    assert "kill" in r.enabled and r.fired.get("kill", 0) == 0 and "kill" not in r.offered


COUNTING = {"store": 10, "get": 5, "count": 10}


def test_a_child_that_dies_by_itself_is_recorded_and_the_run_goes_on():
    sc = kill_scenario(ops=30, ops_mix=COUNTING, kill=0.0)
    r, h = run_seed(sc, 0, f"{BROKEN}:dies_on_count")
    died = [e for e in h.events if e["f"] == "child-died"]
    assert died and died[0]["value"]["exit"] == 3
    # the call it died in is the store's own error: an availability finding
    assert r.verdict == "violation" and r.availability["count"]["own"] >= 1
    assert any(e["process"] == "probe" for e in h.events[died[0]["index"]:])


def test_a_hung_child_is_killed_after_the_reply_timeout(monkeypatch):
    monkeypatch.setattr(isolate, "REPLY_TIMEOUT_S", 1)
    sc = kill_scenario(ops=30, ops_mix=COUNTING, kill=0.0)
    r, h = run_seed(sc, 0, f"{BROKEN}:slow_count")
    died = [e for e in h.events if e["f"] == "child-died"]
    assert died and "no reply in 1 s" in died[0]["value"]["why"]
    assert died[0]["value"]["exit"] == -signal.SIGKILL


def test_crash_pids_are_killed_with_the_child(tmp_path):
    b = isolate.isolated_factory(f"{BROKEN}:with_helper")(BackendConfig(dim=3, location=str(tmp_path)))
    (helper,) = b.crash_pids()
    assert os.path.exists(f"/proc/{helper}")
    report = b.kill_process()
    assert report["killed"] == [b.pid, helper] and report["lingering"] == [] and report["exit"] == -9
    with pytest.raises(isolate.ChildGone):
        b.count()


def test_threads_mode_runs_every_client_in_the_one_child():
    r, h = run_seed(load("crud").with_overrides(ops=20, clients=3, isolate="process"), 0, "sim",
                    concurrency="threads")
    assert r.verdict == "ok", r.violations
    assert h.meta["isolate"] == "process" and len([e for e in h.events if e["type"] == "ok"]) > 40
