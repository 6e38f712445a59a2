"""Each deliberately broken backend is caught by `dst run --scenario default`,
while the correct sim backend passes 2,000 seeds."""

import json

import pytest

from tests.broken_backends import BROKEN
from tests.conftest import run_cli


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_backend_is_caught(name, in_tmp, capsys):
    code = run_cli("run", "--backend", f"tests.broken_backends:{name}", "--scenario", "default",
                   "--seeds", "300", "--fail-fast", "--quiet")
    out = capsys.readouterr().out
    assert code == 1, out
    assert "replay: dst replay " in out
    (run_dir,) = list((in_tmp / "reports").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["verdict"] == "violation"
    bad = [r for r in result["results"] if r["verdict"] == "violation"]
    assert bad and bad[0]["violations"][0]["message"]


@pytest.mark.parametrize("name", ["lost_write", "phantom_after_delete", "lost_on_reopen"])
def test_replay_reproduces_the_violation_byte_for_byte(name, in_tmp, capsys):
    assert run_cli("run", "--backend", f"tests.broken_backends:{name}", "--seeds", "300",
                   "--fail-fast", "--quiet") == 1
    out = capsys.readouterr().out
    cmd = [line for line in out.splitlines() if line.startswith("replay: ")][0]
    argv = cmd.split()[2:]  # after "replay: dst"
    assert argv[0] == "replay"
    assert run_cli(*argv) == 1
    err = capsys.readouterr().err
    assert ": exact; verdict violation" in err
    dirs = sorted((in_tmp / "reports").iterdir())
    original = [d for d in dirs if not d.name.split("-", 2)[2].startswith("replay")][0]
    replayed = [d for d in dirs if d.name.split("-", 2)[2].startswith("replay")][0]
    assert (original / "history.jsonl").read_bytes() == (replayed / "history.jsonl").read_bytes()


def test_correct_sim_passes_two_thousand_seeds(in_tmp, capsys):
    # Fewer ops per seed so 2,000 seeds fit the suite's time.
    code = run_cli("run", "--backend", "sim", "--scenario", "default", "--seeds", "2000",
                   "--ops", "60", "--quiet")
    assert code == 0, capsys.readouterr()
    (run_dir,) = list((in_tmp / "reports").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert len(result["results"]) == 2000
    assert all(r["verdict"] == "ok" for r in result["results"])
    counts = result["fault_counts"]
    # sim claims atomic batches: a drawn partial write cannot split a batch,
    # so it is counted as the batch-error it really is, never as a split.
    assert counts.pop("partial-write") == 0
    assert counts.pop("batch-error") > 0
    assert all(counts[k] > 0 for k in counts), counts
