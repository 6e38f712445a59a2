"""Milvus Lite specifics: literal escaping against hostile values (checked
by Milvus Lite's own tokenizer and by real filtered searches), typed
attribute keys against Milvus Lite's int/bool JSON comparison, ownership,
options, the consistency level, scores per index, reopen, the setup error.

One Milvus Lite database (one in-process server) serves the whole module:
starting a server costs about a second."""

import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from backends._toolkit import NotOurs
from backends.milvus import OPTIONS, MilvusBackend, decode_attrs, encode_attrs, milvus_filter, milvus_literal
from dst import filters
from dst.backend import BackendConfig
from dst.errors import BackendError, UsageError
from dst.metrics import score
from dst.sim.workload import HOSTILE_STEMS, HOSTILE_VALUES

CONTROL = [chr(c) for c in range(1, 32)] + ["\x7f", "\x85", "\u2028", "\u2029", "\ufeff"]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return str(tmp_path_factory.mktemp("milvus") / "t.db")


def _open(db, ns, *, fresh=True, dim=2, metric="cosine", **options):
    return MilvusBackend(BackendConfig(dim=dim, location=db, namespace=ns, fresh=fresh,
                                       options=options, metric=metric))


def _tokens(expr):
    from milvus_lite.search.filter.tokens import TokenKind, tokenize
    return [(t.kind, t.value) for t in tokenize(expr) if t.kind is not TokenKind.EOF]


# -- the literal function, against Milvus Lite's own tokenizer ---------------------------

@pytest.mark.parametrize("value", [*HOSTILE_VALUES, *HOSTILE_STEMS, *CONTROL])
def test_literal_is_one_string_token_with_the_value(value):
    from milvus_lite.search.filter.tokens import TokenKind
    assert _tokens(milvus_literal(value)) == [(TokenKind.STRING, value)]


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40))
def test_any_string_literal_reads_back_as_itself(value):
    from milvus_lite.search.filter.tokens import TokenKind
    assert _tokens(milvus_literal(value)) == [(TokenKind.STRING, value)]


def test_int_and_bool_literals():
    from milvus_lite.search.filter.tokens import TokenKind
    assert milvus_literal(True) == "true" and milvus_literal(False) == "false"
    assert milvus_literal(filters.INT_MAX) == "9223372036854775807"
    # -2**63 is unary minus applied to 2**63: two tokens, read as one value
    # by the parser (the filtered search below finds it).
    assert _tokens(milvus_literal(filters.INT_MIN))[0][0] is TokenKind.SUB


def test_filter_text_for_the_portable_ops():
    assert milvus_filter({"eq": ["t", "a\"b"]}) == '(exists attrs["t:s"] and (attrs["t:s"] == "a\\"b"))'
    assert milvus_filter({"in": ["n", [1, 5]]}) == \
        '(exists attrs["n:i"] and (attrs["n:i"] == 1 or attrs["n:i"] == 5))'
    assert milvus_filter({"exists": "f"}) == \
        '(exists attrs["f:s"] or exists attrs["f:i"] or exists attrs["f:b"])'
    assert milvus_filter({"and": []}) == "true" and milvus_filter({"or": []}) == "false"
    assert encode_attrs({"n": 1, "b": True, "s": "x"}) == {"n:i": 1, "b:b": True, "s:s": "x"}
    assert decode_attrs({"n:i": 1, "b:b": True}) == {"b": True, "n": 1}
    with pytest.raises(BackendError):
        decode_attrs({"n:i": True})      # a bool under an int key: not ours


# -- hostile values through a real store ------------------------------------------------------

def test_hostile_values_round_trip_and_filter_by_milvus(db):
    b = _open(db, "hostile_values")
    vals = list(dict.fromkeys([*HOSTILE_VALUES, *HOSTILE_STEMS, *CONTROL]))
    rows = {f"r{i}": {"label": v} for i, v in enumerate(vals)}
    rows["none"] = {}
    rows["min"] = {"label": filters.INT_MIN}
    rows["max"] = {"label": filters.INT_MAX}
    b.store_batch([(k, np.array([1.0, i + 1.0], np.float32), a) for i, (k, a) in enumerate(rows.items())])
    q = np.array([1.0, 1.0], np.float32)
    for k, a in rows.items():
        assert b.get_attrs(k) == a, k
    wrong = []
    probes = [{"eq": ["label", v]} for v in [*vals, filters.INT_MIN, filters.INT_MAX]]
    probes += [{"ne": ["label", vals[0]]}, {"in": ["label", vals[:20]]}, {"not": {"eq": ["label", "%"]}},
               {"lt": ["label", 0]}, {"ge": ["label", filters.INT_MAX]}]
    for where in probes:
        w = filters.canonical(where)
        want = sorted(k for k, a in rows.items() if filters.matches(w, a))
        got = sorted(h.id for h in b.search(q, len(rows), where=where))
        if got != want:
            wrong.append((filters.show(w), got[:4], want[:4]))
    assert not wrong
    b.drop()


