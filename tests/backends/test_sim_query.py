"""A search query that is a frozen array (the history's table vectors) is
not copied (``check_query``) and the sim store remembers its float64 form
by identity; both are held here to the copying path they stand for."""

import numpy as np
import pytest

from backends.sim import SimBackend
from dst.backend import BackendConfig
from dst.errors import InvalidInput
from dst.history import VectorTable
from dst.rng import Rng
from dst.validate import check_query, check_vector, frozen


def test_check_query_is_check_vector_without_the_copy_of_a_frozen_array():
    g = Rng(3).np
    t = VectorTable()
    cases = [g.standard_normal(4).astype(np.float32), np.zeros(4, np.float32),
             np.array([1, np.nan, 0, 0], np.float32), np.ones(3, np.float32), np.ones(4, np.float32)]
    for v in cases:
        fv = t[t.ref(v)]
        assert frozen(fv) and not frozen(v)
        for metric in ("cosine", "l2", "dot"):
            for x in (fv, v, fv.astype(np.float64), list(map(float, v))):
                try:
                    want = check_vector(x, 4, metric)
                except InvalidInput as exc:
                    with pytest.raises(InvalidInput, match=f"^{exc}$".replace("(", r"\(").replace(")", r"\)")):
                        check_query(x, 4, metric)
                    continue
                got = check_query(x, 4, metric)
                assert got.dtype == np.float32 and got.tobytes() == want.tobytes()
                assert (got is x) == (x is fv)      # only the frozen float32 array is passed as is


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_a_frozen_query_scores_as_its_copy(metric):
    g = Rng(4).np
    t = VectorTable()
    refs = [t.ref(g.standard_normal(8).astype(np.float32)) for _ in range(6)]
    b = SimBackend(BackendConfig(dim=8, location="query-test", namespace=metric, fresh=True, metric=metric))
    for k in range(30):
        b.store(f"r{k:02d}", t[refs[k % 6]] * float(1 + k % 3))
    for _ in range(3):      # again: the second answer comes from the remembered form
        for n in refs:
            got = [(h.id, np.float64(h.score).tobytes()) for h in b.search(t[n], 12)]
            want = [(h.id, np.float64(h.score).tobytes()) for h in b.search(t[n].copy(), 12)]
            assert got == want
    b.drop()
