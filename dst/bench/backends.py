"""Backend benchmarks for ``dst bench``: each adapter on real data sizes,
and the raw driver doing the same work beside it.

A *row* is one variant (a backend with its options) at one size ``n`` and
dimension ``dim``. Variants:

=================  =========  =====================================================
variant            backend    options
=================  =========  =====================================================
sim                sim        (exact, in memory, float64)
lance              lance      (exact: brute force)
lance-hnsw-sq      lance      index=IVF_HNSW_SQ, refined (refine_factor 1, the
                              adapter's default with an index)
pgvector           pgvector   (exact: sequential scan) on the default server (pg18)
pgvector-hnsw      pgvector   index=hnsw (m 16, ef_construction 64, ef_search 40)
chroma             chroma     (HNSW, Chroma's defaults; ANN, no exact path)
qdrant             qdrant     (exact: local mode is brute force; see ``_QdrantRaw``)
qdrant-edge        qdrant-    (exact: the full scan, ``SearchParams(exact=True)``;
                   edge       see ``_QdrantEdgeRaw``)
milvus             milvus     (index FLAT: exact)
milvus-hnsw        milvus     index=HNSW (Milvus Lite's defaults: M 16,
                              efConstruction 200, ef 64)
pgvector-hnsw-iter pgvector   index=hnsw, iterative_scan=strict_order (pg18)
pgvector-pg16      pgvector   exact, on the embedded pg16 (PostgreSQL 16.2,
                              pgvector 0.6.2); by name only
pgvector-hnsw-pg16 pgvector   index=hnsw on pg16; by name only
=================  =========  =====================================================

A variant's ``server`` picks the embedded server its rows run on (its own
DSN); it is not an adapter option here, and with ``--pg-location`` it is
refused (the DSN's server is whatever it is).

Per row, in this order, in a worker process of its own (so the memory
figures start from a clean process, a row that crashes or hangs cannot take
the others with it, and a row past ``row_timeout`` is killed and reported):

1. data: ``n`` vectors and the queries, seeded (``dst.rng``), by default
   low-rank plus noise (rank 32 Gaussian, 25 % isotropic noise: like
   embeddings, whose intrinsic dimension is far below ``dim``), and the
   exact answer: float64 cosine of every query against every vector.
2. batch insert: ``store_batch`` of all ``n`` vectors in batches of
   ``batch_size`` into a fresh namespace; rows/s (median of three loads,
   each into a fresh namespace; the last one stays for what follows; lance
   first loads one batch untimed: a worker's first large write pays
   Lance's start-up).
3. index: ``maintenance("index")`` for index variants, timed.
4. search: on a handle opened anew after the load (``fresh=False``), as a
   reader would search, ``limit`` 10 for every query, after ten untimed
   warm-up queries; p50 and p95 latency; recall@10 against the exact
   answer. Recall counts a returned id as correct when its true score is
   within ``SCORE_EPS`` of the true 10th best (ties and float32 rounding do
   not count against an exact backend), each id once.
5. reachability: a seeded sample of the loaded ids (``REACH_SAMPLE``, all
   when fewer) each searched by its own vector through the same handle,
   ``limit`` 10; the fraction found, scored by the ANN probe's rules
   (``dst.sim.reach.reach_outcome``: a hit whose true score is within
   ``SCORE_EPS`` of the id's own counts for it, so ids with identical
   vectors are counted together). An ANN index that lost rows from its
   graph shows here where recall over random queries hardly moves; on an
   exact backend it is a sanity check (1.000). Measured after the load and
   any index build, before the upserts, after the memory figures below (its
   exact answer is made with the data, before the memory baseline).
6. memory: resident set growth of the worker since just before the first
   open (after the data was made), now and at its peak (``VmHWM`` after a
   reset through ``/proc/self/clear_refs``, where Linux allows it); on-disk
   size: the lance table folder, or ``pg_total_relation_size`` (table,
   TOAST and indexes). For pgvector the data lives in the server: the
   worker's growth is the client side only.
7. raw batch insert (lance, pgvector): the same batches into a table of the
   raw driver's own, three loads, median. (Not interleaved with the
   adapter's loads of step 2: the raw driver's data would then count in
   the memory figures.) Taking turns with them (who goes first
   alternates), the adapter loads the same batches three more times into a
   namespace of its own (``<namespace>_cmp``, dropped after each load):
   ``raw.adapter_insert_s``, the median. The insert overhead and
   ``raw.insert_ratio`` compare these interleaved loads, made in the same
   process state and machine load as the raw driver's (loads minutes apart
   in a worker differed by 2-5x on a busy machine). On pgvector each of
   these loads, on either side, runs in a new session (``_PgRaw.renew_loader``).
8. single upsert: ``store`` of an existing id with a new vector (the row's
   own, rotated by one component), p50 and p95, alternating with the raw
   driver's single upsert; each side on rows of its own (see the code).

The raw driver (overhead = adapter time / raw time, so 1.0 is no overhead;
``raw.insert_ratio`` = adapter insert rows/s / raw insert rows/s, the
insert figure the other way up: 1.0 is parity, above 1 the adapter is
faster):

* lance and pgvector writes start from what the adapter gets, the batch's
  ``(id, vector)`` pairs as Python objects (a list of (str, float32
  ndarray)), and the clock runs while the raw side does what a careful user
  of the driver would: check the pairs by the adapter's rules
  (``user_checked``: ids distinct non-empty str of at most 256 characters,
  no NUL, valid UTF-8; vectors one float32 matrix of ``dim`` columns, all
  finite, no zero row), then write them the driver's natural efficient way.
* lance: a ``lancedb.connect`` of its own on the same folder (default
  consistency settings). Insert: per batch, ``user_checked``, one Arrow
  table (ids, and the matrix as one flat float32 buffer under a fixed-size
  list: ``FixedSizeListArray.from_arrays``) and one ``merge_insert("id")``
  (update all when matched, insert all when not) into a table of its own
  with the columns ``id`` and ``vector`` and an unenforced primary key.
  The adapter's table also has the attribute slots (32 columns, all null
  without attributes): writing them counts as adapter overhead. The
  adapter hands its batch to lancedb's native merge_insert entry, past the
  public builder's Python-side sanitize (a NaN and length scan of the
  vectors the adapter has checked already); the raw driver keeps the
  public builder, as a user of lancedb would (scripts/lance_merge_parts.py
  times the four combinations). Search:
  the same builder (``search`` ... ``distance_type("cosine")``,
  ``select``, ``limit``, ``refine_factor`` with an index) on the adapter's
  table. Upsert: the same as an insert of one pair, into the raw table
  (the same size and fragment layout as the adapter's; merge_insert scans
  the id column either way). The adapter reads with
  ``read_consistency_interval`` 0 (it sees other handles' commits); that
  check counts as adapter overhead here.
* pgvector: psycopg sessions of its own, one to load and one to search and
  upsert, as on the adapter's side (a session's history changes what the
  server's work costs; see ``_PgRaw``). Insert: per batch,
  ``user_checked``, then one transaction: binary COPY of the rows into a
  temporary table with pgvector's psycopg dumper, ``write_row`` per row
  (pgvector-python's bulk-loading example), then one INSERT ... SELECT ...
  ORDER BY id ON CONFLICT DO UPDATE into a table of its own (``id``,
  ``embedding``; the adapter's also has ``attrs jsonb``, written ``{}``:
  adapter overhead). Search: the adapter's SQL on the adapter's table,
  with the same session settings (``enable_seqscan`` off and
  ``hnsw.ef_search`` with the index). Upsert: ``user_checked`` on the pair,
  then the adapter's INSERT ... ON CONFLICT on the adapter's table.
* milvus: a ``MilvusClient`` of its own on the adapter's ``.db`` (the same
  in-process Milvus Lite server), made after the adapter's load (closing
  the adapter's last handle stops the server). Insert: ``upsert`` of the
  same rows (id, vector, empty attrs JSON), built before the clock starts,
  into a collection of its own with the adapter's schema and index.
  Search: ``search`` with the adapter's arguments on the adapter's
  collection. Upsert: a one-row ``upsert`` into the raw collection.
* sim: no driver underneath; no overhead figure.

Searches and upserts alternate adapter and raw driver in blocks of ten
calls (who goes first alternates too), so a change in machine load hits
both sides alike.

Run as ``python -m dst.bench.backends`` it is the worker: a row spec (JSON)
on stdin, progress and the result as JSON lines on stdout.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dst import wallclock
from dst.rng import Rng

K = 10                      # recall@10, search limit 10
SCORE_EPS = 1e-5            # recall tolerance on the true score (float32 backends)
WARMUP_QUERIES = 10         # untimed, per side, before the timed searches
WARMUP_UPSERTS = 10         # untimed, per side: the first updates after a load run slow
LOWRANK_RANK = 32
LOWRANK_NOISE = 0.25
INSERT_ROUNDS = 3           # batch loads per side (each into a fresh table); the median counts
ALTERNATE_BLOCK = 10        # adapter and raw driver take turns in blocks of this many calls
EXIT_GRACE_S = 60           # a worker that sent its result gets this long to exit
CHUNK = 8192                # rows per float64 chunk when computing the exact answer
ERR_TAIL = 1500             # characters of a worker's stderr kept in an error
REACH_SAMPLE = 200          # loaded ids probed by their own vector (all when fewer)
REACH_NAMED = 10            # unreachable ids named in a row (the count is always whole)
CMP_SUFFIX = "_cmp"         # the adapter's namespace in the interleaved insert comparison

# variant -> (backend, options, label for tables and plots)
VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "sim": ("sim", {}, "sim (exact)"),
    "lance": ("lance", {}, "lance (exact)"),
    "lance-hnsw-sq": ("lance", {"index": "IVF_HNSW_SQ"}, "lance IVF_HNSW_SQ (refined)"),
    "pgvector": ("pgvector", {}, "pgvector (exact)"),
    "pgvector-hnsw": ("pgvector", {"index": "hnsw"}, "pgvector hnsw"),
    "chroma": ("chroma", {}, "chroma (HNSW)"),
    "qdrant": ("qdrant", {}, "qdrant local (exact)"),
    "qdrant-edge": ("qdrant-edge", {}, "qdrant-edge (exact)"),
    "milvus": ("milvus", {}, "milvus (FLAT, exact)"),
    "milvus-hnsw": ("milvus", {"index": "HNSW"}, "milvus HNSW"),
    "pgvector-hnsw-iter": ("pgvector", {"index": "hnsw", "iterative_scan": "strict_order"},
                           "pgvector hnsw strict_order"),
    "pgvector-pg16": ("pgvector", {"server": "pg16"}, "pgvector pg16 (exact)"),
    "pgvector-hnsw-pg16": ("pgvector", {"index": "hnsw", "server": "pg16"}, "pgvector pg16 hnsw"),
}
BACKEND_VARIANTS = {"sim": ["sim"], "lance": ["lance", "lance-hnsw-sq"],
                    "pgvector": ["pgvector", "pgvector-hnsw"], "chroma": ["chroma"],
                    "qdrant": ["qdrant"], "qdrant-edge": ["qdrant-edge"], "milvus": ["milvus", "milvus-hnsw"]}
DATA_KINDS = ("lowrank", "normal")
ANN_ONLY = {"chroma"}       # backends whose search is approximate with any options

# Every row carries these keys, ok or not (None where a figure does not apply).
ROW_KEYS = ("variant", "label", "backend", "index", "namespace", "n", "dim", "exact", "status", "error",
            "insert_rows_per_s", "insert_s", "insert_rounds", "index_build_s",
            "upsert_p50_ms", "upsert_p95_ms", "search_p50_ms", "search_p95_ms", "queries",
            "recall_at_10", "reachability", "reach_checked", "reach_unreachable",
            "rss_growth_mb", "peak_rss_growth_mb", "disk_mb",
            "raw", "overhead", "driver", "load_avg", "elapsed_s")


def parse_variants(text: str) -> list[str]:
    """``sim,lance,pgvector`` (each backend's variants) or variant names,
    comma-separated; in the order of VARIANTS, without repeats."""
    want: set[str] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part in BACKEND_VARIANTS:
            want.update(BACKEND_VARIANTS[part])
        elif part in VARIANTS:
            want.add(part)
        else:
            raise ValueError(f"unknown backend {part!r}: use {', '.join(BACKEND_VARIANTS)} "
                             f"or a variant ({', '.join(VARIANTS)})")
    if not want:
        raise ValueError("no backend named")
    return [v for v in VARIANTS if v in want]


# -- data and the exact answer ----------------------------------------------------------

def make_data(n: int, dim: int, n_queries: int, seed: int = 0,
              kind: str = "lowrank") -> tuple[np.ndarray, np.ndarray]:
    """(data n x dim, queries n_queries x dim), float32, seeded. The queries
    (and the basis) depend on ``seed``, ``kind`` and ``dim`` only, so every
    size is asked the same questions."""
    if kind not in DATA_KINDS:
        raise ValueError(f"data kind must be one of {DATA_KINDS}, got {kind!r}")
    g = Rng(seed).fork(f"bench/{kind}/{dim}").np
    if kind == "normal":
        queries = g.standard_normal((n_queries, dim), dtype=np.float32)
        data = g.standard_normal((n, dim), dtype=np.float32)
    else:
        rank = min(LOWRANK_RANK, dim)
        basis = g.standard_normal((rank, dim)) / math.sqrt(rank)

        def draw(m: int) -> np.ndarray:
            out = np.empty((m, dim), dtype=np.float32)
            for a in range(0, m, CHUNK):
                b = min(m, a + CHUNK)
                z = g.standard_normal((b - a, rank))
                out[a:b] = z @ basis + LOWRANK_NOISE * g.standard_normal((b - a, dim))
            return out

        queries = draw(n_queries)
        data = draw(n)
    # A zero row is invalid input (DESIGN); vanishingly unlikely, but never sent.
    for m in (data, queries):
        zero = ~m.any(axis=1)
        m[zero, 0] = 1.0
    return data, queries


def row_id(i: int) -> str:
    return f"v{i:07d}"


def index_of(id_: Any, n: int) -> int:
    """The row number of a bench id (``row_id``) below ``n``, else -1."""
    try:
        i = int(id_[1:]) if isinstance(id_, str) and id_[:1] == "v" else -1
    except ValueError:
        return -1
    return i if 0 <= i < n else -1


def reach_sample(n: int, seed: int, size: int = REACH_SAMPLE) -> list[int]:
    """The rows the reachability probe searches for: all of them when
    there are at most ``size``, else ``size`` drawn without replacement
    (seeded; the same rows for the same n and seed), in order."""
    if n <= size:
        return list(range(n))
    return sorted(int(i) for i in Rng(seed).fork(f"bench/reach/{n}").np.choice(n, size, replace=False))


def reachability(sample: list[int], truth: "Truth", search: Callable[[int], list[str]]) -> dict[str, Any]:
    """Search each sampled row by its own vector (``search(i)``: the ids
    returned for row i's vector) and score each answer by the probe's rules
    (``dst.sim.reach.reach_outcome``). ``truth``: the exact answer for the
    sampled rows' vectors as queries, in sample order."""
    from dst.sim.reach import reach_outcome
    n = truth.scores.shape[1]
    checked = found = 0
    lost: list[str] = []
    for qi, i in enumerate(sample):
        sc = truth.scores[qi]
        hits = search(i)
        outcome = reach_outcome(row_id(i), hits, lambda h: (sc[j] if (j := index_of(h, n)) >= 0 else None),
                                float(sc[i]), float(truth.kth[qi]), lambda _s: SCORE_EPS)
        if outcome == "outranked":      # cosine: a row is its own best match; kept for the rule's sake
            continue
        checked += 1
        if outcome == "found":
            found += 1
        else:
            lost.append(row_id(i))
    return {"reachability": round(found / checked, 4) if checked else None, "reach_checked": checked,
            "reach_unreachable": {"count": len(lost), "ids": lost[:REACH_NAMED]}}


class Truth:
    """Exact top-k by float64 cosine, and tie-tolerant recall against it."""

    def __init__(self, data: np.ndarray, queries: np.ndarray, k: int = K):
        n = len(data)
        self.k = min(k, n)
        q = queries.astype(np.float64)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        self.scores = np.empty((len(queries), n))
        for a in range(0, n, CHUNK):
            d = data[a:a + CHUNK].astype(np.float64)
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            self.scores[:, a:a + len(d)] = q @ d.T
        if n:
            self.kth = np.partition(self.scores, n - self.k, axis=1)[:, n - self.k]
        else:
            self.kth = np.zeros(len(queries))

    def recall(self, found: list[list[str]]) -> float | None:
        if not found or self.k == 0:
            return None
        n = self.scores.shape[1]
        hits = 0
        for qi, ids in enumerate(found):
            seen: set[int] = set()
            for id_ in ids[:self.k]:
                i = index_of(id_, n)
                if i < 0 or i in seen:
                    continue
                seen.add(i)
                if self.scores[qi, i] >= self.kth[qi] - SCORE_EPS:
                    hits += 1
        return hits / (self.k * len(found))


# -- measuring -----------------------------------------------------------------------------

def _ms(samples: list[float], pct: float) -> float | None:
    if not samples:
        return None
    return round(float(np.percentile(np.asarray(samples), pct)) * 1000, 4)


def median(samples: list[float]) -> float:
    return float(np.median(np.asarray(samples)))


def rss_mb() -> float | None:
    """Resident set size of this process, MB (/proc/self/statm; psutil elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - memory figures are best effort
        return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS mark (VmHWM) to the current RSS (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def dir_bytes(path: Path) -> int | None:
    if not path.is_dir():
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                pass
    return total


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = wallclock.monotonic_s()
    out = fn()
    return wallclock.monotonic_s() - t0, out


# -- the raw drivers -----------------------------------------------------------------------

ID_MAX_CHARS = 256          # the id rule a user of the store would check (DESIGN's)


def user_checked(items: list[tuple[str, np.ndarray]], dim: int) -> tuple[list[str], np.ndarray]:
    """What a careful user checks before handing ``(id, vector)`` pairs to
    a raw driver, the same rules the adapter's contract holds them to
    (DESIGN; ``dst.validate``), written the plain vectorized way: ids are
    distinct non-empty str of at most ID_MAX_CHARS characters with no NUL
    and valid UTF-8 (no lone surrogate), the vectors one float32 matrix
    (``np.asarray`` of the list: one conversion) of ``dim`` columns, every
    component finite and no row all zero (cosine). Returns (ids, matrix);
    raises ValueError (the bench's data is valid: a raise is a bench bug)."""
    ids = [i for i, _ in items]
    m = np.asarray([v for _, v in items], dtype=np.float32)
    if m.ndim != 2 or m.shape != (len(ids), dim):
        raise ValueError(f"vectors of shape {m.shape}, expected ({len(ids)}, {dim})")
    if not np.isfinite(m).all():
        raise ValueError("a vector component is not finite")
    if not m.any(axis=1).all():
        raise ValueError("a vector has zero norm")
    joined = "".join(ids)              # a TypeError for any id that is not a str
    lengths = list(map(len, ids))
    if ids and (min(lengths) < 1 or max(lengths) > ID_MAX_CHARS):
        raise ValueError(f"an id is empty or longer than {ID_MAX_CHARS} characters")
    if "\x00" in joined or not (joined.isascii() or _utf8_ok(joined)):
        raise ValueError("an id holds a NUL or a lone surrogate")
    if len(set(ids)) != len(ids):
        raise ValueError("the batch repeats an id")
    return ids, m


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class _LanceRaw:
    """lancedb without the adapter: see the module doc."""

    def __init__(self, spec: dict[str, Any], options: dict[str, Any]):
        os.environ.setdefault("LANCE_LOG", "error")
        import lancedb
        import pyarrow as pa
        self.pa = pa
        self.dim = spec["dim"]
        self.folder = Path(spec["lance_dir"])
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(str(self.folder))
        self.ns = spec["namespace"]
        self.raw_name = spec["namespace"] + "_raw"
        self.index = options.get("index")
        self.schema = pa.schema([pa.field("id", pa.string(), nullable=False),
                                 pa.field("vector", pa.list_(pa.float32(), self.dim), nullable=False)])
        self.raw_t = None
        self.search_t = None
        self.created = False
        self.driver = {"lancedb": lancedb.__version__, "pyarrow": pa.__version__}

    def prepare(self, items: list[tuple[str, np.ndarray]]):
        return items         # the pairs as they are: checking and conversion are timed (_merge)

    def _merge(self, table, items: list[tuple[str, np.ndarray]]) -> None:
        """Check the pairs (``user_checked``), make one Arrow table (the ids,
        the matrix as one flat float32 buffer under a fixed-size list) and
        ``merge_insert`` it."""
        pa = self.pa
        ids, m = user_checked(items, self.dim)
        data = pa.table({"id": pa.array(ids, pa.string()),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), self.dim)},
                        schema=self.schema)
        table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)

    def fresh(self) -> None:
        if self.created:
            self.db.drop_table(self.raw_name)
        elif self.raw_name in self.db.list_tables().tables:
            raise RuntimeError(f"lance table {self.raw_name!r} exists already; not ours to replace")
        self.raw_t = self.db.create_table(self.raw_name, schema=self.schema)
        self.created = True
        self.raw_t.set_unenforced_primary_key("id")

    def load(self, prepared: list) -> None:
        for t in prepared:
            self._merge(self.raw_t, t)

    def open_search(self) -> None:
        self.search_t = self.db.open_table(self.ns)

    def search(self, q: np.ndarray, k: int) -> list[str]:
        b = (self.search_t.search(q, vector_column_name="vector").distance_type("cosine")
             .select(["id", "_distance"]).limit(k))
        if self.index is not None:
            b = b.refine_factor(1)
        return b.to_arrow().column("id").to_pylist()

    def upsert(self, prepared) -> None:
        self._merge(self.raw_t, prepared)

    def disk_bytes(self) -> int | None:
        return dir_bytes(self.folder / f"{self.ns}.lance")

    def pids(self) -> list[int]:
        return []

    def cleanup(self) -> None:
        if self.created:
            self.db.drop_table(self.raw_name)
            self.created = False


