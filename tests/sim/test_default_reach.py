"""The default scenario reaches what real stores get wrong: ids a store
could collate together, and search limits it silently caps (issue 10,
item 9). Each broken backend of tests/broken_ids.py is caught within the
first 200 seeds of `default`; the correct sim backend passes the same."""

import json
import unicodedata

import numpy as np
import pytest

from backends.sim import SimBackend
from dst.backend import BackendConfig
from dst.history import History, pair
from dst.check.models.vector import VectorModel
from dst.rng import Rng
from dst.sim.runner import replay_config, run_seed
from dst.sim.scenario import load, parse
from dst.sim.schedule import RandomDecider, ScriptedDecider
from dst.validate import id_problem
from dst.sim.workload import FAMILY_KINDS, cap_limits, cap_rows
from tests.broken_ids import CAPS, COLLATIONS
from tests.conftest import run_cli

# The collations a careless store applies, as key functions.
FOLDS = {
    "case": str.casefold,
    "pad-space": lambda s: s.rstrip(" "),
    "nfc": lambda s: unicodedata.normalize("NFC", s),
    "nfkc": lambda s: unicodedata.normalize("NFKC", s),
    "zero-width": lambda s: s.translate({0x200B: None, 0x200C: None, 0x200D: None, 0xFEFF: None}),
}


def _universe(scenario, seed):
    rng = Rng(seed)
    params = scenario.for_seed(rng.fork("swarm"))
    return RandomDecider(params, rng, History().table), params


def _folded_pairs(ids, fold):
    """Groups of distinct ids that ``fold`` makes one."""
    groups: dict[str, set[str]] = {}
    for i in ids:
        groups.setdefault(fold(i), set()).add(i)
    return [g for g in groups.values() if len(g) > 1]


@pytest.mark.parametrize("name", ["default", "hostile-ids"])
def test_universe_holds_confusable_families_of_valid_ids(name):
    sc = load(name)
    seeds = range(200)
    hit = {k: 0 for k in FOLDS}
    for seed in seeds:
        d, _ = _universe(sc, seed)
        ids = d.ids
        assert len(set(ids)) == len(ids)
        for i in ids:
            assert id_problem(i) is None, (seed, i)   # DESIGN: 1..256 scalar values, no NUL, no surrogate
        for k, fold in FOLDS.items():
            if _folded_pairs(ids, fold):
                hit[k] += 1
    # Every collation meets two ids it would fold in a good share of seeds
    # (default: 2 families a seed, of different kinds; hostile-ids: 6).
    floor = 0.15 if name == "default" else 0.5
    for k, n in hit.items():
        assert n >= floor * len(seeds), (k, hit)


def test_other_scenarios_keep_their_universe():
    # No hostile ids, no families: the plain k0, k1, ... of before.
    d, _ = _universe(load("crud"), 3)
    assert d.ids == [f"k{i}" for i in range(len(d.ids))]


def test_ops_touch_two_members_of_one_family_in_most_seeds():
    sc = load("default")
    seeds = range(40)
    touched_two = 0
    for seed in seeds:
        result, history = run_seed(sc, seed, "sim")
        assert result.verdict == "ok"
        ids: set[str] = set()
        for e in history.events:
            if e["type"] != "invoke" or not isinstance(e["process"], int):
                continue      # client ops only: not the probes, not the load
            v = e.get("value") or {}
            if isinstance(v.get("id"), str):
                ids.add(v["id"])
            for it in v.get("items", []) or []:
                ids.add(it[0])
        folded = sorted(ids)
        if any(_folded_pairs(folded, fold) for fold in FOLDS.values()):
            touched_two += 1
    assert touched_two >= 0.8 * len(seeds), touched_two


def test_family_kinds_are_all_drawn():
    sc = load("hostile-ids")
    seen = set()
    for seed in range(20):
        d, _ = _universe(sc, seed)
        for kind, fold in (("case", FOLDS["case"]), ("space", FOLDS["pad-space"]),
                           ("nfc-nfd", FOLDS["nfc"]), ("full-width", FOLDS["nfkc"]),
                           ("zero-width", FOLDS["zero-width"])):
            if _folded_pairs(d.ids, fold):
                seen.add(kind)
    assert len(FAMILY_KINDS) == 7
    assert seen == {"case", "space", "nfc-nfd", "full-width", "zero-width"}


# -- cap seeds ---------------------------------------------------------------

def test_cap_seeds_draw_every_cap_and_fit_the_budget():
    sc = load("default")
    caps: dict[int, int] = {}
    for seed in range(600):
        p = sc.for_seed(Rng(seed).fork("swarm"))
        if p.cap is not None:
            assert p.cap * p.dim <= 1 << 18
            caps[p.cap] = caps.get(p.cap, 0) + 1
    assert set(caps) == {10, 32, 100, 1024, 4096, 16384}, caps
    assert 30 <= sum(caps.values()) <= 90     # cap_share = 0.1 (of seeds whose dim fits)
    # Other scenarios have no caps: their seeds draw as before.
    assert all(load("crud").for_seed(Rng(s).fork("swarm")).cap is None for s in range(50))


