"""One conformance suite for every backend (like trio's check_one_way_stream).

Each test takes a ``maker``: ``maker(namespace, fresh=True) -> backend``.
Every backend must pass every test here: DESIGN's semantics, hostile ids,
each InvalidInput case, ties, agreement of count/get/exists/search, reopen
durability and batches up to 10,000 rows.
"""

import os

import numpy as np
import pytest

from dst.backend import BackendConfig, SearchHit
from dst.errors import InvalidInput
from dst.validate import cosine
from dst.sim.workload import HOSTILE_STEMS

DIM = 4


def _sim_maker(tmp_path):
    from backends.sim import open_backend

    def make(ns, fresh=True, dim=DIM, metric="cosine", **options):
        return open_backend(BackendConfig(dim=dim, location=str(tmp_path), namespace=ns,
                                          fresh=fresh, options=options, metric=metric))
    return make


def _lance_maker(tmp_path):
    from backends.lance import open_backend

    def make(ns, fresh=True, dim=DIM, metric="cosine", **options):
        return open_backend(BackendConfig(dim=dim, location=str(tmp_path / "lance"), namespace=ns,
                                          fresh=fresh, options=options, metric=metric))
    return make


def _pgvector_maker(tmp_path, server="pg18"):
    import os
    import re

    from backends.pgvector import open_backend
    from dst import pg_embedded
    from tests.conftest import ROOT

    # DST_PG_DSN stands for the default server only: the pg16 column always
    # runs on its own embedded server, so it never tests another one twice.
    dsn = ((os.environ.get(pg_embedded.DSN_ENV) if server == "pg18" else None)
           or pg_embedded.ensure_server(ROOT / pg_embedded.SERVERS[server].default_dir, server).dsn())
    # Namespaces unique to this process and test folder, so two runs sharing
    # a server never meet; each test drops what it made when done.
    tag = re.sub(r"[^a-z0-9]", "", tmp_path.name.lower())[-20:]

    made: dict[str, int] = {}

    def make(ns, fresh=True, dim=DIM, metric="cosine", **options):
        name = f"c{os.getpid()}_{tag}_{ns}"
        made[name] = dim
        return open_backend(BackendConfig(dim=dim, location=dsn, namespace=name,
                                          fresh=fresh, options=options, metric=metric))

    def cleanup():
        for name, dim in made.items():
            open_backend(BackendConfig(dim=dim, location=dsn, namespace=name, fresh=True)).drop()
    make.cleanup = cleanup
    return make


def _chroma_maker(tmp_path):
    from backends.chroma import open_backend

    made = []

    def make(ns, fresh=True, dim=DIM, metric="cosine", **options):
        b = open_backend(BackendConfig(dim=dim, location=str(tmp_path / "chroma"), namespace=ns,
                                       fresh=fresh, options=options, metric=metric))
        made.append(b)
        return b

    def cleanup():
        # Chroma keeps one System per folder until its last client closes.
        for b in made:
            b.close()
    make.cleanup = cleanup
    return make


def _milvus_maker(tmp_path):
    import re

    from backends.milvus import open_backend

    # One Milvus Lite database (one in-process server) for the whole session:
    # starting a server per test would cost most of the budget. Collections
    # are named per test folder; each test drops what it made.
    db = str(tmp_path.parent / "milvus-conformance.db")
    tag = re.sub(r"[^a-z0-9]", "", tmp_path.name.lower())[-24:]
    made: dict[str, object] = {}

    def make(ns, fresh=True, dim=DIM, metric="cosine", **options):
        name = f"c_{tag}_{ns}"
        made[name] = b = open_backend(BackendConfig(dim=dim, location=db, namespace=name,
                                                    fresh=fresh, options=options, metric=metric))
        return b

    def cleanup():
        for b in made.values():
            b.drop()            # works after close(): it reconnects
    make.cleanup = cleanup
    return make


def _qdrant_maker(tmp_path):
    import shutil
    import tempfile

    from backends.qdrant import open_backend

    # Local mode commits every point to SQLite on its own (an fsync each):
    # on tmpfs, where there is one, the 10,000-row test takes seconds, not a
    # minute. Power-loss durability is not what this suite checks.
    shm = "/dev/shm"
    where = tempfile.mkdtemp(prefix="dst-qdrant-", dir=shm) if os.path.isdir(shm) else str(tmp_path)

    def make(ns, fresh=True, dim=DIM, metric="cosine", **options):
        return open_backend(BackendConfig(dim=dim, location=os.path.join(where, "qdrant"), namespace=ns,
                                          fresh=fresh, options=options, metric=metric))
    make.cleanup = lambda: where != str(tmp_path) and shutil.rmtree(where, ignore_errors=True)
    return make