class _PgRaw:
    """psycopg without the adapter: see the module doc.

    Two sessions, as on the adapter's side: one loads its own table (as the
    adapter's loading handles do), the other searches and upserts (as the
    adapter's reopened handle does). What a session did before changes its
    cost: on pgvector 0.6 HNSW a session that had loaded a table inserted
    into the graph in 0.65 ms where one that had only searched took 1.6 ms.
    """

    def __init__(self, spec: dict[str, Any], options: dict[str, Any]):
        import psycopg
        from psycopg import sql
        self.sql = sql
        self.dsn = spec["pg_dsn"]
        self.dim = spec["dim"]
        self.index = options.get("index")
        self.conn = self._session()
        self.loader = None
        self.schema = self.conn.execute("SELECT current_schema()").fetchone()[0]
        self.ns = spec["namespace"]
        self.raw_name = spec["namespace"] + "_raw"
        self.t = sql.Identifier(self.schema, self.ns)
        self.raw = sql.Identifier(self.schema, self.raw_name)
        self.q_copy = "COPY pg_temp.bench_stage (id, embedding) FROM STDIN (FORMAT BINARY)"
        self.q_upsert_staged = sql.SQL(
            "INSERT INTO {} (id, embedding) SELECT id, embedding FROM pg_temp.bench_stage ORDER BY id "
            "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding").format(self.raw)
        self.q_store = sql.SQL("INSERT INTO {} (id, embedding) VALUES (%s, %b) "
                               "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding").format(self.t)
        self.q_exact = sql.SQL("SELECT id, embedding <=> %(q)b AS d FROM {} ORDER BY d, id "
                               "LIMIT %(n)s").format(self.t)
        self.q_ann = sql.SQL("SELECT id, d FROM (SELECT id, embedding <=> %(q)b AS d FROM {} "
                             "ORDER BY d LIMIT %(n)s) AS ann ORDER BY d, id").format(self.t)
        self.created = False
        self.ef_search = int(options.get("ef_search", 40))
        self.iterative_scan = options.get("iterative_scan")
        row = self.conn.execute("SELECT current_setting('server_version'), "
                                "(SELECT extversion FROM pg_extension WHERE extname = 'vector')").fetchone()
        self.driver = {"postgres": row[0], "pgvector": row[1], "psycopg": psycopg.__version__}

    def _session(self):
        import psycopg
        from pgvector.psycopg import register_vector
        conn = psycopg.connect(self.dsn, autocommit=True, application_name="vector-dst bench raw")
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")   # as the adapter does at open
        register_vector(conn)
        conn.execute("SELECT '[1]'::vector")                    # load the vector library in this session
        conn.execute("CREATE TEMPORARY TABLE bench_stage (id text NOT NULL, embedding vector NOT NULL) "
                     "ON COMMIT DELETE ROWS")
        return conn

    def prepare(self, items: list[tuple[str, np.ndarray]]):
        return items

    def renew_loader(self) -> None:
        """Drop the loaded table and close its session: the next ``fresh``
        loads in a new session, as each adapter load of dst.bench.inserts
        runs in the new session of a new adapter."""
        if self.loader is None:
            return
        if self.created:
            self.loader.execute(self.sql.SQL("DROP TABLE {}").format(self.raw))
            self.created = False
        self.loader.close()
        self.loader = None

    def fresh(self) -> None:
        sql = self.sql
        if self.loader is None:
            self.loader = self._session()
        if self.created:
            self.loader.execute(sql.SQL("DROP TABLE {}").format(self.raw))
        # No IF NOT EXISTS: a table of that name that is not ours makes this fail.
        self.loader.execute(sql.SQL('CREATE TABLE {} (id text COLLATE "C" PRIMARY KEY, '
                                    'embedding vector({}) NOT NULL)').format(self.raw, sql.Literal(self.dim)))
        self.created = True

    def load(self, prepared: list) -> None:
        """Per batch: ``user_checked``, then one transaction: binary COPY of
        the checked rows into the session's temporary table, row by row with
        pgvector's dumper (``write_row``, as pgvector-python shows bulk
        loading), and one INSERT ... SELECT ... ON CONFLICT DO UPDATE."""
        for batch in prepared:
            ids, m = user_checked(batch, self.dim)
            with self.loader.transaction():
                with self.loader.cursor() as cur:
                    with cur.copy(self.q_copy) as cp:
                        cp.set_types(["text", "vector"])
                        for row in zip(ids, m):
                            cp.write_row(row)
                    cur.execute(self.q_upsert_staged)

    def open_search(self) -> None:
        if self.index is not None:
            self.conn.execute("SELECT set_config('enable_seqscan', 'off', false)")
            self.conn.execute("SELECT set_config('hnsw.ef_search', %s, false)",
                              (str(max(self.ef_search, K)),))
            if self.iterative_scan is not None:
                self.conn.execute("SELECT set_config('hnsw.iterative_scan', %s, false)", (self.iterative_scan,))

    def search(self, q: np.ndarray, k: int) -> list[str]:
        stmt = self.q_ann if self.index is not None else self.q_exact
        return [r[0] for r in self.conn.execute(stmt, {"q": q, "n": k}).fetchall()]

    def upsert(self, prepared) -> None:
        ids, m = user_checked([prepared], self.dim)
        self.conn.execute(self.q_store, (ids[0], m[0]))

    def disk_bytes(self) -> int | None:
        row = self.conn.execute(
            "SELECT pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (self.schema, self.ns)).fetchone()
        return None if row is None else int(row[0])

    def pids(self) -> list[int]:
        return [c.info.backend_pid for c in (self.conn, self.loader) if c is not None]

    def cleanup(self) -> None:
        try:
            if self.created:
                self.conn.execute(self.sql.SQL("DROP TABLE IF EXISTS {}").format(self.raw))
                self.created = False
        finally:
            for c in (self.conn, self.loader):
                if c is not None:
                    c.close()


class _ChromaRaw:
    """chromadb without the adapter: a ``PersistentClient`` on the same
    folder (in one process Chroma shares one System per folder), a
    collection ``<namespace>_raw`` with the same ``hnsw:space``. Insert:
    ``upsert(ids, embeddings)`` per batch, split at the client's maximum
    batch size as the adapter splits. Search: ``query(n_results=k,
    include=["distances"])`` on the adapter's collection. Upsert: a one-row
    ``upsert`` into the raw collection. What the adapter adds is its own
    work: the read of a row's metadata before a write (Chroma's upsert
    merges metadata), the float32 copy of the vector under cosine, score
    conversion and sorting."""

    def __init__(self, spec: dict[str, Any], options: dict[str, Any]):
        import chromadb
        from chromadb.config import Settings
        self.folder = Path(spec["chroma_dir"]).absolute()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.client = chromadb.PersistentClient(path=str(self.folder),
                                                settings=Settings(anonymized_telemetry=False))
        self.max_batch = int(self.client.get_max_batch_size())
        self.ns = spec["namespace"]
        self.raw_name = spec["namespace"] + "_raw"
        self.raw_c = None
        self.search_c = None
        self.created = False
        self.driver = {"chromadb": chromadb.__version__}

    def prepare(self, items: list[tuple[str, np.ndarray]]):
        return [i for i, _ in items], np.stack([v for _, v in items]).astype(np.float32, copy=False)

    def fresh(self) -> None:
        names = {c.name for c in self.client.list_collections()}
        if self.created:
            self.client.delete_collection(self.raw_name)
        elif self.raw_name in names:
            raise RuntimeError(f"chroma collection {self.raw_name!r} exists already; not ours to replace")
        self.raw_c = self.client.create_collection(self.raw_name, metadata={"hnsw:space": "cosine"},
                                                   embedding_function=None)
        self.created = True

    def load(self, prepared: list) -> None:
        for ids, m in prepared:
            for a in range(0, len(ids), self.max_batch):
                self.raw_c.upsert(ids=ids[a:a + self.max_batch], embeddings=m[a:a + self.max_batch])

    def open_search(self) -> None:
        # The bench's namespaces (dstbench_<token>_<i>) are legal Chroma
        # names, so the adapter's collection carries the namespace itself.
        self.search_c = self.client.get_collection(self.ns, embedding_function=None)

    def search(self, q: np.ndarray, k: int) -> list[str]:
        res = self.search_c.query(query_embeddings=q[None, :], n_results=k, include=["distances"])
        return list(res["ids"][0])

    def upsert(self, prepared) -> None:
        i, v = prepared
        self.raw_c.upsert(ids=[i], embeddings=v[None, :])

    def disk_bytes(self) -> int | None:
        return dir_bytes(self.folder)

    def pids(self) -> list[int]:
        return []

    def cleanup(self) -> None:
        try:
            if self.created:
                self.client.delete_collection(self.raw_name)
                self.created = False
        finally:
            self.client.close()


class _QdrantRaw:
    """qdrant-client local mode without the adapter. Local mode locks a
    folder for one client, so the raw side loads and upserts into a folder
    and collection of its own (``<ns>_raw``, cosine, 64-bit hashed point ids with
    the id as the only payload, points built before the clock
    starts), and searches the adapter's collection through the adapter's
    own client (``attach``): ``query_points`` with the same limit and
    payload selector, the ids read from the payload."""

    def __init__(self, spec: dict[str, Any], options: dict[str, Any]):
        import qdrant_client
        from qdrant_client import models
        self.m = models
        self.dim = spec["dim"]
        self.root = Path(spec["qdrant_dir"])
        self.ns = spec["namespace"]
        self.raw_name = spec["namespace"] + "_raw"
        self.folder = self.root / self.raw_name
        self.client = None
        self.search_client = self.search_name = None
        self.driver = {"qdrant-client": qdrant_client.__version__ if hasattr(qdrant_client, "__version__")
                       else _version("qdrant-client")}

    def _point(self, id_: str, v: np.ndarray):
        # An unsigned 64-bit point id hashed from the id (Qdrant takes those
        # or UUIDs); a collision would show as a missing row in the recall.
        pid = int.from_bytes(hashlib.blake2b(id_.encode("utf-8"), digest_size=8).digest(), "little")
        return self.m.PointStruct(id=pid, vector=v.tolist(),
                                  payload={"id": id_})

    def prepare(self, items: list[tuple[str, np.ndarray]]):
        return [self._point(i, v) for i, v in items]

    def fresh(self) -> None:
        from qdrant_client import QdrantClient
        if self.client is None:
            if self.folder.exists():
                raise RuntimeError(f"qdrant folder {self.folder} exists already; not ours to replace")
            self.client = QdrantClient(path=str(self.folder))
        if self.client.collection_exists(self.raw_name):
            self.client.delete_collection(self.raw_name)
        self.client.create_collection(self.raw_name, vectors_config=self.m.VectorParams(
            size=self.dim, distance=self.m.Distance.COSINE))

    def load(self, prepared: list) -> None:
        for batch in prepared:
            self.client.upsert(self.raw_name, points=batch, wait=True)

    def attach(self, adapter: Any) -> None:
        self.search_client, self.search_name = adapter._client, adapter.collection

    def open_search(self) -> None:
        pass

    def search(self, q: np.ndarray, k: int) -> list[str]:
        res = self.search_client.query_points(self.search_name, query=q.tolist(), limit=k, with_payload=["id"])
        return [p.payload["id"] for p in res.points]

    def upsert(self, item) -> None:
        self.client.upsert(self.raw_name, points=[self._point(*item)], wait=True)

    def disk_bytes(self) -> int | None:
        return dir_bytes(self.root / self.ns)

    def pids(self) -> list[int]:
        return []

    def cleanup(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
            shutil.rmtree(self.folder, ignore_errors=True)


class _QdrantEdgeRaw:
    """qdrant-edge-py without the adapter: an ``EdgeShard`` of its own
    (``<ns>_raw/shard`` beside the adapter's folder, cosine) that loads and
    upserts points built before the clock starts (integer point ids, the id
    as the only payload); searches go to the adapter's own shard
    (``attach``: one open handle per shard folder) with the adapter's
    request (``Nearest``, the same limit, ``with_payload=["id"]``,
    ``SearchParams(exact=True)``), the ids read from the payload. What the
    adapter adds: validation, the vector copy it keeps in the payload under
    cosine, score conversion and sorting."""

    def __init__(self, spec: dict[str, Any], options: dict[str, Any]):
        import qdrant_edge
        self.qe = qdrant_edge
        self.dim = spec["dim"]
        self.root = Path(spec["qdrant_edge_dir"])
        self.ns = spec["namespace"]
        self.folder = self.root / (spec["namespace"] + "_raw")
        self.shard = self.search_shard = None
        self.numbers: dict[str, int] = {}
        self.driver = {"qdrant-edge-py": _version("qdrant-edge-py")}

    def _point(self, id_: str, v: np.ndarray):
        # Unsigned integer point ids, one per protocol id in first-seen order
        # (Qdrant takes ints or UUIDs; a raw user with string ids would number
        # them), the id in the payload.
        n = self.numbers.setdefault(id_, len(self.numbers))
        return self.qe.Point(n, v.tolist(), {"id": id_})

    def prepare(self, items: list[tuple[str, np.ndarray]]):
        return [self._point(i, v) for i, v in items]

    def fresh(self) -> None:
        qe = self.qe
        if self.shard is not None:
            self.shard.close()
            shutil.rmtree(self.folder)
        elif self.folder.exists():
            raise RuntimeError(f"qdrant-edge folder {self.folder} exists already; not ours to replace")
        self.folder.mkdir(parents=True)
        self.shard = qe.EdgeShard.create(str(self.folder / "shard"), qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=qe.Distance.Cosine)))

    def load(self, prepared: list) -> None:
        for points in prepared:
            self.shard.update(self.qe.UpdateOperation.upsert_points(points))

    def attach(self, adapter: Any) -> None:
        self.search_shard = adapter._shard

    def open_search(self) -> None:
        pass

    def search(self, q: np.ndarray, k: int) -> list[str]:
        qe = self.qe
        res = self.search_shard.query(qe.QueryRequest(limit=k, query=qe.Query.Nearest(q.tolist()),
                                                      with_payload=["id"], params=qe.SearchParams(exact=True)))
        return [p.payload["id"] for p in res]

    def upsert(self, prepared) -> None:
        self.shard.update(self.qe.UpdateOperation.upsert_points(prepared))

    def disk_bytes(self) -> int | None:
        return dir_bytes(self.root / self.ns)

    def pids(self) -> list[int]:
        return []

    def cleanup(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
            shutil.rmtree(self.folder, ignore_errors=True)


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


class _MilvusRaw:
    """pymilvus without the adapter: see the module doc."""

    def __init__(self, spec: dict[str, Any], options: dict[str, Any]):
        import milvus_lite
        import pymilvus
        self.dim = spec["dim"]
        self.ns = spec["namespace"]
        self.raw_name = spec["namespace"] + "_raw"
        self.db = str(Path(spec["milvus_dir"]) / f"{self.ns}.db")
        self.index = options.get("index", "FLAT")
        self.c = None
        self.created = False
        self.driver = {"pymilvus": pymilvus.__version__, "milvus-lite": milvus_lite.__version__}

    def _client(self):
        # A client per phase: the adapter's close() may have stopped the
        # server a client of ours was connected to.
        from pymilvus import MilvusClient
        self.c = MilvusClient(self.db)
        return self.c

    def prepare(self, items: list[tuple[str, np.ndarray]]):
        return [{"id": i, "v": v.tolist(), "attrs": {}} for i, v in items]

    def fresh(self) -> None:
        from pymilvus import DataType
        c = self._client()
        if self.created:
            c.drop_collection(self.raw_name)
        elif c.has_collection(self.raw_name):
            raise RuntimeError(f"milvus collection {self.raw_name!r} exists already; not ours to replace")
        s = c.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=1024)
        s.add_field("v", DataType.FLOAT_VECTOR, dim=self.dim)
        s.add_field("attrs", DataType.JSON)
        ip = c.prepare_index_params()
        ip.add_index("v", index_type=self.index, metric_type="COSINE")
        c.create_collection(self.raw_name, schema=s, consistency_level="Strong")
        c.create_index(self.raw_name, ip, sync=False)
        c.load_collection(self.raw_name)
        self.created = True

    def load(self, prepared: list) -> None:
        for rows in prepared:
            self.c.upsert(self.raw_name, rows)

    def open_search(self) -> None:
        self._client()

    def search(self, q: np.ndarray, k: int) -> list[str]:
        res = self.c.search(self.ns, [q.tolist()], anns_field="v", limit=k, filter="", output_fields=["id"],
                            consistency_level="Strong", search_params={"metric_type": "COSINE", "params": {}})
        return [h["id"] for h in res[0]]

    def upsert(self, prepared) -> None:
        self.c.upsert(self.raw_name, prepared)

    def disk_bytes(self) -> int | None:
        return dir_bytes(Path(self.db))

    def pids(self) -> list[int]:
        return []

    def cleanup(self) -> None:
        if self.created:
            self._client().drop_collection(self.raw_name)
            self.created = False


