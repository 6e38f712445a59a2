"""The report of a failing filtered search shows the filter, the matching
set and the metric (issue 12), from a real run of a broken backend."""

from __future__ import annotations

import html

import pytest

from dst.report.html import write_report
from dst.sim.runner import run_seed
from dst.sim.scenario import load

from tests.report.test_html_report import assert_offline


def _first_filtered_violation(backend: str, seeds=range(0, 30)):
    for seed in seeds:
        result, history = run_seed(load("filters"), seed, backend)
        if result.verdict != "violation":
            continue
        op = result.violations[0].get("op") or {}
        if op.get("f") == "search" and (op.get("input") or {}).get("where") is not None:
            return result, history
    pytest.fail(f"no seed of {backend} failed on a filtered search")


@pytest.fixture(scope="module")
def ignored():
    return _first_filtered_violation("tests.broken_backends:filter_ignored")


def test_report_shows_filter_and_matching_set(ignored, tmp_path):
    result, history = ignored
    out = tmp_path / "report.html"
    write_report(out, history, result.summary())
    doc = html.unescape(out.read_text("utf-8"))
    assert_offline(out.read_text("utf-8"))
    assert "canonical JSON" in doc
    assert "matches " in doc and " live ids; the expected answer ranks only the matching ids" in doc
    assert "live but does not match the filter (attrs" in doc
    assert "metric" in doc and "cosine" in doc