def _qdrant_edge_maker(tmp_path):
    from backends.qdrant_edge import open_backend

    def make(ns, fresh=True, dim=DIM, metric="cosine", **options):
        return open_backend(BackendConfig(dim=dim, location=str(tmp_path / "qdrant-edge"), namespace=ns,
                                          fresh=fresh, options=options, metric=metric))
    return make


MAKERS = {"sim": _sim_maker, "lance": _lance_maker, "pgvector": _pgvector_maker,
          "chroma": _chroma_maker, "qdrant": _qdrant_maker, "qdrant-edge": _qdrant_edge_maker,
          "milvus": _milvus_maker,
          "pgvector@pg16": lambda tmp_path: _pgvector_maker(tmp_path, "pg16")}   # pgvector: pg18


@pytest.fixture(params=sorted(MAKERS))
def maker(request, tmp_path):
    make = MAKERS[request.param](tmp_path)
    yield make
    cleanup = getattr(make, "cleanup", None)
    if cleanup is not None:
        cleanup()


def v(*xs):
    return np.array(xs, dtype=np.float32)


def test_attributes(maker):
    b = maker("attrs")
    assert isinstance(b.name, str) and b.dim == DIM
    assert isinstance(b.exact, bool) and isinstance(b.atomic_batches, bool)


def test_crud_semantics(maker):
    b = maker("crud")
    assert b.count() == 0 and b.get("a") is None and not b.exists("a")
    assert b.search(v(1, 0, 0, 0), 3) == []
    b.store("a", v(1, 0, 0, 0))
    b.store("b", v(0, 1, 0, 0))
    got = b.get("a")
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and (got == v(1, 0, 0, 0)).all()
    assert b.exists("b") and b.count() == 2
    b.store("a", v(0, 0, 1, 0))                  # upsert replaces, no new row
    assert b.count() == 2 and (b.get("a") == v(0, 0, 1, 0)).all()
    assert b.delete("a") is True
    assert b.delete("a") is False
    assert b.get("a") is None and not b.exists("a") and b.count() == 1


