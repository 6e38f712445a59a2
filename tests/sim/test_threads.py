"""Threads mode: real threads, one handle per client, on every backend."""

import json

import pytest

from dst.history import History
from tests.conftest import run_cli


def _result(d):
    (run_dir,) = [p for p in d.iterdir() if p.is_dir()]
    return json.loads((run_dir / "result.json").read_text()), run_dir


@pytest.mark.parametrize("backend", ["sim", "lance", "pgvector"])
def test_threads_mode_passes_on_correct_backends(backend, in_tmp, capsys):
    code = run_cli("run", "--backend", backend, "--concurrency", "threads", "--scenario", "upsert-race",
                   "--seeds", "2", "--ops", "120", "--location", str(in_tmp / "loc"), "--quiet")
    res, run_dir = _result(in_tmp / "reports")
    assert code == 0, res
    h = History.read(run_dir / "history.jsonl")
    assert h.meta["concurrency"] == "threads"
    # no witness order is claimed in threads mode
    assert not any("dispatch" in e for e in h.events)
    assert res["replay"] is None


def test_threads_mode_catches_a_broken_backend(in_tmp, capsys):
    code = run_cli("run", "--backend", "tests.broken_backends:stale_get", "--concurrency", "threads",
                   "--scenario", "crud", "--seeds", "5", "--fail-fast", "--quiet")
    assert code == 1
    out = capsys.readouterr().out
    assert "threads mode is not replayable" in out
