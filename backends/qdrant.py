"""The Qdrant backend: qdrant-client's local mode (``QdrantClient(path=...)``),
the Qdrant API served in-process by the Python client, stored in SQLite.

Layout. Local mode lets one client at a time open a folder (an exclusive
lock on ``<folder>/.lock``), so each namespace gets a folder of its own,
``<location>/<name>/``, holding one collection ``<name>`` (``name`` is the
namespace, or a hash-suffixed form of it, ``store_name``: deterministic, no
two namespaces share it). Seeds running in parallel processes never meet on
a lock. ``location`` defaults to ``.dst/qdrant``. A handle opened on a
folder another handle of this process holds takes it over (``_open_client``:
the harness's in-process crash), so ``--concurrency threads``, which opens
several handles on one namespace, is not supported.

Ids. Qdrant point ids are unsigned ints or UUIDs; a string id is mapped to
``uuid5(ID_NAMESPACE, id)`` and kept in the payload under ``"id"``; every
read checks the payload's id against the one asked for (a uuid5 collision
would be reported, never returned as another id's row).

Payload. ``{"id": ..., "s": {name: str}, "i": {name: int}, "b": {name:
bool}, "h": {name: int >> 32}, "l": {name: int & 0xffffffff}, "v": ...}``.
Attributes live under one key per type, so an attribute can never collide
with ``id``, and ``{"eq": ["n", 1]}`` never meets a bool (Qdrant's local
mode does keep bool and int apart in ``MatchValue``, as the server does by
qdrant-client PR 1259; this layout does not depend on it). ``h``/``l`` are the two 32-bit
halves of each int: Qdrant's ``Range`` takes float64 bounds, which cannot
hold every int64 (``2**63 - 1`` rounds up to ``2**63``), so ``lt/le/gt/ge``
compare the halves lexicographically, each exact in a float64.

Filters. The portable ``where`` tree becomes one ``models.Filter``
(``qdrant_filter``): ``must``/``should``/``must_not``, ``MatchValue``,
``MatchAny``, ``Range``, ``IsEmptyCondition``; Qdrant evaluates it, the
adapter never filters rows itself. Qdrant's filter logic is two-valued
(a condition on a missing key is false, ``must_not`` of it true), which is
the portable semantics; ``ne`` is "present and not equal" (``must_not``
IsEmpty and MatchValue), as the contract says.

Vectors and scores. ``metric`` cosine, l2, dot map to Distance.COSINE,
EUCLID, DOT; ``query_points`` answers the similarity, the distance and the
inner product, so the score is the answer as it is (l2: its negation).
Local mode normalises vectors on upsert under COSINE and ``retrieve`` hands
back the normalised vector (after a reopen, until the first search, the
original one: it re-reads what SQLite holds and normalises lazily). The
protocol's ``get`` returns the vector as stored, so under cosine the adapter
keeps the given float32 bytes in the payload (``"v"``, base64) and ``get``
returns those (option ``get_vector=store`` returns what ``retrieve`` says,
to show the normalisation). Under l2 and dot ``retrieve`` returns the vector
as given and ``get`` uses it.

Search is brute force over numpy arrays (local mode builds no index), so
``exact = True`` and ``search_exact`` is the same call. Every point is its
own SQLite commit, so a batch is not atomic under a crash
(``atomic_batches = False``).

Ownership: the folder carries ``OWNER_FILE`` and the collection's metadata
``dst.owner = vector-dst``; a folder or collection without the mark is never
written, emptied or dropped.

Options (``--opt KEY=VALUE``):

==========  ========  ==========================================================
option      default   meaning
==========  ========  ==========================================================
get_vector  payload   ``payload``: under cosine, ``get`` returns the vector kept
                      in the payload (as given); ``store``: what ``retrieve``
                      returns (normalised under cosine: the checker will say so)
==========  ========  ==========================================================
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import uuid
import weakref
from typing import Any

import numpy as np

from backends._toolkit import (Option, Options, ValidatingBackend, classify, dir_owned, is_owner_mark,
                               mark_dir, owner_mark, require_owned, store_name)
from dst.backend import BackendConfig, SearchHit, metric_or_default
from dst.errors import BackendError, UsageError

DEFAULT_LOCATION = os.path.join(".dst", "qdrant")
# uuid5 namespace of the point ids; fixed forever (changing it orphans every
# stored point).
ID_NAMESPACE = uuid.UUID("6b1f3c2e-8d4a-5f0e-9c7b-2a1d0e4f6b3c")
OPTIONS = Options("qdrant", Option("get_vector", str, "payload", choices=("payload", "store")))
KNOWN_OPTIONS = set(OPTIONS.names)
_DISTANCE = {"cosine": "Cosine", "l2": "Euclid", "dot": "Dot"}
# One folder per namespace: Qdrant's own files besides the mark.
_QDRANT_FILES = {"meta.json", "meta.json.tmp", ".lock", "collection"}


def _import():
    try:
        import qdrant_client  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise UsageError(f"the qdrant backend needs qdrant-client (pip install -e '.[qdrant]'): {exc}") from None


def point_id(id_: str) -> str:
    """The Qdrant point id of a protocol id: a UUID, the same forever."""
    return str(uuid.uuid5(ID_NAMESPACE, id_))


_TYPE_KEY = {str: "s", int: "i", bool: "b"}


def payload_of(id_: str, attrs: dict[str, Any], vector: np.ndarray | None,
               bool_as_int: bool = False) -> dict[str, Any]:
    """The payload of one row (see the module text). ``bool_as_int``: bools
    kept as 0/1 under ``b`` (for a binding that cannot match bools)."""
    p: dict[str, Any] = {"id": id_}
    for name, value in attrs.items():
        t = _TYPE_KEY[type(value)]
        p.setdefault(t, {})[name] = int(value) if t == "b" and bool_as_int else value
        if t == "i":
            p.setdefault("h", {})[name] = value >> 32
            p.setdefault("l", {})[name] = value & 0xFFFFFFFF
    if vector is not None:
        p["v"] = base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return p


def attrs_of(payload: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out.update(payload.get("s") or {})
    out.update(payload.get("i") or {})
    out.update({k: bool(x) for k, x in (payload.get("b") or {}).items()})
    return dict(sorted(out.items()))


def vector_of(payload: dict[str, Any]) -> np.ndarray:
    """The float32 vector kept in a payload by ``payload_of``."""
    return np.frombuffer(base64.b64decode(payload["v"]), dtype="<f4").astype(np.float32)


class ClientModels:
    """How a filter is spelled in qdrant-client's models (``Dialect``)."""

    bool_as_int = False

    def __init__(self):
        from qdrant_client import models
        self.m = models

    def filter(self, must=None, should=None, must_not=None):
        return self.m.Filter(must=must, should=should, must_not=must_not)

    def match(self, key, value):
        return self.m.FieldCondition(key=key, match=self.m.MatchValue(value=value))

    def match_any(self, key, values):
        return self.m.FieldCondition(key=key, match=self.m.MatchAny(any=list(values)))

    def range(self, key, **bound):
        return self.m.FieldCondition(key=key, range=self.m.Range(**bound))

    def is_empty(self, key):
        return self.m.IsEmptyCondition(is_empty=self.m.PayloadField(key=key))


