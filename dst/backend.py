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
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, runtime_checkable

import numpy as np

from dst.errors import UsageError


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: the id and its raw cosine similarity in [-1, 1]."""

    id: str
    score: float


@dataclass(frozen=True)
class BackendConfig:
    """What a factory gets.

    ``location``: a directory, a DSN, or None (the backend's default).
    ``namespace``: the table name the harness picked; unique to the run and
    seed, the same on reopen. ``fresh``: True creates it empty, False reopens
    it as it is (as after a crash). ``options``: backend options (``--opt``).
    """

    dim: int
    location: str | None = None
    namespace: str = "dst"
    fresh: bool = True
    options: dict[str, Any] = field(default_factory=dict)


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
}


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
