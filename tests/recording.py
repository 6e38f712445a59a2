"""A recording backend: the real sim backend, with every call logged.

Fault tests use it to see what really reached the store, rather than what
the history says did. Each handle a ``Recorder`` opens gets a number; every
call is logged as ``(handle, method, args)`` before it runs, with ids as
they came and vectors as their float32 bytes, and so are ``open`` (with
``fresh``) and ``close``.

A store call whose id starts with ``fail-`` raises ``BackendError``
without applying anything: a call that did not succeed, for the tests of
faults that may only be counted when the call did.

``nonatomic_sim`` (``--backend tests.recording:nonatomic_sim``) is the sim
backend with ``atomic_batches=false`` whatever the options say: a correct
store without atomic batches, for ``dst conform`` against the atomic sim.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

import numpy as np

from backends.sim import SimBackend
from dst.backend import BackendConfig
from dst.errors import BackendError

FAIL_PREFIX = "fail-"


def vec_bytes(v: Any) -> bytes:
    return np.asarray(v, dtype=np.float32).tobytes()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.handles = 0

    def open(self, config: BackendConfig) -> "RecordingBackend":
        self.handles += 1
        self.calls.append((self.handles, "open", config.fresh))
        return RecordingBackend(self, self.handles, SimBackend(config))

    def of(self, method: str) -> list[tuple]:
        """The args of every call of ``method``, in call order."""
        return [c[2] for c in self.calls if c[1] == method]


class RecordingBackend:
    def __init__(self, rec: Recorder, handle: int, inner: SimBackend):
        self._rec, self._h, self._inner = rec, handle, inner
        self.name, self.dim = inner.name, inner.dim
        self.exact, self.atomic_batches = inner.exact, inner.atomic_batches

    def _log(self, method: str, args: Any) -> None:
        self._rec.calls.append((self._h, method, args))

    def store(self, id: str, vector: np.ndarray) -> None:
        self._log("store", (id, vec_bytes(vector)))
        if isinstance(id, str) and id.startswith(FAIL_PREFIX):
            raise BackendError(f"the recording backend fails every store of an id starting {FAIL_PREFIX!r}")
        self._inner.store(id, vector)

    def store_batch(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        items = list(items)
        self._log("store_batch", tuple((i, vec_bytes(v)) for i, v in items))
        self._inner.store_batch(items)

    def delete(self, id: str) -> bool:
        self._log("delete", id)
        return self._inner.delete(id)

    def get(self, id: str) -> np.ndarray | None:
        self._log("get", id)
        return self._inner.get(id)

    def exists(self, id: str) -> bool:
        self._log("exists", id)
        return self._inner.exists(id)

    def count(self) -> int:
        self._log("count", ())
        return self._inner.count()

    def search(self, query: np.ndarray, limit: int):
        self._log("search", (vec_bytes(query), limit))
        return self._inner.search(query, limit)

    def close(self) -> None:
        self._log("close", ())
        self._inner.close()

    def drop(self) -> None:
        self._inner.drop()


def nonatomic_sim(config: BackendConfig) -> SimBackend:
    return SimBackend(replace(config, options={**config.options, "atomic_batches": False}))


class AnnSim(SimBackend):
    """The correct sim dressed as an ANN store with no exhaustive path (as
    Chroma): ``exact = False`` and no ``search_exact``, so the probes search
    it as they would an index, and run reachability searches on it."""
    exact = False
    search_exact = None


def ann_sim(config: BackendConfig) -> SimBackend:
    return AnnSim(config)
