"""Setup that must not run a different test than the one asked for (issue
10, item 8): unknown --opt keys are refused by every backend, maintenance
kinds are checked against what the backend declares, the probes search
exactly (search_exact) on ANN backends, and threads-mode clients draw their
op streams from their own RNG children."""

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from backends.sim import SimBackend
from dst.backend import (BackendConfig, check_maintenance_kinds, check_options, exact_view,
                         scoped_options)
from dst.check.compare import compare_histories
from dst.errors import UsageError
from dst.history import History, pair
from dst.rng import Rng
from dst.sim.runner import check_history, run_seed
from dst.sim.scenario import load, parse
from dst.sim.schedule import OpPlan, RandomDecider
from tests.conftest import run_cli


# -- unknown options -----------------------------------------------------------

def test_check_options_names_the_key_and_the_known_ones():
    check_options("x", {"a": 1}, ("a", "b"))
    with pytest.raises(UsageError, match=r"^x backend: unknown option 'c' \(known: a, b\)$"):
        check_options("x", {"a": 1, "c": 2}, ("b", "a"))
    with pytest.raises(UsageError, match=r"unknown options 'c', 'd' \(known: none\)"):
        check_options("x", {"d": 1, "c": 2}, ())


def test_every_builtin_backend_refuses_an_unknown_option(tmp_path):
    from backends.lance import open_backend as lance
    from backends.pgvector import open_backend as pgvector
    from backends.sim import open_backend as sim
    for name, factory, known in (("sim", sim, "atomic_batches"), ("lance", lance, "primary_key"),
                                 ("pgvector", pgvector, "ef_search")):
        cfg = BackendConfig(dim=4, location=str(tmp_path / name), namespace="opts",
                            options={"atomic_batchez": False})
        with pytest.raises(UsageError, match=rf"^{name} backend: unknown option 'atomic_batchez' "
                                             rf"\(known: .*{known}"):
            factory(cfg)   # pgvector refuses before it connects


def test_an_unknown_option_is_exit_2_with_one_line(in_tmp, capsys):
    code = run_cli("run", "--backend", "sim", "--scenario", "crud", "--seeds", "1",
                   "--opt", "atomic_batchez=false")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "error: sim backend: unknown option 'atomic_batchez' (known: atomic_batches)"


def test_scoped_options():
    opts = [("k", 1), ("lance:index", "IVF_PQ"), ("pkg.mod:f:x", 2), ("k", 3), ("sim:k", 4)]
    names = ["sim", "lance", "pkg.mod:f"]
    assert scoped_options(opts, "sim", names) == {"k": 4}
    assert scoped_options(opts, "lance", names) == {"k": 3, "index": "IVF_PQ"}
    assert scoped_options(opts, "pkg.mod:f", names) == {"k": 3, "x": 2}
    with pytest.raises(UsageError, match="'pgvector' is not one of the backends"):
        scoped_options([("pgvector:index", "hnsw")], "sim", names)


def test_conform_scopes_options_per_backend(in_tmp, capsys):
    base = ["conform", "--backends", "sim,lance", "--scenario", "crud", "--seeds", "1", "--ops", "40",
            "--location", str(in_tmp / "db")]
    # A plain option goes to every backend: sim refuses lance's option, and says so.
    assert run_cli(*base, "--opt", "compact_every=5") == 2
    err = capsys.readouterr().err
    assert "dst conform: backend sim: sim backend: unknown option 'compact_every'" in err
    assert "write BACKEND:compact_every=... for one" in err
    # Scoped, each backend gets its own.
    assert run_cli(*base, "--opt", "lance:compact_every=5", "--opt", "sim:atomic_batches=true") == 0, \
        capsys.readouterr().err
    assert run_cli(*base, "--opt", "pgvector:index=hnsw") == 2
    assert "'pgvector' is not one of the backends (sim, lance)" in capsys.readouterr().err


# -- maintenance kinds -----------------------------------------------------------

class Maintained(SimBackend):
    """The sim store with maintenance of the declared kinds (a no-op)."""

    maintenance_kinds = ("compact",)
    calls: list = []

    def maintenance(self, kind):
        if kind not in self.maintenance_kinds:
            raise AssertionError(f"the harness asked for undeclared maintenance {kind!r}")
        Maintained.calls.append(kind)


