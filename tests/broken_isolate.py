"""Broken backends only a real process kill exposes (issue 15, dst.isolate).

Each is the sim backend with one durability defect that dropping a handle
in-process cannot show; under ``--isolate process`` the sim backend keeps
its journal on disk, the medium these defects bypass.

* ``ack_before_persist``: a write-back cache. Writes are acknowledged from
  module-level memory (as a background writer's queue would hold them) and
  persisted only every FLUSH_EVERY-th write or when read. A crash that only
  drops the handle finds the queue still there, so nothing is lost; a killed
  process loses the acknowledged writes still queued.
* ``batch_rows_one_by_one``: claims atomic batches, and persists a batch row
  by row (a journal record per row). Nothing in-process can stop it between
  rows; a kill inside the batch call (kill-mid-batch) leaves half of it.
* ``dies_on_count``: the process exits by itself on the 3rd count() (a
  store segfaulting): the run must record it and go on, never hang.
* ``slow_count``: count() sleeps SLOW_S on its 3rd call (a hung store): the
  harness's reply timeout kills it.
* ``with_helper``: starts a helper process (as Milvus Lite starts its
  server) and names it in ``crash_pids()``: a kill takes it down too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from backends.sim import SimBackend
from dst.backend import BackendConfig

FLUSH_EVERY = 8

# (location, namespace) -> {id: (vector, attrs) or None for a delete}: the
# acknowledged writes not yet persisted. Process memory, like a writer queue.
_QUEUED: dict[tuple[str, str], dict] = {}


class AckBeforePersist(SimBackend):
    filters = False

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        if config.fresh:
            _QUEUED[self._key] = {}
        self._q = _QUEUED.setdefault(self._key, {})
        self._writes = 0

    def _flush(self) -> None:
        for id_ in sorted(self._q):
            row = self._q[id_]
            if row is None:
                super().raw_delete(id_)
            else:
                super().raw_store(id_, row[0], row[1])
        self._q.clear()

    def _queued(self) -> None:
        self._writes += 1
        if self._writes % FLUSH_EVERY == 0:
            self._flush()

    def raw_store(self, id, vector, attrs=None):
        self._q[id] = (vector, attrs)
        self._queued()

    def raw_store_batch(self, ids, matrix, attrs=None):
        for n, id_ in enumerate(ids):
            self._q[id_] = (matrix[n], None if attrs is None else attrs[n])
        self._queued()

    def raw_delete(self, id):
        self._flush()           # reads what exists from the persisted state
        existed = id in self._data
        if existed:
            self._q[id] = None
            self._queued()
        return existed

    # Reads persist the queue first (read-your-writes through the store).
    def raw_get(self, id):
        self._flush()
        return super().raw_get(id)

    def raw_exists(self, id):
        self._flush()
        return super().raw_exists(id)

    def raw_count(self):
        self._flush()
        return super().raw_count()

    def raw_search(self, query, limit, exact, where=None):
        self._flush()
        return super().raw_search(query, limit, exact, where)


class BatchRowsOneByOne(SimBackend):
    filters = False
    atomic_batches = True    # the claim; the writes below break it

    def raw_store_batch(self, ids, matrix, attrs=None):
        for n, id_ in enumerate(ids):
            super().raw_store(id_, matrix[n], None if attrs is None else attrs[n])


class DiesOnCount(SimBackend):
    filters = False

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._counts = 0

    def raw_count(self):
        self._counts += 1
        if self._counts == 3:
            os._exit(3)
        return super().raw_count()


SLOW_S = 30


class SlowCount(DiesOnCount):
    def raw_count(self):
        self._counts += 1
        if self._counts == 3:
            time.sleep(SLOW_S)
        return SimBackend.raw_count(self)


class WithHelper(SimBackend):
    filters = False

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

    def crash_pids(self):
        return [self._helper.pid]

    def close(self):
        self._helper.kill()
        self._helper.wait()
        super().close()


def ack_before_persist(config: BackendConfig) -> AckBeforePersist:
    return AckBeforePersist(config)


def batch_rows_one_by_one(config: BackendConfig) -> BatchRowsOneByOne:
    return BatchRowsOneByOne(config)


def dies_on_count(config: BackendConfig) -> DiesOnCount:
    return DiesOnCount(config)


def slow_count(config: BackendConfig) -> SlowCount:
    return SlowCount(config)


def with_helper(config: BackendConfig) -> WithHelper:
    return WithHelper(config)
