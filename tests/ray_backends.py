"""Backends that misbehave as Ray workers can: each one defect the Ray
executor (dst.sim.executor) must survive or expose.

Usable as ``--backend tests.ray_backends:NAME``; each is the sim backend
plus one behaviour of the process it runs in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from backends.sim import SimBackend
from dst.backend import BackendConfig

LEAK_VAR = "DST_TEST_LEAKED"


def seed_of(config: BackendConfig) -> int:
    """The seed a namespace belongs to (``dst.sim.runner.namespace_for``: dst_<token>_<seed>_...)."""
    return int(config.namespace.split("_")[2])


def dies_once_on_seed_5(config: BackendConfig):
    """Kills its own process the first time seed 5 opens, after printing a
    line: a worker that dies. The marker in ``location`` (a folder) makes a
    second attempt at the seed pass, so a silent retry would show as a pass."""
    if config.fresh and seed_of(config) == 5:
        marker = Path(config.location) / "died-on-5"
        if not marker.exists():
            marker.write_text("once\n")
            print("seed 5: about to die", flush=True)
            os._exit(3)
    return SimBackend(config)


class _LeaksEnv(SimBackend):
    """Correct, but leaves a variable in the environment when closed, and
    once it finds it there at open (a worker reused without a clean
    environment) forgets every third store: the same seed then gives
    another history."""

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._broken = os.environ.get(LEAK_VAR) == "1"
        self._n = 0

    def close(self) -> None:
        os.environ[LEAK_VAR] = "1"
        super().close()

    def raw_store(self, id, vector, attrs=None):
        self._n += 1
        if self._broken and self._n % 3 == 0:
            return
        super().raw_store(id, vector, attrs)


def leaks_env(config: BackendConfig):
    return _LeaksEnv(config)


def chatty(config: BackendConfig):
    """Prints one line per seed to stdout and one to stderr, differing only
    in the seed (what Ray's log deduplication would merge)."""
    if config.fresh:
        seed = seed_of(config)
        print(f"chatty backend opened for seed {seed}", flush=True)
        print(f"chatty backend stderr for seed {seed}", file=sys.stderr, flush=True)
    return SimBackend(config)
