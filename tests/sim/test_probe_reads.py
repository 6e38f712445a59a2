"""The probes' reads take a shorter path (``Boundary.read``, the
scheduler's ``_probe_reads``, ``check_id``'s memo of valid ids); each is
held here to the general one it stands for, on answers of every kind:
right ones, a contract breach, the store's own error, a refused id."""

import numpy as np

from backends.sim import SimBackend
from dst.backend import BackendConfig
from dst.errors import BackendError, InvalidInput
from dst.history import VectorTable
from dst.rng import Rng
from dst.sim.faults import Boundary
from dst.validate import check_id, id_problem
from tests.broken_contract import TextExists, TextGet, WideGet


class _Mixed(SimBackend):
    """Answers of every kind, by id: odd ones raise, some answer wrong types."""

    def exists(self, id):
        if id == "boom":
            raise BackendError("exists: store down")
        if id == "bad":
            return 1
        if id == "npbool":
            return np.bool_(True)
        return super().exists(id)

    def get(self, id):
        if id == "boom":
            raise RuntimeError("driver broke")
        if id == "npbool":
            return [1.0] * self.dim       # a list: converted, as call does
        return super().get(id)

    def get_attrs(self, id):
        if id == "boom":
            raise BackendError("get_attrs: store down", applied=False)
        if id == "bad":
            return {"n": np.int64(3), "t": np.bool_(False)}
        if id == "npbool":
            return ["not", "a", "dict"]
        return super().get_attrs(id)


def _outcome(o):
    return (o.type, o.output if not isinstance(o.output, np.ndarray) else o.output.tolist(),
            o.fired, o.detail, o.own)


def test_read_is_call_for_every_answer():
    rng = Rng(5)
    for cls in (_Mixed, TextExists, TextGet, WideGet):
        b = cls(BackendConfig(dim=3, location="probe-reads", namespace=cls.__name__, fresh=True))
        table = VectorTable()
        vecs = [np.array([1, 0, 0], np.float32), np.array([0, 2, 1], np.float32)]
        for v in vecs:
            table.ref(v)
        ids = ["a", "b", "c", "boom", "bad", "npbool", "", "x\x00y", 7, "\ud800"]
        for k, i in enumerate(ids[:6]):
            try:
                b.store(i, vecs[k % 2], {"n": k} if k % 2 else None)
            except Exception:  # noqa: BLE001 - a broken store may refuse; the reads are what is compared
                pass
        b.delete("c")
        one, two = Boundary(table, rng.fork("one")), Boundary(table, rng.fork("two"))
        for _ in range(3):
            for i in ids:
                for f in ("exists", "get", "get_attrs"):
                    got = one.read(b, f, {"id": i})
                    want = two.call(b, f, {"id": i}, None)
                    assert _outcome(got) == _outcome(want), (cls.__name__, f, i)
        assert len(table) >= 2


def test_check_id_memo_answers_as_id_problem():
    r = Rng(9)
    alphabet = ["a", "Z", "0", "\x00", "é", "\ud800", "\U0001F600", " ", "/"]
    for n in range(3000):
        size = r.below(6) if n % 50 else 256 + r.below(3)
        id_ = "".join(alphabet[r.below(len(alphabet))] for _ in range(size))
        for _ in range(2):           # twice: the second answer may come from the memo
            problem = id_problem(id_)
            try:
                assert check_id(id_) == id_ and problem is None, repr(id_)
            except InvalidInput as exc:
                assert str(exc) == problem, repr(id_)
    for bad in (None, 3, b"ab", ["a"]):
        try:
            check_id(bad)
        except InvalidInput as exc:
            assert str(exc) == id_problem(bad)
        else:
            raise AssertionError(bad)
