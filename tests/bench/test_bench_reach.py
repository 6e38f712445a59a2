"""dst bench's reachability column (issue 13): each sampled loaded id
searched by its own vector. A backend whose index lost a sliver of its rows
(tests.broken_reach.unreachable_subset: 1 in 16 never returned by search,
every answer otherwise correct) reports less than 1 and names the lost ids;
the same backend without the defect, and sim, report 1. In process, on a
tiny row: no timing thresholds."""

import io

import pytest
from rich.console import Console

from dst.bench import backends as bb
from dst.bench.suite import print_tables
from tests.broken_reach import lost

SPEC = {"n": 300, "dim": 8, "queries": 10, "upserts": 5, "rounds": 1, "batch_size": 128}


@pytest.fixture
def variants(monkeypatch):
    monkeypatch.setitem(bb.VARIANTS, "broken-reach", ("tests.broken_reach:unreachable_subset", {},
                                                      "lost 1 in 16"))
    monkeypatch.setitem(bb.VARIANTS, "honest-ann", ("tests.broken_reach:honest_ann", {}, "honest ANN"))


def _row(variant, i):
    row = bb.run_row({**SPEC, "variant": variant, "namespace": f"dstbench_reach_{i}", "location": "bench-reach"})
    assert row["status"] == "ok", row["error"]
    return row


def test_reachability_column_sees_lost_rows(variants):
    broken, honest, sim = _row("broken-reach", 0), _row("honest-ann", 1), _row("sim", 2)
    # 300 rows loaded: a sample of 200 probed
    assert broken["reach_checked"] == honest["reach_checked"] == sim["reach_checked"] == bb.REACH_SAMPLE
    lost_in_sample = [bb.row_id(i) for i in bb.reach_sample(SPEC["n"], 0) if lost(bb.row_id(i))]
    assert lost_in_sample                                  # the sample holds lost ids: the test can see them
    assert broken["reachability"] == round(1 - len(lost_in_sample) / bb.REACH_SAMPLE, 4) < 1.0
    assert broken["reach_unreachable"]["count"] == len(lost_in_sample)
    assert broken["reach_unreachable"]["ids"] == lost_in_sample[:bb.REACH_NAMED]
    assert honest["reachability"] == sim["reachability"] == 1.0
    assert honest["reach_unreachable"] == {"count": 0, "ids": []}

    buf = io.StringIO()
    print_tables({"machine": {}, "elapsed_s": 0, "config": {"queries": 10, "data": "lowrank"},
                  "backends": [broken, sim], "harness": []}, Console(file=buf, width=300))
    table = buf.getvalue()
    assert "reach@10" in table
    assert f"{broken['reachability']:.3f}" in table.splitlines()[[i for i, line in enumerate(table.splitlines())
                                                                 if "lost 1 in 16" in line][0]]


def test_identical_vectors_count_together():
    """Two rows with one vector: an answer holding either finds both."""
    import numpy as np
    data = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    sample = [0, 1, 2]
    truth = bb.Truth(data, data[sample], 1)
    r = bb.reachability(sample, truth, lambda i: [bb.row_id({0: 1, 1: 1, 2: 3}[i])])
    assert (r["reachability"], r["reach_checked"]) == (round(2 / 3, 4), 3)
    assert r["reach_unreachable"] == {"count": 1, "ids": [bb.row_id(2)]}
