"""The crash scenario on LanceDB with --isolate process (issue 15): each
crash SIGKILLs the process the store runs in, a new process reopens the
table (fresh=False), and every acknowledged write must be there."""

import json

from tests.conftest import run_cli


def test_crash_scenario_on_lance_in_a_killed_process(in_tmp, capsys):
    # Seed 0 at 20 ops crashes once (the crash draws are the backend's
    # neither here nor there: the same plan as on sim).
    code = run_cli("run", "--backend", "lance", "--location", str(in_tmp / "lance"), "--scenario", "crash",
                   "--isolate", "process", "--seed", "0", "--seeds", "1", "--ops", "20", "--json")
    res = json.loads(capsys.readouterr().out)
    assert code == 0, res["results"][0]["violations"]
    assert res["fault_counts"]["crash"] == 1 and res["results"][0]["crashes"] == 1
    (run_dir,) = list((in_tmp / "reports").iterdir())
    assert '"isolate":"process"' in (run_dir / "history.jsonl").read_text().splitlines()[0]
