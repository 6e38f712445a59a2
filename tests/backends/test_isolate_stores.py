"""The `crash` scenario with `--isolate process` on every embedded store:
each crash SIGKILLs the child that holds the store (Milvus Lite's server
runs as threads of that child, so it dies with it), a new child reopens the
folder with fresh=False, and every acknowledged write must be there."""

import json

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize("backend", ["sim", "chroma", "qdrant", "qdrant-edge", "milvus"])
def test_crash_scenario_under_real_kills(backend, tmp_path):
    reports = tmp_path / "reports"
    code = run_cli("run", "--backend", backend, "--scenario", "crash", "--seeds", "1", "--ops", "60",
                   "--isolate", "process", "--location", str(tmp_path / "store"),
                   "--report-dir", str(reports), "--quiet")
    (run_dir,) = list(reports.iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert code == 0, result.get("results")
    assert result["fault_counts"]["crash"] > 0          # the child was really killed, and reopened
    meta = json.loads((run_dir / "history.jsonl").read_text().splitlines()[0])["meta"]
    assert meta["isolate"] == "process"
