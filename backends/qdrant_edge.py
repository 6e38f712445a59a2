"""The Qdrant Edge backend: qdrant-edge-py's ``EdgeShard``, Qdrant's own
storage engine (Rust: segments, WAL, payload filters, HNSW when optimized)
in-process, one shard per namespace in ``<location>/<name>/shard``
(``location`` defaults to ``.dst/qdrant-edge``).

It shares the qdrant backend's layout (``backends.qdrant``): uuid5 point
ids with the id in the payload, attributes under one payload key per type,
ints also as 32-bit halves for exact ranges, the vector kept in the payload
under cosine (the engine stores it normalised), and the same filter tree
translation, spelled in ``qdrant_edge``'s classes.

One difference: qdrant-edge-py 0.9.0 turns ``MatchValue(True)`` into the
integer 1 (it matches the int 1, never the bool true; docs/findings.md), so
no bool payload can be matched. Bools are kept as 0/1 under their own
payload key ``b`` (only bools live there, so the portable bool/int
distinction holds) and matched as ints.

Search passes ``SearchParams(exact=True)``: the full scan, whatever index
the optimizer may have built, so ``exact = True``. ``count`` is
``CountRequest(exact=True)``. A batch is one ``upsert_points`` operation;
``atomic_batches`` is not claimed.

Ownership: the namespace folder carries ``OWNER_FILE``; a folder without it
is never opened, written or removed.

No options.
"""

from __future__ import annotations

import os
import shutil
import uuid
import weakref

import numpy as np

from backends._toolkit import Options, ValidatingBackend, classify, dir_owned, mark_dir, require_owned, store_name
from backends.qdrant import attrs_of, payload_of, point_id, qdrant_filter, vector_of
from dst.backend import BackendConfig, SearchHit, metric_or_default
from dst.errors import BackendError, UsageError

DEFAULT_LOCATION = os.path.join(".dst", "qdrant-edge")
OPTIONS = Options("qdrant-edge")
KNOWN_OPTIONS = set(OPTIONS.names)
_DISTANCE = {"cosine": "Cosine", "l2": "Euclid", "dot": "Dot"}
_HOLDERS: "weakref.WeakValueDictionary[str, QdrantEdgeBackend]" = weakref.WeakValueDictionary()


def _import():
    try:
        import qdrant_edge  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise UsageError(f"the qdrant-edge backend needs qdrant-edge-py (pip install -e '.[qdrant]'): {exc}") from None


class EdgeModels:
    """How a filter is spelled in qdrant_edge (``backends.qdrant`` dialect)."""

    bool_as_int = True

    def __init__(self):
        import qdrant_edge
        self.m = qdrant_edge

    def filter(self, must=None, should=None, must_not=None):
        return self.m.Filter(must=must, should=should, must_not=must_not)

    def match(self, key, value):
        return self.m.FieldCondition(key=key, match=self.m.MatchValue(value))

    def match_any(self, key, values):
        return self.m.FieldCondition(key=key, match=self.m.MatchAny(list(values)))

    def range(self, key, **bound):
        return self.m.FieldCondition(key=key, range=self.m.RangeFloat(**{k: float(x) for k, x in bound.items()}))

    def is_empty(self, key):
        return self.m.IsEmptyCondition(key)