RAW_DRIVERS = {"lance": _LanceRaw, "pgvector": _PgRaw, "chroma": _ChromaRaw, "qdrant": _QdrantRaw,
               "qdrant-edge": _QdrantEdgeRaw, "milvus": _MilvusRaw}


# -- one row -------------------------------------------------------------------------------

def empty_row(spec: dict[str, Any]) -> dict[str, Any]:
    backend, options, label = VARIANTS[spec["variant"]]
    row: dict[str, Any] = {k: None for k in ROW_KEYS}
    row.update(variant=spec["variant"], label=label, backend=backend, index=options.get("index"),
               n=spec["n"], dim=spec["dim"], exact=options.get("index") is None and backend not in ANN_ONLY,
               status="error",
               namespace=spec.get("namespace"))
    return row


def _location(spec: dict[str, Any], backend: str) -> str | None:
    # A backend by factory path (tests' broken backends) gets spec["location"].
    return {"sim": "dst-bench", "lance": spec.get("lance_dir"), "pgvector": spec.get("pg_dsn"),
            "chroma": spec.get("chroma_dir"), "qdrant": spec.get("qdrant_dir"),
            "qdrant-edge": spec.get("qdrant_edge_dir"),
            "milvus": spec.get("milvus_dir")}.get(backend, spec.get("location"))


