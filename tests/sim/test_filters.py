"""The filters scenarios, the probes with filters in use, shrinking of
filters and attributes, and the broken backends of issue 12: each caught
by the filters scenario and shrunk to a small case of the same kind."""

import subprocess
import sys
from pathlib import Path

import pytest

from dst import filters
from dst.sim.runner import run_seed
from dst.sim.scenario import available, load
from dst.sim.shrink import Shrinker, kinds_of, listing, violation_kind
from dst.sim.workload import N_CUTS
from tests.broken_backends import FILTER_BROKEN, METRIC_OF
from tests.conftest import ROOT


def _filters(metric="cosine", ops=None):
    return load("filters").with_overrides(metric=metric, ops=ops)


def test_filters_scenarios_pass_on_sim():
    for name, ops in (("filters", None), ("filters-ann", 120)):
        sc = load(name).with_overrides(ops=ops)
        assert sc.filters == "on"
        for seed in range(3):
            r, h = run_seed(sc, seed, "sim", drop_passing=True)
            assert r.verdict == "ok", (name, seed, r.violations[:1])
            assert h.meta["filters"] is True


# Scenarios that hunt one pgvector bug run unfiltered, and say why in their
# files (a filtered HNSW search answers short on its own, a separate finding).
UNFILTERED = {"pg-unlogged-crash", "pg-vacuum-race"}


def test_only_the_pgvector_bug_hunts_are_unfiltered():
    off = {n for n in available() if load(n).op_weights["search"] > 0 and load(n).filters == "off"}
    assert off == UNFILTERED
    for n in sorted(off):
        assert "Unfiltered on purpose" in (ROOT / "scenarios" / f"{n}.toml").read_text()


@pytest.mark.parametrize("name", [n for n in available()
                                  if load(n).op_weights["search"] > 0 and n not in UNFILTERED])
def test_every_search_bearing_scenario_filters_on_sim(name):
    # In-process (the kill scenario's child processes are tests/sim/test_isolate.py's)
    sc = load(name).with_overrides(ops=60, isolate="none")
    assert sc.filters in ("auto", "on")
    seen = False
    for seed in range(4):
        r, h = run_seed(sc, seed, "sim")
        assert h.meta["filters"] is True and r.verdict != "violation", (name, seed)
        seen = seen or any(e["f"] == "search" and e["type"] == "invoke" and "where" in e["value"]
                           for e in h.events if e["process"] != "probe")
    assert seen, f"{name}: no filtered search in 4 seeds"


def test_filters_on_without_the_capability_is_a_setup_error():
    out = subprocess.run([str(Path(sys.executable).parent / "dst"), "run", "--backend", "tests.broken_backends:lost_write",
                          "--scenario", "filters", "--seeds", "1", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "filters capability" in out.stderr and "LostWrite" in out.stderr


def test_probes_read_attributes_and_search_with_filters():
    r, h = run_seed(_filters(ops=40), 1, "sim")
    assert r.verdict == "ok"
    probes = [e for e in h.events if e["process"] == "probe" and e["type"] == "invoke"]
    assert any(e["f"] == "get_attrs" for e in probes)
    filtered = [e["value"] for e in probes if e["f"] == "search" and "where" in e["value"]]
    assert filtered and all(v.get("exact") is True for v in filtered)
    # Deterministic: the same seed, the same history.
    r2, h2 = run_seed(_filters(ops=40), 1, "sim")
    assert h.events == h2.events


def test_no_filter_probes_when_filters_are_off():
    sc = load("default").with_overrides(ops=40)
    from dataclasses import replace
    r, h = run_seed(replace(sc, filters="off"), 0, "sim")
    assert not any(e["f"] == "get_attrs" or (e["f"] == "search" and e["type"] == "invoke"
                                              and "where" in e["value"]) for e in h.events)


def test_selectivity_ladder_spans_none_to_all():
    # n is uniform in [0, 1000): the cuts select 0%, 0.1%, 1%, 10%, 50%, 100%.
    assert N_CUTS == (0, 1, 10, 100, 500, 1000)


def _first_failure(factory_name, metric, seeds=10):
    sc = _filters(metric)
    backend = f"tests.broken_backends:{factory_name}"
    for seed in range(seeds):
        r, _ = run_seed(sc, seed, backend, record=True)
        if r.verdict == "violation":
            return sc, backend, seed, r
    raise AssertionError(f"{factory_name} passed {seeds} seeds of the filters scenario")


@pytest.mark.parametrize("name", sorted(FILTER_BROKEN))
def test_broken_backend_caught_and_shrunk(name):
    sc, backend, seed, r = _first_failure(name, METRIC_OF.get(name, "cosine"))
    kind = violation_kind(r)

    def still(case):
        x, _ = run_seed(sc, seed, backend, schedule=case)
        return kind in kinds_of(x)
    small = Shrinker(still, budget_s=60).shrink(r.schedule)
    assert still(small)
    rows = sum(len(op["value"].get("items", [])) for op in small.load)
    assert small.n_ops() <= 3 and rows <= 3, "\n".join(listing(small))
    # Filters and attributes came down too: at most one filter leaf and
    # one attribute per row are left.
    for plans in small.clients:
        for p in plans:
            w = p.value.get("where")
            if w is not None and filters.where_problem(w) is None:
                assert sum(1 for _ in filters.walk(w)) <= 2, "\n".join(listing(small))
    attr_sets = [p.value["attrs"] for plans in small.clients for p in plans if "attrs" in p.value]
    attr_sets += [it[2] for op in [*small.load, *({"value": p.value} for plans in small.clients for p in plans)]
                  for it in op["value"].get("items", []) if len(it) > 2]
    most = 2 if name == "get_attrs_drops" else 1    # it needs two keys to drop one
    assert all(len(a) <= most for a in attr_sets if isinstance(a, dict)), "\n".join(listing(small))


def test_shrunk_filter_keeps_the_guilty_operator():
    sc, backend, seed, r = _first_failure("ne_as_eq", "cosine")
    kind = violation_kind(r)

    def still(case):
        x, _ = run_seed(sc, seed, backend, schedule=case)
        return kind in kinds_of(x)
    small = Shrinker(still, budget_s=60).shrink(r.schedule)
    ops = {node_op for plans in small.clients for p in plans if "where" in p.value
           for node in filters.walk(p.value["where"]) for node_op in node}
    assert "ne" in ops, "\n".join(listing(small))


def test_spliced_filter_breaks_on_a_quote_and_not_without():
    from tests.broken_backends import spliced_predicate
    plain = {"eq": ["label", "abc"]}
    assert spliced_predicate(plain)({"label": "abc"}) is True
    # The value ends the literal early: the rest is read as more query.
    sneaky = {"eq": ["label", "x' OR label != '"]}
    assert spliced_predicate(sneaky)({"label": "y"}) is True          # a wrong answer
    assert filters.matches(sneaky, {"label": "y"}) is False
    with pytest.raises(Exception):
        spliced_predicate({"eq": ["label", "' OR '1'='1"]})({"label": "z"})
