"""The backend protocol: what any vector store must offer the harness.

A backend is opened by a factory ``factory(config) -> VectorBackend``.
Built-in factories are named ``sim``, ``lance`` and ``pgvector``; any other
is named ``package.module:factory`` (that is how users plug in their own
store, and how the test suite plugs in deliberately broken ones).

Optional capabilities are looked up with ``getattr``, never ``isinstance``:

* ``maintenance(kind: str) -> None``: "compact", "index", "vacuum", ...
* ``nemeses() -> dict[str, callable]``: real faults the backend can inflict
  on itself.
* ``drop() -> None``: remove the namespace *this handle created*; the
  harness calls it for passing seeds so long runs do not pile up tables.
* ``maintenance_kinds: tuple[str, ...]``: the kinds ``maintenance`` takes.
  Declared, the scenario's kinds are checked against it before any op
  (``check_maintenance_kinds``): a kind the backend lacks is a setup error.
* ``search_exact(query, limit) -> list[SearchHit]``: search without any
  ANN index (brute force). The harness's quiescent probes use it when
  present, so an index scan's row cap does not pass for lost data; the
  scenario's own searches always go through ``search``.

* ``filters = True``: the backend takes attributes and the portable
  filter of ``dst.filters``: ``store(id, vector, attrs=None)``, batch items
  ``(id, vector)`` or ``(id, vector, attrs)``, ``search(query, limit,
  where=None)``, and ``get_attrs(id) -> dict | None`` (the stored
  attributes, ``{}`` for none; None for an absent id).
* ``versions() -> dict[str, str]``: what the store reports it runs, read
  from it (e.g. ``{"postgresql": "18.6", "pgvector": "0.8.6", "server":
  "pg18"}``); the runner records it in the history's ``meta`` and the run's
  ``result.json``, summary and report (``dst.sim.runner.backend_versions``).
* ``crash_empties = True``: a server crash (a ``crash*`` nemesis) empties
  the namespace by design (an unlogged PostgreSQL table): the harness
  records a ``wipe`` op after it and the checker expects the namespace
  empty after recovery, no more and no less.
* ``metric``: the metric the backend scores by (``cosine`` when absent);
  the factory gets the run's in ``BackendConfig.metric`` and refuses one
  it cannot serve with a setup error (``check_metric`` holds a backend
  that ignored it to the same rule).

Every backend refuses option keys it does not know (``check_options``).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

import numpy as np

from dst.errors import BackendError, DstError, UsageError
from dst.metrics import METRICS


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: the id and its score under the run's metric
    (cosine similarity in [-1, 1], minus the Euclidean distance, or the
    inner product; higher is better)."""

    id: str
    score: float


@dataclass(frozen=True)
class BackendConfig:
    """What a factory gets.

    ``location``: a directory, a DSN, or None (the backend's default).
    ``namespace``: the table name the harness picked; unique to the run and
    seed, the same on reopen. ``fresh``: True creates it empty, False reopens
    it as it is (as after a crash). ``options``: backend options (``--opt``).
    ``metric``: ``cosine``, ``l2`` or ``dot`` (``dst.metrics``); a backend
    refuses one it cannot serve with a setup error.
    """

    dim: int
    location: str | None = None
    namespace: str = "dst"
    fresh: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    metric: str = "cosine"


