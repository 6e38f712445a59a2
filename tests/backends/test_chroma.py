"""Chroma adapter specifics: namespace mapping, ownership, options, the
metadata it keeps, the native filter translation and the two-valued
missing-attribute semantics built from Chroma's operators, scores per
metric. Real chromadb PersistentClient folders in tmp_path."""

import itertools
import sys

import numpy as np
import pytest

from backends._toolkit import NotOurs
from backends.chroma import (OPTIONS, TYPE_PREFIX, VEC_KEY, chroma_name_ok, collection_name, open_backend,
                             to_chroma_where)
from dst.backend import BackendConfig
from dst.errors import BackendError, UsageError
from dst.filters import INT_MAX, INT_MIN, canonical, matches
from dst.metrics import score
from tests.conftest import run_cli


@pytest.fixture
def opened(tmp_path):
    made = []

    def make(ns="t", dim=2, metric="cosine", fresh=True, **options):
        b = open_backend(BackendConfig(dim=dim, location=str(tmp_path / "db"), namespace=ns, fresh=fresh,
                                       options=options, metric=metric))
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


def _raw(tmp_path):
    import chromadb
    from chromadb.config import Settings
    return chromadb.PersistentClient(path=str((tmp_path / "db").absolute()),
                                     settings=Settings(anonymized_telemetry=False))


# -- namespaces ------------------------------------------------------------------------

def test_collection_names_obey_chroma_and_never_collide(tmp_path, opened):
    assert collection_name("dst_run_7_default") == "dst_run_7_default"
    assert collection_name("a.b-c") == "a.b-c"
    odd = ["ab", "x", "a..b", "1.2.3.4", "dst_run_", "_lead", "-x-", "é日本", "a b", "a/b", "a.b.",
           "k" * 513, "ab_", "ab-", "ab."]
    names = [collection_name(ns) for ns in odd]
    assert all(chroma_name_ok(n) for n in names), names
    assert len(set(names)) == len(odd)
    assert not any(n in odd for n in names)           # each was mapped
    assert collection_name("a..b") == collection_name("a..b")
    with pytest.raises(BackendError, match="namespace"):
        collection_name("")
    # Chroma itself takes every mapped name (and the checks agree with it).
    b = opened("1.2.3.4")
    b.store("x", np.array([1.0, 0.0], np.float32))
    b2 = opened("a..b")
    assert b2.count() == 0 and b.count() == 1
    client = _raw(tmp_path)
    have = {c.name for c in client.list_collections()}
    assert {collection_name("1.2.3.4"), collection_name("a..b")} <= have
    for bad in ("ab", "a..b", "1.2.3.4", "ab_"):
        assert not chroma_name_ok(bad)
        with pytest.raises(Exception):
            client.create_collection(bad, embedding_function=None)


# -- ownership --------------------------------------------------------------------------

def test_refuses_a_collection_it_did_not_create(tmp_path, opened):
    client = _raw(tmp_path)
    theirs = client.create_collection("theirs", embedding_function=None)
    theirs.add(ids=["keep"], embeddings=[[1.0, 2.0]])
    for fresh in (True, False):
        with pytest.raises(NotOurs, match="not created by vector-dst"):
            opened("theirs", fresh=fresh)
    assert theirs.count() == 1                          # untouched
    # Ours, but another dimension or metric: refused, left alone.
    b = opened("mine")
    b.store("a", np.array([1.0, 0.0], np.float32))
    with pytest.raises(BackendError, match="dimension"):
        opened("mine", dim=3, fresh=True)
    with pytest.raises(BackendError, match="space"):
        opened("mine", metric="l2", fresh=True)
    assert opened("mine", fresh=False).count() == 1
    with pytest.raises(BackendError, match="to reopen"):
        opened("never", fresh=False)


def test_drop_removes_only_its_collection_and_works_after_close(tmp_path, opened):
    a, b = opened("aaa"), opened("bbb")
    a.store("x", np.array([1.0, 0.0], np.float32))
    b.store("x", np.array([1.0, 0.0], np.float32))
    a.close()
    a.drop()
    names = {c.name for c in _raw(tmp_path).list_collections()}
    assert "aaa" not in names and "bbb" in names and b.count() == 1
    # A collection that lost its mark after open is refused by drop.
    c = opened("ccc")
    _raw(tmp_path).get_collection("ccc").modify(metadata={"other": 1})
    with pytest.raises(NotOurs):
        c.drop()
    assert "ccc" in {x.name for x in _raw(tmp_path).list_collections()}


# -- options and setup -------------------------------------------------------------------

def test_options_are_checked_and_become_hnsw_settings(tmp_path, opened):
    with pytest.raises(UsageError, match="unknown.*'ef'"):
        opened(ef=3)
    with pytest.raises(UsageError, match="chroma: ef_search must be an integer of at least 1"):
        opened(ef_search="0")
    assert not (tmp_path / "db").exists()              # refused before anything was created
    opened("opt", ef_search="7", max_neighbors=8, num_threads=1)
    meta = _raw(tmp_path).get_collection("opt").metadata
    assert meta["hnsw:search_ef"] == 7 and meta["hnsw:M"] == 8 and meta["hnsw:num_threads"] == 1
    assert meta["hnsw:space"] == "cosine" and meta["dst.dim"] == 2
    assert OPTIONS.parse({})["ef_search"] is None


