"""The register, cas-register and kv models, through EDN histories.

Hand-written histories pin down info semantics (an unknown write may take
effect any time after its call, or never, but at most once and never
before its call); Hypothesis properties check that every history made by
a sequential execution with stretched call/return times is linearizable,
that one impossible read makes it not, and that a budget too small gives
unknown, never a pass.
"""

import pytest
from hypothesis import assume, given, settings, strategies as st

from dst.check.linearizability import UNKNOWN, Operation, check
from dst.check.edn import parse_events, to_operations
from dst.check.models.base import MapState
from dst.check.models.kv import KvModel
from dst.check.models.register import RegisterModel

MODELS = {"register": lambda: RegisterModel(), "cas-register": lambda: RegisterModel(cas=True),
          "kv": lambda: KvModel()}


def edn(*events):
    """Events as (process, type, f, value) or (process, type, f, value, key)."""
    lines = []
    for e in events:
        p, t, f, v = e[:4]
        key = f', :key "{e[4]}"' if len(e) > 4 else ""
        lines.append(f"{{:process {p}, :type :{t}, :f :{f}{key}, :value {_val(v)}}}")
    return "\n".join(lines) + "\n"


def _val(v):
    if v is None:
        return "nil"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_val(x) for x in v) + "]"
    return str(v)


def run(text, model_name, **kw):
    model = MODELS[model_name]()
    ops, _ = to_operations(parse_events(text, "h.edn"), model, "h.edn")
    return check(model, ops, **kw)


def verdict(text, model_name="register", **kw):
    return run(text, model_name, **kw).verdict


# -- register ---------------------------------------------------------------------

def test_sequential_reads_see_the_last_write():
    h = edn((0, "invoke", "read", None), (0, "ok", "read", None),
            (0, "invoke", "write", 1), (0, "ok", "write", 1),
            (0, "invoke", "read", None), (0, "ok", "read", 1))
    assert verdict(h) == "ok"


def test_stale_read_is_a_violation_with_its_witness():
    h = edn((0, "invoke", "write", 1), (0, "ok", "write", 1),
            (0, "invoke", "write", 2), (0, "ok", "write", 2),
            (1, "invoke", "read", None), (1, "ok", "read", 1))
    r = run(h, "register")
    assert r.verdict == "violation"
    fl = r.failure
    assert [o.index for o in fl.prefix] == [1, 3]            # invoke lines of the writes
    assert [o.index for o in fl.unplaced] == [5]
    assert fl.state == 2
    assert fl.explanation == "read returned 1, but the register holds 2"


def test_concurrent_read_may_see_old_or_new():
    for seen in ("nil", 1):
        h = (edn((0, "invoke", "write", 1), (1, "invoke", "read", None)) +
             f"{{:process 1, :type :ok, :f :read, :value {seen}}}\n" + edn((0, "ok", "write", 1)))
        assert verdict(h) == "ok", seen


def test_info_write_is_assumed_applied_late():
    # write 2 never completes; a read after its call still sees 1, and a
    # later read sees 2: it took effect between the two reads.
    h = edn((0, "invoke", "write", 1), (0, "ok", "write", 1),
            (1, "invoke", "write", 2), (1, "info", "write", 2),
            (2, "invoke", "read", None), (2, "ok", "read", 1),
            (3, "invoke", "read", None), (3, "ok", "read", 2))
    assert verdict(h) == "ok"


def test_invoke_never_completed_is_assumed_applied_late():
    h = edn((0, "invoke", "write", 1), (0, "ok", "write", 1),
            (1, "invoke", "write", 2),
            (2, "invoke", "read", None), (2, "ok", "read", 1),
            (3, "invoke", "read", None), (3, "ok", "read", 2))
    assert verdict(h) == "ok"


def test_info_write_is_assumed_never_applied():
    h = edn((0, "invoke", "write", 1), (0, "ok", "write", 1),
            (1, "invoke", "write", 2), (1, "info", "write", 2),
            (2, "invoke", "read", None), (2, "ok", "read", 1),
            (3, "invoke", "read", None), (3, "ok", "read", 1))
    assert verdict(h) == "ok"


def test_info_write_cannot_take_effect_before_its_call():
    h = edn((2, "invoke", "read", None), (2, "ok", "read", 2),
            (1, "invoke", "write", 2), (1, "info", "write", 2))
    assert verdict(h) == "violation"


