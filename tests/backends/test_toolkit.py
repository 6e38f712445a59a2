"""The adapter toolkit (backends/_toolkit.py, issue 11): option specs,
validation before the store is touched, ownership marks, error
classification and namespace naming."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends._toolkit import (OWNER_FILE, NotOurs, Option, Options, ValidatingBackend, check_dim,
                               check_namespace, classify, describe, dir_owned, is_owner_mark,
                               mark_dir, owner_mark, plain_pairs, require_owned, store_name)
from dst.backend import SearchHit
from dst.errors import BackendError, InvalidInput, NotApplied, UsageError
from tests.test_validate_batch import BATCH, DIM, per_item

# -- options ------------------------------------------------------------------------

SPEC = Options("toy", Option("atomic", bool, True), Option("every", int, 200, lo=0),
               Option("ef", int, None, lo=1, hi=1000), Option("ratio", float, 0.5, lo=0, hi=1),
               Option("mode", str, "fast", choices=("fast", "slow")),
               Option("index", str, None, choices=("HNSW", "IVF", "FLAT", "PQ"), fold="upper"),
               Option("schema", str, None))


def test_an_unknown_key_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(UsageError, match=r"^toy backend: unknown option 'atomc' \(known: atomic, ef, every, "
                                         r"index, mode, ratio, schema\)$"):
        SPEC.parse({"atomc": False, "every": 3})


def test_absent_keys_take_their_defaults_and_values_are_parsed_by_type():
    assert SPEC.parse({}) == {"atomic": True, "every": 200, "ef": None, "ratio": 0.5, "mode": "fast",
                              "index": None, "schema": None}
    got = SPEC.parse({"atomic": "FALSE", "every": "7", "ef": 1000, "ratio": "0.25", "index": "ivf",
                      "schema": 12})
    assert got["atomic"] is False and got["every"] == 7 and got["ef"] == 1000
    assert got["ratio"] == 0.25 and got["index"] == "IVF" and got["schema"] == "12"
    assert SPEC.parse({"atomic": 0})["atomic"] is False and SPEC.parse({"atomic": 1})["atomic"] is True


@pytest.mark.parametrize("raw, message", [
    ({"atomic": "maybe"}, "toy backend: atomic must be true or false, got 'maybe'"),
    ({"atomic": 2}, "toy backend: atomic must be true or false, got 2"),
    ({"every": "often"}, "toy backend: every must be an integer of at least 0, got 'often'"),
    ({"every": -1}, "toy backend: every must be an integer of at least 0, got -1"),
    ({"every": True}, "toy backend: every must be an integer of at least 0, got True"),
    ({"every": 2.5}, "toy backend: every must be an integer of at least 0, got 2.5"),
    ({"ef": 1001}, "toy backend: ef must be an integer from 1 to 1000, got 1001"),
    ({"ratio": float("nan")}, "toy backend: ratio must be a number from 0 to 1, got nan"),
    ({"ratio": 2}, "toy backend: ratio must be a number from 0 to 1, got 2"),
    ({"mode": "FAST"}, "toy backend: mode must be fast or slow, got 'FAST'"),
    ({"index": "bogus"}, "toy backend: index must be one of HNSW, IVF, FLAT, PQ, got 'bogus'"),
])
def test_a_bad_value_is_one_sentence_naming_the_key(raw, message):
    with pytest.raises(UsageError) as got:
        SPEC.parse(raw)
    assert str(got.value) == message


def test_the_error_class_and_prefix_are_the_adapters():
    spec = Options("lance", Option("primary_key", bool, True), prefix="lance:", error=BackendError)
    with pytest.raises(BackendError, match=r"^lance: primary_key must be true or false, got 'x'$"):
        spec.parse({"primary_key": "x"})
    with pytest.raises(UsageError, match="^lance backend: unknown option"):   # unknown keys: always usage
        spec.parse({"pk": True})
    assert str(spec.fail("a and b clash")) == "lance: a and b clash"
    with pytest.raises(ValueError, match="declared twice"):
        Options("x", Option("a"), Option("a"))


def test_the_builtin_backends_specs_refuse_bad_values_before_opening(tmp_path):
    from backends.lance import open_backend as lance
    from backends.pgvector import open_backend as pgvector
    from backends.sim import open_backend as sim
    from dst.backend import BackendConfig
    cases = ((sim, {"atomic_batches": "sometimes"}, UsageError, "atomic_batches must be true or false"),
             (lance, {"compact_every": "often"}, BackendError, "compact_every must be an integer"),
             (pgvector, {"m": 1}, UsageError, "m must be an integer from 2 to 100"),
             (pgvector, {"m": 40, "ef_construction": 64}, UsageError, "ef_construction must be at least twice m"))
    for factory, opts, cls, text in cases:
        cfg = BackendConfig(dim=4, location=str(tmp_path / "db"), namespace="opts", options=opts)
        with pytest.raises(cls, match=text):
            factory(cfg)     # pgvector: before it connects (no server is started here)
    assert not (tmp_path / "db").exists()   # lance created nothing


# -- validation before the store is touched --------------------------------------------

class Recording(ValidatingBackend):
    """A store that records every call that reaches it."""

    name = "recording"

    def __init__(self, dim=3):
        self.dim = dim
        self.calls = []

    def raw_store(self, id, vector):
        self.calls.append(("store", id, vector.dtype.name, vector.shape))

    def raw_store_batch(self, ids, matrix):
        self.calls.append(("store_batch", list(ids), matrix.dtype.name, matrix.shape))

    def raw_delete(self, id):
        self.calls.append(("delete", id))
        return False

    def raw_get(self, id):
        self.calls.append(("get", id))

    def raw_exists(self, id):
        self.calls.append(("exists", id))
        return False

    def raw_count(self):
        self.calls.append(("count",))
        return 0

    def raw_search(self, query, limit, exact):
        self.calls.append(("search", query.dtype.name, limit, exact))
        return [SearchHit("a", 1.0)]

    def close(self):
        pass


GOOD = np.array([1, 0, 0], dtype=np.float32)
BAD_CALLS = [
    ("store", ("", GOOD)),
    ("store", ("a\x00b", GOOD)),
    ("store", ("\ud800", GOOD)),
    ("store", (7, GOOD)),
    ("store", ("a", np.zeros(3, dtype=np.float32))),
    ("store", ("a", np.array([1, np.nan, 0], dtype=np.float32))),
    ("store", ("a", np.array([1, np.inf, 0]))),
    ("store", ("a", np.ones(4, dtype=np.float32))),
    ("store", ("a", "not a vector")),
    ("store_batch", ([("a", GOOD), ("a", GOOD)],)),
    ("store_batch", ([("a", GOOD), ("b", np.zeros(3, dtype=np.float32))],)),
    ("store_batch", ([("a", GOOD), "b"],)),
    ("delete", ("x" * 257,)),
    ("get", ("",)),
    ("exists", (None,)),
    ("search", (GOOD, 0)),
    ("search", (GOOD, True)),
    ("search", (GOOD, 2.0)),
    ("search", (np.zeros(3), 5)),
    ("search_exact", (np.ones(2), 5)),
]


@pytest.mark.parametrize("method, args", BAD_CALLS)
def test_bad_input_never_reaches_the_store(method, args):
    b = Recording()
    with pytest.raises(InvalidInput):
        getattr(b, method)(*args)
    assert b.calls == []


def test_good_input_reaches_the_store_checked():
    b = Recording()
    b.store("a", [1, 2, 3])
    b.store_batch([("a", GOOD), ("b", [0, 1, 0])])
    b.store_batch([])
    assert b.delete("a") is False and b.get("a") is None and b.exists("a") is False and b.count() == 0
    assert b.search([1, 1, 1], np.int64(2)) == [SearchHit("a", 1.0)]
    b.search_exact(GOOD, 3)
    assert b.calls == [("store", "a", "float32", (3,)), ("store_batch", ["a", "b"], "float32", (2, 3)),
                       ("store_batch", [], "float32", (0, 3)), ("delete", "a"), ("get", "a"),
                       ("exists", "a"), ("count",), ("search", "float32", 2, False),
                       ("search", "float32", 3, True)]


def test_the_builtin_adapters_take_their_protocol_methods_from_the_validating_base():
    from backends.lance import LanceBackend
    from backends.pgvector import PgvectorBackend
    from backends.sim import SimBackend
    for cls in (SimBackend, LanceBackend, PgvectorBackend):
        assert issubclass(cls, ValidatingBackend)
        for m in ("store", "store_batch", "delete", "get", "exists", "search"):
            assert getattr(cls, m) is getattr(ValidatingBackend, m), f"{cls.__name__}.{m} bypasses the checks"


def test_check_dim():
    assert check_dim(3) == 3 and check_dim(np.int64(8)) == 8
    for bad in (0, -1, True, 2.0, "3"):
        with pytest.raises(BackendError, match="dim must be at least 1"):
            check_dim(bad)
    with pytest.raises(BackendError, match=r"^dim must be an integer from 1 to 16 \(the limit\), got 17$"):
        check_dim(17, 16, "the limit")


# -- ownership ----------------------------------------------------------------------

def test_a_directory_without_our_mark_is_refused(tmp_path):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "data.bin").write_bytes(b"precious")
    assert dir_owned(foreign) is None
    with pytest.raises(NotOurs, match=r"^store .*theirs was not created by vector-dst; refusing to touch it$") as got:
        require_owned(dir_owned(foreign) is not None, f"store {foreign}")
    assert got.value.applied is False and isinstance(got.value, BackendError)
    # A mark file someone else wrote (another owner, or not JSON) is not ours either.
    (foreign / OWNER_FILE).write_text(json.dumps({"dst.owner": "someone-else"}))
    assert dir_owned(foreign) is None
    (foreign / OWNER_FILE).write_text("vector-dst")
    assert dir_owned(foreign) is None
    ours = tmp_path / "ours"
    mark_dir(ours, dim=8)
    assert dir_owned(ours) == {"dst.owner": "vector-dst", "dim": 8}
    require_owned(dir_owned(ours) is not None, "ours")     # no error
    with pytest.raises(NotOurs, match="^custom$"):
        require_owned(False, "x", message="custom")


def test_owner_marks_in_metadata():
    assert is_owner_mark(owner_mark())
    assert is_owner_mark({b"dst.owner": b"vector-dst", b"other": b"x"})   # as Arrow gives schema metadata
    for meta in (None, {}, {b"dst.owner": b"vector-dst2"}, {"dst.owner": "someone"}, {"owner": "vector-dst"}):
        assert not is_owner_mark(meta), meta


# -- error classification -------------------------------------------------------------

class DriverError(Exception):
    pass


def test_classify_maps_driver_exceptions_and_keeps_the_protocols_own():
    cleaned = []
    with pytest.raises(BackendError) as got:
        with classify("toy store failed", after=lambda: cleaned.append(1)):
            raise DriverError("socket\n  closed")
    assert type(got.value) is BackendError and str(got.value) == "toy store failed: DriverError: socket closed"
    assert got.value.applied is None and got.value.__cause__ is None and cleaned == [1]
    with pytest.raises(NotApplied, match="^toy get failed: DriverError: refused$"):
        with classify("toy get failed", not_applied=lambda e: "refused" in str(e)):
            raise DriverError("refused")
    for own in (InvalidInput("bad id"), NotApplied("closed"), BackendError("x")):
        with pytest.raises(type(own)) as got:
            with classify("toy", after=lambda: cleaned.append(2)):
                raise own
        assert got.value is own
    assert cleaned == [1]          # after() is for failures it classifies
    with pytest.raises(BackendError, match="^lance: x failed: plain$"):
        with classify("lance: x failed", text=str):
            raise DriverError("plain")
    assert describe(None) == "unknown error" and len(describe(DriverError("y" * 999))) == 400


# -- namespaces -----------------------------------------------------------------------

def test_check_namespace():
    assert check_namespace("dst_run_0_crud") == "dst_run_0_crud"
    for bad in ("", "a\x00b", None, 3):
        with pytest.raises(BackendError, match="non-empty string without NUL"):
            check_namespace(bad)
    with pytest.raises(BackendError, match="longer than PostgreSQL's 63-byte table names"):
        check_namespace("é" * 32, max_bytes=63, too_long="PostgreSQL's 63-byte table names")
    with pytest.raises(BackendError, match="lone surrogate"):
        check_namespace("a\udc00")
    with pytest.raises(BackendError, match="^namespace 'dst_owned' is the name of the registry$"):
        check_namespace("dst_owned", reserved={"dst_owned": "the registry"})


def test_store_name_keeps_legal_names_and_maps_others_without_collisions():
    assert store_name("dst_run_0_crud") == "dst_run_0_crud"
    names = {ns: store_name(ns, max_len=20) for ns in ("a-b", "a.b", "a b", "9lives", "", "x" * 21, "x" * 22)}
    assert len(set(names.values())) == len(names)        # distinct namespaces, distinct names
    for ns, name in names.items():
        assert len(name) <= 20 and (name[0].isalpha() or name[0] == "_"), (ns, name)
        assert all(c.isalnum() or c == "_" for c in name), (ns, name)
        assert store_name(ns, max_len=20) == name         # deterministic
    # Chroma-like rules: 3..63 characters of [a-zA-Z0-9._-], starting with an alphanumeric.
    chroma = store_name("ab", max_len=63, allowed="A-Za-z0-9._-", first="A-Za-z0-9", min_len=3)
    assert len(chroma) >= 3 and chroma[0].isalnum()
    assert store_name("dst.run-1", allowed="A-Za-z0-9._-", first="A-Za-z0-9") == "dst.run-1"


# -- plain_pairs: the bulk check store_batch tries first --------------------------------------

@settings(max_examples=200, deadline=None)
@given(items=BATCH, metric=st.sampled_from(["cosine", "l2"]))
def test_the_bulk_pair_check_accepts_only_valid_batches_and_converts_as_the_per_item_path(items, metric):
    want = per_item(items, metric)
    got = plain_pairs(list(items), DIM, metric)
    if got is None:
        return                         # store_batch then takes check_batch_attrs
    assert not isinstance(want, str), want
    assert got[0] == want[0]
    assert got[1].dtype == np.float32 and got[1].tobytes() == want[1].tobytes()


def test_the_bulk_pair_check_takes_plain_batches_and_leaves_the_rest_to_the_full_check():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((50, DIM)).astype(np.float32)
    ids = [f"id{i}" for i in range(50)]
    got = plain_pairs(list(zip(ids, m)), DIM)
    assert got is not None and got[0] == ids and got[1].tobytes() == m.tobytes()
    assert got[1].base is None or got[1].base is not m     # a fresh matrix
    assert plain_pairs([[i, v] for i, v in zip(ids, m)], DIM) is not None
    zero = m.copy()
    zero[7] = 0
    nan = m.copy()
    nan[3, 1] = np.nan
    for bad in ([], list(zip(ids, zero)), list(zip(ids, nan)), list(zip(ids[:-1] + ["id0"], m)),
                list(zip(ids[:-1] + [""], m)), list(zip(ids[:-1] + ["x\x00"], m)),
                list(zip(ids[:-1] + ["\ud800"], m)), list(zip(ids[:-1] + ["x" * 257], m)),
                list(zip(ids, m.astype(np.float64))), list(zip(ids, m[:, :-1])),
                [(i, v, {}) for i, v in zip(ids, m)], [(i, list(v)) for i, v in zip(ids, m)]):
        assert plain_pairs(bad, DIM) is None
    assert plain_pairs(list(zip(ids, zero)), DIM, "l2") is not None     # zero rows are fine but for cosine
    assert plain_pairs(list(zip(ids[:-1] + ["é" * 256], m)), DIM) is not None
    # Rows whose squares overflow or underflow float32 are still valid; an
    # inf among huge values is not.
    huge, tiny = m * np.float32(1e30), np.full_like(m, 1e-30)
    assert plain_pairs(list(zip(ids, huge)), DIM) is not None
    assert plain_pairs(list(zip(ids, tiny)), DIM) is not None
    huge[9, 0] = np.inf
    assert plain_pairs(list(zip(ids, huge)), DIM) is None