def test_protocol_methods_come_from_the_validating_base():
    from backends._toolkit import ValidatingBackend
    from backends.chroma import ChromaBackend
    for m in ("store", "store_batch", "delete", "get", "get_attrs", "exists", "search"):
        assert getattr(ChromaBackend, m) is getattr(ValidatingBackend, m), m
    assert ChromaBackend.search_exact is None and ChromaBackend.exact is False


def test_missing_chromadb_is_a_one_line_setup_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "chromadb", None)
    with pytest.raises(UsageError, match=r"pip install -e '\.\[chroma\]'"):
        open_backend(BackendConfig(dim=2, location=str(tmp_path), namespace="t", fresh=True, options={}))
    assert run_cli("run", "--backend", "chroma", "--seeds", "1", "--location", str(tmp_path / "db"),
                   "--report-dir", str(tmp_path / "rep")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install -e '.[chroma]'" in err[0] and "Traceback" not in err[0]


# -- what is stored ------------------------------------------------------------------------

def test_get_is_bit_exact_under_every_metric(opened):
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((60, 8)).astype(np.float32)
    for metric in ("cosine", "l2", "dot"):
        b = opened(f"exact_{metric}", dim=8, metric=metric)
        b.store_batch([(f"r{i}", x) for i, x in enumerate(xs)])
        for i, x in enumerate(xs):
            got = b.get(f"r{i}")
            assert got.dtype == np.float32 and got.tobytes() == x.tobytes(), (metric, i)


def test_a_write_replaces_attributes_not_merges_them(tmp_path, opened):
    b = opened("merge")
    v = np.array([1.0, 0.0], np.float32)
    b.store("r", v, {"tenant": "a", "n": 1, "flag": True})
    b.store("r", v, {"n": 2})
    assert b.get_attrs("r") == {"n": 2}
    raw = _raw(tmp_path).get_collection("merge").get(ids=["r"], include=["metadatas"])["metadatas"][0]
    assert set(raw) == {"n", TYPE_PREFIX + "n", VEC_KEY}   # no stale value or type key
    assert b.search(v, 5, where={"exists": "tenant"}) == []
    b.store_batch([("r", v), ("s", v, {"flag": False})])
    assert b.get_attrs("r") == {} and b.get_attrs("s") == {"flag": False}
    assert [h.id for h in b.search(v, 5, where={"not": {"exists": "n"}})] == ["r", "s"]


def test_int_and_bool_stay_distinct_and_64_bit_ints_round_trip(opened):
    b = opened("types")
    rows = {"one": {"x": 1}, "true": {"x": True}, "zero": {"x": 0}, "false": {"x": False},
            "min": {"x": INT_MIN}, "max": {"x": INT_MAX}, "big": {"x": 2 ** 53 + 1}, "str": {"x": "1"}}
    b.store_batch([(k, np.array([1.0, i + 1.0], np.float32), a) for i, (k, a) in enumerate(rows.items())])
    for k, a in rows.items():
        got = b.get_attrs(k)
        assert got == a and type(got["x"]) is type(a["x"]), k
    for w in ({"eq": ["x", 1]}, {"eq": ["x", True]}, {"in": ["x", [0, 1]]}, {"in": ["x", [False]]},
              {"ne": ["x", 1]}, {"not": {"eq": ["x", True]}}, {"ge": ["x", 0]}, {"lt": ["x", 1]},
              {"eq": ["x", 2 ** 53 + 1]}, {"eq": ["x", 2 ** 53]}, {"le": ["x", INT_MIN]},
              {"ge": ["x", INT_MAX]}, {"eq": ["x", "1"]}):
        got = sorted(h.id for h in b.search(np.array([1.0, 1.0], np.float32), 50, where=w))
        assert got == sorted(k for k, a in rows.items() if matches(w, a)), w


# -- filters ------------------------------------------------------------------------------

def test_translation_pushes_negation_down_and_folds_constants():
    assert to_chroma_where(None) is None
    assert to_chroma_where(canonical({"and": []})) is None
    assert to_chroma_where(canonical({"or": []})) == {"dst.never": {"$eq": True}}
    assert to_chroma_where(canonical({"not": {"eq": ["a", "x"]}})) == {"a": {"$ne": "x"}}
    assert to_chroma_where(canonical({"not": {"in": ["a", [2, 1]]}})) == {"a": {"$nin": [1, 2]}}
    assert to_chroma_where(canonical({"ne": ["a", 3]})) == {
        "$and": [{"dst.t.a": {"$eq": "i"}}, {"a": {"$ne": 3}}]}
    assert to_chroma_where(canonical({"not": {"lt": ["a", 3]}})) == {
        "$or": [{"dst.t.a": {"$ne": "i"}}, {"a": {"$gte": 3}}]}
    assert to_chroma_where(canonical({"not": {"and": [{"eq": ["a", 1]}, {"exists": "b"}]}})) == {
        "$or": [{"a": {"$ne": 1}}, {"dst.t.b": {"$nin": ["b", "i", "s"]}}]}
    assert to_chroma_where(canonical({"and": [{"or": []}, {"eq": ["a", 1]}]})) == {"dst.never": {"$eq": True}}
    assert to_chroma_where(canonical({"or": [{"and": []}, {"eq": ["a", 1]}]})) is None
    assert to_chroma_where(canonical({"and": [{"and": []}, {"eq": ["a", 1]}]})) == {"a": {"$eq": 1}}


def _leaves():
    out = [{"exists": "a"}]
    for v in ("x", 3, True):
        out += [{"eq": ["a", v]}, {"ne": ["a", v]}, {"in": ["a", [v]]}]
    out += [{op: ["a", 3]} for op in ("lt", "le", "gt", "ge")]
    return out


def test_missing_attribute_semantics_native_filters_agree_with_the_portable_ones(opened):
    """Every leaf, its negation, and pairs under and/or/not, over rows that
    lack the attribute (with other attributes, with none at all) or hold it
    with each type: Chroma's answer is dst.filters.matches's."""
    rows = {"none": {}, "other": {"b": 1}, "s_x": {"a": "x"}, "s_y": {"a": "y"}, "i3": {"a": 3},
            "i4": {"a": 4}, "i2": {"a": 2}, "t": {"a": True}, "f": {"a": False}}
    for metric in ("cosine", "l2"):          # l2: a row without attributes has no metadata at all
        b = opened(f"miss_{metric}", metric=metric)
        b.store_batch([(k, np.array([1.0, i + 1.0], np.float32), a) for i, (k, a) in enumerate(rows.items())])
        leaves = _leaves()
        filters = leaves + [{"not": w} for w in leaves]
        filters += [{op: [x, y]} for op in ("and", "or") for x, y in itertools.combinations(leaves[:8], 2)]
        filters += [{"not": {"or": [x, {"not": y}]}} for x, y in zip(leaves, reversed(leaves))]
        for w in filters:
            got = sorted(h.id for h in b.search(np.array([1.0, 1.0], np.float32), 50, where=w))
            assert got == sorted(k for k, a in rows.items() if matches(w, a)), (metric, w)


def test_hostile_values_round_trip_and_filter(opened):
    from dst.sim.workload import HOSTILE_STEMS, HOSTILE_VALUES
    b = opened("hostile")
    vals = list(dict.fromkeys([*HOSTILE_VALUES, *HOSTILE_STEMS]))
    rows = {f"r{i}": {"label": v} for i, v in enumerate(vals)}
    rows["bare"] = {}
    b.store_batch([(k, np.array([1.0, i + 1.0], np.float32), a) for i, (k, a) in enumerate(rows.items())])
    for k, a in rows.items():
        assert b.get_attrs(k) == a, k
    for v in vals:
        for w in ({"eq": ["label", v]}, {"not": {"eq": ["label", v]}}, {"ne": ["label", v]}):
            got = sorted(h.id for h in b.search(np.array([1.0, 1.0], np.float32), 200, where=w))
            assert got == sorted(k for k, a in rows.items() if matches(w, a)), w


# -- metrics --------------------------------------------------------------------------------

def test_scores_are_the_contracts_not_chromas_distances(opened):
    q = np.array([3.0, 4.0], np.float32)
    l2 = opened("l2", metric="l2")
    l2.store("far", np.array([0.0, 0.0], np.float32))           # distance 5, squared 25
    assert l2.search(q, 1)[0].score == pytest.approx(-5.0, abs=1e-5)
    dot = opened("dot", metric="dot")
    dot.store("p", np.array([10.0, 0.0], np.float32))           # inner product 30 (Chroma: 1 - 30)
    assert dot.search(q, 1)[0].score == pytest.approx(30.0, abs=1e-4)
    cos = opened("cos")
    cos.store("o", np.array([-4.0, 3.0], np.float32))           # orthogonal
    assert cos.search(q, 1)[0].score == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((30, 2)).astype(np.float32) * 4
    for metric, b in (("l2", l2), ("dot", dot), ("cosine", cos)):
        b.store_batch([(f"r{i}", x) for i, x in enumerate(xs)])
        for h in b.search(q, 31):
            x = xs[int(h.id[1:])] if h.id.startswith("r") else b.get(h.id)
            assert abs(h.score - score(metric, x, q)) <= 1e-4 * max(1.0, abs(h.score)), (metric, h)


def test_cli_run_under_dot(tmp_path):
    # num_threads=1: Chroma's multithreaded index updates make rare short
    # answers (docs/findings.md, default seed 58: 2 of 4 replays, 0 of 4
    # single-threaded); this test is about the run under dot, not that finding.
    r = run_cli("run", "--backend", "chroma", "--scenario", "search-heavy", "--seeds", "3", "--ops", "60",
                "--metric", "dot", "--quiet", "--opt", "num_threads=1",
                "--location", str(tmp_path / "db"), "--report-dir", str(tmp_path / "rep"))
    assert r == 0