def _a_cap_seed(sc, at_least):
    for seed in range(1000):
        p = sc.for_seed(Rng(seed).fork("swarm"))
        if p.cap is not None and p.cap >= at_least and p.op_weights.get("search", 0) > 0:
            return seed, p
    raise AssertionError("no cap seed")


def test_cap_seed_searches_past_the_cap_with_more_rows_live_and_probes_stay_small():
    sc = load("default")
    seed, p = _a_cap_seed(sc, 1024)
    result, history = run_seed(sc, seed, "sim", record=True)
    assert result.verdict == "ok", result.violations
    assert history.meta["params"]["cap"] == p.cap
    pairs = pair(history.events)
    load_ops = [x for x in pairs if x.process == "load"]
    bulk = sum(len(x.input["items"]) for x in load_ops)
    assert bulk == cap_rows(p.cap) > max(cap_limits(p.cap))
    limits = [x.input["limit"] for x in pairs if isinstance(x.process, int) and x.f == "search"
              and x.type == "ok" and isinstance(x.output, list)]
    assert any(lim > p.cap for lim in limits), limits
    # A search past the cap got its full length: more rows were live.
    assert any(len(x.output) == x.input["limit"] > p.cap for x in pairs
               if isinstance(x.process, int) and x.f == "search" and x.type == "ok"
               and isinstance(x.output, list))
    # The probes visit the universe one by one, not the bulk rows ...
    universe = len(result.schedule.ids)
    probes = 1 + result.crashes
    n_exists = sum(1 for x in pairs if x.process == "probe" and x.f == "exists")
    assert n_exists == probes * universe
    # ... but their exhaustive search returns every row.
    probe_searches = [x for x in pairs if x.process == "probe" and x.f == "search"
                      and "where" not in x.input]     # the filtered probes rank a subset
    assert all(x.input["limit"] > bulk for x in probe_searches)
    assert all(len(x.output) >= bulk for x in probe_searches)
    # The explicit schedule carries the bulk rows: replayed, the same bytes.
    replayed, h2 = run_seed(sc, seed, "sim", schedule=result.schedule)
    assert replayed.verdict == "ok"
    assert ScriptedDecider(result.schedule).bulk == [f"bulk{i}" for i in range(bulk)]
    again, h3 = run_seed(sc, seed, "sim")
    assert h3.to_bytes() == history.to_bytes()


def test_load_phase_is_one_step_on_a_non_atomic_backend():
    sc = load("default")
    seed, p = _a_cap_seed(sc, 1024)
    result, history = run_seed(sc, seed, "sim", options={"atomic_batches": "false"})
    assert result.verdict == "ok", result.violations
    m = history.meta
    model = VectorModel(history.table.vectors, int(m["dim"]), m["score_eps"], exact=True)
    ops = model.operations(pair(history.events), atomic_batches=False)
    loads = [o for o in ops if o.process == "load"]
    assert len(loads) == 1 and loads[0].f == "batch"
    assert len(loads[0].input[1]) == cap_rows(p.cap)


def test_merged_load_keeps_the_last_write_and_still_catches_a_lost_row():
    """Two load batches writing one id: the later wins, as applying them in
    turn does; and a row the store dropped is still a violation."""
    v = [np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)]

    def history(get_answer):
        h = History()
        r0, r1 = h.table.ref(v[0]), h.table.ref(v[1])
        h.meta = {"dim": 2, "score_eps": 1e-4, "exact": True}
        t = 0
        for items in ([["a", r0], ["b", r0]], [["a", r1]]):
            h.add(t, "load", "invoke", "store_batch", {"items": items})
            h.add(t + 1, "load", "ok", "store_batch", None, dispatch=t)
            t += 2
        h.add(t, "probe", "invoke", "get", {"id": "a"})
        h.add(t + 1, "probe", "ok", "get", get_answer(r0, r1), dispatch=t)
        h.add(t + 2, "probe", "invoke", "count", {})
        h.add(t + 3, "probe", "ok", "count", 2, dispatch=t + 1)
        return h

    from dst.sim.runner import check_history
    assert check_history(history(lambda r0, r1: r1)).verdict == "ok"
    assert check_history(history(lambda r0, r1: r0)).verdict == "violation"
    assert check_history(history(lambda r0, r1: None)).verdict == "violation"