def run_row(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None] = lambda m: None) -> dict[str, Any]:
    """Measure one row (see the module doc); never raises: a failure comes
    back as ``status: error`` with the phase it happened in."""
    from dst.backend import BackendConfig, resolve_backend

    t_row = wallclock.monotonic_s()
    backend, options, _ = VARIANTS[spec["variant"]]
    row = empty_row(spec)
    row["load_avg"] = load_avg()
    n, dim, nq = spec["n"], spec["dim"], spec["queries"]
    phase = ["data"]

    def step(name: str, done: int = 0, total: int = 0) -> None:
        phase[0] = name
        emit({"event": "progress", "phase": name, "done": done, "total": total})

    adapter = raw = None
    try:
        step("data")
        data, queries = make_data(n, dim, nq, spec.get("seed", 0), spec.get("data", "lowrank"))
        truth = Truth(data, queries, K)
        k = truth.k
        sample = reach_sample(n, spec.get("seed", 0))
        reach_truth = Truth(data, data[sample], K)
        ids = [row_id(i) for i in range(n)]
        bs = max(1, int(spec.get("batch_size", 10_000)))
        batches = [list(zip(ids[a:a + bs], data[a:a + bs])) for a in range(0, n, bs)]
        rounds = int(spec.get("rounds", 1))
        factory = resolve_backend(backend)
        # "server" picked the row's DSN (run_rows); the adapter gets the DSN.
        config = BackendConfig(dim=dim, location=_location(spec, backend), namespace=spec["namespace"],
                               fresh=True, options={k: v for k, v in options.items() if k != "server"})
        if backend in RAW_DRIVERS:
            step("raw driver")
            raw = RAW_DRIVERS[backend](spec, options)
            row["driver"] = raw.driver
            emit({"event": "pids", "pids": raw.pids()})

        # -- batch insert (adapter) ----------------------------------------------------------
        base = rss_mb()
        peak_ok = reset_peak_rss()
        load_s: list[float] = []
        if backend == "lance":
            # The worker's first large merge_insert pays Lance's start-up
            # (seconds, measured: 2.6-4.0 s against 0.2-0.6 s after it); the
            # raw driver's loads come later, in a warm process. One untimed
            # load of the first batch, into the table round 0 replaces.
            adapter = factory(config)
            adapter.store_batch(batches[0])
        for r in range(rounds):
            step("insert", r, rounds)
            if adapter is not None:
                adapter.close()
            adapter = factory(config)
            emit({"event": "pids", "pids": [p for p in [getattr(adapter, "_pid", None)] if p]})
            if backend == "pgvector":
                # The first vector in a new server session loads pgvector's
                # library; the raw session did that already.
                adapter.store_batch(batches[0][:1])
                adapter.delete(batches[0][0][0])
            t = 0.0
            for batch in batches:
                dt, _ = _timed(lambda: adapter.store_batch(batch))
                t += dt
            load_s.append(t)
        if adapter.count() != n:
            raise RuntimeError(f"count() is {adapter.count()} after loading {n} rows")
        row["insert_rounds"] = rounds
        row["insert_s"] = round(median(load_s), 4)
        row["insert_rows_per_s"] = round(n / max(median(load_s), 1e-9), 1)

        # -- index ------------------------------------------------------------------------------
        if options.get("index") is not None:
            step("index build")
            dt, _ = _timed(lambda: adapter.maintenance("index"))
            row["index_build_s"] = round(dt, 3)

        # -- search -----------------------------------------------------------------------------
        # Search (and upsert) through a handle opened after the load, as a
        # reader would. The pgvector session that loaded the table and built
        # its HNSW index searched it about 20 % faster than any other session
        # (raw SQL included), which would flatter the adapter against the raw
        # driver's session.
        step("reopen")
        adapter.close()
        adapter = factory(replace(config, fresh=False))
        emit({"event": "pids", "pids": [p for p in [getattr(adapter, "_pid", None)] if p]})
        if adapter.count() != n:
            raise RuntimeError(f"count() is {adapter.count()} after reopening {n} rows")
        step("search", 0, nq)
        if raw is not None:
            if hasattr(raw, "attach"):    # a raw driver that searches through the adapter's client
                raw.attach(adapter)
            raw.open_search()
        for q in queries[:WARMUP_QUERIES]:
            adapter.search(q, k)
            if raw is not None:
                raw.search(q, k)
        lat, raw_lat, found, raw_found = [], [], [], []

        def ours(i: int) -> None:
            dt, hits = _timed(lambda: adapter.search(queries[i], k))
            lat.append(dt)
            found.append([h.id for h in hits])

        def theirs(i: int) -> None:
            dt, got = _timed(lambda: raw.search(queries[i], k))
            raw_lat.append(dt)
            raw_found.append(got)

        _alternate(nq, ours, theirs if raw is not None else None, lambda done: step("search", done, nq))
        row["queries"] = nq
        row["search_p50_ms"] = _ms(lat, 50)
        row["search_p95_ms"] = _ms(lat, 95)
        rec = truth.recall(found)
        row["recall_at_10"] = None if rec is None else round(rec, 4)

        # -- memory and disk -----------------------------------------------------------------
        now, peak = rss_mb(), peak_rss_mb()
        if base is not None and now is not None:
            row["rss_growth_mb"] = round(now - base, 1)
        if peak_ok and base is not None and peak is not None:
            row["peak_rss_growth_mb"] = round(peak - base, 1)
        if raw is not None:
            b = raw.disk_bytes()
            row["disk_mb"] = None if b is None else round(b / 2**20, 2)

        # -- reachability: sampled rows, each searched by its own vector --------------------------
        step("reachability", 0, len(sample))
        row.update(reachability(sample, reach_truth, lambda i: [h.id for h in adapter.search(data[i], k)]))
        del reach_truth

        # -- raw batch insert ------------------------------------------------------------------
        raw_out: dict[str, Any] = {}
        if raw is not None:
            prepared = [raw.prepare(b) for b in batches]
            raw_load: list[float] = []
            cmp_load: list[float] = []
            compare = backend in ("lance", "pgvector")
            for r in range(rounds):
                step("raw insert", r, rounds)
                # lance, pgvector: the adapter loads again, into a namespace
                # of its own, taking turns with the raw driver (who goes
                # first alternates), so both load in the same process state
                # and machine load; the insert ratio compares these rounds.
                for side in ("adapter", "raw") if r % 2 == 0 else ("raw", "adapter"):
                    if side == "adapter":
                        if compare:
                            cmp_load.append(_compare_load(factory, config, backend, batches, emit))
                        continue
                    if backend == "pgvector":
                        raw.renew_loader()   # each side loads in a new session, as _compare_load's adapter does
                    raw.fresh()
                    emit({"event": "pids", "pids": raw.pids()})
                    dt, _ = _timed(lambda: raw.load(prepared))
                    raw_load.append(dt)
            del prepared
            raw_out["insert_s"] = round(median(raw_load), 4)
            raw_out["insert_rows_per_s"] = round(n / max(median(raw_load), 1e-9), 1)
            if cmp_load:
                raw_out["adapter_insert_s"] = round(median(cmp_load), 4)
                raw_out["adapter_insert_rows_per_s"] = round(n / max(median(cmp_load), 1e-9), 1)
            raw_out["search_p50_ms"] = _ms(raw_lat, 50)
            raw_out["search_p95_ms"] = _ms(raw_lat, 95)
            rr = truth.recall(raw_found)
            raw_out["recall_at_10"] = None if rr is None else round(rr, 4)

        # -- single upserts --------------------------------------------------------------------
        # Each side replaces the vector of rows of its own: the adapter in
        # the first half of the ids, the raw driver at the same offsets in
        # the second half, so no row or heap page is shared. The new vector
        # is the row's own rotated by one component (same norm, a vector no
        # row holds). An update that leaves the vector as it was costs far
        # less on pgvector HNSW when its page has room (about 0.2 against
        # 0.7 ms at 1k rows: likely a HOT update, no index entry), and which
        # rows get that depends on the page layout, not on the adapter.
        half = n // 2
        cnt = min(half, int(spec.get("upserts", 100)) + WARMUP_UPSERTS)
        mine = [(j * half) // cnt for j in range(cnt)] if cnt else []
        theirs_rows = [half + i for i in mine]
        new_vec = {i: np.roll(data[i], 1) for i in mine + theirs_rows}
        warm = min(WARMUP_UPSERTS, max(0, len(theirs_rows) - 1))
        n_up = min(len(mine), len(theirs_rows)) - warm
        step("upsert", 0, n_up)
        raw_items = [raw.prepare([(ids[i], new_vec[i])]) if backend in ("lance", "milvus", "qdrant-edge")
                     else (ids[i], new_vec[i])
                     for i in theirs_rows] if raw is not None else []
        for w in range(warm):            # taking turns
            adapter.store(ids[mine[w]], new_vec[mine[w]])
            if raw is not None:
                raw.upsert(raw_items[w])
        up, raw_up = [], []

        def ours_up(j: int) -> None:
            i = mine[warm + j]
            up.append(_timed(lambda: adapter.store(ids[i], new_vec[i]))[0])

        def theirs_up(j: int) -> None:
            raw_up.append(_timed(lambda: raw.upsert(raw_items[warm + j]))[0])

        _alternate(n_up, ours_up, theirs_up if raw is not None else None)
        row["upsert_p50_ms"] = _ms(up, 50)
        row["upsert_p95_ms"] = _ms(up, 95)
        if raw is not None:
            raw_out["upsert_p50_ms"] = _ms(raw_up, 50)
            row["raw"] = raw_out
            adapter_insert_s = raw_out.get("adapter_insert_s", row["insert_s"])
            raw_out["insert_ratio"] = _ratio(raw_out["insert_s"], adapter_insert_s)
            row["overhead"] = {
                "insert": _ratio(adapter_insert_s, raw_out["insert_s"]),
                "upsert": _ratio(row["upsert_p50_ms"], raw_out["upsert_p50_ms"]),
                "search": _ratio(row["search_p50_ms"], raw_out["search_p50_ms"]),
            }
        if adapter.count() != n:
            raise RuntimeError(f"count() is {adapter.count()} after {n_up} upserts of existing ids")
        row["status"] = "ok"
    except BaseException as exc:  # noqa: BLE001 - a row's failure is a figure, not a crash
        row["status"] = "error"
        row["error"] = f"{phase[0]}: {describe(exc)}"
        if isinstance(exc, KeyboardInterrupt):
            raise
    finally:
        step("cleanup")
        problems = []
        for what, fn in (("drop", getattr(adapter, "drop", None)), ("raw cleanup", getattr(raw, "cleanup", None))):
            if fn is None:
                continue
            try:
                fn()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{what}: {describe(exc)}")
        if problems and row["status"] == "ok":
            row["status"] = "error"
            row["error"] = "; ".join(problems)
        row["elapsed_s"] = round(wallclock.monotonic_s() - t_row, 2)
    return row


def _compare_load(factory: Callable[[Any], Any], config: Any, backend: str, batches: list,
                  emit: Callable[[dict[str, Any]], None]) -> float:
    """One timed load of every batch by a fresh adapter in the namespace
    ``<namespace>_cmp`` (dropped after): the adapter's side of the
    interleaved insert comparison. Seconds."""
    cmp = factory(replace(config, namespace=config.namespace + CMP_SUFFIX, fresh=True))
    try:
        emit({"event": "pids", "pids": [p for p in [getattr(cmp, "_pid", None)] if p]})
        if backend == "pgvector":      # the session loads pgvector's library, as in the first rounds
            cmp.store_batch(batches[0][:1])
            cmp.delete(batches[0][0][0])
        t = 0.0
        for batch in batches:
            dt, _ = _timed(lambda: cmp.store_batch(batch))
            t += dt
        if cmp.count() != sum(len(b) for b in batches):
            raise RuntimeError(f"count() is {cmp.count()} after the comparison load")
        return t
    finally:
        cmp.drop()


def _alternate(count: int, ours: Callable[[int], None], theirs: Callable[[int], None] | None,
               on_block: Callable[[int], None] = lambda done: None) -> None:
    """``ours(i)`` and ``theirs(i)`` for every i, in blocks of ALTERNATE_BLOCK:
    one side runs the block, then the other, and who goes first alternates
    block by block, so load that drifts hits both sides alike. (Alternating
    call by call made the raw side about 10 % slower than the adapter on
    pgvector HNSW, in whichever position; in blocks the two came out level,
    as they do run one after the other.)"""
    for b, start in enumerate(range(0, count, ALTERNATE_BLOCK)):
        block = range(start, min(count, start + ALTERNATE_BLOCK))
        for side in ((ours, theirs) if b % 2 == 0 else (theirs, ours)):
            if side is not None:
                for i in block:
                    side(i)
        on_block(block[-1] + 1)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 3)


