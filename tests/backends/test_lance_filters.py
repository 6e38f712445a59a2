"""LanceDB: the run's metric (scores against dst.metrics.score), the
prefilter option, and a short CLI run per metric. Real LanceDB in tmp_path."""

import numpy as np
import pytest

from backends.lance import OPTIONS, open_backend
from dst.backend import BackendConfig
from dst.metrics import score
from tests.conftest import run_cli


def _open(tmp_path, metric, **options):
    return open_backend(BackendConfig(dim=4, location=str(tmp_path), namespace="t", fresh=True,
                                      options=options, metric=metric))


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_scores_match_the_contract(tmp_path, metric):
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((20, 4)).astype(np.float32)
    if metric != "cosine":
        xs[0] = 0.0          # valid under l2 and dot
    b = _open(tmp_path, metric)
    b.store_batch([(str(i), x) for i, x in enumerate(xs)])
    q = rng.standard_normal(4).astype(np.float32)
    hits = b.search(q, 20)
    assert len(hits) == 20
    for h in hits:
        assert abs(h.score - score(metric, xs[int(h.id)], q)) < 1e-5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_prefilter_option_parse():
    assert OPTIONS.parse({})["prefilter"] is True
    assert OPTIONS.parse({"prefilter": "false"})["prefilter"] is False


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_cli_run_per_metric(tmp_path, metric):
    r = run_cli("run", "--backend", "lance", "--scenario", "search-heavy", "--seeds", "3", "--ops", "60",
                "--metric", metric, "--quiet",
                "--location", str(tmp_path / "db"), "--report-dir", str(tmp_path / "rep"))
    assert r == 0