def test_scenario_caps_keys_are_checked_and_survive_replay(in_tmp):
    from dst.sim.scenario import ScenarioError
    base = {"ops": {"store": 1, "search": 1}}
    sc = parse({**base, "limit": {"caps": [10, 100], "cap_share": 0.5}})
    assert sc.limit_caps == (10, 100) and sc.cap_share_ppm == 500_000
    with pytest.raises(ScenarioError, match="cap_share"):
        parse({**base, "limit": {"cap_share": 0.5}})
    with pytest.raises(ScenarioError, match="limit.caps"):
        parse({**base, "limit": {"caps": [0]}})
    # A recorded history names the scenario it ran: caps included.
    default = load("default")
    _, history = run_seed(default, 0, "sim")
    again, seed, backend, _ = replay_config(history)
    assert (again.limit_caps, again.cap_share_ppm) == (default.limit_caps, default.cap_share_ppm)


def test_sim_patched_search_matrix_equals_a_rebuild():
    """The sim backend patches its search matrix after a few writes; it
    must be exactly the matrix a rebuild makes (same rows, same bits)."""
    import random
    r = random.Random(0)
    g = np.random.default_rng(0)
    for dim in (2, 16):
        b = SimBackend(BackendConfig(dim=dim, location="reach-test", namespace=f"m{dim}", fresh=True, options={}))
        pool = [g.standard_normal(dim).astype(np.float32) for _ in range(8)]
        ids = [f"i{k}" for k in range(40)]
        for step in range(600):
            x = r.random()
            if x < 0.4:
                b.store(r.choice(ids), pool[r.randrange(8)])
            elif x < 0.6:
                b.delete(r.choice(ids))
            elif x < 0.7:
                b.store_batch([(i, pool[r.randrange(8)]) for i in r.sample(ids, r.randrange(1, 40))])
            b.search(pool[0], 5)
            got_ids, got = b._matrix()
            data = b._store.data
            want_ids = sorted(data)
            assert got_ids == want_ids
            if want_ids:
                want = np.stack([data[i] for i in want_ids]).astype(np.float64)
                want /= np.sqrt(np.einsum("ij,ij->i", want, want))[:, None]
                assert np.array_equal(got, want), step
        b.drop()


# -- the broken backends are caught ----------------------------------------

def _first_failing_seed(in_tmp, capsys, backend, scenario):
    code = run_cli("run", "--backend", f"tests.broken_ids:{backend}", "--scenario", scenario,
                   "--seeds", "200", "--fail-fast", "--quiet")
    out = capsys.readouterr().out
    (run_dir,) = list((in_tmp / "reports").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    bad = [r for r in result["results"] if r["verdict"] == "violation"]
    return code, out, bad


@pytest.mark.parametrize("name", sorted(COLLATIONS))
@pytest.mark.parametrize("scenario", ["default", "hostile-ids"])
def test_collating_backend_is_caught(name, scenario, in_tmp, capsys):
    code, out, bad = _first_failing_seed(in_tmp, capsys, name, scenario)
    assert code == 1, out
    assert bad and bad[0]["seed"] < 200
    assert bad[0]["violations"][0]["message"]


@pytest.mark.parametrize("name", sorted(CAPS))
def test_capped_search_is_caught(name, in_tmp, capsys):
    code, out, bad = _first_failing_seed(in_tmp, capsys, name, "default")
    assert code == 1, out
    assert bad and bad[0]["seed"] < 200
    msg = bad[0]["violations"][0]["message"]
    # A short answer: the checker says how many hits were expected.
    assert "hits" in msg and "were expected" in msg, msg


def test_left_out_check_by_ref_counts_agrees_with_the_full_scan():
    """search_problem with the state's per-vector counts (the fast path a
    16k-row state needs) gives the same verdict as the scan over every id."""
    import random
    r = random.Random(1)
    g = np.random.default_rng(1)
    vecs = [g.standard_normal(3).astype(np.float32) for _ in range(6)]
    vecs.append(vecs[0] * 2)                          # an exact tie
    m = VectorModel(vecs, 3, 1e-4, exact=True)
    state = m.init()
    disagree = bad = 0
    for step in range(400):
        ok, state = m.step(state, ("store", f"i{r.randrange(30)}", r.randrange(len(vecs)), None), None)
        if r.random() < 0.3:
            ok, state = m.step(state, ("delete", f"i{r.randrange(30)}", None), r.choice([True, False]))
        items = state.items
        sc = m.true_scores(0)
        ranked = sorted(items, key=lambda i: (-sc[items[i]], i))
        limit = r.randrange(1, len(ranked) + 1)
        hits = ranked[:limit]
        if r.random() < 0.5 and limit < len(ranked):
            hits = hits[:-1] + [ranked[r.randrange(limit, len(ranked))]]   # leave one out
        out = tuple((h, sc[items[h]]) for h in hits)
        full = m.search_problem(items, 0, limit, out)
        fast = m.search_problem(items, 0, limit, out, state.refs)
        disagree += (full is None) != (fast is None)
        bad += full is not None
    assert disagree == 0
    assert bad > 50          # the left-out case really came up
