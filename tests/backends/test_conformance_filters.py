"""Conformance for the two capabilities of issue 12, over every backend of
the conformance suite: attributes with the portable filter, and the three
metrics. Every backend answers exactly what the oracle's rules
(``dst.filters.matches``, ``dst.metrics.score``) say, on hostile values too.
"""

import numpy as np
import pytest

from dst import filters
from dst.errors import InvalidInput
from dst.metrics import METRICS, score
from dst.sim.workload import HOSTILE_STEMS, HOSTILE_VALUES, Workload
from tests.backends.test_conformance import DIM, MAKERS, maker  # noqa: F401 - the fixture

INT_MIN, INT_MAX = filters.INT_MIN, filters.INT_MAX


def vec(rng):
    return rng.standard_normal(DIM).astype(np.float32)


def rows(n=40, seed=3):
    """Rows with the workload's kinds of attributes, hostile values and
    missing attributes included, some with none at all."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = {}
        if i % 10 != 9:
            a["tenant"] = f"t{i % 4}"
        if i % 7 != 0:
            a["n"] = int(i * 37 % 1000)
        if i % 3 == 0:
            a["flag"] = bool(i % 2)
        a["label"] = HOSTILE_VALUES[i % len(HOSTILE_VALUES)]
        if i % 11 == 0:
            a["big"] = (INT_MIN, INT_MAX, 0, -1)[i // 11 % 4]
        if i % 13 == 12:
            a = {}
        out.append((f"{HOSTILE_STEMS[i % len(HOSTILE_STEMS)]}{i}", vec(rng), a))
    return out


FILTERS = [
    {"eq": ["tenant", "t1"]}, {"ne": ["tenant", "t1"]}, {"not": {"eq": ["tenant", "t1"]}},
    {"in": ["tenant", ["t0", "t2"]]}, {"eq": ["tenant", "t9"]},
    {"lt": ["n", 100]}, {"le": ["n", 37]}, {"gt": ["n", 900]}, {"ge": ["n", 0]},
    {"eq": ["flag", True]}, {"eq": ["flag", False]}, {"not": {"eq": ["flag", True]}},
    {"eq": ["flag", 1]}, {"eq": ["n", "37"]}, {"eq": ["tenant", 1]},
    {"exists": "big"}, {"not": {"exists": "big"}}, {"exists": "nope"},
    {"eq": ["big", INT_MAX]}, {"eq": ["big", INT_MIN]}, {"lt": ["big", 0]}, {"ge": ["big", INT_MAX]},
    {"and": [{"eq": ["tenant", "t0"]}, {"lt": ["n", 500]}]},
    {"or": [{"eq": ["tenant", "t3"]}, {"not": {"exists": "n"}}]},
    {"not": {"or": [{"eq": ["tenant", "t0"]}, {"gt": ["n", 500]}]}},
    {"and": []}, {"or": []}, {"not": {"and": []}},
] + [{"eq": ["label", v]} for v in HOSTILE_VALUES] + [{"ne": ["label", HOSTILE_VALUES[0]]},
                                                       {"in": ["label", list(HOSTILE_VALUES[:6])]}]


def test_backend_declares_filters(maker):
    b = maker("fcap")
    assert b.filters is True and b.metric == "cosine"


def test_attributes_round_trip_and_are_replaced_with_the_vector(maker):
    b = maker("fattrs")
    rng = np.random.default_rng(1)
    data = rows(20)
    for id_, v, a in data[:10]:
        b.store(id_, v, a)
    b.store_batch(data[10:])
    for id_, _, a in data:
        got = b.get_attrs(id_)
        assert got == a and filters.attrs_key(got) == filters.attrs_key(a), (id_, got, a)
    first = data[0][0]
    b.store(first, vec(rng))                   # no attributes now: replaced, not merged
    assert b.get_attrs(first) == {}
    b.store_batch([(first, vec(rng), {"n": 1})])
    assert b.get_attrs(first) == {"n": 1}
    b.store(first, vec(rng), {"n": True})      # a bool is not the int 1
    got = b.get_attrs(first)
    assert got == {"n": True} and type(got["n"]) is bool
    assert b.delete(first) is True and b.get_attrs(first) is None
    assert b.get_attrs("never-stored") is None


def test_filtered_search_returns_exactly_the_matching_rows(maker):
    b = maker("fsearch")
    data = rows()
    b.store_batch(data)
    attrs = {i: a for i, _, a in data}
    vecs = {i: v for i, v, _ in data}
    q = data[5][1]
    wrong = []
    for where in FILTERS:
        want = {i for i, a in attrs.items() if filters.matches(filters.canonical(where), a)}
        hits = b.search(q, len(data), where=where)
        got = [h.id for h in hits]
        if len(got) != len(set(got)) or set(got) != want:
            wrong.append(f"{filters.show(where)}: missing {sorted(want - set(got))[:3]}, "
                         f"extra {sorted(set(got) - want)[:3]}")
            continue
        # Ranked within the matching set, each at its true cosine.
        assert all(abs(h.score - score("cosine", q, vecs[h.id])) <= 1e-4 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len(b.search(q, 3, where=where)) == min(3, len(want)), filters.show(where)
    assert not wrong, "\n".join(wrong)


def test_missing_attribute_is_two_valued_not_sql_null(maker):
    b = maker("fnull")
    rng = np.random.default_rng(2)
    b.store("a", vec(rng), {"tenant": "t1"})
    b.store("b", vec(rng), {"tenant": "t2"})
    b.store("c", vec(rng))                        # no tenant at all
    b.store("d", vec(rng), {"tenant": 5})          # another type
    q = vec(rng)

    def ids(where):
        return sorted(h.id for h in b.search(q, 10, where=where))

    assert ids({"eq": ["tenant", "t1"]}) == ["a"]
    assert ids({"ne": ["tenant", "t1"]}) == ["b"]                  # present, same type, different
    assert ids({"not": {"eq": ["tenant", "t1"]}}) == ["b", "c", "d"]  # SQL NULL logic would drop c
    assert ids({"not": {"ne": ["tenant", "t1"]}}) == ["a", "c", "d"]
    assert ids({"not": {"lt": ["tenant", 9]}}) == ["a", "b", "c"]
    assert ids({"exists": "tenant"}) == ["a", "b", "d"]
    assert ids({"eq": ["tenant", 5]}) == ["d"]


def test_invalid_attributes_and_filters_are_refused_and_change_nothing(maker):
    b = maker("fbad")
    rng = np.random.default_rng(4)
    b.store("a", vec(rng), {"n": 1})
    w = Workload.__new__(Workload)            # only its bad-input tables are used
    from dst.rng import Rng
    r = Rng(0)
    seen_attrs, seen_where = set(), set()
    for _ in range(200):
        bad = w.bad_attrs(r)
        seen_attrs.add(repr(bad))
        assert filters.attrs_problem(bad) is not None
        with pytest.raises(InvalidInput):
            b.store("a", vec(rng), bad)
        with pytest.raises(InvalidInput):
            b.store_batch([("z", vec(rng)), ("a", vec(rng), bad)])
        badw = w.bad_where(r)
        seen_where.add(repr(badw))
        assert filters.where_problem(badw) is not None
        with pytest.raises(InvalidInput):
            b.search(vec(rng), 3, where=badw)
    assert len(seen_attrs) >= 10 and len(seen_where) >= 10
    assert b.count() == 1 and b.get_attrs("a") == {"n": 1} and not b.exists("z")


@pytest.mark.parametrize("metric", METRICS)
def test_scores_follow_the_metric(maker, metric):
    b = maker(f"fm_{metric}", metric=metric)
    assert b.metric == metric
    rng = np.random.default_rng(5)
    data = {f"k{i}": (vec(rng) * (1 + i % 3)).astype(np.float32) for i in range(25)}
    b.store_batch(list(data.items()))
    q = vec(rng) * 2
    hits = b.search(q, 25)
    assert len(hits) == 25
    for h in hits:
        t = score(metric, q, data[h.id])
        assert abs(h.score - t) <= 1e-4 * max(1.0, abs(t)), (metric, h, t)
    true = sorted((score(metric, q, x) for x in data.values()), reverse=True)
    assert np.allclose([h.score for h in hits], true, atol=1e-4 * max(1.0, abs(true[0])))
    zero = np.zeros(DIM, dtype=np.float32)
    if metric == "cosine":
        with pytest.raises(InvalidInput):
            b.store("z", zero)
    else:
        b.store("z", zero)                 # valid under l2 and dot
        assert b.exists("z")
        (hz,) = [h for h in b.search(q, 26) if h.id == "z"]
        assert abs(hz.score - score(metric, q, zero)) <= 1e-4 * max(1.0, abs(score(metric, q, zero)))
