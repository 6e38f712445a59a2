"""What a lance batch insert's time is made of: one 10,000-row upsert into a
fresh table, four ways, taking turns, ROUNDS times (default 30):

* ``public 2``: lancedb's public builder (``merge_insert("id")
  .when_matched_update_all().when_not_matched_insert_all().execute``) on a
  table of ``id`` and ``vector``: the bench's raw driver's write;
* ``native 2``: the same table through lancedb's native merge_insert entry
  (what the builder ends in, past its Python-side sanitize);
* ``native 34``: the adapter's layout (``id``, ``vector`` and the 32
  attribute slot columns, all null) through the native entry: the
  adapter's write;
* ``public 34``: the adapter's layout through the public builder (the
  adapter with ``--opt native_merge=false``).

The batch is built once (an Arrow table); only the write is timed. Prints
the fastest and the median of each: ``public 2 - native 2`` is lancedb's
sanitize, ``native 34 - native 2`` the 32 null columns.

    PYTHONPATH=$PWD python scripts/lance_merge_parts.py [ROUNDS]
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from datetime import timedelta

import numpy as np

from backends.lance import _native_merge, slot_fields  # the adapter's own write path
from dst import wallclock
from dst.bench.backends import make_data, row_id


def main(rounds: int = 30, n: int = 10_000, dim: int = 128) -> None:
    os.environ.setdefault("LANCE_LOG", "error")
    import lancedb
    import pyarrow as pa
    data, _ = make_data(n, dim, 0)
    ids = pa.array([row_id(i) for i in range(n)], pa.string())
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(data).reshape(-1)), dim)
    base = [pa.field("id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False)]
    layouts = {2: pa.schema(base), 34: pa.schema(base + slot_fields(pa))}
    batches = {k: pa.Table.from_arrays([ids, vectors] + [pa.nulls(n, f.type) for f in s][2:], schema=s)
               for k, s in layouts.items()}
    loc = tempfile.mkdtemp(prefix="dst-merge-parts-")
    db = lancedb.connect(loc, read_consistency_interval=timedelta(0))
    times: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            for way, cols in (("public", 2), ("native", 34), ("native", 2), ("public", 34)):
                name = f"{way}{cols}"
                t = db.create_table(name, schema=layouts[cols], mode="overwrite")
                t.set_unenforced_primary_key("id")
                rows = batches[cols]
                native = _native_merge(t)
                if native is None:
                    raise SystemExit("this lancedb has no native merge_insert entry the adapter knows")
                t0 = wallclock.monotonic_s()
                if way == "native":
                    native(pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches()))
                else:
                    t.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)
                times.setdefault(f"{way} {cols}", []).append(wallclock.monotonic_s() - t0)
                if t.count_rows() != n:
                    raise RuntimeError(f"{name}: {t.count_rows()} rows, not {n}")
    finally:
        shutil.rmtree(loc, ignore_errors=True)
    for k, v in times.items():
        v.sort()
        print(f"{k:10s} fastest {v[0] * 1000:6.1f} ms  median {v[len(v) // 2] * 1000:6.1f} ms")
    print(f"load {[round(x, 2) for x in os.getloadavg()]}, lancedb {lancedb.__version__}, {rounds} rounds")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
