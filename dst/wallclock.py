"""The only module that reads the wall clock, or who and where we run.

Used for ``--time-budget``, threads mode, benchmarks, report names and the
per-run token that names a run's tables. Its values never enter a
deterministic history.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path


def monotonic_s() -> float:
    return time.perf_counter()


def monotonic_us() -> int:
    """Integer microseconds of a monotonic clock (threads-mode histories)."""
    return time.perf_counter_ns() // 1000


def sleep_s(seconds: float) -> None:
    """A real sleep: only for nemesis timing against real backends."""
    if seconds > 0:
        time.sleep(seconds)


def stamp() -> str:
    """A UTC timestamp for naming report folders."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


class Deadline:
    """A wall-clock budget; ``None`` seconds means no limit."""

    def __init__(self, seconds: float | None):
        self._end = None if seconds is None else time.perf_counter() + seconds

    def expired(self) -> bool:
        return self._end is not None and time.perf_counter() >= self._end

    def epoch_end(self) -> float | None:
        """The budget's end as seconds since the epoch, for a worker on another
        machine to compare with its own ``epoch_s()`` (clocks of one cluster
        agree to well under a second; a task start does not)."""
        return None if self._end is None else time.time() + (self._end - time.perf_counter())


def epoch_s() -> float:
    """Seconds since the epoch: only to compare with ``Deadline.epoch_end``."""
    return time.time()


def run_token(run_dir: Path) -> str:
    """A short tag unique to this run: it names the run's tables, so two runs
    sharing a store (CI shards, two checkouts, one PostgreSQL) never meet."""
    key = f"{Path(run_dir).resolve()}|{socket.gethostname()}|{os.getpid()}"
    return hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
