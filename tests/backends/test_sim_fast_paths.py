"""The sim store's search fast path gives the answers of the general one.

On a small store it sorts in Python, not with numpy's stable argsort, and
remembers each query's float64 (unit) form. It is held here to the numpy
form it replaced: the same hits, ids, scores bit for bit and tie order.
"""

import numpy as np
import pytest

from backends.sim import SMALL_ROWS, open_backend
from dst.backend import BackendConfig
from dst.errors import InvalidInput
from dst.rng import Rng


def _reference(b, query, limit):
    """The numpy form the small-store path replaced: a stable argsort of the
    negated scores over the rows in id order (float64; unit rows under cosine)."""
    ids = sorted(b._store.data)
    m = np.stack([b._store.data[i] for i in ids]).astype(np.float64)
    q = np.asarray(query, dtype=np.float32).astype(np.float64)
    if b.metric == "cosine":
        m /= np.sqrt(np.einsum("ij,ij->i", m, m))[:, None]
        scores = m @ (q / np.sqrt(q @ q))
    elif b.metric == "dot":
        scores = m @ q
    else:
        d = m - q
        scores = -np.sqrt(np.einsum("ij,ij->i", d, d))
    order = (-scores).argsort(kind="stable")[:limit]
    return [(ids[i], float(scores[i])) for i in order.tolist()]


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_small_store_search_matches_the_stable_argsort_with_ties(metric):
    rng = Rng(17).np
    for round_ in range(40):
        dim = (2, 3, 8)[round_ % 3]
        b = open_backend(BackendConfig(dim=dim, location="mem-fast", namespace=f"s{metric}{round_}",
                                       fresh=True, metric=metric))
        base = rng.integers(-3, 4, size=(6, dim)).astype(np.float32)
        base[np.all(base == 0, axis=1)] = 1.0
        # Few distinct vectors, many rows: equal scores everywhere (and
        # scaled copies, equal under cosine only).
        n = int(rng.integers(1, 40))
        for k in range(n):
            vec = base[int(rng.integers(0, 6))] * float((1, 2, 0.5)[k % 3])
            b.store(f"id{int(rng.integers(0, 60)):02d}", vec)
        for _ in range(5):
            query = base[int(rng.integers(0, 6))]
            limit = int(rng.integers(1, n + 3))
            got = [(h.id, h.score) for h in b.search(query, limit)]
            assert got == _reference(b, query, limit)
            # Bit for bit, signed zeros included.
            assert [np.float64(s).tobytes() for _, s in got] == \
                   [np.float64(s).tobytes() for _, s in _reference(b, query, limit)]


def test_a_store_past_the_small_size_still_answers_the_same():
    b = open_backend(BackendConfig(dim=2, location="mem-fast", namespace="big", fresh=True))
    b.store_batch([(f"r{i:04d}", np.array([1 + i % 3, 1], np.float32)) for i in range(SMALL_ROWS + 20)])
    q = np.array([1, 0], np.float32)
    assert [(h.id, h.score) for h in b.search(q, 50)] == _reference(b, q, 50)


def test_search_still_refuses_bad_input_and_takes_lists():
    b = open_backend(BackendConfig(dim=3, location="mem-fast", namespace="bad", fresh=True))
    b.store("a", np.array([1, 0, 0], np.float32))
    for query, limit, where, text in [
            (np.zeros(3, np.float32), 1, None, "zero norm"),
            (np.ones(4, np.float32), 1, None, "4 components"),
            (np.ones(3, np.float32), 0, None, "at least 1"),
            (np.ones(3, np.float32), 1, {"eq": ["N", 1]}, "attribute name 'N'")]:
        with pytest.raises(InvalidInput, match=text):
            b.search(query, limit, where=where)
    assert [h.id for h in b.search([1.0, 0.0, 0.0], 1)] == ["a"]
    assert [h.id for h in b.search(np.array([1, 0, 0], np.float64), 1)] == ["a"]
