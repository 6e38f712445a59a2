"""``dst bench``: backend, harness and checker benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dst.argtypes import positive, seconds
from dst.argtypes import seed as seed_number
from dst.console import EXIT_OK, progress
from dst.errors import UsageError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    bench = subparsers.add_parser("bench", help="backend, harness and checker benchmarks")
    bench.add_argument("--backends", default="sim,lance,pgvector",
                       help="sim, lance, pgvector, chroma, qdrant, milvus (each exact and with its index), "
                            "or variants: sim, lance, lance-hnsw-sq, pgvector, pgvector-hnsw, "
                            "pgvector-hnsw-iter (strict_order), pgvector-pg16, pgvector-hnsw-pg16, chroma, "
                            "qdrant, qdrant-edge, milvus, milvus-hnsw (default: sim,lance,pgvector)")
    bench.add_argument("--sizes", help="vectors per row, comma-separated (default: 1000,10000,100000; "
                                       "--quick: 1000,10000)")
    bench.add_argument("--dims", help="dimensions, comma-separated (default: 128,768; --quick: 128)")
    bench.add_argument("--queries", type=positive, help="search queries per row (default: 200; --quick: 100)")
    bench.add_argument("--upserts", type=positive, help="single upserts timed per row (default: 100; --quick: 50)")
    bench.add_argument("--batch-size", type=positive, default=10_000,
                       help="rows per store_batch when loading (default: 10000)")
    bench.add_argument("--data", choices=("lowrank", "normal"), default="lowrank",
                       help="vectors: rank-32 Gaussian plus noise (default) or standard normal")
    bench.add_argument("--data-seed", type=seed_number, default=0, help="seed of the vectors and queries (default: 0)")
    bench.add_argument("--row-timeout", type=seconds, default=1800.0,
                       help="seconds one row may take before it is killed and reported (default: 1800)")
    bench.add_argument("--pg-location", help="pgvector: DSN or embedded server folder "
                                             "(default: DST_PG_DSN, else the embedded server: ./.dst/pg18data, "
                                             "./.dst/pgdata for the pg16 variants)")
    bench.add_argument("--store-dir", help="folder in which the run's temporary store folder is made (lance, "
                                           "chroma, qdrant, qdrant-edge, milvus; removed at the end), e.g. "
                                           "/dev/shm for tmpfs (default: the system's temporary folder)")
    bench.add_argument("--pg-maintenance-work-mem", default="1GB",
                       help="session maintenance_work_mem for pgvector rows, so HNSW builds in memory "
                            "(default: 1GB; '' leaves the server's)")
    bench.add_argument("--scenario", action="append", help="harness scenario(s) to time (default: default, crud)")
    bench.add_argument("--seeds", type=positive, help="harness seeds per scenario (default: 200; --quick: 50)")
    bench.add_argument("--isolate-ops", type=int, metavar="N",
                       help="process isolation's cost: N calls of a store/get/search/count mix in process and "
                            "with --isolate process, for sim and lance when among --backends; 0 skips it "
                            "(default: 1000; --quick: 200)")
    bench.add_argument("--quick", action="store_true",
                       help="a short run: sizes 1000,10000, dim 128, 100 queries, 50 harness seeds")
    bench.add_argument("--report-dir", default="reports", help="where bench-<time>.json and .svg go")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON on stdout "
                                                          "(tables and progress go to stderr)")
    return bench


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dst.bench.backends import BackendPlan, parse_variants
    from dst.bench.suite import FULL, QUICK, BenchConfig, print_json, run_bench

    preset = QUICK if args.quick else FULL
    try:   # before the benchmarks run, not after
        Path(args.report_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report-dir {args.report_dir!r}: cannot make it ({exc.strerror or exc})") from None

    def ints(text: str | None, flag: str, default: list[int]) -> list[int]:
        if text is None:
            return list(default)
        try:
            vals = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"dst bench: {flag} takes whole numbers separated by commas, got {text!r}") from None
        if not vals or min(vals) < 1:
            raise UsageError(f"dst bench: {flag} needs numbers of at least 1, got {text!r}")
        return sorted(set(vals))

    if args.store_dir is not None and not Path(args.store_dir).is_dir():
        raise UsageError(f"dst bench: --store-dir {args.store_dir!r} is not a folder")
    try:
        variants = parse_variants(args.backends)
    except ValueError as exc:
        raise UsageError(f"dst bench: --backends: {exc}") from None
    plan = BackendPlan(variants=variants, sizes=ints(args.sizes, "--sizes", preset["sizes"]),
                       dims=ints(args.dims, "--dims", preset["dims"]),
                       queries=args.queries or preset["queries"], upserts=args.upserts or preset["upserts"],
                       batch_size=args.batch_size, data=args.data, seed=args.data_seed,
                       row_timeout_s=args.row_timeout, pg_location=args.pg_location,
                       pg_maintenance_work_mem=args.pg_maintenance_work_mem or None,
                       store_dir=args.store_dir)
    if args.isolate_ops is not None and args.isolate_ops < 0:
        raise UsageError(f"dst bench: --isolate-ops needs 0 or more, got {args.isolate_ops}")
    config = BenchConfig(report_dir=args.report_dir, scenarios=args.scenario or ["default", "crud"],
                         seeds=args.seeds or preset["seeds"], plan=plan, quick=args.quick,
                         isolate_ops=preset["isolate_ops"] if args.isolate_ops is None else args.isolate_ops)
    console = Console(highlight=False, soft_wrap=True, stderr=args.json)
    out, path = run_bench(config, console, progress)
    console.print(f"wrote {path} and {path.with_suffix('.svg').name}", markup=False)
    if args.json:
        print_json(out)
    return EXIT_OK