def test_info_write_takes_effect_at_most_once():
    h = edn((0, "invoke", "write", 1), (0, "ok", "write", 1),
            (1, "invoke", "write", 2), (1, "info", "write", 2),
            (2, "invoke", "read", None), (2, "ok", "read", 2),
            (0, "invoke", "write", 1), (0, "ok", "write", 1),
            (3, "invoke", "read", None), (3, "ok", "read", 2))
    assert verdict(h) == "violation"


def test_two_info_writes_apply_in_either_order_once_each():
    start = [(0, "invoke", "write", 2), (0, "info", "write", 2),
             (1, "invoke", "write", 3), (1, "info", "write", 3)]
    reads = lambda *vs: [e for i, v in enumerate(vs)  # noqa: E731
                         for e in ((10 + i, "invoke", "read", None), (10 + i, "ok", "read", v))]
    assert verdict(edn(*start, *reads(3, 2))) == "ok"
    assert verdict(edn(*start, *reads(2, 3))) == "ok"
    assert verdict(edn(*start, *reads(2, 3, 2))) == "violation"


def test_failed_write_did_not_happen():
    h = edn((0, "invoke", "write", 1), (0, "ok", "write", 1),
            (1, "invoke", "write", 2), (1, "fail", "write", 2),
            (2, "invoke", "read", None), (2, "ok", "read", 2))
    assert verdict(h) == "violation"


def test_true_is_not_one():
    h = edn((0, "invoke", "write", 1), (0, "ok", "write", 1)) + \
        "{:process 1, :type :invoke, :f :read, :value nil}\n{:process 1, :type :ok, :f :read, :value true}\n"
    assert verdict(h) == "violation"


# -- cas-register -------------------------------------------------------------------

W1 = [(0, "invoke", "write", 1), (0, "ok", "write", 1)]


def read(p, v):
    return [(p, "invoke", "read", None), (p, "ok", "read", v)]


def test_cas_ok_means_it_succeeded():
    assert verdict(edn(*W1, (1, "invoke", "cas", [1, 2]), (1, "ok", "cas", [1, 2]), *read(2, 2)),
                   "cas-register") == "ok"
    assert verdict(edn(*W1, (1, "invoke", "cas", [1, 2]), (1, "ok", "cas", [1, 2]), *read(2, 1)),
                   "cas-register") == "violation"


def test_cas_ok_needs_the_old_value():
    r = run(edn((1, "invoke", "cas", [1, 2]), (1, "ok", "cas", [1, 2])), "cas-register")
    assert r.verdict == "violation"
    assert r.failure.explanation == "cas 1 -> 2 succeeded, but the register holds None"


def test_failed_cas_is_dropped():
    h = edn(*W1, (1, "invoke", "cas", [1, 2]), (1, "fail", "cas", [1, 2]), *read(2, 1))
    assert verdict(h, "cas-register") == "ok"
    h = edn(*W1, (1, "invoke", "cas", [1, 2]), (1, "fail", "cas", [1, 2]), *read(2, 2))
    assert verdict(h, "cas-register") == "violation"


def test_info_cas_applies_late_or_never_but_only_on_its_old_value():
    cas = [(1, "invoke", "cas", [1, 2]), (1, "info", "cas", [1, 2])]
    assert verdict(edn(*W1, *cas, *read(2, 1), *read(3, 2)), "cas-register") == "ok"
    assert verdict(edn(*W1, *cas, *read(2, 1), *read(3, 1)), "cas-register") == "ok"
    # the value moved to 3 before anyone saw 2: the cas can no longer apply
    h = edn(*W1, *cas, (4, "invoke", "write", 3), (4, "ok", "write", 3), *read(2, 3), *read(3, 2))
    assert verdict(h, "cas-register") == "violation"
    bad = [(1, "invoke", "cas", [5, 2]), (1, "info", "cas", [5, 2])]
    assert verdict(edn(*W1, *bad, *read(2, 2)), "cas-register") == "violation"


def test_register_step_is_pure_and_explains():
    m = RegisterModel(cas=True)
    s = m.init()
    assert s is None
    assert m.step(s, ("write", 3), None) == (True, 3)
    assert m.step(3, ("cas", 3, 4), True) == (True, 4)
    assert m.step(3, ("cas", 2, 4), UNKNOWN) == (True, 3)
    assert m.step(3, ("cas", 2, 4), False) == (True, 3)
    assert m.step(3, ("cas", 3, 4), False)[0] is False
    assert m.step(3, ("read",), 3) == (True, 3)
    assert m.step(3, ("read",), 4)[0] is False
    assert m.describe(3) == "value 3"


# -- kv -----------------------------------------------------------------------------

