"""Availability: the backend's own errors are findings (DESIGN "What a pass
means"). Counted per op kind, judged against backend_error_ppm, and an op
kind the scenario draws must complete ok at least once in the run."""

import json

import pytest

from backends.sim import SimBackend
from dst.backend import BackendConfig
from dst.errors import BackendError
from dst.sim.runner import replay_config, run_seed
from dst.sim.scenario import SCENARIO_DIR, ScenarioError, load, parse
from tests.conftest import run_cli


def _result(root):
    (run_dir,) = [p for p in (root / "reports").iterdir() if p.is_dir()]
    return json.loads((run_dir / "result.json").read_text()), run_dir


def _scenario(tmp, name, text):
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("concurrency", ["sim", "threads"])
def test_a_store_whose_every_read_fails_does_not_pass(concurrency, in_tmp, capsys):
    # Before availability, a failed read was `info`, the checker dropped it,
    # and this backend passed `dst run --seeds 20` with exit 0.
    code = run_cli("run", "--backend", "tests.broken_backends:every_read_fails", "--seeds", "20",
                   "--concurrency", concurrency)
    err = capsys.readouterr().err
    res, run_dir = _result(in_tmp)
    assert code == 1, err
    assert res["verdict"] == "violation"
    for f in ("get", "exists", "count", "search"):
        row = res["availability"][f]
        assert row["own"] > 0 and row["ok"] == 0, (f, row)
        assert row["messages"][0] == f"BackendError: {f}: read path unavailable"
    assert res["availability"]["store"]["own"] == 0 and res["availability"]["store"]["ok"] > 0
    # the clients' own reads are counted, not just the probes': the probes'
    # exhaustive searches (one per probe, a probe per seed and crash) go
    # through search_exact and are tallied apart from the scenario's
    probes = 20 + sum(r["crashes"] for r in res["results"])
    assert res["availability"]["search_exact"]["own"] == probes
    assert res["availability"]["search"]["own"] > probes
    kinds = {v["f"] for v in res["availability_violations"]}
    assert kinds == {"get", "exists", "count", "search", "search_exact"}
    first = [r for r in res["results"] if r["verdict"] == "violation"][0]["violations"][0]
    assert first["kind"] == "availability" and "read path unavailable" in first["message"]
    # the summary table and the report carry a line per op kind
    assert "op get ok/fail/info/own errors" in err
    assert "availability violation: get:" in err
    html = (run_dir / "report.html").read_text()
    assert "availability: get (whole run)" in html and "own errors" in html


def test_the_correct_sim_backend_has_no_own_errors(in_tmp, capsys):
    assert run_cli("run", "--backend", "sim", "--seeds", "20", "--quiet") == 0
    res, _ = _result(in_tmp)
    assert res["availability"] and all(r["own"] == 0 for r in res["availability"].values())
    assert res["availability_violations"] == [] and res["ops_never_ok"] == []
    # probes and the load phase count too, so the totals cover every call
    assert sum(r["ok"] for r in res["availability"].values()) > res["ops"] // 2


def test_rare_own_errors_are_caught_and_a_scenario_budget_admits_them(in_tmp, capsys):
    backend = "tests.broken_backends:flaky_ops"    # every 40th call fails: 2.5%
    crud = (SCENARIO_DIR / "crud.toml").read_text()
    assert load("crud").backend_error_ppm == 0

    def run(scenario, where):
        code = run_cli("run", "--backend", backend, "--scenario", scenario, "--seeds", "10",
                       "--quiet", "--report-dir", where)
        (run_dir,) = list((in_tmp / where).iterdir())
        return code, json.loads((run_dir / "result.json").read_text())

    code, res = run("crud", "r0")
    assert code == 1
    assert any(v["kind"] == "availability" for r in res["results"] for v in r["violations"])
    # 5% allowed per kind: a 2.5% rate passes, and the errors are still shown
    code, res = run(_scenario(in_tmp, "crud-5pct", "backend_error_ppm = 50000\n" + crud), "r1")
    assert code == 0, res["availability_violations"]
    assert sum(r["own"] for r in res["availability"].values()) > 10
    assert res["backend_error_ppm"] == 50000 and res["availability_violations"] == []
    # 0.5% allowed: a single seed's budget (at least one error) lets some
    # seeds pass, but over the whole run a 2.5% rate is too much
    code, res = run(_scenario(in_tmp, "crud-half", "backend_error_ppm = 5000\n" + crud), "r2")
    assert code == 1
    assert res["availability_violations"], res["availability"]
    assert "over the run" in res["availability_violations"][0]["message"]


