"""The sim backend: an in-memory, exact, deterministic vector store.

It is the reference implementation of DESIGN's semantics: exact cosine in
float64, equal scores ordered by id, validation before any change. Writes
apply synchronously, so what a call acknowledged is exactly what it did.

Crashes are modelled with a process-wide registry keyed by
``(location, namespace)``: a handle dropped without ``close()`` and
reopened with ``fresh=False`` finds exactly the acknowledged state.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from dst.backend import BackendConfig, SearchHit
from dst.errors import BackendError
from dst.validate import check_batch, check_id, check_limit, check_vector

# (location, namespace) -> {id: float32 vector}. Only this module writes it.
_REGISTRY: dict[tuple[str, str], dict[str, np.ndarray]] = {}


class SimBackend:
    name = "sim"
    exact = True
    atomic_batches = True

    def __init__(self, config: BackendConfig):
        if config.dim < 1:
            raise BackendError(f"dim must be at least 1, got {config.dim}")
        self.dim = config.dim
        self._key = (config.location or "sim-default", config.namespace)
        if config.fresh or self._key not in _REGISTRY:
            # Every namespace in the registry was made by this module, so a
            # fresh open may reset it.
            _REGISTRY[self._key] = {}
        self._data = _REGISTRY[self._key]
        self._cache: tuple[list[str], np.ndarray] | None = None
        self._closed = False

    # -- writes ---------------------------------------------------------
    def store(self, id: str, vector: np.ndarray) -> None:
        check_id(id)
        v = check_vector(vector, self.dim)
        self._live()[id] = v
        self._cache = None

    def store_batch(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        checked = check_batch(items, self.dim)
        data = self._live()
        for id_, v in checked:
            data[id_] = v
        self._cache = None

    def delete(self, id: str) -> bool:
        check_id(id)
        existed = self._live().pop(id, None) is not None
        if existed:
            self._cache = None
        return existed

    # -- reads ----------------------------------------------------------
    def get(self, id: str) -> np.ndarray | None:
        check_id(id)
        v = self._live().get(id)
        return None if v is None else v.copy()

    def exists(self, id: str) -> bool:
        check_id(id)
        return id in self._live()

    def count(self) -> int:
        return len(self._live())

    def search(self, query: np.ndarray, limit: int) -> list[SearchHit]:
        q = check_vector(query, self.dim).astype(np.float64)
        limit = check_limit(limit)
        ids, unit = self._matrix()
        if not ids:
            return []
        scores = unit @ (q / np.sqrt(q @ q))
        # Stable sort on descending score: rows are in id order, so equal
        # scores come out ordered by id.
        order = np.argsort(-scores, kind="stable")[:limit]
        return [SearchHit(ids[i], float(scores[i])) for i in order]

    def close(self) -> None:
        self._closed = True
        self._cache = None

    def drop(self) -> None:
        """Forget this namespace (the harness created it)."""
        _REGISTRY.pop(self._key, None)
        self._closed = True

    # -- internals --------------------------------------------------------
    def _live(self) -> dict[str, np.ndarray]:
        if self._closed:
            raise BackendError("sim backend handle is closed")
        return self._data

    def _matrix(self) -> tuple[list[str], np.ndarray]:
        if self._cache is None:
            data = self._live()
            ids = sorted(data)
            if ids:
                m = np.stack([data[i] for i in ids]).astype(np.float64)
                m /= np.sqrt(np.einsum("ij,ij->i", m, m))[:, None]
            else:
                m = np.zeros((0, self.dim))
            self._cache = (ids, m)
        return self._cache


def open_backend(config: BackendConfig) -> SimBackend:
    return SimBackend(config)