def test_search_semantics_and_raw_cosine(maker):
    b = maker("search")
    rng = np.random.default_rng(1)
    vecs = {f"k{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(30)}
    b.store_batch(list(vecs.items()))
    q = rng.standard_normal(DIM).astype(np.float32)
    hits = b.search(q, 10)
    assert len(hits) == 10 and all(isinstance(h, SearchHit) for h in hits)
    assert len({h.id for h in hits}) == 10
    true = {i: cosine(q, x) for i, x in vecs.items()}
    for h in hits:
        assert abs(h.score - true[h.id]) <= 1e-4
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    best = sorted(true.values(), reverse=True)[:10]
    assert np.allclose(sorted(scores, reverse=True), best, atol=1e-4)
    assert len(b.search(q, 100)) == 30             # length is min(limit, count)
    anti = b.search(-vecs["k0"], 30)
    assert anti[-1].id == "k0" and anti[-1].score == pytest.approx(-1.0, abs=1e-4)


def test_exact_ties_are_all_returned_ordered_by_score(maker):
    b = maker("ties")
    base = v(1, 2, 3, 4)
    b.store_batch([("t3", base), ("t1", base * 2), ("t2", base * 0.5), ("x", v(-1, 0, 0, 0))])
    hits = b.search(base, 3)
    assert sorted(h.id for h in hits) == ["t1", "t2", "t3"]
    assert all(h.score == pytest.approx(1.0, abs=1e-4) for h in hits)


def test_hostile_ids_round_trip(maker):
    b = maker("hostile")
    ids = [f"{stem}{n}" for n, stem in enumerate(HOSTILE_STEMS)]
    ids += ["k" * 256, "\u00fc\u00e9\U0001f642", "a'b\"c\\d", "%", "_", "' OR 1=1 --", "id = 'x'"]
    for n, i in enumerate(ids):
        b.store(i, v(1, n, 0, 1))
    assert b.count() == len(ids)
    for n, i in enumerate(ids):
        assert b.exists(i), i
        assert (b.get(i) == v(1, n, 0, 1)).all(), i
    assert sorted(h.id for h in b.search(v(1, 0, 0, 1), len(ids))) == sorted(ids)
    # A wildcard or quote must not match other ids.
    assert not b.exists("%") or "%" in ids
    assert b.delete("%") is True and b.count() == len(ids) - 1 and b.exists("_")
    assert b.delete("' OR 1=1 --") is True and b.count() == len(ids) - 2


BAD = [
    (lambda b: b.store("", v(1, 0, 0, 0)), "id is empty"),
    (lambda b: b.store("a\x00b", v(1, 0, 0, 0)), "NUL"),
    (lambda b: b.store("a\ud800", v(1, 0, 0, 0)), "surrogate"),
    (lambda b: b.store("k" * 257, v(1, 0, 0, 0)), "more than 256"),
    (lambda b: b.store("a", v(1, 0, 0)), "has 3 components, expected 4"),
    (lambda b: b.store("a", v(1, np.nan, 0, 0)), "component 1 is nan"),
    (lambda b: b.store("a", v(np.inf, 0, 0, 0)), "component 0 is inf"),
    (lambda b: b.store("a", v(0, 0, 0, 0)), "zero norm"),
    (lambda b: b.search(v(1, 0, 0, 0), 0), "limit must be at least 1"),
    (lambda b: b.search(v(0, 0, 0, 0), 1), "zero norm"),
    (lambda b: b.search(v(1, 0, 0), 1), "has 3 components"),
    (lambda b: b.store_batch([("a", v(1, 0, 0, 0)), ("a", v(0, 1, 0, 0))]), "repeats id 'a'"),
    (lambda b: b.store_batch([("n", v(1, 0, 0, 0)), ("m", v(0, 0, 0, 0))]), "item 1: vector has zero norm"),
    (lambda b: b.delete(""), "id is empty"),
    (lambda b: b.get("x\x00"), "NUL"),
    (lambda b: b.exists("\udfff"), "surrogate"),
]


@pytest.mark.parametrize("call, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_refused_and_changes_nothing(maker, call, message):
    b = maker("bad")
    b.store("keep", v(1, 1, 1, 1))
    with pytest.raises(InvalidInput, match=message):
        call(b)
    assert b.count() == 1 and (b.get("keep") == v(1, 1, 1, 1)).all()
    assert not b.exists("n") and not b.exists("a")


def test_count_get_exists_search_agree(maker):
    b = maker("agree")
    rng = np.random.default_rng(2)
    live = {}
    for step in range(60):
        i = f"k{rng.integers(0, 15)}"
        if rng.integers(0, 3) == 0:
            assert b.delete(i) is (i in live)
            live.pop(i, None)
        else:
            x = rng.standard_normal(DIM).astype(np.float32)
            b.store(i, x)
            live[i] = x
    assert b.count() == len(live)
    for n in range(15):
        i = f"k{n}"
        assert b.exists(i) is (i in live)
        g = b.get(i)
        assert (g is None) if i not in live else (g == live[i]).all()
    assert sorted(h.id for h in b.search(v(1, 0, 0, 0), 100)) == sorted(live)


def test_reopen_sees_acknowledged_writes(maker):
    b = maker("durable")
    b.store("a", v(1, 0, 0, 0))
    b.store_batch([("b", v(0, 1, 0, 0)), ("c", v(0, 0, 1, 0))])
    b.delete("b")
    del b                                   # dropped without close(), as a crash
    again = maker("durable", fresh=False)
    assert again.count() == 2 and again.exists("a") and again.exists("c") and not again.exists("b")
    again.close()
    assert maker("durable", fresh=False).count() == 2
    assert maker("durable", fresh=True).count() == 0   # fresh recreates its own namespace


def test_batches_up_to_ten_thousand_rows(maker):
    b = maker("big")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10_000, DIM)).astype(np.float32)
    b.store_batch([(f"r{i}", x[i]) for i in range(10_000)])
    assert b.count() == 10_000
    assert (b.get("r9999") == x[9999]).all()
    # an upsert batch over existing ids replaces, adds no rows
    b.store_batch([(f"r{i}", x[i] * 2) for i in range(0, 10_000, 2)])
    assert b.count() == 10_000 and (b.get("r0") == x[0] * 2).all()
    hits = b.search(x[5], 5)
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    b.store_batch([])
    assert b.count() == 10_000


def test_bad_batch_applies_nothing(maker):
    b = maker("badbatch")
    with pytest.raises(InvalidInput):
        b.store_batch([("a", v(1, 0, 0, 0)), ("b", v(1, np.nan, 0, 0))])
    assert b.count() == 0
