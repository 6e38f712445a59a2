"""The qdrant-edge bench row on a tiny configuration: every figure present
and sane, the raw qdrant-edge-py shard measured beside the adapter, the
row's folders gone afterwards. No timing thresholds."""

from dst.bench.backends import ROW_KEYS, run_row


def test_qdrant_edge_row_measures_adapter_and_raw_driver(tmp_path):
    folder = tmp_path / "qdrant-edge"
    spec = {"variant": "qdrant-edge", "n": 300, "dim": 8, "queries": 20, "upserts": 10, "rounds": 2,
            "namespace": "dstbench_t_0", "qdrant_edge_dir": str(folder), "batch_size": 128}
    row = run_row(spec)
    assert set(ROW_KEYS) <= set(row)
    assert row["status"] == "ok", row["error"]
    assert row["exact"] is True and row["index_build_s"] is None
    assert row["recall_at_10"] == 1.0 and row["reachability"] == 1.0 and row["reach_checked"] == 200
    for key in ("insert_rows_per_s", "upsert_p50_ms", "search_p50_ms", "disk_mb"):
        assert row[key] > 0, key
    assert row["raw"]["insert_rows_per_s"] > 0 and row["raw"]["upsert_p50_ms"] > 0
    assert row["raw"]["recall_at_10"] == 1.0        # the adapter's shard, searched exactly
    assert set(row["overhead"]) == {"insert", "upsert", "search"} and all(row["overhead"].values())
    assert row["driver"]["qdrant-edge-py"]
    assert list(folder.iterdir()) == []              # the adapter's shard dropped, the raw one removed
