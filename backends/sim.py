"""The sim backend: an in-memory, exact, deterministic vector store.

It is the reference implementation of DESIGN's semantics: exact cosine in
float64, equal scores ordered by id, validation before any change. Writes
apply synchronously, so what a call acknowledged is exactly what it did.

Crashes are modelled with a process-wide registry keyed by
``(location, namespace)``: a handle dropped without ``close()`` and
reopened with ``fresh=False`` finds exactly the acknowledged state.

Options (``--opt KEY=VALUE``):

==============  ==============================================================
atomic_batches  ``true`` (default); ``false``: the variant whose batches are
                not atomic, as many real stores' are: it says so, each item
                is applied on its own (threads may see half a batch), and the
                harness cuts its batches for real (a partial write applies a
                strict subset) and checks each item as its own store
==============  ==============================================================

Any other key is refused (a setup error naming it). ``search_exact`` is
``search``: the store has no index to bypass.
"""

from __future__ import annotations

import threading
from typing import Iterable

import numpy as np

from dst.backend import BackendConfig, SearchHit, check_options
from dst.errors import BackendError, UsageError
from dst.validate import check_batch, check_id, check_limit, check_vector

class _Store:
    """One namespace's durable state, shared by every handle opened on it.

    The lock makes each call atomic when several handles are used from
    threads (threads mode); ``version`` tells handles their search matrix
    is out of date after another handle wrote.
    """

    __slots__ = ("data", "version", "lock", "matrix")

    def __init__(self) -> None:
        self.data: dict[str, np.ndarray] = {}
        self.version = 0
        self.lock = threading.RLock()
        self.matrix: tuple[int, list[str], np.ndarray] | None = None


# (location, namespace) -> its store. Only this module writes it.
_REGISTRY: dict[tuple[str, str], _Store] = {}


OPTION_DEFAULTS = {"atomic_batches": True}


class SimBackend:
    name = "sim"
    exact = True
    atomic_batches = True

    def __init__(self, config: BackendConfig):
        if config.dim < 1:
            raise BackendError(f"dim must be at least 1, got {config.dim}")
        check_options("sim", config.options, OPTION_DEFAULTS)
        self.dim = config.dim
        self.atomic_batches = _flag(config.options, "atomic_batches")
        self._key = (config.location or "sim-default", config.namespace)
        if config.fresh or self._key not in _REGISTRY:
            # Every namespace in the registry was made by this module, so a
            # fresh open may reset it.
            _REGISTRY[self._key] = _Store()
        self._store = _REGISTRY[self._key]
        self._closed = False

    @property
    def _data(self) -> dict[str, np.ndarray]:
        return self._store.data

    # -- writes ---------------------------------------------------------
    def store(self, id: str, vector: np.ndarray) -> None:
        check_id(id)
        v = check_vector(vector, self.dim)
        st = self._live()
        with st.lock:
            st.data[id] = v
            st.version += 1

    def store_batch(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        checked = check_batch(items, self.dim)
        st = self._live()
        if not self.atomic_batches:
            for id_, v in checked:   # one item at a time: no promise for the whole
                with st.lock:
                    st.data[id_] = v
                    st.version += 1
            return
        with st.lock:
            for id_, v in checked:
                st.data[id_] = v
            st.version += 1

    def delete(self, id: str) -> bool:
        check_id(id)
        st = self._live()
        with st.lock:
            existed = st.data.pop(id, None) is not None
            if existed:
                st.version += 1
        return existed

    # -- reads ----------------------------------------------------------
    def get(self, id: str) -> np.ndarray | None:
        check_id(id)
        v = self._live().data.get(id)
        return None if v is None else v.copy()

    def exists(self, id: str) -> bool:
        check_id(id)
        return id in self._live().data

    def count(self) -> int:
        return len(self._live().data)

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

    def search_exact(self, query: np.ndarray, limit: int) -> list[SearchHit]:
        """The probes' exhaustive search: the same brute force."""
        return self.search(query, limit)

    def close(self) -> None:
        self._closed = True

    def drop(self) -> None:
        """Forget this namespace (the harness created it)."""
        _REGISTRY.pop(self._key, None)
        self._closed = True

    # -- internals --------------------------------------------------------
    def _live(self) -> _Store:
        if self._closed:
            raise BackendError("sim backend handle is closed")
        return self._store

    def _matrix(self) -> tuple[list[str], np.ndarray]:
        st = self._live()
        with st.lock:
            cached = st.matrix
            if cached is None or cached[0] != st.version:
                ids = sorted(st.data)
                if ids:
                    m = np.stack([st.data[i] for i in ids]).astype(np.float64)
                    m /= np.sqrt(np.einsum("ij,ij->i", m, m))[:, None]
                else:
                    m = np.zeros((0, self.dim))
                cached = st.matrix = (st.version, ids, m)
        return cached[1], cached[2]


def _flag(options: dict, key: str) -> bool:
    v = options.get(key, OPTION_DEFAULTS[key])
    if isinstance(v, str):
        v = {"true": True, "false": False}.get(v.lower(), v)
    if not isinstance(v, bool):
        raise UsageError(f"sim backend: {key} must be true or false, got {v!r}")
    return v


def open_backend(config: BackendConfig) -> SimBackend:
    return SimBackend(config)
