"""The public Hypothesis strategy drives the sim backend against the oracle."""

from hypothesis import given, settings

from backends.sim import open_backend
from dst.backend import BackendConfig
from dst.errors import InvalidInput
from dst.history import VectorTable
from dst.check.models.vector import INVALID, VectorModel
from dst.strategies import operations
from dst.validate import batch_problem, id_problem, limit_problem, vector_problem

DIM = 3


@settings(max_examples=80, deadline=None)
@given(ops=operations(DIM, invalid=True))
def test_sim_agrees_with_the_oracle_on_drawn_operations(ops):
    b = open_backend(BackendConfig(dim=DIM, location="strategies", namespace="t"))
    table = VectorTable()
    m = VectorModel(table.vectors, DIM)
    state = m.init()
    for name, args in ops:
        try:
            out = getattr(b, name)(*args)
        except InvalidInput:
            out = INVALID
        if name == "store":
            i, v = args
            inp = ("store", i, table.ref(v), id_problem(i) or vector_problem(v, DIM))
        elif name == "store_batch":
            (items,) = args
            inp = ("batch", tuple((i, table.ref(v)) for i, v in items), batch_problem(items, DIM))
        elif name in ("delete", "get", "exists"):
            inp = (name, args[0], id_problem(args[0]))
            if name == "get" and out is not None and out is not INVALID:
                out = table.ref(out)
        elif name == "count":
            inp = ("count", None)
        else:
            q, limit = args
            r = table.ref(q)
            inp = ("search", r, limit, vector_problem(q, DIM) or limit_problem(limit))
            if out is not INVALID:
                out = tuple((h.id, h.score) for h in out)
        ok, state = m.step(state, inp, out)
        assert ok, (name, args, out)
