"""run_seed relaxes the cyclic GC's youngest generation while a seed runs
(dst.sim.runner.SEED_GC_THRESHOLD: most of a seed's objects are short-lived
and acyclic, and a pass every 700 of them scanned survivors for nothing)
and gives the caller's thresholds back when the seed ends, passing or
raising. The speed it buys is measured by ``dst bench``, not here."""

import gc

import pytest

from backends.sim import SimBackend
from dst.errors import BackendError
from dst.sim import runner
from dst.sim.runner import run_seed
from dst.sim.scenario import load


def _recording(seen: list):
    def open_(config):
        seen.append(gc.get_threshold())
        return SimBackend(config)
    return open_


@pytest.fixture
def caller_threshold():
    old = gc.get_threshold()
    gc.set_threshold(1234, 7, 9)         # the caller's own setting
    yield (1234, 7, 9)
    gc.set_threshold(*old)


def test_a_seed_runs_with_the_relaxed_threshold_and_gives_the_callers_back(caller_threshold):
    seen: list = []
    r, _ = run_seed(load("crud"), 1, "sim", factory=_recording(seen))
    assert r.verdict == "ok" and seen
    # Only the youngest generation's threshold moves; the older ones are the caller's.
    assert set(seen) == {(runner.SEED_GC_THRESHOLD, 7, 9)}
    assert gc.get_threshold() == caller_threshold


def test_the_callers_threshold_comes_back_when_the_seed_raises(caller_threshold):
    def broken(config):
        raise RuntimeError("no backend today")
    with pytest.raises(BackendError, match="no backend today"):      # the opening error, wrapped
        run_seed(load("crud"), 1, "sim", factory=broken)
    assert gc.get_threshold() == caller_threshold
