"""The linearizability checker on hand-written histories."""

import numpy as np

from dst.check.linearizability import INF, UNKNOWN, Operation, check
from dst.check.models.vector import INVALID, VectorModel

V = [np.array(v, dtype=np.float32) for v in ([1, 0], [0, 1], [1, 1], [-1, 0.5])]


def model(**kw):
    return VectorModel(V, dim=2, **kw)


class H:
    """A tiny builder: ops with explicit call/return times."""

    def __init__(self):
        self.ops = []

    def op(self, inp, out, call, ret, dispatch=None, process=None):
        if ret is None:                        # info: never completed
            out, ret = UNKNOWN, INF
        self.ops.append(Operation(len(self.ops), process if process is not None else len(self.ops),
                                  inp[0], inp, out, call, ret, dispatch, len(self.ops)))
        return self


def store(i, r):
    return ("store", i, r, None)


def get(i):
    return ("get", i, None)


def delete(i):
    return ("delete", i, None)


def count():
    return ("count", None)


def run(h, **kw):
    m = model()
    return check(m, h.ops, explain=m.explain, **kw)


def test_sequential_history_is_linearizable():
    h = H().op(store("a", 0), None, 0, 1, 0).op(get("a"), 0, 2, 3, 1).op(count(), 1, 4, 5, 2)
    r = run(h)
    assert r.verdict == "ok" and r.witness


def test_concurrent_read_may_see_either_value():
    for seen in (0, None):
        h = H().op(store("a", 0), None, 0, 10, 0).op(get("a"), seen, 2, 5, 1)
        assert run(h).verdict == "ok", seen


def test_stale_read_after_completed_write_is_a_violation():
    h = H().op(store("a", 0), None, 0, 1, 0).op(get("a"), None, 2, 3, 1)
    r = run(h)
    assert r.verdict == "violation"
    assert r.failure.op.f == "get"
    assert "get('a') should return vector #0, got None" in r.failure.witness_explanation


def test_lost_update_is_a_violation():
    h = (H().op(store("a", 0), None, 0, 1, 0).op(store("a", 1), None, 2, 3, 1)
         .op(get("a"), 0, 4, 5, 2))
    assert run(h).verdict == "violation"


def test_delete_result_must_match():
    h = H().op(store("a", 0), None, 0, 1, 0).op(delete("a"), False, 2, 3, 1)
    assert run(h).verdict == "violation"
    h = H().op(store("a", 0), None, 0, 1, 0).op(delete("a"), True, 2, 3, 1).op(get("a"), None, 4, 5, 2)
    assert run(h).verdict == "ok"


def test_info_write_may_apply_late():
    # store is info (never acked); a read sees nothing, a later read sees it.
    h = (H().op(store("a", 0), None, 0, None)
         .op(get("a"), None, 5, 6, 1).op(get("a"), 0, 7, 8, 2))
    r = run(h)
    assert r.verdict == "ok"


def test_info_write_may_never_apply():
    h = H().op(store("a", 0), None, 0, None).op(get("a"), None, 5, 6).op(count(), 0, 7, 8)
    assert run(h).verdict == "ok"


def test_info_write_cannot_unapply():
    # Once a read saw it, it stays: a later read of nothing is a violation.
    h = (H().op(store("a", 0), None, 0, None)
         .op(get("a"), 0, 5, 6).op(get("a"), None, 7, 8))
    assert run(h).verdict == "violation"


def test_info_write_cannot_take_effect_before_its_call():
    h = H().op(get("a"), 0, 0, 1).op(store("a", 0), None, 5, None)
    assert run(h).verdict == "violation"


def test_only_the_full_search_accepts_when_the_witness_order_is_wrong():
    # The recorded dispatch order puts the get before the store, which
    # fails; but the intervals overlap and store-then-get is legal.
    h = H().op(store("a", 0), None, 0, 10, dispatch=1).op(get("a"), 0, 2, 5, dispatch=0)
    r = run(h)
    assert r.verdict == "ok"
    assert not r.witness
    assert run(h, use_witness=False).verdict == "ok"


def test_witness_alone_never_reports_a_violation():
    # Witness order fails, full search must decide: and it says ok.
    h = (H().op(store("a", 0), None, 0, 10, dispatch=2).op(store("a", 1), None, 0, 10, dispatch=1)
         .op(get("a"), 1, 11, 12, dispatch=3))
    r = run(h)
    assert r.verdict == "ok" and not r.witness