def qdrant_filter(where: Any, d: Any = None):
    """The canonical ``where`` tree as one Qdrant ``Filter``, spelled by the
    dialect ``d`` (qdrant-client's models by default)."""
    d = d or ClientModels()
    c = _condition(where, d)
    return c if _is_filter(c, d) else d.filter(must=[c])


def _is_filter(c, d) -> bool:
    return type(c) is type(d.filter())


def _never(d):
    # Filter() holds for every point; must_not of it for none. (An empty
    # ``should`` means "no constraint" to Qdrant, not "none of nothing".)
    return d.filter(must_not=[d.filter()])


def _condition(where: Any, d):
    (op, arg), = where.items()
    if op == "and":
        return d.filter(must=[_condition(w, d) for w in arg])
    if op == "or":
        return d.filter(should=[_condition(w, d) for w in arg]) if arg else _never(d)
    if op == "not":
        return d.filter(must_not=[_condition(arg, d)])
    if op == "exists":
        return d.filter(should=[d.filter(must_not=[d.is_empty(f"{t}.{arg}")]) for t in ("s", "i", "b")])
    name, value = arg
    sample = value[0] if op == "in" else value
    t = _TYPE_KEY[type(sample)]
    key = f"{t}.{name}"

    def lit(x):
        return int(x) if t == "b" and d.bool_as_int else x
    if op == "eq":
        return d.match(key, lit(value))
    if op == "ne":
        return d.filter(must_not=[d.is_empty(key), d.match(key, lit(value))])
    if op == "in":
        if t == "b" and not d.bool_as_int:     # MatchAny takes str or int lists only
            return d.filter(should=[d.match(key, v) for v in value])
        return d.match_any(key, [lit(v) for v in value])
    # lt/le/gt/ge on ints: (hi, lo) halves compared lexicographically.
    hb, lb = value >> 32, value & 0xFFFFFFFF
    hi, lo = f"h.{name}", f"l.{name}"
    strict, low = _RANGE[op]
    return d.filter(should=[
        d.range(hi, **{strict: hb}),
        d.filter(must=[d.match(hi, hb), d.range(lo, **{low: lb})]),
    ])