# -- rows in worker processes ------------------------------------------------------------

@dataclass
class BackendPlan:
    variants: list[str]
    sizes: list[int]
    dims: list[int]
    queries: int = 200
    upserts: int = 100
    batch_size: int = 10_000
    data: str = "lowrank"
    seed: int = 0
    row_timeout_s: float = 1800.0
    pg_location: str | None = None
    pg_maintenance_work_mem: str | None = "1GB"
    # The folder the run's temporary store folder is made in (lance, chroma,
    # qdrant, qdrant-edge, milvus); None: the system's temporary folder.
    store_dir: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def specs(self) -> list[dict[str, Any]]:
        out = []
        for dim in self.dims:
            for n in self.sizes:
                for v in self.variants:
                    out.append({"variant": v, "n": n, "dim": dim, "queries": self.queries,
                                "upserts": self.upserts, "batch_size": self.batch_size,
                                "rounds": INSERT_ROUNDS,
                                "data": self.data, "seed": self.seed})
        return out


def _pg_dsn(location: str | None, maintenance_work_mem: str | None, server: str | None = None) -> str:
    """The DSN rows connect to; the embedded server is started here, in the
    parent, so it stays up across rows (and stops at exit if we started it).
    ``server``: the kind of embedded server (a variant's), None the default."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from dst import pg_embedded
    dsn = pg_embedded.resolve(location, server)
    if maintenance_work_mem:
        # pgvector builds an HNSW graph fast only while it fits in
        # maintenance_work_mem (64MB by default); a session setting, for the
        # adapter and the raw driver alike.
        opts = conninfo_to_dict(dsn).get("options") or ""
        dsn = make_conninfo(dsn, options=f"{opts} -c maintenance_work_mem={maintenance_work_mem}".strip())
    return dsn


def _kill_server_sessions(dsn: str, pids: list[int]) -> None:
    import psycopg
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _cleanup_failed(spec: dict[str, Any], pids: list[int]) -> str | None:
    """After a worker was killed or died: end its server sessions and drop
    the tables its row made (names unique to this run). None or a problem."""
    backend = VARIANTS[spec["variant"]][0]
    if backend != "pgvector" or not spec.get("pg_dsn"):
        return None     # sim lives in the worker; lance's folder is removed with the run's temp folder
    try:
        import psycopg
        from psycopg import sql

        from dst.backend import BackendConfig, resolve_backend
        if pids:
            _kill_server_sessions(spec["pg_dsn"], pids)
        b = resolve_backend("pgvector")(BackendConfig(dim=spec["dim"], location=spec["pg_dsn"],
                                                       namespace=spec["namespace"], fresh=False))
        b.drop()
        try:                    # the insert comparison's namespace, if the worker got that far
            resolve_backend("pgvector")(BackendConfig(dim=spec["dim"], location=spec["pg_dsn"],
                                                      namespace=spec["namespace"] + CMP_SUFFIX,
                                                      fresh=False)).drop()
        except Exception:  # noqa: BLE001 - none to drop
            pass
        with psycopg.connect(spec["pg_dsn"], autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(spec["namespace"] + "_raw")))
        return None
    except Exception as exc:  # noqa: BLE001
        return f"cleanup after the failure: {describe(exc)}"


def run_in_worker(spec: dict[str, Any], timeout_s: float,
                  on_event: Callable[[dict[str, Any]], None] = lambda m: None) -> dict[str, Any]:
    """Run one row in a fresh Python process; a crash, a hang past
    ``timeout_s`` or a worker that says nothing becomes an error row."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env.setdefault("LANCE_LOG", "error")
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    result: dict[str, Any] | None = None
    pids: list[int] = []
    why = None
    with tempfile.TemporaryFile("w+", errors="replace") as err:
        proc = subprocess.Popen([sys.executable, "-m", "dst.bench.backends"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        lines: queue.Queue = queue.Queue()

        def read() -> None:
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = wallclock.Deadline(timeout_s)
        try:
            proc.stdin.write(json.dumps(spec))
            proc.stdin.close()
            while True:
                try:
                    line = lines.get(timeout=0.25)
                except queue.Empty:
                    if deadline.expired():
                        why = f"timed out after {timeout_s:g} s (row timeout; worker killed)"
                        proc.kill()     # our own child, by its handle
                        break
                    continue
                if line is None:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("event") == "result":
                    result = msg["row"]
                    deadline = wallclock.Deadline(EXIT_GRACE_S)   # only exiting is left
                elif msg.get("event") == "pids":
                    pids.extend(p for p in msg.get("pids", []) if p not in pids)
                else:
                    on_event(msg)
        except BaseException:
            proc.kill()
            proc.wait()
            _cleanup_failed(spec, pids)
            raise
        code = proc.wait()
        reader.join(timeout=5)
        if result is None:
            err.seek(0)
            tail = err.read()[-ERR_TAIL:].strip()
            why = why or f"worker exited with code {code} without a result" + (f": {tail}" if tail else "")
    if result is not None:
        return result
    row = empty_row(spec)
    problem = _cleanup_failed(spec, pids)
    row["error"] = why + (f"; {problem}" if problem else "")
    return row


def run_rows(plan: BackendPlan, on_row_start: Callable[[int, dict[str, Any]], None] = lambda i, s: None,
             on_event: Callable[[int, dict[str, Any]], None] = lambda i, m: None,
             on_row_done: Callable[[int, dict[str, Any]], None] = lambda i, r: None) -> list[dict[str, Any]]:
    """Every row of the plan, one worker each; rows in plan order."""
    specs = plan.specs()
    tmp = Path(tempfile.mkdtemp(prefix="dst-bench-", dir=plan.store_dir))
    token = "".join(c for c in tmp.name.rsplit("-", 1)[-1].lower() if c.isalnum())[:10] or "run"
    pg_dsns: dict[str | None, str | None] = {}     # server -> DSN (None: the default)
    pg_errors: dict[str | None, str] = {}
    rows: list[dict[str, Any]] = []
    try:
        for server in dict.fromkeys(VARIANTS[s["variant"]][1].get("server") for s in specs
                                    if VARIANTS[s["variant"]][0] == "pgvector"):
            try:
                pg_dsns[server] = _pg_dsn(plan.pg_location, plan.pg_maintenance_work_mem, server)
            except Exception as exc:  # noqa: BLE001 - reported per row
                pg_errors[server] = f"PostgreSQL unavailable: {describe(exc)}"
        for i, spec in enumerate(specs):
            server = VARIANTS[spec["variant"]][1].get("server")
            spec.update(namespace=f"dstbench_{token}_{i}", lance_dir=str(tmp / "lance"),
                        pg_dsn=pg_dsns.get(server), chroma_dir=str(tmp / "chroma"),
                        qdrant_dir=str(tmp / "qdrant"), qdrant_edge_dir=str(tmp / "qdrant-edge"),
                        milvus_dir=str(tmp / "milvus"))
            on_row_start(i, spec)
            if VARIANTS[spec["variant"]][0] == "pgvector" and server in pg_errors:
                row = empty_row(spec)
                row["error"] = pg_errors[server]
            else:
                row = run_in_worker(spec, plan.row_timeout_s, lambda m, i=i: on_event(i, m))
            rows.append(row)
            on_row_done(i, row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    plan.rows = rows
    return rows


def _worker() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                      # anything a library prints goes to stderr
    sys.stdout = sys.stderr

    def emit(msg: dict[str, Any]) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    spec = json.loads(sys.stdin.read())
    row = run_row(spec, emit)
    emit({"event": "result", "row": row})
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