def test_hostile_ids_use_no_pymilvus_ids_argument(db):
    # pymilvus's get/delete(ids=[...]) splice ids into `id in ['...']`
    # unescaped: deleting "nope', 'victim" would delete "victim".
    b = _open(db, "hostile_ids")
    for i in ("victim", "nope', 'victim", 'nope", "victim', "a\\", "x\ny", "\r"):
        b.store(i, np.array([1.0, 2.0], np.float32))
    assert b.delete("nope', 'victim") is True and b.exists("victim")
    assert b.delete('nope", "victim') is True and b.exists("victim")
    assert b.count() == 4 and b.exists("a\\") and b.exists("x\ny") and b.exists("\r")
    b.drop()


# -- int vs bool, missing attributes ---------------------------------------------------------

def test_typed_keys_keep_int_and_bool_apart_where_milvus_json_does_not(db):
    b = _open(db, "intbool")
    b.store("one", np.array([1.0, 0.0], np.float32), {"n": 1})
    b.store("true", np.array([0.0, 1.0], np.float32), {"n": True})
    b.store("none", np.array([1.0, 1.0], np.float32))
    q = np.array([1.0, 1.0], np.float32)

    def ids(where):
        return sorted(h.id for h in b.search(q, 5, where=where))

    assert ids({"eq": ["n", 1]}) == ["one"] and ids({"eq": ["n", True]}) == ["true"]
    assert ids({"ne": ["n", 0]}) == ["one"] and ids({"not": {"eq": ["n", 1]}}) == ["none", "true"]
    assert ids({"ge": ["n", 1]}) == ["one"] and ids({"exists": "n"}) == ["one", "true"]
    # Why the keys carry the type: Milvus Lite's own JSON comparison says
    # true == 1 (Python's), and a missing key is NULL under `not`.
    c = b._c
    raw = c.query(b.collection, filter='attrs["n:i"] == 1 or attrs["n:b"] == 1', output_fields=["id"])
    assert sorted(r["id"] for r in raw) == ["one", "true"]
    raw = c.query(b.collection, filter='not (attrs["n:i"] == 1)', output_fields=["id"])
    assert sorted(r["id"] for r in raw) == []          # SQL NULL logic: "none" and "true" left out
    b.drop()


# -- ownership, options, consistency, reopen ----------------------------------------------------

def test_a_collection_vector_dst_did_not_create_is_never_touched(db):
    from pymilvus import DataType, MilvusClient
    c = MilvusClient(db)
    s = c.create_schema(auto_id=False)
    s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    ip = c.prepare_index_params()
    ip.add_index("v", index_type="FLAT", metric_type="COSINE")
    c.create_collection("theirs", schema=s, index_params=ip)
    c.upsert("theirs", [{"id": "x", "v": [1.0, 0.0]}])
    for fresh in (True, False):
        with pytest.raises(NotOurs, match="was not created by vector-dst"):
            _open(db, "theirs", fresh=fresh)
    mine = _open(db, "mine")
    mine.collection = "theirs"             # as if a namespace mapped onto it
    with pytest.raises(NotOurs):
        mine.drop()
    assert c.has_collection("theirs")
    assert c.query("theirs", filter="", output_fields=["count(*)"])[0]["count(*)"] == 1
    c.drop_collection("theirs")


def test_options_are_checked_before_anything_is_opened(db):
    assert OPTIONS.parse({}) == {"consistency": "strong", "index": "FLAT", "nlist": None, "nprobe": None,
                                 "m": None, "ef_construction": None, "ef": None}
    assert OPTIONS.parse({"consistency": "Bounded", "index": "ivf_flat"})["index"] == "IVF_FLAT"
    with pytest.raises(UsageError, match=r"unknown option 'consistancy'"):
        _open(db, "o1", consistancy="bounded")
    with pytest.raises(UsageError, match=r"^milvus backend: consistency must be one of strong, bounded"):
        _open(db, "o2", consistency="weak")
    with pytest.raises(UsageError, match=r"^milvus backend: index must be one of FLAT"):
        _open(db, "o3", index="IVF_PQ")
    with pytest.raises(UsageError, match=r"option nlist does not apply to index FLAT"):
        _open(db, "o4", nlist=8)
    from pymilvus import MilvusClient
    assert not any(n.startswith("o") and len(n) == 2 for n in MilvusClient(db).list_collections())