def _scenario(**raw):
    base = {"ops_per_seed": 60, "clients": 2, "ops": {"store": 5, "get": 3, "search": 2}}
    base.update(raw)
    return parse(base, default_name="t")


def test_maintenance_kinds_are_checked_before_any_op(tmp_path):
    sc = _scenario(maintenance_kinds=["compact", "defrag"], ops={"store": 5, "maintenance": 1})
    opened = []

    def factory(cfg):
        opened.append(cfg)
        return Maintained(cfg)

    with pytest.raises(UsageError, match="maintenance kind 'defrag' is not one the sim backend has "
                                         r"\(it has: compact\)"):
        run_seed(sc, 0, "maintained", factory=factory, location=str(tmp_path))
    # ... and the namespace it opened was dropped, not left behind.
    from backends.sim import _REGISTRY
    assert opened and (str(tmp_path), opened[0].namespace) not in _REGISTRY
    # A scenario that never draws maintenance is not held to its kinds.
    quiet = _scenario(maintenance_kinds=["defrag"])
    assert run_seed(quiet, 0, "maintained", factory=Maintained, location=str(tmp_path))[0].verdict == "ok"


def test_a_schedule_is_checked_for_the_kinds_it_invokes(tmp_path):
    sc = _scenario(ops={"store": 5, "maintenance": 1})
    r, _ = run_seed(sc, 1, "maintained", factory=Maintained, location=str(tmp_path), record=True)
    assert r.verdict == "ok"
    sched = r.schedule
    sched.clients[0].append(OpPlan("maintenance", {"kind": "index"}))
    with pytest.raises(UsageError, match="maintenance kind 'index'"):
        run_seed(sc, 1, "maintained", factory=Maintained, location=str(tmp_path), schedule=sched)


def test_the_load_phase_builds_no_index_a_backend_does_not_declare(tmp_path):
    sc = _scenario(load={"items": 30, "batch": 10})
    Maintained.calls.clear()
    r, h = run_seed(sc, 0, "maintained", factory=Maintained, location=str(tmp_path))
    assert r.verdict == "ok", r.violations
    assert not any(e["f"] == "maintenance" for e in h.events) and Maintained.calls == []
    assert check_maintenance_kinds(SimBackend(BackendConfig(dim=2)), ["x"]) is None   # no maintenance at all


def test_lance_refuses_a_scenario_kind_it_lacks(in_tmp, capsys):
    src = ("description = 'maintenance lance lacks'\nops_per_seed = 30\nmaintenance_kinds = ['compact', 'defrag']\n"
           "[ops]\nstore = 5\nmaintenance = 5\n")
    (in_tmp / "defrag.toml").write_text(src)
    code = run_cli("run", "--backend", "lance", "--scenario", str(in_tmp / "defrag.toml"), "--seeds", "1",
                   "--location", str(in_tmp / "db"))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err == ("error: the scenario's maintenance kind 'defrag' is not one the lance backend has "
                   "(it has: compact, vacuum, index); change maintenance_kinds")


# -- the probes' exact search -------------------------------------------------------

CAP = 10


class CappedAnn(SimBackend):
    """An "ANN index" that returns at most CAP rows per scan, as pgvector's
    HNSW does (ef_search), with an exact path past it."""
    filters = False   # a store of the first protocol: no attributes or filters

    exact = False

    def search(self, query, limit):
        return SimBackend.search(self, query, min(limit, CAP))

    def search_exact(self, query, limit):
        return SimBackend.search(self, query, limit)


class CappedAnnNoExact(CappedAnn):
    search_exact = None


def _ann():
    return replace(load("ann"), ops=60)


def test_probes_use_the_exact_path_on_an_ann_backend(tmp_path):
    sc = _ann()
    r, h = run_seed(sc, 0, "capped", factory=CappedAnn, location=str(tmp_path))
    assert h.meta["exact"] is False
    assert r.verdict == "ok", r.violations
    probes = [e for e in h.events if e["process"] == "probe" and e["f"] == "search" and e["type"] == "invoke"
              and "reach" not in e["value"]]      # the reachability searches go through the index
    assert probes and all(e["value"]["exact"] is True for e in probes)
    # Recall is judged on the scenario's own searches only, not the probes'.
    own = [p for p in pair(h.events) if p.f == "search" and p.type == "ok" and p.process != "probe"]
    assert r.recall is not None and r.recall[1] == len(own) > 0
    # Without the exact path, the probe asks the index for all rows and gets CAP.
    r, _ = run_seed(sc, 0, "capped", factory=CappedAnnNoExact, location=str(tmp_path))
    assert r.verdict == "violation"
    assert f"returned {CAP} hits" in r.violations[0]["message"]


