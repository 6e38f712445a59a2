"""The chroma bench row on a tiny configuration: every figure present and
sane, the raw chromadb driver measured beside the adapter, the row's
collections gone afterwards. No timing thresholds."""

import chromadb
from chromadb.config import Settings

from dst.bench.backends import ROW_KEYS, run_row


def test_chroma_row_measures_adapter_and_raw_driver(tmp_path):
    folder = tmp_path / "chroma"
    spec = {"variant": "chroma", "n": 300, "dim": 8, "queries": 20, "upserts": 10, "rounds": 1,
            "namespace": "dstbench_t_0", "chroma_dir": str(folder), "batch_size": 128}
    row = run_row(spec)
    assert set(ROW_KEYS) <= set(row)
    assert row["status"] == "ok", row["error"]
    assert row["exact"] is False and row["index_build_s"] is None
    for key in ("insert_rows_per_s", "upsert_p50_ms", "search_p50_ms"):
        assert row[key] > 0, key
    assert 0.0 <= row["recall_at_10"] <= 1.0 and row["recall_at_10"] >= 0.9   # 300 rows: HNSW finds them
    assert row["raw"]["insert_rows_per_s"] > 0 and row["raw"]["upsert_p50_ms"] > 0
    assert row["raw"]["recall_at_10"] == row["recall_at_10"]    # the same collection, the same queries
    assert set(row["overhead"]) == {"insert", "upsert", "search"} and all(row["overhead"].values())
    assert row["driver"]["chromadb"] == chromadb.__version__
    client = chromadb.PersistentClient(path=str(folder.absolute()), settings=Settings(anonymized_telemetry=False))
    try:
        assert [c.name for c in client.list_collections()] == []      # adapter's dropped, raw's cleaned
    finally:
        client.close()
