"""The Chroma backend: one collection of a ``chromadb.PersistentClient``.

The client lives in a folder (``--location``, default ``.dst/chroma`` under
the working directory); each namespace is one collection in it, created with
``hnsw:space`` set from the run's metric (cosine, l2, ip for ``dot``) and no
embedding function (the adapter always passes the embeddings; Chroma's
default function would try to download a model). Chroma searches with an
HNSW index plus a brute-force buffer for recent writes and has no way to
force an exhaustive search, so ``exact = False`` and ``search_exact`` is
None: the harness's quiescent probes use ``search`` and hold it to
completeness (``min(limit, live)`` rows).

Scores from Chroma's distances (measured on 1.5.9): cosine ``1 - d``; l2
``-sqrt(d)`` (Chroma's l2 distance is squared); dot ``1 - d`` (Chroma's
ip distance is ``1 - inner product``).

Facts this adapter designs around (chromadb 1.5.9):

* ``upsert`` MERGES metadata into an existing record's (keys it omits are
  kept; a ``None`` value removes a key; ``metadatas=None`` keeps them all).
  The protocol replaces a row's attributes with its vector, so a write
  reads the rows' current metadata first and sends ``None`` for every key
  the new attributes drop. A lock makes read-then-write one step per handle.
* ``delete`` reports the number of ids asked for, not found, so the
  adapter asks ``get`` first (under the same lock).
* Under cosine Chroma stores the normalized vector: ``get`` returns it
  scaled back with float error (most rows not bit-exact). The adapter keeps
  the float32 bytes in the metadata key ``dst.vec`` (base64) and ``get``
  returns those; under l2 and dot Chroma's own copy is exact and used.
* An empty metadata dict is refused; a row with no attributes has
  ``None`` metadata (or only ``dst.vec``).
* Batches larger than ``get_max_batch_size()`` are split, and nothing
  makes a batch all-or-nothing: ``atomic_batches = False``.
* One ``System`` per folder per process (Chroma caches it): a second
  handle on the same folder, and the handle reopened after a simulated
  crash, share it.

Attributes and filters. An attribute ``name`` (``[a-z][a-z0-9_]*``, never a
dot) is stored under its own key, with its type in ``dst.t.<name>``
(``"s"``, ``"i"``, ``"b"``). The portable ``where`` tree becomes Chroma's
native metadata filter (never evaluated in Python): negation is pushed down
to the leaves (De Morgan), and the two-valued missing-attribute semantics
come from Chroma's own operators, which treat a missing key as "not equal":

=======================  ===============================================
portable                 Chroma ``where``
=======================  ===============================================
``eq``/``in``            ``$eq``/``$in`` (Chroma compares only values of
                         the operand's type: ``1`` never matches ``True``)
``lt le gt ge``          ``$lt $lte $gt $gte`` (ints only, same rule)
``ne``                   ``dst.t.n = kind AND n $ne v`` (``$ne`` alone also
                         matches a missing key or another type)
``exists``               ``dst.t.n $in ["b", "i", "s"]``
``not eq``/``not in``    ``$ne``/``$nin`` (true for a missing key)
``not ne``               ``dst.t.n $ne kind OR n $eq v``
``not lt`` (etc.)        ``dst.t.n $ne "i" OR n $gte v`` (etc.)
``not exists``           ``dst.t.n $nin ["b", "i", "s"]``
``and [] / or []``       folded away (true / false); a filter that is
                         false as a whole becomes ``dst.never $eq true``
=======================  ===============================================

Ownership: the collection's metadata carries ``dst.owner = vector-dst``
(and ``dst.dim``). A collection without it is never written or deleted.
Namespaces become collection names by ``collection_name``: Chroma wants
3-512 characters of ``[a-zA-Z0-9._-]``, starting and ending with a letter or
digit, no ``..``, not an IPv4 address; a namespace that is not such a name
is mapped (illegal characters to ``_``, plus a hash of the namespace).

Options (``--opt KEY=VALUE``), HNSW settings applied when the collection is
created (absent: Chroma's default):

================  ========  ===============================================
option            default   meaning
================  ========  ===============================================
ef_search         (100)     ``hnsw:search_ef``: candidates per query
ef_construction   (100)     ``hnsw:construction_ef``
max_neighbors     (16)      ``hnsw:M``
batch_size        (100)     ``hnsw:batch_size``: writes kept in the
                            brute-force buffer before they enter the index
sync_threshold    (1000)    ``hnsw:sync_threshold``: index persisted every N
num_threads       (cores)   ``hnsw:num_threads``: 1 makes index builds
                            single-threaded (more repeatable replays)
================  ========  ===============================================
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import threading
from typing import Any

import numpy as np

from backends._toolkit import (Option, Options, ValidatingBackend, check_namespace, classify,
                               is_owner_mark, owner_mark, require_owned, store_name)
from dst.backend import BackendConfig, SearchHit, metric_or_default
from dst.errors import BackendError, UsageError

DEFAULT_LOCATION = os.path.join(".dst", "chroma")

# option -> Chroma's collection metadata key
HNSW_KEYS = {"ef_search": "hnsw:search_ef", "ef_construction": "hnsw:construction_ef",
             "max_neighbors": "hnsw:M", "batch_size": "hnsw:batch_size",
             "sync_threshold": "hnsw:sync_threshold", "num_threads": "hnsw:num_threads"}
OPTIONS = Options(
    "chroma",
    Option("ef_search", int, lo=1),
    Option("ef_construction", int, lo=1),
    Option("max_neighbors", int, lo=2),
    Option("batch_size", int, lo=2),
    Option("sync_threshold", int, lo=2),
    Option("num_threads", int, lo=1),
    prefix="chroma:", error=UsageError)

SPACE = {"cosine": "cosine", "l2": "l2", "dot": "ip"}
DIM_KEY = "dst.dim"
VEC_KEY = "dst.vec"          # the float32 bytes (base64) under cosine
TYPE_PREFIX = "dst.t."       # dst.t.<name> -> "s" | "i" | "b"
NEVER_KEY = "dst.never"      # no row has it: {NEVER_KEY: {"$eq": True}} is false
KINDS = ["b", "i", "s"]
_FLIP = {"lt": "$gte", "le": "$gt", "gt": "$lte", "ge": "$lt"}
_OP = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]\Z")


def _import():
    try:
        import chromadb  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise UsageError(f"the chroma backend needs chromadb (pip install -e '.[chroma]'): "
                         f"cannot import {exc.name!r}") from None


def chroma_name_ok(name: str) -> bool:
    """Chroma's collection name rules: 3-512 characters of [a-zA-Z0-9._-],
    a letter or digit first and last, no "..", not an IPv4 address."""
    if not _NAME_RE.match(name) or ".." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


def collection_name(ns: Any) -> str:
    """The collection for namespace ``ns``: ``ns`` itself when Chroma takes
    it, otherwise a mapped name (no dots, so never ".." nor an IPv4
    address; a hash of the whole ``ns`` at the end, so two namespaces never
    share a collection)."""
    check_namespace(ns)
    if chroma_name_ok(ns):
        return ns
    # min_len above max_len: always the mapped form (body + "_" + hash),
    # even for a namespace store_name would keep (one ending in "_", say).
    return store_name(ns, max_len=512, allowed="A-Za-z0-9_-", first="A-Za-z0-9", min_len=513)


def _kind(value: Any) -> str:
    return "b" if isinstance(value, bool) else "i" if isinstance(value, int) else "s"


def _and(parts: list) -> Any:
    if any(p is False for p in parts):
        return False
    parts = [p for p in parts if p is not True]
    if not parts:
        return True
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _or(parts: list) -> Any:
    if any(p is True for p in parts):
        return True
    parts = [p for p in parts if p is not False]
    if not parts:
        return False
    return parts[0] if len(parts) == 1 else {"$or": parts}


def native_where(where: Any, negate: bool = False) -> Any:
    """The canonical filter as Chroma's ``where`` dict, or True/False when
    it is constant (``and []``, ``or []`` and what they make). Negation is
    pushed to the leaves; see the module docstring for each form."""
    (op, arg), = where.items()
    if op == "not":
        return native_where(arg, not negate)
    if op in ("and", "or"):
        kids = [native_where(w, negate) for w in arg]
        return _and(kids) if (op == "and") != negate else _or(kids)
    if op == "exists":
        return {TYPE_PREFIX + arg: {"$nin" if negate else "$in": list(KINDS)}}
    name, value = arg
    tkey = TYPE_PREFIX + name
    if op == "eq":
        return {name: {"$ne" if negate else "$eq": value}}
    if op == "in":
        return {name: {"$nin" if negate else "$in": list(value)}}
    if op == "ne":
        kind = _kind(value)
        if negate:
            return {"$or": [{tkey: {"$ne": kind}}, {name: {"$eq": value}}]}
        return {"$and": [{tkey: {"$eq": kind}}, {name: {"$ne": value}}]}
    if negate:
        return {"$or": [{tkey: {"$ne": "i"}}, {name: {_FLIP[op]: value}}]}
    return {name: {_OP[op]: value}}


def to_chroma_where(where: Any) -> dict | None:
    """``native_where`` for a query: None for no filter or an always-true
    one, a filter no row matches for an always-false one."""
    if where is None:
        return None
    w = native_where(where)
    if w is True:
        return None
    if w is False:
        return {NEVER_KEY: {"$eq": True}}
    return w


def _score(metric: str, d: float) -> float:
    if metric == "l2":
        return -float(np.sqrt(max(d, 0.0)))
    return 1.0 - d   # cosine: d = 1 - cos; dot (space ip): d = 1 - inner product


def _encode(v: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def _ours(key: str) -> bool:
    """A metadata key this adapter writes per row (an attribute or its type)."""
    return "." not in key or key.startswith(TYPE_PREFIX)


def _failing(call: str, **kw):
    return classify(f"chroma: {call} failed", **kw)


class ChromaBackend(ValidatingBackend):
    name = "chroma"
    filters = True
    exact = False
    atomic_batches = False
    search_exact = None  # Chroma has no exhaustive search path (see the module docstring)

    def __init__(self, config: BackendConfig):
        _import()
        import chromadb
        from chromadb.config import Settings

        opts = OPTIONS.parse(config.options)
        self.dim = config.dim
        self.metric = metric_or_default(getattr(config, "metric", "cosine"))
        self.location = os.path.abspath(config.location or DEFAULT_LOCATION)
        self.namespace = config.namespace
        self.collection = collection_name(config.namespace)
        self._hnsw = {HNSW_KEYS[k]: v for k, v in opts.items() if v is not None}
        self._lock = threading.RLock()
        self._settings = Settings(anonymized_telemetry=False)
        self._col = None
        with classify(f"chroma: cannot open collection {self.collection!r} in {self.location}", text=str):
            os.makedirs(self.location, exist_ok=True)
            self._client = chromadb.PersistentClient(path=self.location, settings=self._settings)
            self._max_batch = int(self._client.get_max_batch_size())
            existing = self._find()
            if existing is not None:
                self._check_owned(existing)
                if config.fresh:
                    self._client.delete_collection(self.collection)
                    existing = None
            if existing is None:
                if not config.fresh:
                    raise BackendError(f"chroma: no collection {self.collection!r} in {self.location} to reopen")
                meta = {**owner_mark(), DIM_KEY: self.dim, "hnsw:space": SPACE[self.metric], **self._hnsw}
                existing = self._client.create_collection(self.collection, metadata=meta,
                                                          embedding_function=None)
            self._col = existing

    def _find(self, client=None):
        client = client or self._client
        names = {c.name if hasattr(c, "name") else c for c in client.list_collections()}
        if self.collection not in names:
            return None
        return client.get_collection(self.collection, embedding_function=None)

    def _check_owned(self, col) -> None:
        meta = col.metadata or {}
        require_owned(is_owner_mark(meta), f"chroma: collection {self.collection!r} in {self.location}")
        if meta.get(DIM_KEY) != self.dim:
            raise BackendError(f"chroma: collection {self.collection!r} has dimension "
                               f"{meta.get(DIM_KEY)!r}, not {self.dim}")
        space = meta.get("hnsw:space", "l2")
        if space != SPACE[self.metric]:
            raise BackendError(f"chroma: collection {self.collection!r} has space {space!r}, "
                               f"not {SPACE[self.metric]!r} (metric {self.metric})")

    # -- writes ---------------------------------------------------------------
    def _metas(self, ids: list[str], matrix: np.ndarray, attrs: list[dict]) -> list[dict | None]:
        """Each row's metadata, with None for every key of its current
        metadata the new attributes drop (upsert merges)."""
        with _failing("get"):
            old = self._col.get(ids=ids, include=["metadatas"])
        stale = {i: [k for k in (m or {}) if _ours(k)] for i, m in zip(old["ids"], old["metadatas"])}
        out: list[dict | None] = []
        for i, id_ in enumerate(ids):
            meta: dict[str, Any] = {}
            for name, value in attrs[i].items():
                meta[name] = value
                meta[TYPE_PREFIX + name] = _kind(value)
            if self.metric == "cosine":
                meta[VEC_KEY] = _encode(matrix[i])
            for key in stale.get(id_, ()):
                meta.setdefault(key, None)
            out.append(meta or None)
        return out

    def _upsert(self, ids: list[str], matrix: np.ndarray, attrs: list[dict]) -> None:
        with self._lock:
            for lo in range(0, len(ids), self._max_batch):
                hi = lo + self._max_batch
                chunk = ids[lo:hi]
                metas = self._metas(chunk, matrix[lo:hi], attrs[lo:hi])
                with _failing("upsert"):
                    self._col.upsert(ids=chunk, embeddings=np.asarray(matrix[lo:hi], dtype=np.float32),
                                     metadatas=metas)

    def raw_store(self, id: str, vector: np.ndarray, attrs: dict | None = None) -> None:
        self._upsert([id], vector[None, :], [attrs or {}])

    def raw_store_batch(self, ids: list[str], matrix: np.ndarray, attrs: list[dict] | None = None) -> None:
        if ids:
            self._upsert(ids, matrix, attrs if attrs is not None else [{} for _ in ids])

    def raw_delete(self, id: str) -> bool:
        with self._lock:
            if not self.raw_exists(id):
                return False
            with _failing("delete"):
                self._col.delete(ids=[id])
            return True

    # -- reads ----------------------------------------------------------------
    def _get(self, id_: str, include: list[str]) -> dict:
        with _failing("get"):
            return self._col.get(ids=[id_], include=include)

    def raw_get(self, id: str) -> np.ndarray | None:
        if self.metric == "cosine":
            got = self._get(id, ["metadatas"])
            if not got["ids"]:
                return None
            meta = got["metadatas"][0] or {}
            if VEC_KEY not in meta:
                raise BackendError(f"chroma: row {id!r} has no {VEC_KEY} copy of its vector")
            return _decode(meta[VEC_KEY])
        got = self._get(id, ["embeddings"])
        if not got["ids"]:
            return None
        return np.asarray(got["embeddings"][0], dtype=np.float32).copy()

    def raw_get_attrs(self, id: str) -> dict | None:
        got = self._get(id, ["metadatas"])
        if not got["ids"]:
            return None
        meta = got["metadatas"][0] or {}
        return {k: meta[k] for k in sorted(meta) if "." not in k}

    def raw_exists(self, id: str) -> bool:
        return bool(self._get(id, [])["ids"])

    def raw_count(self) -> int:
        with _failing("count"):
            return int(self._col.count())

    def raw_search(self, q: np.ndarray, limit: int, exact: bool, where=None) -> list[SearchHit]:
        native = to_chroma_where(where)
        with _failing("query"):
            res = self._col.query(query_embeddings=np.asarray(q, dtype=np.float32)[None, :],
                                  n_results=limit, where=native, include=["distances"])
        ids = res["ids"][0]
        dist = res["distances"][0]
        hits = [SearchHit(i, _score(self.metric, float(d))) for i, d in zip(ids, dist)]
        # Equal scores in id order, as the sim backend gives them.
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits

    # -- lifecycle ------------------------------------------------------------
    def close(self) -> None:
        client, self._client, self._col = getattr(self, "_client", None), None, None
        if client is not None:
            close = getattr(client, "close", None)
            if callable(close):
                with _failing("close"):
                    close()

    def drop(self) -> None:
        """Delete this namespace's collection (only one vector-dst created).
        Works after close(): the harness drops passing seeds' collections
        after closing their handles."""
        import chromadb
        with self._lock, _failing("delete_collection"):
            client = self._client or chromadb.PersistentClient(path=self.location, settings=self._settings)
            try:
                col = self._find(client)
                if col is not None:
                    self._check_owned(col)
                    client.delete_collection(self.collection)
            finally:
                if client is not self._client:
                    client.close()
        self.close()


def open_backend(config: BackendConfig) -> ChromaBackend:
    return ChromaBackend(config)