def _probe_history(exact_flag: bool, hits: list) -> History:
    h = History()
    h.meta = {"dim": 2, "exact": False, "score_eps": 1e-4, "seed": 0}
    vs = [h.table.ref(np.array(v, dtype=np.float32)) for v in ([1, 0], [0, 1], [1, 1])]
    t = 0
    for i, v in zip(("a", "b", "c"), vs):
        h.add(t, 0, "invoke", "store", {"id": i, "vector": v}); t += 1
        h.add(t, 0, "ok", "store", None, dispatch=t); t += 1
    q = {"vector": vs[0], "limit": 1, **({"exact": True} if exact_flag else {})}
    h.add(t, "probe", "invoke", "search", q)
    h.add(t + 1, "probe", "ok", "search", hits, dispatch=t + 1)
    return h


def test_an_exact_probe_search_is_checked_as_exact_on_an_ann_backend():
    worst = [["b", 0.0]]            # limit 1: 'a' (score 1) left out
    assert check_history(_probe_history(False, worst)).verdict == "ok"   # an ANN miss is allowed
    r = check_history(_probe_history(True, worst))
    assert r.verdict == "violation" and "left out 'a'" in r.violations[0]["message"]
    assert check_history(_probe_history(True, [["a", 1.0]])).verdict == "ok"


def test_conform_compares_exact_probe_searches_of_ann_backends():
    a, b = _probe_history(True, [["a", 1.0]]), _probe_history(True, [["c", 0.7071]])
    counts, diffs = compare_histories(a, b, 1e-4, ann=True)
    assert counts["search"]["differ"] == 1 and diffs[0]["f"] == "search"
    a, b = _probe_history(False, [["a", 1.0]]), _probe_history(False, [["c", 0.7071]])
    counts, diffs = compare_histories(a, b, 1e-4, ann=True)
    assert counts["search"]["ann"] == 1 and not diffs


def test_exact_view():
    b = CappedAnn(BackendConfig(dim=2))
    assert exact_view(b).search == b.search_exact and exact_view(b).dim == 2
    plain = CappedAnnNoExact(BackendConfig(dim=2))
    assert exact_view(plain) is plain


# -- threads mode: each client's op stream is its own ---------------------------------

def _stream(table, plans):
    """Ops with vectors as bytes (refs depend on who interned first)."""
    def res(v):
        out = dict(v)
        if "vector" in out:
            out["vector"] = table[out["vector"]].tobytes()
        if "items" in out:    # [id, ref] or [id, ref, attrs]
            out["items"] = [[it[0], table[it[1]].tobytes(), *it[2:]] for it in out["items"]]
        return out
    return [(f, res(v)) for f, v in plans]


def _bad_heavy():
    return _scenario(invalid_rate=0.4, clients=3, ops_per_seed=150,
                     ops={"store": 5, "store_batch": 2, "get": 3, "delete": 2, "search": 2})


def test_a_clients_ops_do_not_depend_on_the_others_draws():
    sc = _bad_heavy()
    seqs = []
    for order in ([0] * 40 + [1] * 40, [1, 0] * 40):
        d = RandomDecider(sc.for_seed(Rng(7).fork("swarm")), Rng(7), History().table)
        out = {0: [], 1: []}
        for c in order:
            spec = d.workload.next_op(d.client_rngs[c], True)
            out[c].append((spec.f, spec.value))
        seqs.append({c: _stream(d.workload.table, v) for c, v in out.items()})
    assert seqs[0] == seqs[1]
    assert all(sum(1 for _, v in seqs[0][c] if _invalid(v)) >= 5 for c in (0, 1))