def test_budget_exhausted_is_unknown_never_ok():
    h = H()
    # Many concurrent writes and a final read that no order explains.
    for i in range(12):
        h.op(store(f"k{i}", i % 4), None, 0, 100)
    h.op(count(), 99, 101, 102)
    r = run(h, budget_steps=50)
    assert r.verdict == "unknown"
    assert "budget" in r.reason
    assert run(h).verdict == "violation"


def test_invalid_input_must_be_refused():
    bad = ("store", "a", 0, "vector has zero norm")
    assert run(H().op(bad, INVALID, 0, 1)).verdict == "ok"
    assert run(H().op(bad, None, 0, 1)).verdict == "violation"
    # and valid input must not be refused
    assert run(H().op(store("a", 0), INVALID, 0, 1)).verdict == "violation"


def test_violation_reports_prefix_and_unplaced_ops():
    h = (H().op(store("a", 0), None, 0, 1, 0).op(store("b", 1), None, 2, 3, 1)
         .op(count(), 5, 4, 5, 2))
    r = run(h)
    assert r.verdict == "violation"
    assert [o.id for o in r.failure.prefix] == [0, 1]
    assert [o.id for o in r.failure.unplaced] == [2]
    assert "count() should be 2, got 5" in r.failure.explanation


# -- search ranking ------------------------------------------------------------

E = 1e-4
# Vectors whose cosines with q=[1,0] are chosen around score_eps.
def _unit(angle):
    return np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)


def ranking_model(exact=True):
    vecs = [np.array([1, 0], dtype=np.float32),   # 0: the query
            np.array([2, 0], dtype=np.float32),   # 1: exact tie with 0 (scaled copy)
            _unit(np.arccos(1 - 0.3 * E)),        # 2: 0.3 eps below 1
            _unit(np.arccos(1 - 3 * E)),          # 3: 3 eps below 1
            np.array([0, 1], dtype=np.float32),   # 4: score 0
            np.array([-1, 0], dtype=np.float32)]  # 5: score -1
    return VectorModel(vecs, dim=2, score_eps=E, exact=exact)


def sp(m, items, limit, hits):
    return m.search_problem(items, 0, limit, tuple(hits))


def true(m, ref):
    return m.true_scores(0)[ref]


def test_exact_ties_may_come_in_any_order():
    m = ranking_model()
    items = {"a": 0, "b": 1, "z": 4}
    assert sp(m, items, 2, [("a", 1.0), ("b", 1.0)]) is None
    assert sp(m, items, 2, [("b", 1.0), ("a", 1.0)]) is None
    # and either may fill the last slot
    assert sp(m, items, 1, [("b", 1.0)]) is None


def test_near_tie_below_eps_accepted_either_way_above_eps_not():
    m = ranking_model()
    items = {"a": 0, "n": 2, "f": 3}
    s = m.true_scores(0)
    assert sp(m, items, 3, [("n", s[2]), ("a", s[0]), ("f", s[3])]) is None     # 0.3 eps: a tie
    why = sp(m, items, 3, [("f", s[3]), ("a", s[0]), ("n", s[2])])               # 3 eps: not
    assert why and "out of order" in why
    why = sp(m, items, 1, [("f", s[3])])
    assert why and "left out 'a'" in why


def test_wrong_length_dup_dead_and_score():
    m = ranking_model()
    items = {"a": 0, "z": 4, "m": 5}
    s = m.true_scores(0)
    assert "returned 1 hits" in sp(m, items, 2, [("a", 1.0)])
    assert "twice" in sp(m, items, 2, [("a", 1.0), ("a", 1.0)])
    assert "not live" in sp(m, items, 2, [("a", 1.0), ("ghost", 0.0)])
    assert "true cosine" in sp(m, items, 2, [("a", 1.0), ("z", 0.5)])
    assert sp(m, items, 5, [("a", 1.0), ("z", s[4]), ("m", -1.0)]) is None
    assert sp(m, items, 2, [("a", 1.0 + 0.5 * E), ("z", s[4] - 0.5 * E)]) is None


def test_ann_predicate_allows_misses_but_not_phantoms():
    m = ranking_model(exact=False)
    items = {"a": 0, "z": 4, "m": 5}
    assert sp(m, items, 1, [("z", 0.0)]) is None           # a miss: fine for ANN
    assert "not live" in sp(m, items, 1, [("ghost", 0.0)])
    assert "returned 0 hits" in sp(m, items, 1, [])        # short: not fine
    assert "out of order" in sp(m, items, 2, [("z", 0.0), ("a", 1.0)])
