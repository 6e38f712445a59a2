"""The sim backend: DESIGN semantics, validation, reopen; and a Hypothesis
stateful test holding it to the oracle step by step."""

import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from backends.sim import open_backend
from dst.backend import BackendConfig, SearchHit, VectorBackend, resolve_backend
from dst.check.linearizability import UNKNOWN
from dst.errors import InvalidInput, UsageError
from dst.history import VectorTable
from dst.check.models.vector import INVALID, VectorModel
from dst.validate import batch_problem, id_problem, vector_problem

DIM = 3


def sim(namespace="t", fresh=True, location="mem-test"):
    return open_backend(BackendConfig(dim=DIM, location=location, namespace=namespace, fresh=fresh))


def v(*xs):
    return np.array(xs, dtype=np.float32)


def test_protocol_and_resolution():
    b = sim()
    assert isinstance(b, VectorBackend)
    assert (b.name, b.dim, b.exact, b.atomic_batches) == ("sim", DIM, True, True)
    assert resolve_backend("sim") is open_backend


def test_the_non_atomic_variant():
    cfg = dict(dim=DIM, location="mem-test", namespace="na", fresh=True)
    b = open_backend(BackendConfig(**cfg, options={"atomic_batches": False}))
    assert b.atomic_batches is False and sim().atomic_batches is True
    b.store_batch([("a", v(1, 0, 0)), ("b", v(0, 1, 0))])
    assert b.count() == 2
    assert open_backend(BackendConfig(**cfg, options={"atomic_batches": "true"})).atomic_batches is True
    with pytest.raises(UsageError, match=r"^sim backend: atomic_batches must be true or false, got 'maybe'$"):
        open_backend(BackendConfig(**cfg, options={"atomic_batches": "maybe"}))


def test_basic_semantics():
    b = sim()
    b.store("a", v(1, 0, 0))
    b.store_batch([("b", v(0, 1, 0)), ("c", v(2, 0, 0))])
    assert b.count() == 3 and b.exists("a") and not b.exists("z")
    got = b.get("a")
    assert got.dtype == np.float32 and (got == v(1, 0, 0)).all()
    hits = b.search(v(1, 0, 0), 5)
    # a and c tie at 1.0: ordered by id; length min(limit, count)
    assert [h.id for h in hits] == ["a", "c", "b"]
    assert hits[0] == SearchHit("a", 1.0) and hits[2].score == pytest.approx(0.0)
    assert len(b.search(v(1, 0, 0), 2)) == 2
    assert b.delete("a") is True and b.delete("a") is False
    assert b.get("a") is None and b.count() == 2
    b.store("b", v(0, 0, 1))               # upsert replaces
    assert b.count() == 2 and (b.get("b") == v(0, 0, 1)).all()


def test_get_returns_a_copy():
    b = sim()
    b.store("a", v(1, 2, 3))
    b.get("a")[0] = 99
    assert (b.get("a") == v(1, 2, 3)).all()


def test_search_scores_are_raw_cosine():
    b = sim()
    b.store("x", v(-1, 0, 0))
    assert b.search(v(1, 0, 0), 1)[0].score == pytest.approx(-1.0)


def test_reopen_keeps_acknowledged_state_and_fresh_resets():
    b = sim("reopen")
    b.store("a", v(1, 0, 0))
    del b                                     # dropped without close(), as a crash
    again = sim("reopen", fresh=False)
    assert again.count() == 1 and again.exists("a")
    again.close()
    assert sim("reopen", fresh=False).exists("a")
    assert sim("reopen", fresh=True).count() == 0
    assert sim("other-namespace", fresh=False).count() == 0


def test_drop_forgets_the_namespace():
    b = sim("dropme")
    b.store("a", v(1, 0, 0))
    b.drop()
    assert sim("dropme", fresh=False).count() == 0


# -- sim against the oracle, step by step ---------------------------------------

ID = st.sampled_from(["a", "b", "c", "d", "'", "%_", "ü", ""])
VEC = st.lists(st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0]), min_size=DIM, max_size=DIM).map(
    lambda xs: np.array(xs, dtype=np.float32))
LIMIT = st.integers(min_value=0, max_value=6)


class SimMatchesOracle(RuleBasedStateMachine):
    """Every sim answer is one the vector model accepts in the current state."""

    @initialize()
    def setup(self):
        self.table = VectorTable()
        self.backend = sim("stateful")
        self.model = VectorModel(self.table.vectors, DIM, 1e-4, exact=True)
        self.state = self.model.init()

    def _do(self, inp, call):
        try:
            out = call()
        except InvalidInput:
            out = INVALID
        ok, nxt = self.model.step(self.state, inp, out)
        assert ok, self.model.explain(self.state, type("Op", (), {"input": inp, "output": out})())
        self.state = nxt
        return out

    def _ref(self, vec):
        return self.table.ref(vec)

    @rule(i=ID, vec=VEC)
    def store(self, i, vec):
        r = self._ref(vec)
        bad = id_problem(i) or vector_problem(vec, DIM)
        self._do(("store", i, r, bad), lambda: self.backend.store(i, vec))

    @rule(pairs=st.lists(st.tuples(ID, VEC), max_size=4))
    def store_batch(self, pairs):
        items = tuple((i, self._ref(vec)) for i, vec in pairs)
        bad = batch_problem(pairs, DIM)
        self._do(("batch", items, bad), lambda: self.backend.store_batch(pairs))

    @rule(i=ID)
    def delete(self, i):
        self._do(("delete", i, id_problem(i)), lambda: self.backend.delete(i))

    @rule(i=ID)
    def get(self, i):
        def call():
            g = self.backend.get(i)
            return None if g is None else self._ref(g)
        self._do(("get", i, id_problem(i)), call)

    @rule(i=ID)
    def exists(self, i):
        self._do(("exists", i, id_problem(i)), lambda: self.backend.exists(i))

    @rule(q=VEC, limit=LIMIT)
    def search(self, q, limit):
        r = self._ref(q)
        bad = vector_problem(q, DIM) or (None if limit >= 1 else "limit")
        self._do(("search", r, limit, bad),
                 lambda: tuple((h.id, h.score) for h in self.backend.search(q, limit)))

    @invariant()
    def count_agrees(self):
        if hasattr(self, "backend"):
            self._do(("count", None), self.backend.count)


TestSimMatchesOracle = SimMatchesOracle.TestCase
TestSimMatchesOracle.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_model_rejects_what_a_wrong_backend_says():
    # The stateful test above can fail: the same harness on a wrong answer.
    table = VectorTable()
    m = VectorModel(table.vectors, DIM)
    r = table.ref(v(1, 0, 0))
    ok, s = m.step(m.init(), ("store", "a", r, None), None)
    assert ok
    assert not m.step(s, ("get", "a", None), None)[0]
    assert not m.step(s, ("count", None), 0)[0]
    assert not m.step(s, ("exists", "a", None), False)[0]
    assert m.step(s, ("get", "a", None), UNKNOWN)[0]