class _Slow:
    """A handle whose every call first sleeps: changes the interleaving."""

    def __init__(self, inner, pause_s):
        self._inner, self._pause = inner, pause_s

    def __getattr__(self, name):
        x = getattr(self._inner, name)
        if not callable(x) or name.startswith("_"):
            return x

        def slow(*a, **kw):
            time.sleep(self._pause)
            return x(*a, **kw)
        return slow


def _threads_run(pauses: tuple[float, ...]):
    lock = threading.Lock()
    opened = []

    def factory(cfg):
        with lock:
            n = len(opened)
            opened.append(n)
        b = SimBackend(cfg)
        # Open 0 is the harness's own handle; open 1 + c is client c's.
        return _Slow(b, pauses[n - 1]) if n >= 1 else b

    r, h = run_seed(_bad_heavy(), 3, "slowsim", factory=factory, concurrency="threads")
    assert r.verdict == "ok", r.violations
    per = {}
    for e in h.events:
        if e["type"] == "invoke" and isinstance(e["process"], int):
            per.setdefault(e["process"], []).append((e["f"], e["value"]))
    return {c: _stream(h.table, v) for c, v in per.items()}


def test_threads_mode_gives_each_client_the_same_ops_whatever_the_interleaving():
    # Client 0 slow in one run and fast in the other, so it takes a different
    # share of the ops; on a loaded machine the sleeps may blur, so try again
    # (a few times) until the interleavings really differ.
    for _ in range(3):
        a, b = _threads_run((0.008, 0.001, 0.001)), _threads_run((0.001, 0.008, 0.001))
        if len(a[0]) != len(b[0]):
            break
    assert sorted(a) == sorted(b) == [0, 1, 2]   # no info ops here, so process = client
    assert len(a[0]) != len(b[0])                # the interleavings did differ
    for c in a:
        n = min(len(a[c]), len(b[c]))
        assert n >= 5
        assert a[c][:n] == b[c][:n], f"client {c}'s op stream changed with the interleaving"
    assert sum(1 for c in a for _, v in a[c] if _invalid(v)) >= 5


def _invalid(v) -> bool:
    """Whether a resolved op input is one of the workload's bad inputs."""
    from dst.validate import id_problem, limit_problem

    def bad_vec(b):
        x = np.frombuffer(b, dtype=np.float32)
        return x.shape[0] != 8 or not np.all(np.isfinite(x)) or not np.any(x)

    if "id" in v and id_problem(v["id"]):
        return True
    if "limit" in v and limit_problem(v["limit"]):
        return True
    if isinstance(v.get("vector"), bytes) and bad_vec(v["vector"]):
        return True
    items = v.get("items", [])
    ids = [it[0] for it in items]
    return len(set(ids)) != len(ids) or any(id_problem(it[0]) or bad_vec(it[1]) for it in items)


def test_replaying_on_another_backend_drops_the_recorded_backends_options(in_tmp, capsys):
    assert run_cli("run", "--backend", "lance", "--scenario", "crud", "--seeds", "1", "--ops", "30",
                   "--location", str(in_tmp / "db"), "--opt", "compact_every=7", "--quiet") in (0, 4)
    (run_dir,) = [p for p in (in_tmp / "reports").iterdir() if p.is_dir()]
    hist = run_dir / "history.jsonl"
    assert History.read(hist).meta["options"] == {"compact_every": 7}
    capsys.readouterr()
    # compact_every is lance's: sim would refuse it, so it is not carried over.
    code = run_cli("replay", str(hist), "--backend", "sim", "--report-dir", "again")
    err = capsys.readouterr().err
    assert code in (0, 5) and "unknown option" not in err, err
    code = run_cli("shrink", str(hist), "--backend", "sim", "--report-dir", "again")
    err = capsys.readouterr().err
    assert "unknown option" not in err, err


def test_a_case_replayed_on_another_backend_drops_its_options(in_tmp, capsys, tmp_path):
    from dst.sim.shrink import read_case, write_case
    from tests.commands.test_corpus import SEEDS
    (src,) = [p for p in SEEDS if p.stem == "pgvector-hnsw-dead-tuple-completeness"]
    case = read_case(src)
    assert case["options"]            # pgvector's: index, ef_search
    path = tmp_path / "case.json"
    write_case(path, case)
    code = run_cli("replay", str(path), "--backend", "sim")
    err = capsys.readouterr().err
    assert "unknown option" not in err and code in (0, 1), err
