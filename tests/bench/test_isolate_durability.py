"""``python -m dst.bench.isolate durability`` (issue 15's kill sweeps) writes
one JSON line per seed as it ends, so a sweep killed before its summary still
says what it measured; the lines add up to the summary."""
from __future__ import annotations

import io
import json

from dst.bench.isolate import durability


def test_durability_progress_lines_add_up_to_the_summary():
    progress = io.StringIO()
    out = durability("sim", kills=3, time_budget_s=300, location=None, first_seed=0, ops=60,
                     progress=progress)
    lines = [json.loads(x) for x in progress.getvalue().splitlines()]
    assert [x["seed"] for x in lines] == list(range(out["seeds"])) and out["seeds"] >= 1
    assert out["complete"] and out["kills"]["kill"] >= 3
    for kind, total in out["kills"].items():
        assert sum(x["fired"][kind] for x in lines) == total
    assert lines[-1]["kills_so_far"] == out["kills"]["kill"]
    assert all(x["verdict"] == "ok" and x["violations"] == 0 for x in lines)