# op -> (the strict bound on the high half, the bound on the low half)
_RANGE = {"lt": ("lt", "lt"), "le": ("lt", "lte"), "gt": ("gt", "gt"), "ge": ("gt", "gte")}


class QdrantBackend(ValidatingBackend):
    name = "qdrant"
    filters = True
    exact = True
    atomic_batches = False

    def __init__(self, config: BackendConfig):
        _import()
        from qdrant_client import QdrantClient, models

        self._m = models
        self._dialect = ClientModels()
        opts = OPTIONS.parse(config.options)
        self.get_vector = opts["get_vector"]
        self.dim = config.dim
        self.metric = metric_or_default(getattr(config, "metric", "cosine"))
        self.location = config.location or DEFAULT_LOCATION
        self.collection = store_name(config.namespace, max_len=120, allowed="A-Za-z0-9_.-",
                                     first="A-Za-z0-9_")
        self.folder = os.path.join(self.location, self.collection)
        self._keep_vector = self.metric == "cosine" and self.get_vector == "payload"
        self._client = None
        with classify(f"qdrant: cannot open {self.collection!r} in {self.location}", text=str):
            self._claim_folder()
            self._client = _open_client(QdrantClient, self.folder, self)
            exists = self._client.collection_exists(self.collection)
            if exists:
                self._check_owned()
                if config.fresh:
                    self._client.delete_collection(self.collection)
                    exists = False
            if not exists:
                if not config.fresh:
                    raise BackendError(f"qdrant: no collection {self.collection!r} in {self.folder} to reopen")
                self._client.create_collection(
                    self.collection,
                    vectors_config=models.VectorParams(size=self.dim, distance=getattr(models.Distance,
                                                                                       _DISTANCE[self.metric].upper())),
                    metadata={**owner_mark(), "dim": self.dim, "metric": self.metric})

    def _claim_folder(self) -> None:
        """Mark the namespace's folder ours, or refuse one that is not."""
        if os.path.isdir(self.folder) and os.listdir(self.folder):
            require_owned(dir_owned(self.folder) is not None, f"qdrant: folder {self.folder!r}")
            return
        mark_dir(self.folder, collection=self.collection)

    def _check_owned(self) -> None:
        info = self._client.get_collection(self.collection)
        meta = info.config.metadata or {}
        require_owned(is_owner_mark(meta), f"qdrant: collection {self.collection!r} in {self.folder}")
        params = info.config.params.vectors
        if params.size != self.dim:
            raise BackendError(f"qdrant: collection {self.collection!r} has dimension {params.size}, not {self.dim}")
        if meta.get("metric") != self.metric:
            raise BackendError(f"qdrant: collection {self.collection!r} scores by {meta.get('metric')}, "
                               f"not {self.metric}")

    # -- helpers ------------------------------------------------------------
    def _points(self, ids: list[str], matrix: np.ndarray, attrs: list[dict]):
        m = self._m
        rows = matrix.tolist()   # float32 -> Python floats, exactly
        return [m.PointStruct(id=point_id(i), vector=r,
                              payload=payload_of(i, a, matrix[n] if self._keep_vector else None))
                for n, (i, r, a) in enumerate(zip(ids, rows, attrs))]

    def _retrieve(self, id_: str, *, payload: Any, vectors: bool):
        with _failing("retrieve"):
            recs = self._live().retrieve(self.collection, [point_id(id_)], with_payload=payload,
                                         with_vectors=vectors)
        if not recs:
            return None
        rec = recs[0]
        got = (rec.payload or {}).get("id")
        if got != id_:
            raise BackendError(f"qdrant: point {point_id(id_)} holds id {got!r}, not {id_!r} "
                               f"(a uuid5 collision or a foreign point)")
        return rec

    # -- the protocol (input checked by ValidatingBackend) ----------------------
    def raw_store(self, id: str, vector: np.ndarray, attrs: dict | None = None) -> None:
        self.raw_store_batch([id], vector[None, :], [attrs or {}])

    def raw_store_batch(self, ids: list[str], matrix: np.ndarray, attrs: list[dict] | None = None) -> None:
        if not ids:
            return
        points = self._points(ids, matrix, attrs if attrs is not None else [{} for _ in ids])
        with _failing("upsert"):
            self._live().upsert(self.collection, points=points, wait=True)

    def raw_delete(self, id: str) -> bool:
        if self._retrieve(id, payload=["id"], vectors=False) is None:
            return False
        m = self._m
        with _failing("delete"):
            self._live().delete(self.collection, points_selector=m.PointIdsList(points=[point_id(id)]),
                                wait=True)
        return True

    def raw_get(self, id: str) -> np.ndarray | None:
        if self._keep_vector:
            rec = self._retrieve(id, payload=["id", "v"], vectors=False)
            if rec is None:
                return None
            v = vector_of(rec.payload)
        else:
            rec = self._retrieve(id, payload=["id"], vectors=True)
            if rec is None:
                return None
            v = np.asarray(rec.vector, dtype=np.float32)
        if v.shape != (self.dim,):
            raise BackendError(f"qdrant: the vector of {id!r} has shape {v.shape}, not ({self.dim},)")
        return v.copy()

    def raw_get_attrs(self, id: str) -> dict | None:
        rec = self._retrieve(id, payload=["id", "s", "i", "b"], vectors=False)
        return None if rec is None else attrs_of(rec.payload)

    def raw_exists(self, id: str) -> bool:
        return self._retrieve(id, payload=["id"], vectors=False) is not None

    def raw_count(self) -> int:
        with _failing("count"):
            return int(self._live().count(self.collection, exact=True).count)

    def raw_search(self, q: np.ndarray, limit: int, exact: bool, where=None) -> list[SearchHit]:
        """Local mode searches by brute force: ``exact`` changes nothing."""
        flt = qdrant_filter(where, self._dialect) if where is not None else None
        with _failing("query_points"):
            res = self._live().query_points(self.collection, query=q.tolist(), query_filter=flt,
                                            limit=limit, with_payload=["id"], with_vectors=False)
        sign = -1.0 if self.metric == "l2" else 1.0
        hits = [SearchHit((p.payload or {}).get("id"), sign * float(p.score)) for p in res.points]
        if any(not isinstance(h.id, str) for h in hits):
            raise BackendError("qdrant: a search hit has no id in its payload (a foreign point)")
        # Equal scores come in insertion order; order them by id, as sim does.
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with _failing("close"):
                client.close()

    def _release(self) -> None:
        """Let go of the folder as a dying process would (see ``_open_client``)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - a handle being abandoned; nothing to report to
                pass

    def _live(self):
        if self._client is None:
            raise BackendError("qdrant: this handle is closed (or was taken over by a newer handle "
                               "on the same folder)")
        return self._client

    def drop(self) -> None:
        """Drop this namespace's collection and folder (only ever ones
        vector-dst created). Works after close()."""
        from qdrant_client import QdrantClient
        with _failing("drop"):
            if self._client is None:
                if not os.path.isdir(self.folder):
                    return
                require_owned(dir_owned(self.folder) is not None, f"qdrant: folder {self.folder!r}")
                self._client = _open_client(QdrantClient, self.folder, self)
            if self._client.collection_exists(self.collection):
                self._check_owned()
                self._client.delete_collection(self.collection)
            self.close()
            # The folder is ours (marked) and now holds only Qdrant's
            # bookkeeping for no collection: remove it.
            left = set(os.listdir(self.folder)) - {".vector-dst-owner"}
            coll = os.path.join(self.folder, "collection")
            if left <= _QDRANT_FILES and (not os.path.isdir(coll) or not os.listdir(coll)):
                shutil.rmtree(self.folder)


# The live handle of each folder in this process (a weak reference).
_HOLDERS: "weakref.WeakValueDictionary[str, QdrantBackend]" = weakref.WeakValueDictionary()


def _release_all() -> None:
    # At exit, before the interpreter tears modules down: qdrant-client's
    # own __del__ would close a handle left open then, and fail noisily
    # ("sys.meta_path is None") importing its lock module.
    for b in list(_HOLDERS.values()):
        b._release()


atexit.register(_release_all)


def _open_client(cls, folder: str, owner: "QdrantBackend | None" = None):
    """A local-mode client on ``folder``.

    Local mode locks the folder for one client. The harness's crash drops a
    handle without close() and opens a new one in the same process, where
    the old handle may still be referenced (a timed-out call the harness
    keeps); a dying process would have released the lock. So a new handle
    takes the folder over: the old handle's SQLite connections and lock are
    released, which writes nothing (every point was committed when its call
    returned), and any later call on it fails (outcome unknown). For the
    same reason two live handles on one namespace (``--concurrency
    threads``) are not supported."""
    key = os.path.realpath(folder)
    old = _HOLDERS.get(key)
    if old is not None and old is not owner:
        old._release()
    client = cls(path=folder)
    if owner is not None:
        _HOLDERS[key] = owner
    return client


def _failing(call: str):
    return classify(f"qdrant: {call} failed", text=str)


def open_backend(config: BackendConfig) -> QdrantBackend:
    return QdrantBackend(config)