class QdrantEdgeBackend(ValidatingBackend):
    name = "qdrant-edge"
    filters = True
    exact = True
    atomic_batches = False

    def __init__(self, config: BackendConfig):
        _import()
        import qdrant_edge as qe

        self._qe = qe
        OPTIONS.parse(config.options)
        self.dim = config.dim
        self.metric = metric_or_default(getattr(config, "metric", "cosine"))
        self.location = config.location or DEFAULT_LOCATION
        self.shard_name = store_name(config.namespace, max_len=120, allowed="A-Za-z0-9_.-", first="A-Za-z0-9_")
        self.folder = os.path.join(self.location, self.shard_name)
        self.path = os.path.join(self.folder, "shard")
        self._keep_vector = self.metric == "cosine"
        self._dialect = EdgeModels()
        self._shard = None
        with classify(f"qdrant-edge: cannot open {self.shard_name!r} in {self.location}", text=str):
            if os.path.isdir(self.folder) and os.listdir(self.folder):
                require_owned(dir_owned(self.folder) is not None, f"qdrant-edge: folder {self.folder!r}")
                meta = dir_owned(self.folder) or {}
                if not config.fresh and (meta.get("dim"), meta.get("metric")) != (self.dim, self.metric):
                    raise BackendError(f"qdrant-edge: {self.folder!r} holds dim {meta.get('dim')} "
                                       f"{meta.get('metric')}, not dim {self.dim} {self.metric}")
            self._take_over()
            if config.fresh:
                if os.path.isdir(self.path):
                    shutil.rmtree(self.path)
                mark_dir(self.folder, dim=self.dim, metric=self.metric)
                params = qe.EdgeVectorParams(size=self.dim, distance=getattr(qe.Distance, _DISTANCE[self.metric]))
                self._shard = qe.EdgeShard.create(self.path, qe.EdgeConfig(vectors=params))
            else:
                if not os.path.isdir(self.path):
                    raise BackendError(f"qdrant-edge: no shard in {self.folder} to reopen")
                self._shard = qe.EdgeShard.load(self.path)

    def _take_over(self) -> None:
        """As ``backends.qdrant._open_client``: a handle the harness dropped
        without close() (its crash) lets go of the shard before a new one
        opens it, as a dying process would."""
        key = os.path.realpath(self.folder)
        old = _HOLDERS.get(key)
        if old is not None and old is not self:
            old._release()
        _HOLDERS[key] = self

    def _release(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            try:
                shard.close()
            except Exception:  # noqa: BLE001 - a handle being abandoned
                pass

    def _live(self):
        if self._shard is None:
            raise BackendError("qdrant-edge: this handle is closed (or was taken over by a newer handle "
                               "on the same folder)")
        return self._shard

    def _retrieve(self, id_: str, *, vectors: bool = False):
        with _failing("retrieve"):
            recs = self._live().retrieve([uuid.UUID(point_id(id_))], True, vectors)
        if not recs:
            return None
        rec = recs[0]
        got = (rec.payload or {}).get("id")
        if got != id_:
            raise BackendError(f"qdrant-edge: point {point_id(id_)} holds id {got!r}, not {id_!r}")
        return rec

    # -- the protocol ---------------------------------------------------------
    def raw_store(self, id: str, vector: np.ndarray, attrs: dict | None = None) -> None:
        self.raw_store_batch([id], vector[None, :], [attrs or {}])

    def raw_store_batch(self, ids: list[str], matrix: np.ndarray, attrs: list[dict] | None = None) -> None:
        if not ids:
            return
        qe = self._qe
        attrs = attrs if attrs is not None else [{} for _ in ids]
        rows = matrix.tolist()
        as_int = self._dialect.bool_as_int
        points = [qe.Point(uuid.UUID(point_id(i)), r,
                           payload_of(i, a, matrix[n] if self._keep_vector else None, bool_as_int=as_int))
                  for n, (i, r, a) in enumerate(zip(ids, rows, attrs))]
        with _failing("upsert_points"):
            self._live().update(qe.UpdateOperation.upsert_points(points))

    def raw_delete(self, id: str) -> bool:
        if self._retrieve(id) is None:
            return False
        with _failing("delete_points"):
            self._live().update(self._qe.UpdateOperation.delete_points([uuid.UUID(point_id(id))]))
        return True

    def raw_get(self, id: str) -> np.ndarray | None:
        rec = self._retrieve(id, vectors=not self._keep_vector)
        if rec is None:
            return None
        v = vector_of(rec.payload) if self._keep_vector else np.asarray(rec.vector, dtype=np.float32)
        if v.shape != (self.dim,):
            raise BackendError(f"qdrant-edge: the vector of {id!r} has shape {v.shape}, not ({self.dim},)")
        return v.copy()

    def raw_get_attrs(self, id: str) -> dict | None:
        rec = self._retrieve(id)
        return None if rec is None else attrs_of(rec.payload)

    def raw_exists(self, id: str) -> bool:
        return self._retrieve(id) is not None

    def raw_count(self) -> int:
        with _failing("count"):
            return int(self._live().count(self._qe.CountRequest(exact=True)))

    def raw_search(self, q: np.ndarray, limit: int, exact: bool, where=None) -> list[SearchHit]:
        qe = self._qe
        flt = qdrant_filter(where, self._dialect) if where is not None else None
        with _failing("query"):
            res = self._live().query(qe.QueryRequest(limit=limit, query=qe.Query.Nearest(q.tolist()),
                                                     with_payload=["id"], filter=flt,
                                                     params=qe.SearchParams(exact=True)))
        sign = -1.0 if self.metric == "l2" else 1.0
        hits = [SearchHit((p.payload or {}).get("id"), sign * float(p.score)) for p in res]
        if any(not isinstance(h.id, str) for h in hits):
            raise BackendError("qdrant-edge: a search hit has no id in its payload (a foreign point)")
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits

    def maintenance(self, kind: str) -> None:
        if kind != "compact":
            from dst.errors import InvalidInput
            raise InvalidInput(f"qdrant-edge: unknown maintenance kind {kind!r} (compact)")
        with _failing("optimize"):
            self._live().optimize()

    maintenance_kinds = ("compact",)

    def close(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            with _failing("close"):
                shard.close()

    def drop(self) -> None:
        """Remove this namespace's folder (only one vector-dst marked)."""
        self.close()
        if os.path.isdir(self.folder):
            require_owned(dir_owned(self.folder) is not None, f"qdrant-edge: folder {self.folder!r}")
            with _failing("drop"):
                shutil.rmtree(self.folder)


def _failing(call: str):
    return classify(f"qdrant-edge: {call} failed", text=str)


def open_backend(config: BackendConfig) -> QdrantEdgeBackend:
    return QdrantEdgeBackend(config)
