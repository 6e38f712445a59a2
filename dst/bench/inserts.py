"""The insert comparison alone, many rounds: ``python -m dst.bench.inserts
BACKEND [ROUNDS] [N] [DIM] [PG_LOCATION]`` (lance or pgvector; defaults 16,
10000, 128, the embedded server).

One batch of N ``(id, vector)`` pairs (``make_data``), loaded by a fresh
adapter into a fresh namespace and by the bench's raw driver
(``RAW_DRIVERS``: checks the pairs and writes them the driver's way, see
dst.bench.backends) into its own table, taking turns (who goes first
alternates) after one untimed load each. On pgvector each load, on either
side, runs in a session of its own, as a fresh adapter opens one (the raw
driver's session loads pgvector's library and makes its staging table; the
adapter's first stores and deletes one row, which does the same), untimed. Prints
the fastest and the median load per side and the ratio adapter rows/s over
raw rows/s for each: on a loaded machine the fastest of many is the figure
least moved by other work. Also the median of the rounds' own ratios (each
round's raw load over its adapter load, the two made back to back): the
machine's load drifts over a run, and a round's pair sees nearly the same
load, so this one moves least from run to run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from dst import wallclock
from dst.bench.backends import RAW_DRIVERS, make_data, row_id


def compare(backend: str, rounds: int = 16, n: int = 10_000, dim: int = 128,
            pg_location: str | None = None) -> dict:
    from dst import pg_embedded
    from dst.backend import BackendConfig, resolve_backend
    os.environ.setdefault("LANCE_LOG", "error")
    data, _ = make_data(n, dim, 0)
    ids = [row_id(i) for i in range(n)]
    batch = list(zip(ids, data))
    tag = f"dstins_{wallclock.run_token(Path.cwd())}"   # unique to this process
    if backend == "lance":
        loc = tempfile.mkdtemp(prefix="dst-inserts-")
        spec = {"dim": dim, "lance_dir": loc, "namespace": tag}
    elif backend == "pgvector":
        loc = pg_embedded.resolve(pg_location)
        spec = {"dim": dim, "pg_dsn": loc, "namespace": tag}
    else:
        raise ValueError(f"backend must be lance or pgvector, got {backend!r}")
    raw = RAW_DRIVERS[backend](spec, {})
    factory = resolve_backend(backend)
    config = BackendConfig(dim=dim, location=loc, namespace=tag + "_a", fresh=True)

    def adapter_load() -> float:
        a = factory(config)
        try:
            if backend == "pgvector":
                a.store_batch(batch[:1])
                a.delete(ids[0])
            t0 = wallclock.monotonic_s()
            a.store_batch(batch)
            dt = wallclock.monotonic_s() - t0
            if a.count() != n:
                raise RuntimeError(f"count() is {a.count()} after loading {n} rows")
            return dt
        finally:
            a.drop()

    def raw_load() -> float:
        if backend == "pgvector":
            raw.renew_loader()      # a new session per load on both sides
        raw.fresh()
        t0 = wallclock.monotonic_s()
        raw.load([raw.prepare(batch)])
        return wallclock.monotonic_s() - t0

    try:
        adapter_load()
        raw_load()
        ours: list[float] = []
        theirs: list[float] = []
        paired: list[float] = []
        for r in range(rounds):
            for fn, out in ((adapter_load, ours), (raw_load, theirs)) if r % 2 == 0 else \
                    ((raw_load, theirs), (adapter_load, ours)):
                out.append(fn())
            paired.append(theirs[-1] / ours[-1])
    finally:
        raw.cleanup()
        if backend == "lance":
            shutil.rmtree(loc, ignore_errors=True)
    ours.sort()
    theirs.sort()
    paired.sort()
    mid = rounds // 2
    return {"backend": backend, "n": n, "dim": dim, "rounds": rounds,
            "adapter_min_ms": round(ours[0] * 1000, 1), "adapter_median_ms": round(ours[mid] * 1000, 1),
            "raw_min_ms": round(theirs[0] * 1000, 1), "raw_median_ms": round(theirs[mid] * 1000, 1),
            "ratio_fastest": round(theirs[0] / ours[0], 3), "ratio_median": round(theirs[mid] / ours[mid], 3),
            "ratio_paired_median": round(paired[mid], 3),
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("lance", "pgvector"):
        print("usage: python -m dst.bench.inserts lance|pgvector [ROUNDS] [N] [DIM] [PG_LOCATION]",
              file=sys.stderr)
        return 2
    try:
        nums = [int(x) for x in argv[1:4]]
    except ValueError:
        print("ROUNDS, N and DIM must be integers", file=sys.stderr)
        return 2
    rounds, n, dim = (nums + [16, 10_000, 128][len(nums):])[:3]
    if rounds < 1 or n < 2 or dim < 1:
        print("ROUNDS must be at least 1, N at least 2, DIM at least 1", file=sys.stderr)
        return 2
    r = compare(argv[0], rounds, n, dim, argv[4] if len(argv) > 4 else None)
    print(f"{r['backend']} n={r['n']} dim={r['dim']}, {r['rounds']} loads per side taking turns: "
          f"adapter fastest {r['adapter_min_ms']} ms (median {r['adapter_median_ms']}), raw fastest "
          f"{r['raw_min_ms']} ms (median {r['raw_median_ms']}); adapter/raw throughput "
          f"{r['ratio_fastest']} (fastest) {r['ratio_median']} (median) {r['ratio_paired_median']} "
          f"(median of the rounds' ratios); load {r['load_avg']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
