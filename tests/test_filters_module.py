"""dst.filters: canonical, dumps, matches, show, simpler; and the
workload's bad attributes and filters refused alike by validation, by the
oracle and by the sim backend."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from backends.sim import SimBackend
from dst import filters
from dst.backend import BackendConfig
from dst.errors import InvalidInput
from dst.history import History, VectorTable
from dst.rng import Rng
from dst.sim.runner import check_history
from dst.validate import check_attrs, check_where

NAMES = ("tenant", "n", "flag", "label", "nope")
strs = st.sampled_from(("t0", "t1", "", "'", "a b", "ü"))
ints = st.sampled_from((0, 1, 5, -1, filters.INT_MAX, filters.INT_MIN))
values = st.one_of(strs, ints, st.booleans())
names = st.sampled_from(NAMES)


def _in_leaf(draw_values):
    return draw_values


leaves = st.one_of(
    st.tuples(st.sampled_from(("eq", "ne")), names, values).map(lambda t: {t[0]: [t[1], t[2]]}),
    st.tuples(st.sampled_from(filters.ORDER), names, ints).map(lambda t: {t[0]: [t[1], t[2]]}),
    st.tuples(names, st.one_of(st.lists(strs, min_size=1, max_size=4), st.lists(ints, min_size=1, max_size=4),
                               st.lists(st.booleans(), min_size=1, max_size=2)))
      .map(lambda t: {"in": [t[0], t[1]]}),
    names.map(lambda n: {"exists": n}),
)
trees = st.recursive(leaves, lambda kids: st.one_of(
    st.lists(kids, max_size=3).map(lambda c: {"and": c}),
    st.lists(kids, max_size=3).map(lambda c: {"or": c}),
    kids.map(lambda c: {"not": c})), max_leaves=8)
attrs_st = st.dictionaries(names.filter(lambda n: n != "nope"), values, max_size=4)


def reference(where, attrs):
    """DESIGN's two-valued semantics, written out plainly and apart from
    dst.filters: a comparison on a missing attribute, or one of another
    type (bool is not int), is false; not flips it."""
    if where is None:
        return True
    op = next(iter(where))
    arg = where[op]
    if op == "and":
        return all(reference(c, attrs) for c in arg)
    if op == "or":
        return any(reference(c, attrs) for c in arg)
    if op == "not":
        return not reference(arg, attrs)
    if op == "exists":
        return arg in attrs
    name, value = arg
    if name not in attrs:
        return False
    have = attrs[name]

    def kind(x):
        return "bool" if isinstance(x, bool) else "int" if isinstance(x, int) else "str"
    if op == "in":
        return any(kind(have) == kind(v) and have == v for v in value)
    if kind(have) != kind(value):
        return False
    if op == "eq":
        return have == value
    if op == "ne":
        return have != value
    if kind(have) != "int":
        return False
    return {"lt": have < value, "le": have <= value, "gt": have > value, "ge": have >= value}[op]


@settings(max_examples=300, deadline=None)
@given(trees)
def test_canonical_is_idempotent_and_dumps_stable(w):
    c = filters.canonical(w)
    assert filters.canonical(c) == c
    assert filters.dumps(w) == filters.dumps(c)
    # the encoder made once gives json.dumps's text with the same arguments
    assert filters.dumps_canonical(c) == json.dumps(c, ensure_ascii=False, separators=(",", ":"),
                                                    sort_keys=True)


@settings(max_examples=500, deadline=None)
@given(trees, attrs_st)
def test_matches_agrees_with_an_independent_evaluator(w, attrs):
    c = filters.canonical(w)
    want = reference(w, attrs)
    assert filters.matches(c, attrs) == want
    # The compiled form (the sim store's and the oracle's), on the row as
    # given and as no attributes at all (None, {}).
    test = filters.matcher(c)
    got = test(attrs)
    assert type(got) is bool and got == want
    assert test(None) is test({}) is reference(w, {})


@settings(max_examples=200, deadline=None)
@given(trees, attrs_st)
def test_simpler_yields_valid_smaller_filters(w, attrs):
    c = filters.canonical(w)
    size = sum(1 for _ in filters.walk(c))
    for s in filters.simpler(c):
        if s is None:
            continue
        assert filters.where_problem(s) is None
        assert filters.canonical(s) == s
        assert sum(1 for _ in filters.walk(s)) <= size


def test_simpler_order_and_in_sets():
    w = filters.canonical({"and": [{"eq": ["tenant", "t1"]}, {"in": ["n", [1, 2, 3, 4]]}]})
    out = list(filters.simpler(w))
    assert out[0] is None
    assert filters.canonical({"eq": ["tenant", "t1"]}) in out
    assert filters.canonical({"in": ["n", [1, 2, 3, 4]]}) in out
    nodes = [filters.dumps(n) for s in out if s for n in filters.walk(s)]
    assert filters.dumps({"eq": ["n", 1]}) in nodes                          # in cut to one value
    assert filters.dumps({"in": ["n", [1, 2]]}) in nodes                     # in cut by half
    assert len(out) == len({filters.dumps(s) for s in out})                  # no repeats


def test_show_and_dumps_examples():
    w = {"and": [{"eq": ["tenant", "t3"]}, {"not": {"lt": ["n", 10]}}]}
    assert filters.show(filters.canonical(w)) in ("tenant = 't3' and not n < 10", "not n < 10 and tenant = 't3'")
    assert filters.show(None) == "no filter"
    assert filters.show({"and": []}) == "true" and filters.show({"or": []}) == "false"
    assert filters.dumps(None) == "null"
    assert filters.dumps({"eq": ["flag", True]}) == '{"eq":["flag",true]}'


def test_two_valued_edges():
    assert filters.matches({"and": []}, None) and not filters.matches({"or": []}, {"n": 1})
    assert not filters.matches({"ne": ["n", 1]}, {})             # ne on a missing attribute
    assert filters.matches({"not": {"eq": ["n", 1]}}, {})
    assert not filters.matches({"eq": ["n", 1]}, {"n": True})    # bool is not int
    assert not filters.matches({"eq": ["flag", True]}, {"flag": 1})
    assert not filters.matches({"lt": ["n", 5]}, {"n": "1"})


def test_compiled_filters_agree_on_every_kind_pair():
    """Every leaf operator, each filter value kind against each row value
    kind (1 and True compare equal in Python: the kinds must keep them
    apart), on a row, no row, and under not: matcher as matches."""
    vals = (True, False, 1, 0, "1", "t0")
    rows = [None, {}] + [{"n": v} for v in vals]
    leaves = [{op: ["n", v]} for op in ("eq", "ne") for v in vals]
    leaves += [{"in": ["n", [v]]} for v in vals] + [{op: ["n", 1]} for op in filters.ORDER]
    leaves += [{"exists": "n"}, {"exists": "m"}]
    for leaf in leaves:
        for w in (leaf, {"not": leaf}, {"and": [leaf, leaf]}, {"or": [{"or": []}, leaf]}):
            c = filters.canonical(w)
            test = filters.matcher(c)
            for row in rows:
                assert test(row) is filters.matches(c, row) is reference(c, row or {}), (c, row)


# -- bad input: validation, the oracle and the sim backend refuse alike ---------

def _bad_inputs():
    from dst.sim.workload import Workload
    r = Rng(7)
    seen_a, seen_w = {}, {}
    for _ in range(400):
        a = Workload.bad_attrs(None, r)
        seen_a.setdefault(repr(a), a)
        w = Workload.bad_where(None, r)
        seen_w.setdefault(repr(w), w)
    return list(seen_a.values()), list(seen_w.values())


BAD_ATTRS, BAD_WHERE = _bad_inputs()


def test_every_bad_kind_was_drawn():
    assert len(BAD_ATTRS) == 14 and len(BAD_WHERE) == 15


def _oracle_refuses(f, value):
    h = History()
    h.table = VectorTable()
    ref = h.table.ref(np.array([1, 0], dtype=np.float32))
    h.meta = {"dim": 2, "exact": True, "metric": "cosine", "filters": True}
    value = {**value, "vector": ref}
    h.add(0, 0, "invoke", f, value)
    h.add(1, 0, "ok", f, {"error": "InvalidInput", "message": "x"})
    good = check_history(h).verdict == "ok"
    h2 = History()
    h2.table, h2.meta = h.table, h.meta
    h2.add(0, 0, "invoke", f, value)
    h2.add(1, 0, "ok", f, None if f == "store" else [])
    accepted_is_violation = check_history(h2).verdict == "violation"
    return good and accepted_is_violation


@pytest.mark.parametrize("attrs", BAD_ATTRS, ids=lambda a: repr(a)[:30])
def test_bad_attrs_refused_everywhere(attrs):
    with pytest.raises(InvalidInput):
        check_attrs(attrs)
    b = SimBackend(BackendConfig(dim=2, location="bad-attrs", namespace="t", fresh=True))
    with pytest.raises(InvalidInput):
        b.store("a", np.array([1, 0], dtype=np.float32), attrs)
    with pytest.raises(InvalidInput):
        b.store_batch([("a", np.array([1, 0], dtype=np.float32), attrs)])
    assert b.count() == 0
    assert _oracle_refuses("store", {"id": "a", "attrs": attrs})


@pytest.mark.parametrize("where", BAD_WHERE, ids=lambda w: repr(w)[:30])
def test_bad_where_refused_everywhere(where):
    with pytest.raises(InvalidInput):
        check_where(where)
    b = SimBackend(BackendConfig(dim=2, location="bad-where", namespace="t", fresh=True))
    b.store("a", np.array([1, 0], dtype=np.float32), {"n": 1})
    with pytest.raises(InvalidInput):
        b.search(np.array([1, 0], dtype=np.float32), 3, where=where)
    assert _oracle_refuses("search", {"limit": 3, "where": where})
