"""The vector model with attributes and filters (issue 12), on histories
written by hand: the filtered search length rule, a non-matching id
caught with an explanation naming the filter, the state hash with
attributes, and int vs bool attributes in get_attrs."""

import numpy as np

from dst.history import History, VectorTable
from dst.sim.runner import check_history


class H:
    """A sequential history: each op invoked and completed in turn."""

    def __init__(self, metric="cosine"):
        self.h = History()
        self.h.table = VectorTable()
        self.h.meta = {"dim": 2, "exact": True, "score_eps": 1e-4, "metric": metric, "filters": True}
        self.t = 0
        self.v = [self.h.table.ref(np.array(x, dtype=np.float32)) for x in ([1, 0], [0, 1], [1, 1])]

    def op(self, f, value, type_, out):
        self.h.add(self.t, 0, "invoke", f, value)
        self.h.add(self.t + 1, 0, type_, f, out)
        self.t += 2
        return self

    def store(self, id_, v, attrs=None):
        value = {"id": id_, "vector": self.v[v]}
        if attrs is not None:
            value["attrs"] = attrs
        return self.op("store", value, "ok", None)

    def search(self, v, limit, where, hits):
        return self.op("search", {"vector": self.v[v], "limit": limit, "where": where}, "ok",
                       [[i, s] for i, s in hits])

    def check(self):
        return check_history(self.h)


def _three(h):
    return (h.store("a", 0, {"tenant": "t1", "n": 5})
             .store("b", 1, {"tenant": "t2"})
             .store("c", 2, {"tenant": "t1", "flag": True}))


def test_filtered_search_right_answer_passes():
    h = _three(H()).search(0, 10, {"eq": ["tenant", "t1"]}, [("a", 1.0), ("c", 2 ** -0.5)])
    assert h.check().verdict == "ok"


def test_filtered_search_length_rule():
    # Two rows match tenant t1: limit 10 must return both, limit 1 one.
    short = _three(H()).search(0, 10, {"eq": ["tenant", "t1"]}, [("a", 1.0)])
    r = short.check()
    assert r.verdict == "violation"
    assert "tenant = 't1'" in r.violations[0]["message"] and "matches 2 live ids" in r.violations[0]["message"]
    assert _three(H()).search(0, 1, {"eq": ["tenant", "t1"]}, [("a", 1.0)]).check().verdict == "ok"
    # A filter no row matches: the empty answer is the only right one.
    assert _three(H()).search(0, 5, {"eq": ["tenant", "t9"]}, []).check().verdict == "ok"


def test_non_matching_id_is_caught_naming_the_filter():
    h = _three(H()).search(0, 10, {"eq": ["tenant", "t1"]}, [("a", 1.0), ("c", 2 ** -0.5), ("b", 0.0)])
    r = h.check()
    assert r.verdict == "violation"
    assert "tenant = 't1'" in r.violations[0]["message"]


def test_missing_attribute_never_matches_a_comparison():
    # b has no n: n < 100 leaves it out, and so does n != 5; not(n < 100) takes it.
    base = lambda: _three(H())    # noqa: E731
    assert base().search(1, 10, {"lt": ["n", 100]}, [("a", 0.0)]).check().verdict == "ok"
    assert base().search(1, 10, {"ne": ["n", 5]}, []).check().verdict == "ok"
    assert base().search(1, 10, {"ne": ["n", 5]}, [("b", 1.0)]).check().verdict == "violation"
    got = base().search(1, 10, {"not": {"lt": ["n", 100]}}, [("b", 1.0), ("c", 2 ** -0.5)])
    assert got.check().verdict == "ok"


def test_restore_without_attrs_clears_them():
    h = _three(H()).store("a", 0)     # a stored again without attributes
    assert h.search(0, 10, {"eq": ["tenant", "t1"]}, [("c", 2 ** -0.5)]).check().verdict == "ok"
    h2 = _three(H()).store("a", 0)
    assert h2.search(0, 10, {"eq": ["tenant", "t1"]},
                     [("a", 1.0), ("c", 2 ** -0.5)]).check().verdict == "violation"


def test_int_and_bool_attributes_are_different_in_get_attrs():
    h = H().store("a", 0, {"flag": True, "n": 1})
    assert h.op("get_attrs", {"id": "a"}, "ok", {"attrs": {"flag": True, "n": 1}}).check().verdict == "ok"
    for wrong in ({"flag": 1, "n": 1}, {"flag": True, "n": True}, {"flag": True}):
        h = H().store("a", 0, {"flag": True, "n": 1})
        assert h.op("get_attrs", {"id": "a"}, "ok", {"attrs": wrong}).check().verdict == "violation", wrong
    # And in filters: flag = 1 matches no bool, n = true no int.
    assert _three(H()).search(0, 10, {"eq": ["flag", 1]}, []).check().verdict == "ok"
    assert _three(H()).search(0, 10, {"eq": ["flag", 1]}, [("c", 2 ** -0.5)]).check().verdict == "violation"


def test_get_attrs_of_absent_and_bare_rows():
    h = H().store("a", 0).op("get_attrs", {"id": "a"}, "ok", {"attrs": {}})
    assert h.op("get_attrs", {"id": "zz"}, "ok", None).check().verdict == "ok"
    assert H().store("a", 0).op("get_attrs", {"id": "a"}, "ok", None).check().verdict == "violation"


def test_state_hash_counts_attributes():
    """Within one model (the hash is the checker's memo key): the same rows
    with other attributes hash differently; the attributes put back, the
    hash comes back (and an attribute set equal by value is the same set,
    whatever its key order)."""
    from dst.check.models.vector import VectorModel
    from dst.history import pair
    h = (_three(H()).store("c", 2, {"tenant": "t1"})
         .store("c", 2, {"flag": True, "tenant": "t1"}))
    m = VectorModel(h.h.table.vectors, 2)
    s = m.init()
    states = []
    for op in m.operations(pair(h.h.events), False):
        ok, s = m.step(s, op.input, op.output)
        assert ok
        states.append(s)
    a, b, c = states[2], states[3], states[4]
    assert a.items == b.items == c.items
    assert a.h != b.h and c.h == a.h
