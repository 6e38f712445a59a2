"""The LanceDB backend: a table in a local directory, the embedded default.

Schema: ``id`` string NOT NULL, ``vector`` fixed_size_list<float32>[dim],
and the attributes in a fixed layout declared when the table is made:
``MAX_ATTRS`` (8) slots, slot k holding one attribute as ``a<k>_n`` (its
name) and ``a<k>_s`` / ``a<k>_i`` / ``a<k>_b`` (its value, in the column of
its type; the other two null), a row's attributes in name order from slot
0. The schema never changes after the table is made, so concurrent writers
never race on a schema change (an earlier layout added a column per
(name, type) on first use, and two writers adding columns at once met a
commit conflict). A filter leaf on attribute ``n`` is a disjunction over
the slots of ``a<k>_n = 'n' AND <compare a<k>_<type>>``, all of it inside
``COALESCE(..., false)`` so it is two-valued (a name is in at most one
slot of a row); literals through ``sql_literal``, never spliced raw.
Upserts go through ``merge_insert("id")``; with the ``primary_key`` option
(on by default) the table also declares ``id`` its unenforced primary key.
``store_batch`` is one merge_insert of an Arrow table: one commit, so it is
atomic (``atomic_batches = True``; a test kills a writer process mid-batch
to hold it to that). The batch goes to lancedb's native merge_insert
(``native_merge``): lancedb's public builder first runs its Python-side
sanitize over the batch (a NaN and length scan of every vector, a cast to
the table's schema; a third of a 10,000-row upsert here, docs/findings.md),
and the adapter has checked all of that already (finite components, ``dim``
columns, its own schema); the write, commit and conflict handling are the
same Rust call either way. Deletes, gets and exists use expressions
(``col("id") == lit(id)``): no id is ever spliced into a filter string.
Search is ``distance_type(metric)`` (the run's ``BackendConfig.metric``:
cosine, l2, dot; the index is built with the same metric) and the score is
converted from ``_distance`` (cosine: 1 - d; l2: d is the squared distance,
score -sqrt(d); dot: d is 1 - inner product, score 1 - d);
without a vector index it is brute force (``exact = True``), with
``index`` set it is approximate (``exact = False``); ``search_exact`` (the
harness's probes) bypasses the index (``bypass_vector_index``) and is brute
force either way.

Facts this adapter designs around (LanceDB 0.40): zero vectors are left out
of cosine results and a zero query returns nothing, a wrong-dimension query
gives a misleading error, so input is validated before LanceDB sees it
(``backends._toolkit.ValidatingBackend``);
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
prefilter              true        filter before the vector search (false: after
                                   it, on the ``limit`` rows it chose: short
                                   answers, index or not; docs/findings.md)
native_merge           true        writes through lancedb 0.40's native
                                   merge_insert entry (``_inner``), past its
                                   Python-side sanitize; false, or a lancedb
                                   without that entry: the public builder
=====================  ==========  ===============================================

Any other key is refused (a setup error naming it and these).
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from backends._toolkit import (Option, Options, ValidatingBackend, classify, is_owner_mark, owner_mark,
                               require_owned)
from dst.backend import BackendConfig, SearchHit, metric_or_default
from dst.errors import BackendError, InvalidInput
from dst.filters import MAX_ATTRS

DEFAULT_LOCATION = os.path.join(".dst", "lance")

INDEX_TYPES = ("IVF_FLAT", "IVF_SQ", "IVF_PQ", "IVF_RQ", "IVF_HNSW_SQ", "IVF_HNSW_PQ", "IVF_HNSW_FLAT")
INDEX_KNOBS = ("num_partitions", "num_sub_vectors", "m", "ef_construction")
QUERY_KNOBS = ("nprobes", "refine_factor", "ef")
# A bad value is a BackendError here, as it always was for this adapter
# (both it and a UsageError end a run's setup with exit 2).
OPTIONS = Options(
    "lance",
    Option("primary_key", bool, True),
    Option("consistency", str, "strong", choices=("strong", "none")),
    Option("compact_every", int, 200, lo=0),
    Option("scalar_index", bool, False),
    Option("index", str, None, choices=INDEX_TYPES, fold="upper"),
    Option("num_partitions", int, lo=1),
    Option("num_sub_vectors", int, lo=1),
    Option("m", int, lo=1),
    Option("ef_construction", int, lo=1),
    Option("nprobes", int, lo=1),
    Option("refine_factor", int, lo=0),
    Option("ef", int, lo=1),
    Option("prefilter", bool, True),
    Option("native_merge", bool, True),
    prefix="lance:", error=BackendError)
KNOWN_OPTIONS = set(OPTIONS.names)


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


class LanceBackend(ValidatingBackend):
    name = "lance"
    filters = True
    maintenance_kinds = ("compact", "vacuum", "index")

    def __init__(self, config: BackendConfig):
        _import()
        import lancedb
        import pyarrow as pa

        self._pa = pa
        opts = OPTIONS.parse(config.options)
        self.dim = config.dim
        self.metric = metric_or_default(getattr(config, "metric", "cosine"))
        self.prefilter = opts["prefilter"]
        self.primary_key = opts["primary_key"]
        self.scalar_index = opts["scalar_index"]
        self.compact_every = opts["compact_every"]
        self.index = opts["index"]
        self.index_opts = {k: opts[k] for k in INDEX_KNOBS if opts[k] is not None}
        self.query_opts = {k: opts[k] for k in QUERY_KNOBS if opts[k] is not None}
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
             pa.field("vector", pa.list_(pa.float32(), self.dim), nullable=False),
             *slot_fields(pa)],
            metadata=owner_mark())
        interval = timedelta(0) if opts["consistency"] == "strong" else None
        with classify(f"lance: cannot open {self.table_name!r} in {self.location}", text=str):
            Path(self.location).mkdir(parents=True, exist_ok=True)
            self._db = lancedb.connect(self.location, read_consistency_interval=interval)
            exists = self.table_name in self._db.list_tables().tables
            if exists:
                table = self._db.open_table(self.table_name)
                self._check_owned(table)
                if config.fresh:
                    self._db.drop_table(self.table_name)
                    exists = False
                else:
                    self._check_layout(table)
            if not exists:
                if not config.fresh:
                    raise BackendError(f"lance: no table {self.table_name!r} in {self.location} to reopen")
                table = self._db.create_table(self.table_name, schema=self._schema)
                if self.primary_key:
                    table.set_unenforced_primary_key("id")
                if self.scalar_index:
                    table.create_scalar_index("id", index_type="BTREE")
            self._t = table
        # The native call takes the batch as it comes (no cast): only for a
        # table whose columns are exactly this adapter's schema's.
        same = table.schema.equals(self._schema, check_metadata=False)
        self._native = _native_merge(table) if opts["native_merge"] and same else None
        self._nulls: tuple[int, list] = (-1, [])

    def _check_owned(self, table) -> None:
        require_owned(is_owner_mark(table.schema.metadata),
                      f"lance: table {self.table_name!r} in {self.location}")
        vf = table.schema.field("vector").type
        if getattr(vf, "list_size", None) != self.dim:
            raise BackendError(f"lance: table {self.table_name!r} has dimension "
                               f"{getattr(vf, 'list_size', '?')}, not {self.dim}")

    def _check_layout(self, table) -> None:
        """A reopened table has the attribute slots. One made before
        attributes (id and vector only) gets them now, all null (its rows
        read {}): a schema change at open, never under concurrent writes of
        a run. Any other layout is refused, not guessed at."""
        have = [f.name for f in table.schema]
        want = [f.name for f in slot_fields(self._pa)]
        if have == ["id", "vector", *want]:
            return
        if have == ["id", "vector"]:
            with _failing("add_columns (attribute slots)"):
                table.add_columns(self._pa.schema(slot_fields(self._pa)))
            return
        raise BackendError(f"lance: table {self.table_name!r} in {self.location} has columns "
                           f"{', '.join(have)}, not this adapter's layout (id, vector, attribute slots); "
                           f"drop it or use another namespace")

    # -- helpers ------------------------------------------------------------
    def _rows(self, ids: list[str], matrix: np.ndarray, attrs_list: list[dict] | None = None):
        """The batch as one Arrow table: the vectors as one flat float32
        buffer; without attributes in the batch the slot columns are all
        null: the same immutable ``pa.nulls`` arrays for every batch of the
        same size, made once."""
        pa = self._pa
        n = len(ids)
        flat = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1)
        head = [pa.array(ids, pa.string()), pa.FixedSizeListArray.from_arrays(pa.array(flat), self.dim)]
        if attrs_list is None or not any(attrs_list):
            if self._nulls[0] != n:
                self._nulls = (n, [pa.nulls(n, f.type) for f in slot_fields(pa)])
            return pa.Table.from_arrays(head + self._nulls[1], schema=self._schema)
        data = {"id": head[0], "vector": head[1]}
        slots = [sorted((a or {}).items()) for a in attrs_list]
        for k in range(SLOTS):
            at = [row[k] if k < len(row) else None for row in slots]
            data[f"a{k}_n"] = pa.array([x[0] if x else None for x in at], pa.string())
            for kind in KINDS:
                data[f"a{k}_{kind}"] = pa.array(
                    [x[1] if x and _KIND[type(x[1])] == kind else None for x in at], _ARROW[kind](pa))
        return pa.table(data, schema=self._schema)

    def _upsert(self, ids: list[str], matrix: np.ndarray, attrs_list: list[dict] | None = None) -> None:
        rows = self._rows(ids, matrix, attrs_list)
        with _failing("merge_insert"):
            if self._native is not None:
                self._native(self._pa.RecordBatchReader.from_batches(self._schema, rows.to_batches()))
            else:
                (self._t.merge_insert("id").when_matched_update_all()
                 .when_not_matched_insert_all().execute(rows))
        self._wrote()

    def _wrote(self) -> None:
        self._writes += 1
        if self.compact_every and self._writes % self.compact_every == 0:
            self._compact()

    def _compact(self) -> None:
        import warnings
        with _failing("optimize"), warnings.catch_warnings():
            # cleanup_older_than=0 warns that concurrent readers of old
            # versions may fail; the harness's handles re-read latest.
            warnings.simplefilter("ignore")
            self._t.optimize(cleanup_older_than=timedelta(0))

    def _where_id(self, id_: str):
        from lancedb.expr import col, lit
        return col("id") == lit(id_)

    # -- the protocol (input checked by ValidatingBackend) ----------------------
    def raw_store(self, id: str, vector: np.ndarray, attrs: dict | None = None) -> None:
        self._upsert([id], vector[None, :], [attrs or {}])

    def raw_store_batch(self, ids: list[str], matrix: np.ndarray, attrs: list[dict] | None = None) -> None:
        if ids:
            self._upsert(ids, matrix, attrs)

    def raw_get_attrs(self, id: str) -> dict | None:
        rows = self._lookup(id, ["id", *(f.name for f in slot_fields(self._pa))])
        if rows.num_rows == 0:
            return None
        out: dict = {}
        for k in range(SLOTS):
            name = rows.column(f"a{k}_n")[0].as_py()
            if name is None:
                continue
            vals = [v for v in (rows.column(f"a{k}_{kind}")[0].as_py() for kind in KINDS) if v is not None]
            if len(vals) != 1 or name in out:
                raise BackendError(f"lance: row {id!r} slot {k} holds attribute {name!r} with "
                                   f"{len(vals)} values{' (repeated name)' if name in out else ''}")
            out[name] = vals[0]
        return dict(sorted(out.items()))

    def raw_delete(self, id: str) -> bool:
        with _failing("delete"):
            res = self._t.delete(self._where_id(id))
        self._wrote()
        return int(res.num_deleted_rows) > 0

    def _lookup(self, id_: str, columns: list[str]):
        with _failing("lookup"):
            return (self._t.search().where(self._where_id(id_)).select(columns)
                    .limit(2).to_arrow())

    def raw_get(self, id: str) -> np.ndarray | None:
        rows = self._lookup(id, ["vector"])
        if rows.num_rows == 0:
            return None
        return np.asarray(rows.column("vector")[0].values.to_numpy(zero_copy_only=False),
                          dtype=np.float32).copy()

    def raw_exists(self, id: str) -> bool:
        return self._lookup(id, ["id"]).num_rows > 0

    def raw_count(self) -> int:
        with _failing("count_rows"):
            return int(self._t.count_rows())

    def raw_search(self, q: np.ndarray, limit: int, exact: bool, where=None) -> list[SearchHit]:
        """``exact`` (``search_exact``, the probes'): brute force, past any
        vector index (``bypass_vector_index``): the probes check what is
        stored, not what an index finds."""
        with _failing("search"):
            b = (self._t.search(q, vector_column_name="vector").distance_type(self.metric)
                 .select(["id", "_distance"]).limit(limit))
            if where is not None:
                b = b.where(sql_filter(where), prefilter=self.prefilter)
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
        ids = rows.column("id").to_pylist()
        dist = rows.column("_distance").to_numpy()
        hits = [SearchHit(i, _score(self.metric, float(d))) for i, d in zip(ids, dist)]
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
        kw: dict[str, Any] = {"metric": self.metric, "vector_column_name": "vector",
                              "index_type": self.index, "replace": True, **self.index_opts}
        import warnings
        with _failing(f"create_index({self.index})"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy keyword API warns
            self._t.create_index(**kw)

    def close(self) -> None:
        self._t = None
        self._db = None

    def drop(self) -> None:
        """Drop this namespace's table (only ever one vector-dst created).

        Works after close(): the harness closes a handle at the end of a
        seed and drops the tables of seeds that passed afterwards."""
        import lancedb
        with _failing("drop_table"):
            db = self._db if self._db is not None else lancedb.connect(self.location)
            if self.table_name in db.list_tables().tables:
                self._check_owned(db.open_table(self.table_name))
                db.drop_table(self.table_name)
        self.close()


SLOTS = MAX_ATTRS
KINDS = ("s", "i", "b")
_KIND = {str: "s", int: "i", bool: "b"}
_ARROW = {"s": lambda pa: pa.string(), "i": lambda pa: pa.int64(), "b": lambda pa: pa.bool_()}


def slot_fields(pa) -> list:
    """The attribute slots' columns, in table order: a<k>_n, a<k>_s, a<k>_i, a<k>_b."""
    out = []
    for k in range(SLOTS):
        out.append(pa.field(f"a{k}_n", pa.string(), nullable=True))
        out.extend(pa.field(f"a{k}_{kind}", _ARROW[kind](pa), nullable=True) for kind in KINDS)
    return out


def sql_literal(value) -> str:
    """A DataFusion SQL literal for an attribute value. Strings: single
    quotes doubled (no backslash escapes in standard literals); ints in
    decimal, -2**63 as an expression (its magnitude overflows BIGINT)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value == -(2 ** 63):
            return "(-9223372036854775807 - 1)"
        return str(int(value))
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise InvalidInput(f"lance: no SQL literal for {type(value).__name__}")


def sql_filter(where) -> str:
    """The canonical ``where`` tree as a LanceDB filter string over the
    attribute slots, two-valued: each leaf is ``COALESCE(<over the slots>,
    false)``, so a comparison on a missing or other-typed attribute is
    false and ``NOT`` of it true."""
    (op, arg), = where.items()
    if op == "and":
        return "(" + " AND ".join(sql_filter(w) for w in arg) + ")" if arg else "true"
    if op == "or":
        return "(" + " OR ".join(sql_filter(w) for w in arg) + ")" if arg else "false"
    if op == "not":
        return f"(NOT {sql_filter(arg)})"
    if op == "exists":
        name = sql_literal(arg)
        return "COALESCE(" + " OR ".join(f"`a{k}_n` = {name}" for k in range(SLOTS)) + ", false)"
    name, value = arg
    kind = _KIND[type(value[0] if op == "in" else value)]
    if op == "in":
        test = " IN (" + ", ".join(sql_literal(v) for v in value) + ")"
    else:
        test = " " + {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op] + " " + sql_literal(value)
    lit = sql_literal(name)
    return "COALESCE(" + " OR ".join(f"(`a{k}_n` = {lit} AND `a{k}_{kind}`{test})"
                                     for k in range(SLOTS)) + ", false)"


def _score(metric: str, d: float) -> float:
    """LanceDB's ``_distance`` as the contract's score. Measured on 0.40,
    with and without an IVF_FLAT index (docs/findings.md): cosine reports
    1 - cos; l2 the SQUARED Euclidean distance; dot 1 - inner product."""
    if metric == "cosine":
        return 1.0 - d
    if metric == "l2":
        return -math.sqrt(max(d, 0.0))
    return 1.0 - d


# lancedb 0.40's arguments for its native merge_insert (what
# LanceMergeInsertBuilder.execute hands it): upsert on id, nothing else.
_MERGE_UPSERT = {"on": ["id"], "when_matched_update_all": True, "when_matched_update_all_condition": None,
                 "when_not_matched_insert_all": True, "when_not_matched_by_source_delete": False,
                 "when_not_matched_by_source_condition": None,
                 "when_not_matched_by_source_condition_expr": None, "timeout": None, "use_index": True,
                 "use_lsm": None, "validate_single_shard": None}


def _native_merge(table):
    """A function running an upsert of a RecordBatchReader through
    lancedb's native merge_insert, the call its public builder ends in
    (``LOOP.run(AsyncTable._inner.execute_merge_insert(reader, params))``),
    or None where this lancedb has no such entry (another version than
    0.40.x: the pinned one, whose parameters ``_MERGE_UPSERT`` spells)."""
    import lancedb
    try:
        from lancedb.background_loop import LOOP
        inner = table._table._inner
        execute = inner.execute_merge_insert
    except (ImportError, AttributeError):
        return None
    if not lancedb.__version__.startswith("0.40."):
        return None

    async def merge(reader):
        return await execute(reader, dict(_MERGE_UPSERT))

    return lambda reader: LOOP.run(merge(reader))


def _failing(call: str):
    """LanceDB's exceptions, as BackendError (outcome unknown) naming ``call``."""
    return classify(f"lance: {call} failed", text=str)


def open_backend(config: BackendConfig) -> LanceBackend:
    return LanceBackend(config)