@runtime_checkable
class VectorBackend(Protocol):
    """A synchronous vector store. See DESIGN.md for the exact semantics.

    Every method raises ``dst.errors.InvalidInput`` for bad input (changing
    nothing) and ``dst.errors.BackendError`` for any other failure; no other
    exception may escape. Methods are called from one thread at a time per
    handle, except in threads mode where each client has its own handle.
    """

    name: str
    dim: int
    exact: bool
    atomic_batches: bool

    def store(self, id: str, vector: np.ndarray) -> None:
        """Insert or replace (upsert)."""

    def store_batch(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Upsert many pairs; all-or-nothing only if ``atomic_batches``."""

    def delete(self, id: str) -> bool:
        """Remove; True if the id existed."""

    def get(self, id: str) -> np.ndarray | None:
        """The stored vector as float32, or None."""

    def exists(self, id: str) -> bool: ...

    def count(self) -> int:
        """Number of live ids."""

    def search(self, query: np.ndarray, limit: int) -> list[SearchHit]:
        """Top-``limit`` by cosine similarity, best first."""

    def close(self) -> None:
        """Release handles. Acknowledged data must survive."""


Factory = Callable[[BackendConfig], VectorBackend]

BUILTIN_BACKENDS = {
    "sim": "backends.sim:open_backend",
    "lance": "backends.lance:open_backend",
    "pgvector": "backends.pgvector:open_backend",
    "chroma": "backends.chroma:open_backend",
    "qdrant": "backends.qdrant:open_backend",
    "qdrant-edge": "backends.qdrant_edge:open_backend",
    "milvus": "backends.milvus:open_backend",
}


def open_backend(factory: Callable[..., Any], config: "BackendConfig") -> Any:
    """Open a backend for a run's setup. A factory raising something other
    than a dst error (a user's driver exception, say) cannot open the store:
    that is a setup error (exit 2) naming it, not a bug of the harness."""
    try:
        return factory(config)
    except DstError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified here, never escapes as a harness bug
        raise BackendError(f"setup: the backend factory raised {type(exc).__name__}: {exc}"[:500]) from exc


def check_options(backend: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse ``--opt`` keys ``backend`` does not know: a setup error (exit 2)
    naming the key and the known ones. A typo must not run a default store."""
    names = sorted(known)
    unknown = sorted(str(k) for k in options if k not in names)
    if unknown:
        what = f"option {unknown[0]!r}" if len(unknown) == 1 else \
            "options " + ", ".join(repr(k) for k in unknown)
        raise UsageError(f"{backend} backend: unknown {what} (known: {', '.join(names) or 'none'})")


def check_metric(backend: Any, metric: str) -> None:
    """A setup error unless ``backend`` scores by ``metric``: a backend that
    declares no ``metric`` serves cosine only."""
    have = getattr(backend, "metric", "cosine")
    if have != metric:
        name = getattr(backend, "name", type(backend).__name__)
        raise UsageError(f"the {name} backend scores by {have!r}, not the run's metric {metric!r} "
                         f"(it does not serve --metric {metric})")


def metric_or_default(metric: Any) -> str:
    """``metric`` checked (a usage error names the known ones)."""
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    return metric


def check_filters(backend: Any, needed: bool) -> None:
    """A setup error when the scenario needs filters and ``backend`` does
    not declare ``filters = True``: nothing is skipped silently."""
    if needed and getattr(backend, "filters", False) is not True:
        name = getattr(backend, "name", type(backend).__name__)
        raise UsageError(f"the scenario searches with filters, and the {name} backend does not "
                         f"declare the filters capability (filters = True)")


def check_maintenance_kinds(backend: Any, kinds: Iterable[str]) -> tuple[str, ...] | None:
    """The kinds ``backend`` declares (``maintenance_kinds``), after checking
    that every kind in ``kinds`` is one of them: a kind it lacks is a setup
    error naming it. None when the backend declares nothing (no check)."""
    declared = getattr(backend, "maintenance_kinds", None)
    if declared is None or not callable(getattr(backend, "maintenance", None)):
        return None
    have = tuple(declared)
    missing = sorted({k for k in kinds if k not in have})
    if missing:
        name = getattr(backend, "name", type(backend).__name__)
        raise UsageError(f"the scenario's maintenance kind {missing[0]!r} is not one the {name} backend "
                         f"has (it has: {', '.join(have) or 'none'}); change maintenance_kinds")
    return have


def scoped_options(options: Iterable[tuple[str, Any]], backend: str,
                   backends: Iterable[str]) -> dict[str, Any]:
    """The options for ``backend`` of a command that runs several: a plain
    ``KEY`` is for all, ``B:KEY`` only for backend ``B`` (split at the last
    colon, as ``pkg.mod:factory`` holds one too). A scope naming none of
    ``backends`` is a usage error."""
    names = list(backends)
    out: dict[str, Any] = {}
    scoped: dict[str, Any] = {}
    for key, value in options:
        scope, sep, k = str(key).rpartition(":")
        if not sep:
            out[key] = value
            continue
        if not scope or not k or scope not in names:
            raise UsageError(f"--opt {key}=...: {scope!r} is not one of the backends "
                             f"({', '.join(names)}); write BACKEND:KEY=VALUE or KEY=VALUE")
        if scope == backend:
            scoped[k] = value
    out.update(scoped)      # a scoped value wins over a plain one
    return out


def exact_view(backend: Any) -> Any:
    """``backend`` with ``search`` answered by its ``search_exact`` (the
    probes' exhaustive search), or ``backend`` itself when it has none."""
    fn = getattr(backend, "search_exact", None)
    return backend if not callable(fn) else _ExactView(backend, fn)


class _ExactView:
    __slots__ = ("_b", "search")

    def __init__(self, backend: Any, fn: Callable[..., Any]):
        self._b = backend
        self.search = fn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._b, name)


def resolve_backend(spec: str) -> Factory:
    """Turn ``sim`` / ``lance`` / ``pgvector`` / ``pkg.mod:factory`` into a factory.

    Raises ``UsageError`` with one sentence when it cannot.
    """
    target = BUILTIN_BACKENDS.get(spec, spec)
    if ":" not in target:
        names = ", ".join(sorted(BUILTIN_BACKENDS))
        raise UsageError(
            f"unknown backend {spec!r}: use one of {names}, or package.module:factory"
        )
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UsageError(f"backend {spec!r} must look like package.module:factory")
    try:
        module = _import(module_name)
    except ModuleNotFoundError as exc:
        hint = ""
        if spec in BUILTIN_BACKENDS and spec != "sim":
            hint = f" (install the extra: pip install -e '.[{spec}]')"
        raise UsageError(f"backend {spec!r}: cannot import {exc.name!r}{hint}") from None
    except Exception as exc:  # a user's module failing at import time
        raise UsageError(f"backend {spec!r}: importing {module_name} failed: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise UsageError(f"backend {spec!r}: {module_name} has no callable {attr!r}")
    return factory


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # The console script does not put the working directory on sys.path;
        # user backends usually live there (like `uvicorn app:app`).
        cwd = os.getcwd()
        if cwd in sys.path or not (exc.name and module_name.startswith(exc.name)):
            raise
        sys.path.insert(0, cwd)
        return importlib.import_module(module_name)
