"""The sim store's search matrix, patched in place, is the matrix a rebuild
makes: same ids, same rows bit for bit, so the same scores and tie order.

Small stores shift rows in place for each insert and delete; large ones
(past SMALL_ROWS) shift for a few and take one copy for many. Each step
is held to a fresh rebuild (sorted ids, the rows computed in bulk) and
each search to the scores that rebuild gives.
"""

import random

import numpy as np
import pytest

from backends.sim import SMALL_ROWS, SimBackend
from dst.backend import BackendConfig


def _rebuild(b):
    ids = sorted(b._store.data)
    if not ids:
        return ids, np.zeros((0, b.dim))
    m = np.stack([b._store.data[i] for i in ids]).astype(np.float64)
    if b.metric == "cosine":
        m /= np.sqrt(np.einsum("ij,ij->i", m, m))[:, None]
    return ids, m


@pytest.mark.parametrize("metric,rows", [("cosine", 40), ("l2", 40), ("cosine", SMALL_ROWS + 60)])
def test_patched_matrix_is_the_rebuild(metric, rows):
    r = random.Random(rows)
    g = np.random.default_rng(rows)
    dim = 3
    b = SimBackend(BackendConfig(dim=dim, location="matrix-test", namespace=f"m{metric}{rows}",
                                 fresh=True, metric=metric))
    pool = [g.standard_normal(dim).astype(np.float32) for _ in range(6)]
    ids = [f"i{k:04d}" for k in range(rows)]
    if rows > SMALL_ROWS:
        b.store_batch([(i, pool[k % 6]) for k, i in enumerate(ids[::2])])
    for step in range(300):
        x = r.random()
        if x < 0.35:
            b.store(r.choice(ids), pool[r.randrange(6)])
        elif x < 0.6:
            b.delete(r.choice(ids))
        elif x < 0.7:     # many rows at once: past PATCH_ROWS_MAX sometimes (a rebuild)
            b.store_batch([(i, pool[r.randrange(6)]) for i in r.sample(ids, r.randrange(1, min(80, rows)))])
        elif x < 0.8:
            for i in r.sample(ids, r.randrange(1, 6)):     # a few deletes before one search
                b.delete(i)
        if r.random() < 0.6:
            continue      # writes pile up between searches
        q = pool[r.randrange(6)]
        hits = b.search(q, rows)
        want_ids, want = _rebuild(b)
        with b._store.lock:
            got_ids, got = b._matrix()
            assert got_ids == want_ids, step
            assert got.shape == want.shape and np.array_equal(got, want), step
        if want_ids:
            qq = q.astype(np.float64)
            if metric == "cosine":
                scores = want @ (qq / np.sqrt(qq @ qq))
            else:
                d = want - qq
                scores = -np.sqrt(np.einsum("ij,ij->i", d, d))
            order = (-scores).argsort(kind="stable")
            assert [(h.id, np.float64(h.score).tobytes()) for h in hits] == \
                   [(want_ids[k], np.float64(scores[k]).tobytes()) for k in order.tolist()], step
    b.drop()
