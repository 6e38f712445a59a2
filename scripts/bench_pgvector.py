"""Benchmark: the pgvector backend against raw psycopg doing the same work.

    .venv/bin/python scripts/bench_pgvector.py [--n 10000] [--dim 128] [--queries 200]
                                               [--location DSN] [--json PATH]

Same server, same data, same statements; the adapter adds validation,
the liveness check before each call, the ownership bookkeeping and the
exact-tie ordering. Figures:

* batch insert (COPY): ``store_batch`` of all n vectors into an empty
  table, against raw psycopg running (a) the same transaction (binary COPY
  into a temporary table, one INSERT ... SELECT ... ON CONFLICT DO UPDATE)
  and (b) a plain binary COPY straight into the table (no upsert);
* exact search p50 (limit 10), against the same SQL through psycopg;
* HNSW search p50 and recall@10 at two ef_search values, against psycopg
  running the bare index query (``ORDER BY embedding <=> q LIMIT 10``).

Recall is measured against the float64 exact top 10 of the stored float32
vectors. Vectors are standard normal (the hard case for an HNSW graph).
Prints a table and, with --json, writes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backends.pgvector import open_backend  # noqa: E402
from dst import pg_embedded, wallclock  # noqa: E402
from dst.backend import BackendConfig  # noqa: E402

K = 10
ROUNDS = 9          # batch loads per side; the median is reported


def timed(fn):
    t0 = wallclock.monotonic_s()
    out = fn()
    return wallclock.monotonic_s() - t0, out


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    d = data.astype(np.float64)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    scores = q @ d.T
    out = []
    for row in scores:
        # by score descending, ties by index (= by id, zero-padded)
        order = np.lexsort((np.arange(len(row)), -row))[:k]
        out.append([int(i) for i in order])
    return out


def recall(found: list[list[str]], truth: list[list[int]], ids: list[str]) -> float:
    hit = sum(len(set(f) & {ids[i] for i in t}) for f, t in zip(found, truth))
    return hit / (len(truth) * K)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef", type=int, nargs=2, default=[40, 200], help="two ef_search values")
    ap.add_argument("--location", default=None, help="DSN (default: DST_PG_DSN or the embedded server)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    dsn = pg_embedded.resolve(args.location)
    rng = np.random.default_rng(2026)
    data = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    ids = [f"v{i:06d}" for i in range(args.n)]
    items = list(zip(ids, data))
    truth = exact_topk(data, queries, K)
    res: dict = {"n": args.n, "dim": args.dim, "queries": args.queries, "k": K,
                 "python": platform.python_version(), "machine": platform.platform()}

    raw = psycopg.connect(dsn, autocommit=True)
    register_vector(raw)
    res["server"] = raw.execute("SHOW server_version").fetchone()[0]
    res["pgvector"] = raw.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    raw_t = sql.Identifier("bench_raw")

    def raw_fresh():
        raw.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(raw_t))
        raw.execute(sql.SQL('CREATE TABLE {} (id text COLLATE "C" PRIMARY KEY, embedding vector({}) NOT NULL)')
                    .format(raw_t, sql.Literal(args.dim)))

    raw.execute("CREATE TEMP TABLE IF NOT EXISTS raw_staging (id text NOT NULL, embedding vector NOT NULL) "
                "ON COMMIT DELETE ROWS")

    def raw_upsert_load():
        with raw.transaction():
            with raw.cursor() as cur:
                with cur.copy("COPY pg_temp.raw_staging (id, embedding) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.set_types(["text", "vector"])
                    for row in items:
                        cp.write_row(row)
                cur.execute(sql.SQL("INSERT INTO {} (id, embedding) SELECT id, embedding FROM "
                                    "pg_temp.raw_staging ORDER BY id ON CONFLICT (id) DO UPDATE "
                                    "SET embedding = EXCLUDED.embedding").format(raw_t))

    def raw_copy_load():
        with raw.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} (id, embedding) FROM STDIN (FORMAT BINARY)").format(raw_t)) as cp:
                cp.set_types(["text", "vector"])
                for row in items:
                    cp.write_row(row)

    def adapter(**options):
        return open_backend(BackendConfig(dim=args.dim, location=dsn, namespace="bench_adapter",
                                          fresh=True, options=options))

    # -- batch insert ----------------------------------------------------------------
    t_adapter, t_same, t_copy = [], [], []
    for _ in range(ROUNDS):
        b = adapter()
        # Warm the new session as raw's is warm (the vector library loads in
        # each new server process at first use): one row in and out.
        b.store_batch(items[:1])
        b.delete(items[0][0])
        t_adapter.append(timed(lambda: b.store_batch(items))[0])
        assert b.count() == args.n
        b.close()
        raw_fresh()
        t_same.append(timed(raw_upsert_load)[0])
        raw_fresh()
        t_copy.append(timed(raw_copy_load)[0])
    a, s, c = (statistics.median(x) for x in (t_adapter, t_same, t_copy))
    res["batch_insert"] = {
        "adapter_s": round(a, 4), "raw_same_work_s": round(s, 4), "raw_plain_copy_s": round(c, 4),
        "adapter_rows_per_s": round(args.n / a), "raw_same_work_rows_per_s": round(args.n / s),
        "raw_plain_copy_rows_per_s": round(args.n / c),
        "throughput_ratio_vs_same_work": round(s / a, 3), "throughput_ratio_vs_plain_copy": round(c / a, 3),
    }

    # -- exact search ------------------------------------------------------------------
    b = adapter()
    b.store_batch(items)
    b.maintenance("vacuum")
    raw.execute(sql.SQL("VACUUM (ANALYZE) {}").format(raw_t))
    q_exact = sql.SQL("SELECT id, embedding <=> %(q)b AS d FROM {} ORDER BY d, id LIMIT %(n)s").format(raw_t)

    def search_adapter(backend):
        lat, found = [], []
        for q in queries:
            dt, hits = timed(lambda: backend.search(q, K))
            lat.append(dt)
            found.append([h.id for h in hits])
        return lat, found

    def search_raw(query):
        lat, found = [], []
        for q in queries:
            dt, rows = timed(lambda: raw.execute(query, {"q": q, "n": K}).fetchall())
            lat.append(dt)
            found.append([r[0] for r in rows])
        return lat, found

    search_adapter(b)                       # warm both (caches, prepared statements)
    search_raw(q_exact)
    la, fa = search_adapter(b)
    lr, fr = search_raw(q_exact)
    res["exact_search"] = {
        "adapter_p50_ms": round(p50_ms(la), 3), "raw_p50_ms": round(p50_ms(lr), 3),
        "latency_ratio": round(p50_ms(la) / p50_ms(lr), 3),
        "adapter_recall": recall(fa, truth, ids), "raw_recall": recall(fr, truth, ids),
    }
    b.drop()

    # -- HNSW ---------------------------------------------------------------------------
    res["hnsw"] = []
    b = adapter(index="hnsw", m=16, ef_construction=64, ef_search=args.ef[0])
    b.store_batch(items)
    build_s = timed(lambda: b.maintenance("index"))[0]
    raw.execute(sql.SQL("CREATE INDEX IF NOT EXISTS bench_raw_hnsw ON {} USING hnsw "
                        "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)").format(raw_t))
    raw.execute(sql.SQL("ANALYZE {}").format(raw_t))
    q_ann = sql.SQL("SELECT id, embedding <=> %(q)b AS d FROM {} ORDER BY d LIMIT %(n)s").format(raw_t)
    plan = "\n".join(r[0] for r in raw.execute(sql.SQL("EXPLAIN ") + q_ann, {"q": queries[0], "n": K}))
    assert "bench_raw_hnsw" in plan, plan
    assert any("dst_ann_" in line for line in b.explain_search(queries[0], K))
    for ef in args.ef:
        b.opts["ef_search"] = ef                 # the option, changed between runs
        raw.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef),))
        search_adapter(b)
        search_raw(q_ann)
        la, fa = search_adapter(b)
        lr, fr = search_raw(q_ann)
        res["hnsw"].append({
            "ef_search": ef, "adapter_p50_ms": round(p50_ms(la), 3), "raw_p50_ms": round(p50_ms(lr), 3),
            "latency_ratio": round(p50_ms(la) / p50_ms(lr), 3),
            "adapter_recall_at_10": round(recall(fa, truth, ids), 4),
            "raw_recall_at_10": round(recall(fr, truth, ids), 4),
        })
    res["hnsw_build_s"] = round(build_s, 3)
    b.drop()
    raw.execute(sql.SQL("DROP TABLE {}").format(raw_t))
    raw.close()

    bi = res["batch_insert"]
    print(f"pgvector backend vs raw psycopg, n={args.n} dim={args.dim} ({res['server']}, "
          f"pgvector {res['pgvector']}); medians")
    print(f"batch insert  adapter {bi['adapter_s']:.3f} s ({bi['adapter_rows_per_s']} rows/s); "
          f"raw same work {bi['raw_same_work_s']:.3f} s (ratio {bi['throughput_ratio_vs_same_work']}); "
          f"raw plain COPY {bi['raw_plain_copy_s']:.3f} s (ratio {bi['throughput_ratio_vs_plain_copy']})")
    ex = res["exact_search"]
    print(f"exact search  p50 adapter {ex['adapter_p50_ms']:.3f} ms, raw {ex['raw_p50_ms']:.3f} ms "
          f"(x{ex['latency_ratio']}); recall {ex['adapter_recall']}")
    print(f"hnsw build    {res['hnsw_build_s']:.3f} s")
    for h in res["hnsw"]:
        print(f"hnsw ef={h['ef_search']:<4} p50 adapter {h['adapter_p50_ms']:.3f} ms, raw {h['raw_p50_ms']:.3f} ms "
              f"(x{h['latency_ratio']}); recall@10 adapter {h['adapter_recall_at_10']}, "
              f"raw {h['raw_recall_at_10']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