def test_an_op_kind_that_never_completes_ok_is_not_proven(in_tmp, capsys):
    # Every op gets an injected error: nothing is the backend's fault, but
    # no store or delete was ever verified. (The probes' reads answer ok.)
    path = _scenario(in_tmp, "all-errors", """
ops_per_seed = 40
[ops]
store = 1
delete = 1
get = 1
[faults]
error = 1.0
""")
    code = run_cli("run", "--backend", "sim", "--scenario", path, "--seeds", "3")
    err = capsys.readouterr().err
    res, _ = _result(in_tmp)
    assert code == 4, err
    assert res["ops_never_ok"] == ["delete", "store"]
    assert res["ops_drawn"] == ["delete", "get", "store"]
    assert "op kinds delete, store drawn by the scenario but never completed ok in the run" in err


def test_backend_error_ppm_is_parsed_checked_and_kept_for_replay():
    sc = parse({"backend_error_ppm": 250, "ops": {"store": 1}})
    assert sc.backend_error_ppm == 250 and sc.to_dict()["backend_error_ppm"] == 250
    with pytest.raises(ScenarioError, match="key backend_error_ppm must be an integer from 0 to 1000000"):
        parse({"backend_error_ppm": -1})
    with pytest.raises(ScenarioError, match="backend_error_ppm"):
        parse({"backend_error_ppm": 0.5})
    _, h = run_seed(sc, 1, "sim")
    again, _, _, _ = replay_config(h)
    assert again.backend_error_ppm == 250


class _Killable(SimBackend):
    """A correct store with a kill-connection nemesis: the kill breaks the
    call in flight or, if it landed after that call returned, the next one
    (as a real driver finds its session terminated)."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self.killed = False

    def _check(self):
        if self.killed:
            self.killed = False
            raise BackendError("connection terminated by the server")

    def store(self, id, vector):
        self._check()
        super().store(id, vector)

    def get(self, id):
        self._check()
        return super().get(id)

    def count(self):
        self._check()
        return super().count()

    def nemeses(self):
        def kill():
            self.killed = True
            return {"terminated": True}
        return {"kill-connection": kill}


def open_killable(config):
    return _Killable(config)


def test_errors_a_nemesis_caused_stay_attributed_to_it(in_tmp, capsys):
    path = _scenario(in_tmp, "kills", """
ops_per_seed = 60
clients = 2
[ops]
store = 2
get = 1
count = 1
[nemeses]
kill-connection = 0.2
""")
    code = run_cli("run", "--backend", "tests.sim.test_availability:open_killable", "--scenario", path,
                   "--seeds", "5", "--quiet")
    res, _ = _result(in_tmp)
    assert code == 0, (res["availability"], res["results"][0]["violations"])
    assert res["fault_counts"]["kill-connection"] > 5
    # the kills broke calls, and none of those errors is the store's own
    broken = sum(r["info"] for r in res["availability"].values())
    assert broken > 0 and all(r["own"] == 0 for r in res["availability"].values())


def test_the_probes_exact_search_does_not_stand_for_the_scenarios_search(in_tmp, capsys):
    # Every scenario search gets an injected error; the probes' exhaustive
    # search goes through search_exact (sim has it) and answers ok. That ok
    # is another path, so `search` is still never verified: exit 4.
    path = _scenario(in_tmp, "search-errors", """
ops_per_seed = 40
[ops]
store = 1
search = 1
[faults]
error = 1.0
""")
    code = run_cli("run", "--backend", "sim", "--scenario", path, "--seeds", "2")
    err = capsys.readouterr().err
    res, _ = _result(in_tmp)
    assert code == 4, err
    assert res["ops_never_ok"] == ["search", "store"]
    assert res["availability"]["search_exact"]["ok"] >= 2