def test_kv_initial_value_is_empty_and_nil_reads_as_empty():
    h = edn((0, "invoke", "get", None, "a"), (0, "ok", "get", "", "a"),
            (0, "invoke", "get", None, "b"), (0, "ok", "get", None, "b"))
    assert verdict(h, "kv") == "ok"


def test_kv_append_concatenates_and_put_replaces():
    h = edn((0, "invoke", "append", "x", "a"), (0, "ok", "append", "x", "a"),
            (0, "invoke", "append", "y", "a"), (0, "ok", "append", "y", "a"),
            (1, "invoke", "get", None, "a"), (1, "ok", "get", "xy", "a"),
            (0, "invoke", "put", "z", "a"), (0, "ok", "put", "z", "a"),
            (1, "invoke", "get", None, "a"), (1, "ok", "get", "z", "a"),
            (1, "invoke", "get", None, "b"), (1, "ok", "get", "", "b"))
    for part in (True, False):
        assert verdict(h, "kv", partition=part) == "ok"
    bad = h.replace(':value "xy"', ':value "yx"')
    for part in (True, False):
        r = run(bad, "kv", partition=part)
        assert r.verdict == "violation"
        assert r.failure.explanation == "get 'a' returned 'yx', but the key holds 'xy'"
    r = run(bad, "kv")
    assert r.partitions == 2 and r.failure.partition_label == "key 'a'"
    assert r.failure.partition_ops == 5


def test_kv_partitions_follow_first_appearance():
    h = edn((0, "invoke", "put", "1", "z"), (0, "ok", "put", "1", "z"),
            (0, "invoke", "put", "1", "a"), (0, "ok", "put", "1", "a"),
            (0, "invoke", "get", None, "z"), (0, "ok", "get", "1", "z"))
    m = KvModel()
    ops, _ = to_operations(parse_events(h, "h.edn"), m, "h.edn")
    assert [[o.id for o in p] for p in m.partition(ops)] == [[0, 2], [1]]
    assert [m.describe_partition(p) for p in m.partition(ops)] == ["key 'z'", "key 'a'"]


def test_kv_state_is_immutable_and_hashes_by_value():
    m = KvModel()
    s0 = m.init()
    ok, s1 = m.step(s0, ("append", "a", "x"), None)
    assert ok and s0.items == {} and s1.items == {"a": "x"}
    ok, s2 = m.step(s1, ("put", "a", ""), None)   # back to the initial value
    assert s2 == s0 and hash(s2) == hash(s0) and s1.items == {"a": "x"}
    ok, s3 = m.step(s0, ("put", "a", "x"), None)
    assert s3 == s1 and hash(s3) == hash(s1)
    assert m.step(s1, ("get", "a"), "x") == (True, s1)
    assert m.step(s1, ("get", "a"), UNKNOWN) == (True, s1)
    assert m.step(s1, ("get", "b"), "x")[0] is False
    assert m.describe(s1) == "{'a': 'x'} (other keys \"\")"
    assert m.describe(s0) == '{} (every key "")'


def test_map_state_set_keeps_one_representation():
    s = MapState().set("k", "v", "").set("k", "", "")
    assert s == MapState() and len(s) == 0


# -- the checker's turns between parts ------------------------------------------------

def test_an_easy_failing_part_is_found_behind_an_intractable_passing_one():
    # Key "a": 14 concurrent appends and a read that needs them in reverse
    # order (the search tries the appends in call order, and the model's
    # hopeless cut only looks LOOKAHEAD_RETURNS returns ahead, so billions
    # of orders stay to try); key "b": a plain stale read. The parts take
    # turns, so "b" is found long before "a" could be decided.
    ops = []

    def add(inp, out, call, ret):
        ops.append(Operation(len(ops), len(ops), inp[0], inp, out, call, ret, None, len(ops)))

    for i in range(14):
        add(("append", "a", f"<{i}>"), None, i, 100 + i)
    add(("get", "a"), "".join(f"<{i}>" for i in reversed(range(14))), 200, 201)
    add(("put", "b", "1"), None, 300, 301)
    add(("get", "b"), "2", 302, 303)
    m = KvModel()
    r = check(m, ops, budget_steps=200_000)
    assert r.verdict == "violation"
    assert r.failure.partition_label == "key 'b'"
    assert r.steps < 5_000
    assert [p["verdict"] for p in r.details["partitions"]] == ["undecided", "violation"]
    whole = check(m, ops, budget_steps=20_000, partition=False)
    assert whole.verdict == "unknown" and whole.steps == 20_000


