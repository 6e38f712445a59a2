"""check_batch_matrix's one-conversion path against the per-item rules: for
any batch, the same InvalidInput sentence or the same ids and the same
float32 matrix, bit for bit, as checking and converting item by item."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dst.errors import InvalidInput
from dst.validate import batch_problem, check_batch_matrix

DIM = 3

# Mostly valid components and sizes, so that whole batches often take the
# one-conversion path; the rest make each of its exits happen.
COMPONENT = st.sampled_from([1.0, -2.5, 7.0, 1e-30, 3.4e38, 0.5] * 6
                            + [0.0, 1e39, float("nan"), float("inf")])
SIZE = st.sampled_from([DIM] * 12 + [DIM - 1, DIM + 1])


@st.composite
def vector(draw):
    """A vector as a caller may pass it: arrays of several dtypes, lists,
    tuples, nested or odd shapes."""
    size = draw(SIZE)
    xs = draw(st.lists(COMPONENT, min_size=size, max_size=size))
    kind = draw(st.sampled_from(["f32"] * 30 + ["f64", "f16", "i8", "bool", "list", "f32-list",
                                                "tuple", "2d", "str", "big-endian"]))
    with np.errstate(all="ignore"):
        return _as(kind, xs)


def _as(kind, xs):
    if kind == "list":
        return xs
    if kind == "f32-list":
        return [np.float32(x) for x in xs]
    if kind == "tuple":
        return tuple(xs)
    if kind == "2d":
        return np.array([xs], dtype=np.float32)
    if kind == "str":
        return "vector"
    if kind == "big-endian":
        return np.array(xs, dtype=">f4")
    dtype = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i8": np.int8, "bool": np.bool_}[kind]
    return np.array(xs, dtype=np.float64).astype(dtype)


ID = st.sampled_from(["a", "b", "c", "d", "e", "é"] * 4 + ["", "\x00", "\ud800", 5])
ITEM = st.tuples(ID, vector())
BATCH = st.one_of(st.lists(ITEM, max_size=5, unique_by=lambda it: it[0]), st.lists(ITEM, max_size=5))


def per_item(items, metric):
    problem = batch_problem(items, DIM, metric)
    if problem:
        return problem
    if not items:
        return [], np.zeros((0, DIM), dtype=np.float32)
    return [i for i, _ in items], np.stack([np.asarray(v, dtype=np.float32) for _, v in items])


@settings(max_examples=150, deadline=None)
@given(items=BATCH, metric=st.sampled_from(["cosine", "l2"]))
def test_the_batch_path_is_the_per_item_path(items, metric):
    want = per_item(items, metric)
    try:
        got = check_batch_matrix(items, DIM, metric)
    except InvalidInput as exc:
        assert isinstance(want, str) and str(exc) == want
        return
    assert not isinstance(want, str), want
    ids, m = got
    assert ids == want[0]
    assert m.dtype == np.float32 and m.shape == want[1].shape
    assert m.tobytes() == want[1].tobytes()


def test_a_plain_batch_comes_back_as_a_fresh_matrix():
    vecs = [np.array([1, 2, 3], dtype=np.float32), np.array([0, 0, 1], dtype=np.float32)]
    ids, m = check_batch_matrix([("a", vecs[0]), ("b", vecs[1])], DIM)
    m[0, 0] = 9.0
    assert ids == ["a", "b"] and vecs[0][0] == 1.0          # the caller's array is not the matrix


@pytest.mark.parametrize("vecs, sentence", [
    ([[1.0, 2.0, 3.0], np.array([1, 2, np.nan], dtype=np.float32)], "batch item 1: vector component 2 is nan"),
    ([np.zeros(3, dtype=np.float32)], "batch item 0: vector has zero norm"),
    ([np.ones(3, dtype=np.float32), np.ones(4, dtype=np.float32)], "batch item 1: vector has 4 components"),
])
def test_a_bad_vector_is_named(vecs, sentence):
    with pytest.raises(InvalidInput, match="^" + sentence):
        check_batch_matrix([(f"id{k}", v) for k, v in enumerate(vecs)], DIM)
