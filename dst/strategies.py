"""Hypothesis strategies for vector-store operations, for users' own tests.

``operations(dim)`` draws lists of ``(name, args)`` calls on the
``VectorBackend`` protocol: ids from a small colliding set with hostile
characters mixed in, vectors that include exact ties (scaled copies) and,
with ``invalid=True``, inputs every backend must refuse as InvalidInput.
Use them in a ``RuleBasedStateMachine`` or a plain ``@given`` test and
compare against ``dst.check.models.vector.VectorModel`` (see tests/test_strategies.py).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

HOSTILE = ["'", '"', "\\\\", "%", "_", "' OR '1'='1", "ü", "🙂", "a b", "x" * 250]


def ids(n_plain: int = 6, hostile: bool = True) -> st.SearchStrategy[str]:
    plain = [f"k{i}" for i in range(n_plain)]
    return st.sampled_from(plain + (HOSTILE if hostile else []))


def vectors(dim: int, invalid: bool = False) -> st.SearchStrategy[np.ndarray]:
    comp = st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, -0.25])
    valid = st.lists(comp, min_size=dim, max_size=dim).filter(any).map(
        lambda xs: np.array(xs, dtype=np.float32))
    if not invalid:
        return valid
    bad = st.one_of(
        st.just(np.zeros(dim, dtype=np.float32)),
        st.just(np.full(dim, np.nan, dtype=np.float32)),
        st.just(np.ones(dim + 1, dtype=np.float32)))
    return st.one_of(valid, valid, valid, bad)


def operations(dim: int, max_size: int = 40, invalid: bool = False,
               hostile: bool = True) -> st.SearchStrategy[list[tuple[str, tuple]]]:
    """Lists of protocol calls: ``("store", (id, vector))``, ``("search", (q, limit))``..."""
    i, v = ids(hostile=hostile), vectors(dim, invalid)
    bad_ids = st.sampled_from(["", "a\x00b", "k" * 257]) if invalid else st.nothing()
    any_id = st.one_of(i, bad_ids) if invalid else i
    limit = st.integers(min_value=0 if invalid else 1, max_value=8)
    op = st.one_of(
        st.tuples(st.just("store"), st.tuples(any_id, v)),
        st.tuples(st.just("store_batch"), st.tuples(st.lists(st.tuples(i, v), max_size=4))),
        st.tuples(st.just("delete"), st.tuples(any_id)),
        st.tuples(st.just("get"), st.tuples(any_id)),
        st.tuples(st.just("exists"), st.tuples(any_id)),
        st.tuples(st.just("count"), st.just(())),
        st.tuples(st.just("search"), st.tuples(v, limit)),
    )
    return st.lists(op, max_size=max_size)
