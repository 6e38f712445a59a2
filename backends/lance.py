"""The LanceDB backend: a table in a local directory, the embedded default.

Schema: ``id`` string NOT NULL, ``vector`` fixed_size_list<float32>[dim].
Upserts go through ``merge_insert("id")``; with the ``primary_key`` option
(on by default) the table also declares ``id`` its unenforced primary key.
``store_batch`` is one merge_insert of an Arrow table: one commit, so it is
atomic (``atomic_batches = True``; a test kills a writer process mid-batch
to hold it to that). Deletes, gets and exists use expressions
(``col("id") == lit(id)``): no id is ever spliced into a filter string.
Search is ``distance_type("cosine")`` with score = 1 - ``_distance``;
without a vector index it is brute force (``exact = True``), with
``index`` set it is approximate (``exact = False``); ``search_exact`` (the
harness's probes) bypasses the index (``bypass_vector_index``) and is brute
force either way.

Facts this adapter designs around (LanceDB 0.40): zero vectors are left out
of cosine results and a zero query returns nothing, a wrong-dimension query
gives a misleading error, so input is validated before LanceDB sees it;
every small write is a new version and fragment and search slows down as
they pile up, so the adapter compacts every ``compact_every`` writes and
offers ``maintenance("compact")``.

Ownership: the table carries schema metadata ``dst.owner = vector-dst``.
A table without it is never written, overwritten or dropped.

Options (``--opt KEY=VALUE``):

=====================  ==========  ===============================================
option                 default     meaning
=====================  ==========  ===============================================
primary_key            true        ``set_unenforced_primary_key("id")``
consistency            strong      ``strong``: read_consistency_interval = 0, every
                                   read sees other handles' commits; ``none``: a
                                   handle keeps its snapshot (stale reads)
compact_every          200         optimize after this many writes; 0 = never
scalar_index           false       a BTREE index on ``id`` (faster gets)
index                  (none)      IVF_PQ, IVF_HNSW_SQ, IVF_HNSW_PQ, IVF_FLAT, ...
num_partitions         (auto)      index knob
num_sub_vectors        (auto)      index knob (PQ)
m, ef_construction     (lance)     HNSW knobs
nprobes                (lance)     query knob
refine_factor          1 w/ index  re-score candidates exactly; 0 = off
ef                     (lance)     HNSW query knob
=====================  ==========  ===============================================

Any other key is refused (a setup error naming it and these).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from dst.backend import BackendConfig, SearchHit, check_options
from dst.errors import BackendError, InvalidInput
from dst.validate import check_batch_matrix, check_id, check_limit, check_vector

OWNER_KEY = b"dst.owner"
OWNER = b"vector-dst"
DEFAULT_LOCATION = os.path.join(".dst", "lance")

_BOOL = {"true": True, "false": False, True: True, False: False, 1: True, 0: False}
INDEX_TYPES = ("IVF_FLAT", "IVF_SQ", "IVF_PQ", "IVF_RQ", "IVF_HNSW_SQ", "IVF_HNSW_PQ", "IVF_HNSW_FLAT")
KNOWN_OPTIONS = {"primary_key", "consistency", "compact_every", "scalar_index", "index",
                 "num_partitions", "num_sub_vectors", "m", "ef_construction", "nprobes",
                 "refine_factor", "ef"}


def _import():
    # LanceDB's Rust logger warns on every small index ("dataset is too
    # small...") and deprecation; keep the harness's output readable.
    os.environ.setdefault("LANCE_LOG", "error")
    try:
        import lancedb  # noqa: F401
        import pyarrow  # noqa: F401
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise BackendError(f"the lance backend needs lancedb and pyarrow "
                           f"(pip install -e '.[lance]'): {exc}") from None


class LanceBackend:
    name = "lance"
    maintenance_kinds = ("compact", "vacuum", "index")

    def __init__(self, config: BackendConfig):
        _import()
        import lancedb
        import pyarrow as pa

        self._pa = pa
        opts = dict(config.options)
        check_options("lance", opts, KNOWN_OPTIONS)
        self.dim = config.dim
        self.primary_key = _flag(opts, "primary_key", True)
        self.scalar_index = _flag(opts, "scalar_index", False)
        consistency = opts.get("consistency", "strong")
        if consistency not in ("strong", "none"):
            raise BackendError(f"lance: consistency must be strong or none, got {consistency!r}")
        self.compact_every = int(opts.get("compact_every", 200))
        self.index = opts.get("index")
        if self.index is not None and str(self.index).upper() not in INDEX_TYPES:
            raise BackendError(f"lance: index must be one of {', '.join(INDEX_TYPES)}, got {self.index!r}")
        self.index_opts = {k: opts[k] for k in ("num_partitions", "num_sub_vectors", "m",
                                                 "ef_construction") if k in opts}
        self.query_opts = {k: opts[k] for k in ("nprobes", "refine_factor", "ef") if k in opts}
        # Quantized indexes (SQ, PQ) report approximate distances; a refine
        # step re-scores the candidates with the stored vectors, so scores
        # are true cosines. On by default with an index; refine_factor=0
        # turns it off (and the checker will then see the approximate scores).
        if self.index is not None:
            self.query_opts.setdefault("refine_factor", 1)
        self.exact = self.index is None
        self.atomic_batches = True
        self.location = config.location or DEFAULT_LOCATION
        self.table_name = config.namespace
        self._writes = 0
        self._schema = pa.schema(
            [pa.field("id", pa.string(), nullable=False),
             pa.field("vector", pa.list_(pa.float32(), self.dim), nullable=False)],
            metadata={OWNER_KEY: OWNER})
        interval = timedelta(0) if consistency == "strong" else None
        try:
            Path(self.location).mkdir(parents=True, exist_ok=True)
            self._db = lancedb.connect(self.location, read_consistency_interval=interval)
            exists = self.table_name in self._db.list_tables().tables
            if exists:
                table = self._db.open_table(self.table_name)
                self._check_owned(table)
                if config.fresh:
                    self._db.drop_table(self.table_name)
                    exists = False
            if not exists:
                if not config.fresh:
                    raise BackendError(f"lance: no table {self.table_name!r} in {self.location} to reopen")
                table = self._db.create_table(self.table_name, schema=self._schema)
                if self.primary_key:
                    table.set_unenforced_primary_key("id")
                if self.scalar_index:
                    table.create_scalar_index("id", index_type="BTREE")
            self._t = table
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"lance: cannot open {self.table_name!r} in {self.location}: {exc}") from None

    def _check_owned(self, table) -> None:
        meta = table.schema.metadata or {}
        if meta.get(OWNER_KEY) != OWNER:
            raise BackendError(f"lance: table {self.table_name!r} in {self.location} was not created by "
                               f"vector-dst; refusing to touch it")
        vf = table.schema.field("vector").type
        if getattr(vf, "list_size", None) != self.dim:
            raise BackendError(f"lance: table {self.table_name!r} has dimension "
                               f"{getattr(vf, 'list_size', '?')}, not {self.dim}")

    # -- helpers ------------------------------------------------------------
    def _rows(self, ids: list[str], matrix: np.ndarray):
        pa = self._pa
        flat = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1)
        return pa.table({"id": pa.array(ids, pa.string()),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat), self.dim)},
                        schema=self._schema)

    def _upsert(self, ids: list[str], matrix: np.ndarray) -> None:
        try:
            (self._t.merge_insert("id").when_matched_update_all()
             .when_not_matched_insert_all().execute(self._rows(ids, matrix)))
        except Exception as exc:
            raise BackendError(f"lance: merge_insert failed: {exc}") from None
        self._wrote()

    def _wrote(self) -> None:
        self._writes += 1
        if self.compact_every and self._writes % self.compact_every == 0:
            self._compact()

    def _compact(self) -> None:
        import warnings
        try:
            with warnings.catch_warnings():
                # cleanup_older_than=0 warns that concurrent readers of old
                # versions may fail; the harness's handles re-read latest.
                warnings.simplefilter("ignore")
                self._t.optimize(cleanup_older_than=timedelta(0))
        except Exception as exc:
            raise BackendError(f"lance: optimize failed: {exc}") from None

    def _where_id(self, id_: str):
        from lancedb.expr import col, lit
        return col("id") == lit(id_)

    # -- the protocol ---------------------------------------------------------
    def store(self, id: str, vector: np.ndarray) -> None:
        check_id(id)
        self._upsert([id], check_vector(vector, self.dim)[None, :])

    def store_batch(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        ids, matrix = check_batch_matrix(items, self.dim)
        if ids:
            self._upsert(ids, matrix)

    def delete(self, id: str) -> bool:
        check_id(id)
        try:
            res = self._t.delete(self._where_id(id))
        except Exception as exc:
            raise BackendError(f"lance: delete failed: {exc}") from None
        self._wrote()
        return int(res.num_deleted_rows) > 0

    def _lookup(self, id_: str, columns: list[str]):
        try:
            return (self._t.search().where(self._where_id(id_)).select(columns)
                    .limit(2).to_arrow())
        except Exception as exc:
            raise BackendError(f"lance: lookup failed: {exc}") from None

    def get(self, id: str) -> np.ndarray | None:
        check_id(id)
        rows = self._lookup(id, ["vector"])
        if rows.num_rows == 0:
            return None
        return np.asarray(rows.column("vector")[0].values.to_numpy(zero_copy_only=False),
                          dtype=np.float32).copy()

    def exists(self, id: str) -> bool:
        check_id(id)
        return self._lookup(id, ["id"]).num_rows > 0

    def count(self) -> int:
        try:
            return int(self._t.count_rows())
        except Exception as exc:
            raise BackendError(f"lance: count_rows failed: {exc}") from None

    def search(self, query: np.ndarray, limit: int) -> list[SearchHit]:
        return self._search(query, limit, exact=False)

    def search_exact(self, query: np.ndarray, limit: int) -> list[SearchHit]:
        """Brute force, past any vector index (``bypass_vector_index``): the
        harness's probes check what is stored, not what an index finds."""
        return self._search(query, limit, exact=True)

    def _search(self, query: np.ndarray, limit: int, exact: bool) -> list[SearchHit]:
        q = check_vector(query, self.dim)
        limit = check_limit(limit)
        try:
            b = (self._t.search(q, vector_column_name="vector").distance_type("cosine")
                 .select(["id", "_distance"]).limit(limit))
            if exact:
                b = b.bypass_vector_index()
            elif not self.exact:
                if "nprobes" in self.query_opts:
                    b = b.nprobes(int(self.query_opts["nprobes"]))
                if int(self.query_opts.get("refine_factor", 0)) > 0:
                    b = b.refine_factor(int(self.query_opts["refine_factor"]))
                if "ef" in self.query_opts:
                    b = b.ef(int(self.query_opts["ef"]))
            rows = b.to_arrow()
        except Exception as exc:
            raise BackendError(f"lance: search failed: {exc}") from None
        ids = rows.column("id").to_pylist()
        dist = rows.column("_distance").to_numpy()
        hits = [SearchHit(i, 1.0 - float(d)) for i, d in zip(ids, dist)]
        # LanceDB returns ties in insertion order; order them by id, as sim does.
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits

    def maintenance(self, kind: str) -> None:
        if kind in ("compact", "vacuum"):
            self._compact()
        elif kind == "index":
            if self.index is not None:
                self._build_index()
        else:
            # The harness checks the scenario's kinds against maintenance_kinds
            # before any op; this is for other callers.
            raise InvalidInput(f"lance: unknown maintenance kind {kind!r} (compact, vacuum, index)")

    def _build_index(self) -> None:
        kw: dict[str, Any] = {"metric": "cosine", "vector_column_name": "vector",
                              "index_type": str(self.index).upper(), "replace": True}
        for k, v in self.index_opts.items():
            kw[k] = int(v)
        try:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the legacy keyword API warns
                self._t.create_index(**kw)
        except Exception as exc:
            raise BackendError(f"lance: create_index({self.index}) failed: {exc}") from None

    def close(self) -> None:
        self._t = None
        self._db = None

    def drop(self) -> None:
        """Drop this namespace's table (only ever one vector-dst created).

        Works after close(): the harness closes a handle at the end of a
        seed and drops the tables of seeds that passed afterwards."""
        import lancedb
        try:
            db = self._db if self._db is not None else lancedb.connect(self.location)
            if self.table_name in db.list_tables().tables:
                self._check_owned(db.open_table(self.table_name))
                db.drop_table(self.table_name)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"lance: drop_table failed: {exc}") from None
        self.close()


def _flag(opts: dict, key: str, default: bool) -> bool:
    v = opts.get(key, default)
    if isinstance(v, str):
        v = v.lower()
    if v not in _BOOL:
        raise BackendError(f"lance: option {key} must be true or false, got {v!r}")
    return _BOOL[v]


def open_backend(config: BackendConfig) -> LanceBackend:
    return LanceBackend(config)
