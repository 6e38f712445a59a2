"""The Milvus backend: a collection in a Milvus Lite database, through pymilvus.

``MilvusClient("<folder>/<collection>.db")``: Milvus Lite 3.x (pure
Python) serves the ``.db`` directory from a gRPC server it starts on
127.0.0.1 in THIS process (threads, no child process; pymilvus calls
``milvus_lite.server_manager.server_manager_instance.start_and_get_uri``).
``location`` is a folder (default ``.dst/milvus``; one ``<collection>.db``
per namespace, so parallel seeds never share a database's lock) or a path
ending in ``.db`` (one database holding every namespace's collection).

Schema: ``id`` VARCHAR primary key with ``max_length`` 1024 (an id is up to
256 Unicode scalar values, up to 1024 UTF-8 bytes; Milvus counts bytes,
Milvus Lite characters: 1024 fits every valid id in both), ``v``
FLOAT_VECTOR(dim), ``attrs`` JSON. Writes are ``upsert`` (a row's vector
and attributes replaced together). The collection's metric is the run's
(COSINE, L2, IP) and the score is converted from Milvus's ``distance``
(measured: COSINE gives the cosine similarity, L2 the SQUARED Euclidean
distance, IP the inner product): cosine as is, l2 ``-sqrt(d)``, dot as is.

Attributes live in the JSON field under typed keys, ``"<name>:s"``,
``"<name>:i"``, ``"<name>:b"``: Milvus Lite's JSON comparison is Python's,
so ``attrs["n"] == 1`` matches a stored ``true`` and ``!=`` holds across
types (measured, docs/findings.md); with one key per type, a comparison
only ever meets a value of its own type. The portable ``where`` tree
becomes a Milvus boolean expression (``milvus_filter``) that Milvus
evaluates; every comparison is guarded, ``(exists attrs["k"] and
attrs["k"] == v)``, so a missing attribute is false, not NULL, and ``not``
of it true (Kleene: false and NULL is false). Literals are escaped by
``milvus_literal`` (Milvus Lite rejects filter templates, ``{x}`` with
``filter_params``: "unexpected character '{'"). Ids never go through
pymilvus's ``ids=`` arguments, which splice them unescaped into
``id in ['...']``: get, exists and delete use ``id == <literal>``.

``delete`` reports existence by a query first (Milvus's delete returns
the keys it was given, existing or not), the query and the delete under
one lock per database: Milvus Lite serves a ``.db`` to one process only,
so the handles of that process are every writer there is, and two deletes
of one id cannot both say True (threads mode showed it before the lock).

Options (``--opt KEY=VALUE``):

=============  ==========  ===================================================
option         default     meaning
=============  ==========  ===================================================
consistency    strong      the collection's and every read's consistency
                           level: strong, bounded, session, eventually
index          FLAT        FLAT (brute force, ``exact = True``), IVF_FLAT,
                           HNSW, AUTOINDEX (approximate: ``exact = False``)
nlist          (128)       IVF_FLAT build knob
nprobe         (10)        IVF_FLAT query knob
m              (16)        HNSW build knob (M)
ef_construction (200)      HNSW build knob (efConstruction)
ef             (64)        HNSW query knob
=============  ==========  ===================================================

``search_exact`` (the harness's probes): the same search under FLAT; under
IVF_FLAT with ``nprobe`` = ``nlist`` (every cell scanned: exhaustive);
HNSW and AUTOINDEX have no exhaustive path (``search_exact = None``).
``maintenance("index")`` and ``("compact")`` flush the memtable into a
segment; Milvus Lite then compacts and builds the segment's index on a
background thread, which no RPC waits for (describe_index reports the index
Finished at once). So that what a search meets after maintenance does not
depend on thread timing, the adapter waits for that thread through the
in-process engine (``_drain``); where it cannot (a Lite without the hook),
maintenance says so with a BackendError rather than return early.

Ownership: the collection carries the property ``dst.owner = vector-dst``;
a collection without it is never written, emptied or dropped.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import weakref
from typing import Any

import numpy as np

from backends._toolkit import (Option, Options, ValidatingBackend, check_dim, check_namespace, classify,
                               dir_owned, is_owner_mark, mark_dir, owner_mark, require_owned, store_name)
from dst.backend import BackendConfig, SearchHit, metric_or_default
from dst.errors import BackendError, InvalidInput, UsageError

DEFAULT_LOCATION = os.path.join(".dst", "milvus")
MAX_DIM = 32768             # milvus.io/docs/limitations.md (Lite does not check it)
ID_MAX_BYTES = 1024          # 256 scalar values x 4 UTF-8 bytes
INDEX_TYPES = ("FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX")
LEVELS = {"strong": "Strong", "bounded": "Bounded", "session": "Session", "eventually": "Eventually"}
METRIC_TYPES = {"cosine": "COSINE", "l2": "L2", "dot": "IP"}
# A gRPC message is capped (64 MB on Milvus); upserts are cut into chunks
# of at most this many float32 components (16 MB), so a batch may be
# applied in parts: atomic_batches = False.
CHUNK_FLOATS = 4 * 1024 * 1024
IVF_NLIST_DEFAULT = 128      # milvus_lite/index/faiss_ivf_flat.py

OPTIONS = Options(
    "milvus",
    Option("consistency", str, "strong", choices=tuple(LEVELS), fold="lower"),
    Option("index", str, "FLAT", choices=INDEX_TYPES, fold="upper"),
    Option("nlist", int, lo=1, hi=65536),
    Option("nprobe", int, lo=1, hi=65536),
    Option("m", int, lo=2, hi=2048),
    Option("ef_construction", int, lo=1),
    Option("ef", int, lo=1),
)

_KIND = {str: "s", int: "i", bool: "b"}
_OPS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _import():
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UsageError(f"the milvus backend needs pymilvus and milvus-lite "
                         f"(pip install -e '.[milvus]'): {exc}") from None
    # pymilvus logs every failed RPC with its traceback at ERROR; the
    # adapter turns those failures into BackendError with the message.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


# -- literals and filters -------------------------------------------------------------

def milvus_literal(value: Any) -> str:
    """A Milvus filter literal. Strings in double quotes with the only
    escapes the grammar has (``\\\\ \\" \\n \\r \\t``; a raw CR or LF ends
    a literal, every other character stands for itself); ints in decimal;
    bools ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput("milvus: a literal cannot hold NUL")
        body = (value.replace("\\", "\\\\").replace('"', '\\"')
                .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
        return f'"{body}"'
    raise InvalidInput(f"milvus: no literal for {type(value).__name__}")


def attr_key(name: str, value: Any) -> str:
    """The JSON key of attribute ``name`` holding ``value``'s type."""
    return f"{name}:{_KIND[type(value)]}"


def _path(key: str) -> str:
    return f"attrs[{milvus_literal(key)}]"


def milvus_filter(where: Any) -> str:
    """The canonical ``where`` tree as a Milvus boolean expression over the
    ``attrs`` JSON field, two-valued: each comparison is ``(exists k and
    k OP v)`` on its type's key."""
    (op, arg), = where.items()
    if op == "and":
        return "(" + " and ".join(milvus_filter(w) for w in arg) + ")" if arg else "true"
    if op == "or":
        return "(" + " or ".join(milvus_filter(w) for w in arg) + ")" if arg else "false"
    if op == "not":
        return f"(not {milvus_filter(arg)})"
    if op == "exists":
        return "(" + " or ".join(f"exists {_path(f'{arg}:{k}')}" for k in "sib") + ")"
    name, value = arg
    # Milvus Lite has no `in` on a JSON path ("left side of 'in' must be a
    # field reference"): a disjunction of equalities, one per value.
    sample = value[0] if op == "in" else value
    path = _path(attr_key(name, sample))
    if op == "in":
        body = " or ".join(f"{path} == {milvus_literal(v)}" for v in value)
    else:
        body = f"{path} {_OPS[op]} {milvus_literal(value)}"
    return f"(exists {path} and ({body}))"


def encode_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {attr_key(k, v): v for k, v in attrs.items()}


def decode_attrs(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BackendError(f"milvus: attrs field holds {type(doc).__name__}, not a JSON object")
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name, _, kind = str(key).rpartition(":")
        want = {"s": str, "i": int, "b": bool}.get(kind)
        if want is None or type(value) is not want:
            raise BackendError(f"milvus: attrs key {key!r} holds {value!r}, not a {kind!r} value")
        out[name] = value
    return dict(sorted(out.items()))


# -- the server's lifetime --------------------------------------------------------------
# Milvus Lite keeps one server per .db path in the process, shared by every
# client of that path. A handle releases it on close() when no other open
# handle of this module uses the path (a crashed, unclosed handle keeps it
# up: reopening then reuses it, as the harness's crash does).
_OPEN: dict[str, "weakref.WeakSet[MilvusBackend]"] = {}
_OPEN_LOCK = threading.Lock()
_DELETE_LOCKS: dict[str, threading.Lock] = {}


def _delete_lock(path: str) -> threading.Lock:
    with _OPEN_LOCK:
        return _DELETE_LOCKS.setdefault(path, threading.Lock())


def _hold(path: str, handle: "MilvusBackend") -> None:
    with _OPEN_LOCK:
        _OPEN.setdefault(path, weakref.WeakSet()).add(handle)


def _let_go(path: str, handle: "MilvusBackend") -> None:
    from milvus_lite.server_manager import server_manager_instance
    with _OPEN_LOCK:
        users = _OPEN.get(path)
        if users is not None:
            users.discard(handle)
            if len(users):
                return
            _OPEN.pop(path, None)
    server_manager_instance.release_server(path)


class MilvusBackend(ValidatingBackend):
    name = "milvus"
    filters = True
    atomic_batches = False
    maintenance_kinds = ("compact", "index")

    def __init__(self, config: BackendConfig):
        _import()
        opts = OPTIONS.parse(config.options)
        self.dim = check_dim(config.dim, MAX_DIM, "Milvus's limit")
        self.metric = metric_or_default(getattr(config, "metric", "cosine"))
        self.metric_type = METRIC_TYPES[self.metric]
        self.level = LEVELS[opts["consistency"]]
        self.index = opts["index"]
        self.exact = self.index == "FLAT"
        self.build_params: dict[str, int] = {}
        self.search_params: dict[str, int] = {}
        if self.index == "IVF_FLAT":
            self.build_params["nlist"] = opts["nlist"] or IVF_NLIST_DEFAULT
            if opts["nprobe"] is not None:
                self.search_params["nprobe"] = opts["nprobe"]
        elif self.index == "HNSW":
            for key, opt in (("M", "m"), ("efConstruction", "ef_construction")):
                if opts[opt] is not None:
                    self.build_params[key] = opts[opt]
            if opts["ef"] is not None:
                self.search_params["ef"] = opts["ef"]
        unused = [k for k in ("nlist", "nprobe") if opts[k] is not None and self.index != "IVF_FLAT"]
        unused += [k for k in ("m", "ef_construction", "ef") if opts[k] is not None and self.index != "HNSW"]
        if unused:
            raise OPTIONS.fail(f"option {unused[0]} does not apply to index {self.index}")
        if self.index in ("HNSW", "AUTOINDEX"):
            self.search_exact = None      # no exhaustive path past the graph
        ns = check_namespace(config.namespace)
        self.collection = store_name(ns, max_len=255, allowed="A-Za-z0-9_", first="A-Za-z_")
        location = config.location or DEFAULT_LOCATION
        if location.endswith(".db"):
            self.folder, self.db_path = os.path.dirname(os.path.abspath(location)), os.path.abspath(location)
            self.own_db = False
        else:
            self.folder = os.path.abspath(location)
            self.db_path = os.path.join(self.folder, f"{self.collection}.db")
            self.own_db = True
        self.where = f"milvus: collection {self.collection!r} in {self.db_path}"
        self._c = None
        with classify(f"milvus: cannot open {self.collection!r} in {self.db_path}"):
            os.makedirs(self.folder, exist_ok=True)
            if self.own_db and not os.path.exists(self.db_path):
                mark_dir(self.db_path, dim=self.dim)
            self._connect()
            if self._c.has_collection(self.collection):
                self._check_owned()
                if config.fresh:
                    self._c.drop_collection(self.collection)
                else:
                    self._c.load_collection(self.collection)
                    return
            elif not config.fresh:
                raise BackendError(f"milvus: no collection {self.collection!r} in {self.db_path} to reopen")
            self._create()

    def _connect(self) -> None:
        from pymilvus import MilvusClient
        self._c = MilvusClient(self.db_path)
        _hold(self.db_path, self)

    def _create(self) -> None:
        from pymilvus import DataType
        c = self._c
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("attrs", DataType.JSON)
        ip = c.prepare_index_params()
        ip.add_index("v", index_type=self.index, metric_type=self.metric_type, params=dict(self.build_params))
        # Not create_collection(index_params=...): pymilvus then polls the
        # index state with a 0.5 s sleep first; an empty collection's index
        # is built at once (checked below), so create, index, load.
        c.create_collection(self.collection, schema=schema, consistency_level=self.level,
                            properties=owner_mark())
        c.create_index(self.collection, ip, sync=False)
        state = c.describe_index(self.collection, "v").get("state")
        if state != "Finished":
            raise BackendError(f"{self.where}: the new collection's index is {state!r}, not Finished")
        c.load_collection(self.collection)

    def _describe(self) -> dict:
        return self._c.describe_collection(self.collection)

    def _check_owned(self) -> None:
        desc = self._describe()
        require_owned(is_owner_mark(desc.get("properties")), self.where)
        vf = [f for f in desc.get("fields", []) if f.get("name") == "v"]
        dim = vf[0].get("params", {}).get("dim") if vf else None
        if dim is None or int(dim) != self.dim:
            raise BackendError(f"{self.where} has dimension {dim}, not {self.dim}")
        got = self._index_metric()
        if got is not None and got != self.metric_type:
            raise BackendError(f"{self.where} is indexed for {got}, not {self.metric_type} "
                               f"(the run's metric {self.metric})")

    def _index_metric(self) -> str | None:
        names = self._c.list_indexes(self.collection, field_name="v")
        if not names:
            return None
        return self._c.describe_index(self.collection, names[0]).get("metric_type")

    # -- helpers ----------------------------------------------------------------
    def _client(self):
        if self._c is None:
            raise BackendError(f"{self.where}: the handle is closed")
        return self._c

    def _rows(self, ids: list[str], matrix: np.ndarray, attrs: list[dict]) -> list[dict]:
        return [{"id": i, "v": matrix[n].tolist(), "attrs": encode_attrs(attrs[n])}
                for n, i in enumerate(ids)]

    def _upsert(self, ids: list[str], matrix: np.ndarray, attrs: list[dict]) -> None:
        c = self._client()
        step = max(1, CHUNK_FLOATS // max(1, self.dim))
        for lo in range(0, len(ids), step):
            rows = self._rows(ids[lo:lo + step], matrix[lo:lo + step], attrs[lo:lo + step])
            with _failing("upsert"):
                c.upsert(self.collection, rows)

    def _query(self, expr: str, fields: list[str], what: str) -> list[dict]:
        c = self._client()
        with _failing(what):
            return list(c.query(self.collection, filter=expr, output_fields=fields,
                                consistency_level=self.level))

    def _by_id(self, id_: str, fields: list[str], what: str) -> dict | None:
        rows = self._query(f"id == {milvus_literal(id_)}", fields, what)
        if len(rows) > 1:
            raise BackendError(f"milvus: {what} found {len(rows)} rows for one id {id_!r}")
        return rows[0] if rows else None

    # -- the protocol (input checked by ValidatingBackend) ------------------------
    def raw_store(self, id: str, vector: np.ndarray, attrs: dict | None = None) -> None:
        self._upsert([id], vector[None, :], [attrs or {}])

    def raw_store_batch(self, ids: list[str], matrix: np.ndarray, attrs: list[dict] | None = None) -> None:
        if ids:
            self._upsert(ids, matrix, attrs if attrs is not None else [{} for _ in ids])

    def raw_delete(self, id: str) -> bool:
        with _delete_lock(self.db_path):
            if self._by_id(id, ["id"], "delete (lookup)") is None:
                return False
            c = self._client()
            with _failing("delete"):
                c.delete(self.collection, filter=f"id == {milvus_literal(id)}")
            return True

    def raw_get(self, id: str) -> np.ndarray | None:
        row = self._by_id(id, ["v"], "get")
        if row is None:
            return None
        v = np.asarray(row["v"], dtype=np.float32)
        if v.shape != (self.dim,):
            raise BackendError(f"milvus: get {id!r} returned {v.shape[0]} components, not {self.dim}")
        return v

    def raw_get_attrs(self, id: str) -> dict | None:
        row = self._by_id(id, ["attrs"], "get_attrs")
        return None if row is None else decode_attrs(row.get("attrs") or {})

    def raw_exists(self, id: str) -> bool:
        return self._by_id(id, ["id"], "exists") is not None

    def raw_count(self) -> int:
        rows = self._query("", ["count(*)"], "count")
        if len(rows) != 1 or "count(*)" not in rows[0]:
            raise BackendError(f"milvus: count(*) returned {rows!r}")
        return int(rows[0]["count(*)"])

    def raw_search(self, q: np.ndarray, limit: int, exact: bool, where: Any = None) -> list[SearchHit]:
        params = dict(self.search_params)
        if exact and self.index == "IVF_FLAT":
            params["nprobe"] = self.build_params["nlist"]     # every cell: exhaustive
        expr = "" if where is None else milvus_filter(where)
        c = self._client()
        with _failing("search"):
            res = c.search(self.collection, [q.tolist()], anns_field="v", limit=limit, filter=expr,
                           output_fields=["id"], consistency_level=self.level,
                           search_params={"metric_type": self.metric_type, "params": params})
        hits = [SearchHit(str(h["id"]), _score(self.metric, float(h["distance"]))) for h in res[0]]
        # Milvus orders ties as it finds them; order them by id, as sim does.
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits

    def maintenance(self, kind: str) -> None:
        if kind not in self.maintenance_kinds:
            raise InvalidInput(f"milvus: unknown maintenance kind {kind!r} (compact, index)")
        c = self._client()
        with _failing(f"flush ({kind})"):
            c.flush(self.collection)
        with _failing(f"waiting for the index build ({kind})"):
            _drain(self.db_path, self.collection)

    def close(self) -> None:
        c, self._c = self._c, None
        if c is None:
            return
        try:
            c.close()
        finally:
            _let_go(self.db_path, self)

    def drop(self) -> None:
        """Drop this namespace's collection (only one vector-dst created),
        and with it its own ``.db`` folder when it holds nothing else.
        Works after close()."""
        with _failing("drop"):
            if self._c is None:
                self._connect()
            c = self._c
            if c.has_collection(self.collection):
                self._check_owned()
                c.drop_collection(self.collection)
            rest = c.list_collections()
        self.close()
        if self.own_db and not rest and dir_owned(self.db_path) is not None:
            shutil.rmtree(self.db_path, ignore_errors=True)


DRAIN_TIMEOUT_S = 600      # an index build of the harness's sizes takes seconds


def _drain(db_path: str, collection: str) -> None:
    """Wait for the collection's background compaction and index build.
    Milvus Lite runs in this process (one server per ``.db`` path,
    ``server_manager_instance``); its Collection serializes that work on
    one worker, and ``_wait_for_bg`` queues a no-op behind it and waits.
    Private API of milvus-lite 3.2.2, hence the checks."""
    from milvus_lite.server_manager import server_manager_instance
    entry = getattr(server_manager_instance, "_servers", {}).get(os.path.abspath(db_path))
    if entry is None:
        raise BackendError(f"milvus: no in-process Milvus Lite server for {db_path}")
    col = entry[1].get_collection(collection)
    wait = getattr(col, "_wait_for_bg", None)
    if not callable(wait):
        raise BackendError("milvus: this Milvus Lite has no _wait_for_bg; cannot wait for the index build")
    wait(timeout=DRAIN_TIMEOUT_S)


def _score(metric: str, d: float) -> float:
    """Milvus's ``distance`` as the contract's score. Measured on Milvus
    Lite 3.2.2 (FLAT, IVF_FLAT, HNSW, AUTOINDEX alike): COSINE is the
    cosine similarity, L2 the SQUARED distance, IP the inner product."""
    if metric == "l2":
        return -math.sqrt(max(d, 0.0))
    return d


def _failing(call: str):
    """pymilvus's exceptions as BackendError (outcome unknown) naming ``call``."""
    return classify(f"milvus: {call} failed")


def open_backend(config: BackendConfig) -> MilvusBackend:
    return MilvusBackend(config)