@pytest.mark.parametrize("level", ["strong", "bounded", "session", "eventually"])
def test_consistency_option_sets_the_collection_level(db, level):
    b = _open(db, f"level_{level}", consistency=level)
    assert b.level == level.capitalize()       # given at create and on every read
    # Milvus Lite 3.2.2 keeps no consistency level (no code in milvus_lite
    # reads it): describe reports pymilvus's default, Strong, whatever was
    # asked. If a later Lite honours the level, this fails: revisit the docs.
    assert b._c.describe_collection(b.collection)["consistency_level_name"] == "Strong"
    b.store("a", np.array([1.0, 0.0], np.float32))
    # It applies every write before acknowledging it, so even Eventually
    # reads its own write: no stale read can be shown on Lite.
    assert b.count() == 1 and b.exists("a")
    b.drop()


def test_reopen_refuses_another_dimension_or_metric(db):
    b = _open(db, "shape", dim=2)
    b.store("a", np.array([1.0, 0.0], np.float32))
    b.close()
    with pytest.raises(BackendError, match="dimension 2, not 3"):
        _open(db, "shape", fresh=False, dim=3)
    with pytest.raises(BackendError, match="indexed for COSINE, not L2"):
        _open(db, "shape", fresh=False, metric="l2")
    again = _open(db, "shape", fresh=False)
    assert again.count() == 1 and (again.get("a") == np.array([1.0, 0.0], np.float32)).all()
    with pytest.raises(BackendError, match="no collection"):
        _open(db, "never_made", fresh=False)
    again.drop()


def test_a_folder_location_gets_one_database_per_namespace_removed_on_drop(tmp_path):
    b = MilvusBackend(BackendConfig(dim=2, location=str(tmp_path), namespace="dst_run_0_default-x"))
    assert b.collection.startswith("dst_run_0_default_x_") and os.path.isdir(b.db_path)
    b.store("a", np.array([1.0, 0.0], np.float32))
    b.close()
    b.drop()
    assert not os.path.exists(b.db_path)


# -- metrics and indexes ---------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
@pytest.mark.parametrize("index", ["FLAT", "IVF_FLAT", "HNSW"])
def test_scores_per_metric_and_index(db, metric, index):
    rng = np.random.default_rng(9)
    xs = (rng.standard_normal((40, 4)) * 3).astype(np.float32)
    b = _open(db, f"sc_{metric}_{index}", dim=4, metric=metric, index=index)
    assert b.exact is (index == "FLAT")
    assert callable(b.search_exact) is (index != "HNSW")
    b.store_batch([(str(i), x) for i, x in enumerate(xs)])
    b.maintenance("index")                # flushed: the segment is searched through the index
    q = rng.standard_normal(4).astype(np.float32)
    for search in (b.search, b.search_exact) if index != "HNSW" else (b.search,):
        hits = search(q, 10)
        assert len(hits) == 10
        for h in hits:
            t = score(metric, q, xs[int(h.id)])
            assert abs(h.score - t) <= 1e-4 * max(1.0, abs(t)), (metric, index, h, t)
    true = sorted((score(metric, q, x) for x in xs), reverse=True)[:10]
    if index != "HNSW":
        assert np.allclose([h.score for h in b.search_exact(q, 10)], true, atol=1e-3)
    b.drop()


# -- the setup error ---------------------------------------------------------------------------

def test_missing_pymilvus_is_a_one_line_setup_error(monkeypatch, db):
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(UsageError) as err:
        _open(db, "x")
    msg = str(err.value)
    assert "\n" not in msg and "pip install -e '.[milvus]'" in msg
    assert msg.startswith("the milvus backend needs")


# -- delete's existence report under threads ------------------------------------------------------

def test_two_handles_deleting_one_id_at_once_never_both_say_true(db):
    import threading
    a = _open(db, "race")
    b = _open(db, "race", fresh=False)
    x = np.array([1.0, 0.0], np.float32)
    both = []
    for r in range(30):
        a.store(f"k{r}", x)
        start = threading.Barrier(2)
        said = []

        def go(h, r=r):
            start.wait()
            said.append(h.delete(f"k{r}"))
        ts = [threading.Thread(target=go, args=(h,)) for h in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if said.count(True) != 1:
            both.append((r, said))
    assert not both and a.count() == 0
    a.drop()
