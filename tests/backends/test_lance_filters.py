"""LanceDB: the run's metric (scores against dst.metrics.score), the
prefilter option, and a short CLI run per metric. Real LanceDB in tmp_path."""

import numpy as np
import pytest

from backends.lance import OPTIONS, open_backend
from dst.backend import BackendConfig
from dst.metrics import score
from tests.conftest import run_cli


def _open(tmp_path, metric, **options):
    return open_backend(BackendConfig(dim=4, location=str(tmp_path), namespace="t", fresh=True,
                                      options=options, metric=metric))


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_scores_match_the_contract(tmp_path, metric):
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((20, 4)).astype(np.float32)
    if metric != "cosine":
        xs[0] = 0.0          # valid under l2 and dot
    b = _open(tmp_path, metric)
    b.store_batch([(str(i), x) for i, x in enumerate(xs)])
    q = rng.standard_normal(4).astype(np.float32)
    hits = b.search(q, 20)
    assert len(hits) == 20
    for h in hits:
        assert abs(h.score - score(metric, xs[int(h.id)], q)) < 1e-5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_prefilter_option_parse():
    assert OPTIONS.parse({})["prefilter"] is True
    assert OPTIONS.parse({"prefilter": "false"})["prefilter"] is False


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_cli_run_per_metric(tmp_path, metric):
    r = run_cli("run", "--backend", "lance", "--scenario", "search-heavy", "--seeds", "3", "--ops", "60",
                "--metric", metric, "--quiet",
                "--location", str(tmp_path / "db"), "--report-dir", str(tmp_path / "rep"))
    assert r == 0


def _filtered(b, where):
    return sorted(h.id for h in b.search(np.array([1.0, 1.0], np.float32), 200, where=where))


def test_hostile_values_round_trip_and_filter(tmp_path):
    from dst.filters import INT_MIN, matches
    from dst.sim.workload import HOSTILE_STEMS, HOSTILE_VALUES
    b = open_backend(BackendConfig(dim=2, location=str(tmp_path), namespace="t", fresh=True, options={}))
    vals = list(dict.fromkeys([*HOSTILE_VALUES, *HOSTILE_STEMS]))
    rows = {f"r{i}": {"label": v} for i, v in enumerate(vals)}
    rows["none"] = {}
    rows["min"] = {"label": INT_MIN}
    b.store_batch([(k, np.array([1.0, i + 1.0], np.float32), a) for i, (k, a) in enumerate(rows.items())])
    for k, a in rows.items():
        assert b.get_attrs(k) == a, k
    for v in [*vals, INT_MIN, 2 ** 63 - 1]:
        for w in ({"eq": ["label", v]}, {"ne": ["label", v]}, {"in": ["label", [v]]}):
            assert _filtered(b, w) == sorted(k for k, a in rows.items() if matches(w, a)), w


def test_missing_attribute_is_two_valued(tmp_path):
    b = open_backend(BackendConfig(dim=2, location=str(tmp_path), namespace="t", fresh=True, options={}))
    b.store("has", np.array([1.0, 0.0], np.float32), {"tenant": "x"})
    b.store("other", np.array([1.0, 1.0], np.float32), {"tenant": "y"})
    b.store("bare", np.array([0.0, 1.0], np.float32))
    b.store("typed", np.array([1.0, 2.0], np.float32), {"tenant": 3})
    assert _filtered(b, {"not": {"eq": ["tenant", "x"]}}) == ["bare", "other", "typed"]
    assert _filtered(b, {"ne": ["tenant", "x"]}) == ["other"]
    assert _filtered(b, {"and": []}) == ["bare", "has", "other", "typed"]
    assert _filtered(b, {"or": []}) == []
    assert _filtered(b, {"exists": "tenant"}) == ["has", "other", "typed"]
    assert _filtered(b, {"not": {"exists": "nope"}}) == ["bare", "has", "other", "typed"]
    b.store("has", np.array([1.0, 0.0], np.float32))      # a store without attrs clears them
    assert b.get_attrs("has") == {} and b.get_attrs("gone") is None
    assert _filtered(b, {"eq": ["tenant", "x"]}) == []


def test_the_schema_never_changes_after_the_table_is_made(tmp_path):
    # Concurrent writers met commit conflicts when the adapter added a column
    # per new attribute: the attribute layout is fixed at creation instead.
    b = open_backend(BackendConfig(dim=2, location=str(tmp_path), namespace="t", fresh=True, options={}))
    before = b._t.schema
    full = {f"k{i}": v for i, v in enumerate(["x", 1, True, "y'", -(2 ** 63), False, "", 2 ** 63 - 1])}
    b.store("full", np.array([1.0, 0.0], np.float32), full)
    b.store_batch([("s", np.array([0.0, 1.0], np.float32), {"zz": "1"}),
                   ("i", np.array([1.0, 1.0], np.float32), {"zz": 1}),
                   ("b", np.array([1.0, 2.0], np.float32), {"zz": True, "a": "p"})])
    assert b._t.schema == before
    assert b.get_attrs("full") == full
    assert [b.get_attrs(i) for i in "sib"] == [{"zz": "1"}, {"zz": 1}, {"a": "p", "zz": True}]
    assert _filtered(b, {"eq": ["zz", 1]}) == ["i"]
    assert _filtered(b, {"eq": ["zz", True]}) == ["b"]
    assert _filtered(b, {"ne": ["zz", "1"]}) == []
    assert _filtered(b, {"gt": ["k7", 0]}) == ["full"]
    assert _filtered(b, {"exists": "k4"}) == ["full"]
    assert _filtered(b, {"not": {"exists": "zz"}}) == ["full"]


def test_reopen_adds_the_slots_to_a_table_from_before_attributes_and_refuses_other_layouts(tmp_path):
    import lancedb
    import pyarrow as pa

    from backends._toolkit import owner_mark
    from dst.errors import BackendError
    db = lancedb.connect(str(tmp_path))
    for name, extra in (("old", []), ("odd", [pa.field("a__tenant__s", pa.string())])):
        schema = pa.schema([pa.field("id", pa.string(), nullable=False),
                            pa.field("vector", pa.list_(pa.float32(), 2), nullable=False), *extra],
                           metadata=owner_mark())
        t = db.create_table(name, schema=schema)
        t.add([{"id": "r", "vector": [1.0, 0.0], **({"a__tenant__s": "x"} if extra else {})}])
    b = open_backend(BackendConfig(dim=2, location=str(tmp_path), namespace="old", fresh=False, options={}))
    assert b.get_attrs("r") == {}
    b.store("n", np.array([0.0, 1.0], np.float32), {"tenant": "t"})
    assert _filtered(b, {"eq": ["tenant", "t"]}) == ["n"]
    with pytest.raises(BackendError, match="not this adapter's layout"):
        open_backend(BackendConfig(dim=2, location=str(tmp_path), namespace="odd", fresh=False, options={}))