def test_all_failures_reports_every_failing_part():
    h = edn((0, "invoke", "put", "1", "a"), (0, "ok", "put", "1", "a"),
            (0, "invoke", "get", None, "a"), (0, "ok", "get", "2", "a"),
            (0, "invoke", "put", "1", "b"), (0, "ok", "put", "1", "b"),
            (0, "invoke", "get", None, "b"), (0, "ok", "get", "1", "b"),
            (0, "invoke", "get", None, "c"), (0, "ok", "get", "3", "c"))
    assert len(run(h, "kv").failures) == 1
    r = run(h, "kv", all_failures=True)
    assert [f.partition_label for f in r.failures] == ["key 'a'", "key 'c'"]


# -- properties -------------------------------------------------------------------------

VALUES = st.integers(0, 3)


@st.composite
def sequential_runs(draw, model_name):
    """A sequential execution, then stretched call/return times.

    Op i takes effect at instant 100*(i+1); its interval is drawn around
    that instant (so it overlaps its neighbours at random), which keeps
    the sequential order a valid linearization. Some writes end ``info``
    (applied, outcome unseen); some extra ``info`` writes never applied.
    Returns (EDN text, indexes of ok reads in event order, model name).
    """
    n = draw(st.integers(1, 9))
    model = MODELS[model_name]()
    state = model.init()
    events = []       # (time, order, p, type, f, value, key)
    reads = []
    keys = ["a", "b"]
    for i in range(n):
        point = 100 * (i + 1)
        call = point - draw(st.integers(0, 250))
        ret = point + draw(st.integers(0, 250))
        roll = draw(st.integers(0, 9))
        key = draw(st.sampled_from(keys)) if model_name == "kv" else None
        if model_name == "kv":
            f = "get" if roll < 4 else "put" if roll < 6 else "append"
            value = None if f == "get" else f"<{i}>"
            inp = ("get", key) if f == "get" else (f, key, value)
            out = state.items.get(key, "") if f == "get" else None
        else:
            f = "read" if roll < 4 else "cas" if model_name == "cas-register" and roll < 7 else "write"
            value = None if f == "read" else draw(VALUES) if f == "write" else (draw(VALUES), draw(VALUES))
            inp = ("read",) if f == "read" else ("write", value) if f == "write" else ("cas", *value)
            out = state if f == "read" else True if f == "cas" else None
        cas_fails = f == "cas" and state != value[0]
        if not cas_fails:
            ok, state = model.step(state, inp, out)
            assert ok
        done = "fail" if cas_fails else "ok"
        if f not in ("read", "get") and not cas_fails and draw(st.integers(0, 4)) == 0:
            done = "info"
        shown = out if f in ("read", "get") else value
        events.append((call, 0, i, "invoke", f, value if f not in ("read", "get") else None, key))
        if done != "info" or draw(st.booleans()):
            events.append((ret, 1, i, done, f, shown, key))
        if f in ("read", "get"):
            reads.append(i)
    for j in range(draw(st.integers(0, 2))):        # info writes that never took effect
        call = draw(st.integers(0, 100 * (n + 1)))
        key = draw(st.sampled_from(keys)) if model_name == "kv" else None
        f = "put" if model_name == "kv" else "write"
        events.append((call, 0, 100 + j, "invoke", f, 7 if model_name != "kv" else f"<never{j}>", key))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return events, reads


def render(events, model_name):
    out = []
    for _, _, p, t, f, v, key in events:
        out.append((p, t, f, v, key) if model_name == "kv" else (p, t, f, v))
    return edn(*out)


