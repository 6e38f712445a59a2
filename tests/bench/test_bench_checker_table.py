"""``dst bench`` prints the checker rows with Porcupine's times (run on this
machine type, docs/checker-vs-porcupine.md) and the ratio to Porcupine's
fastest run, the etcd-shaped suite's row included."""

from __future__ import annotations

from rich.console import Console

from dst.bench.suite import print_tables


def test_checker_table_shows_porcupine_times_and_the_ratio_to_the_fastest():
    row = {"history": "c50-bad", "partitioned": True, "ops": 2024, "verdict": "violation",
           "expected": "violation", "steps": 230, "check_s": 0.0006, "porcupine_ms": [4, 31],
           "ratio_vs_porcupine": [0.15, 0.02], "ratio_vs_porcupine_fastest": 0.15}
    plain = {"history": "c10-ok", "partitioned": False, "ops": 337, "verdict": "ok", "expected": "ok",
             "steps": 10, "check_s": 1.0}
    out = {"machine": {"cpus": 2}, "load_avg_start": None, "load_avg_end": None, "elapsed_s": 1,
           "backends": [], "harness": [], "filtered": [],
           "checker": {"porcupine": [row], "synthetic": [plain], "wall_s": 1.0, "wrong_verdicts": [],
                       "etcd_like": {"histories": 100, "ops": 19339, "steps": 58914, "check_s": 0.125,
                                     "wrong_verdicts": 0, "porcupine_ms": [18.5, 19.0],
                                     "ratio_vs_porcupine_fastest": 6.757}}}
    console = Console(record=True, width=200)
    print_tables(out, console)
    text = console.export_text()
    line = next(ln for ln in text.splitlines() if "c50-bad" in ln)
    assert "4-31" in line and "0.15" in line
    suite = next(ln for ln in text.splitlines() if "etcd-like" in ln)
    assert "18.5-19.0" in suite and "6.76" in suite
    assert "x fastest" in text and "docs/checker-vs-porcupine.md" in text