@pytest.mark.parametrize("model_name", sorted(MODELS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_stretched_sequential_runs_are_linearizable(model_name, data):
    events, _ = data.draw(sequential_runs(model_name))
    text = render(events, model_name)
    for part in (True, False):
        assert verdict(text, model_name, partition=part) == "ok", text


@pytest.mark.parametrize("model_name", sorted(MODELS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_one_read_of_a_value_never_written_is_a_violation(model_name, data):
    events, reads = data.draw(sequential_runs(model_name))
    ok_reads = [k for k, e in enumerate(events) if e[3] == "ok" and e[4] in ("read", "get")]
    assume(ok_reads)
    k = data.draw(st.sampled_from(ok_reads))
    e = events[k]
    events[k] = e[:5] + ("never written" if model_name == "kv" else 99,) + e[6:]
    text = render(events, model_name)
    for part in (True, False):
        r = run(text, model_name, partition=part)
        assert r.verdict == "violation", text
        assert r.failure.unplaced


@pytest.mark.parametrize("model_name", ["cas-register", "kv"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_small_budget_gives_unknown_never_a_pass(model_name, data):
    events, _ = data.draw(sequential_runs(model_name))
    if data.draw(st.booleans()):      # sometimes a violating history
        ok_reads = [k for k, e in enumerate(events) if e[3] == "ok" and e[4] in ("read", "get")]
        if ok_reads:
            k = data.draw(st.sampled_from(ok_reads))
            events[k] = events[k][:5] + ("never written" if model_name == "kv" else 99,) + events[k][6:]
    text = render(events, model_name)
    part = data.draw(st.booleans())
    full = run(text, model_name, partition=part)
    assert full.verdict in ("ok", "violation")
    budget = data.draw(st.integers(0, 2 * full.steps))
    r = run(text, model_name, partition=part, budget_steps=budget)
    assert r.steps <= budget
    if budget >= full.steps:
        assert (r.verdict, r.steps) == (full.verdict, full.steps)
    else:
        assert r.verdict == "unknown" and "budget" in r.reason


# -- the benchmark's generated histories ---------------------------------------------------

@pytest.mark.parametrize("kind", ["kv", "register", "cas-register"])
def test_generated_histories_are_linearizable_and_seeded(kind):
    from dst.bench.checker import synthetic_ops
    ops = synthetic_ops(kind, 400, clients=4, keys=3, seed=7, info_ppm=100_000)
    assert ops == synthetic_ops(kind, 400, clients=4, keys=3, seed=7, info_ppm=100_000)
    assert ops != synthetic_ops(kind, 400, clients=4, keys=3, seed=8, info_ppm=100_000)
    assert any(op.output is UNKNOWN for op in ops)
    model = MODELS[kind]()
    for part in (True, False):
        assert check(model, ops, partition=part).verdict == "ok"


def test_checker_figures_shape(monkeypatch):
    import dst.bench.checker as bc
    monkeypatch.setattr(bc, "PORCUPINE", ("c01-ok", "c01-bad"))
    monkeypatch.setattr(bc, "ETCD_LIKE", {"histories": 3, "ops": (20, 40), "clients": (5, 10),
                                          "info_ppm": 30_000})
    monkeypatch.setattr(bc, "SYNTHETIC", (("kv-small", "kv", 200, 3, 2, True),
                                          ("reg-small", "cas-register", 200, 3, 1, False)))
    f = bc.checker_figures()
    assert f["wrong_verdicts"] == []
    assert [(x["history"], x["partitioned"], x["verdict"]) for x in f["porcupine"]] == [
        ("c01-ok", True, "ok"), ("c01-ok", False, "ok"),
        ("c01-bad", True, "violation"), ("c01-bad", False, "violation")]
    assert all(x["check_s"] >= 0 and x["steps"] > 0 for x in f["porcupine"] + f["synthetic"])
    assert f["etcd_like"]["histories"] == 3 and f["etcd_like"]["wrong_verdicts"] == 0


def test_etcd_like_histories_mix_reads_writes_and_cas_as_jepsen_does():
    """The etcd-shaped suite's generator: reads, writes and cas drawn with
    equal odds (a cas whose compare fails is left out, as Jepsen's ``fail``),
    timed-out writes and cas kept as unknown on a fresh process, some of
    them a cas that did not apply; every history linearizable."""
    from collections import Counter

    from dst.bench.checker import synthetic_ops
    from dst.check.linearizability import INF
    ops = synthetic_ops("cas-register", 3000, clients=7, keys=1, seed=3, info_ppm=100_000,
                        jepsen_mix=True)
    kinds = Counter(op.f for op in ops)
    assert 900 < kinds["read"] < 1100 and 900 < kinds["write"] < 1100      # a third of 3000 each
    assert 100 < kinds["cas"] < 500          # the cas that applied (a fifth), and timed-out ones
    unknown = [op for op in ops if op.output is UNKNOWN]
    assert unknown and all(op.f in ("write", "cas") and op.ret == INF for op in unknown)
    last_call = {}
    for op in ops:
        last_call[op.process] = max(last_call.get(op.process, op.call), op.call)
    assert all(last_call[op.process] == op.call for op in unknown)      # its process is done
    # A timed-out cas stays whether or not its compare would have held:
    # about as many as timed-out writes (only a fifth would, otherwise).
    timed_out = Counter(op.f for op in unknown)
    assert timed_out["cas"] > 0.6 * timed_out["write"], timed_out
    assert check(RegisterModel(cas=True), ops).verdict == "ok"
