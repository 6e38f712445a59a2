"""python -m dst.bench.inserts: the adapter's batch load against the raw
driver's, taking turns (a figure, not a timed test: only its shape here)."""

import pytest

from dst.bench import inserts


def test_the_lance_comparison_reports_every_figure_from_real_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = inserts.compare("lance", rounds=3, n=40, dim=4)
    assert (r["backend"], r["n"], r["dim"], r["rounds"]) == ("lance", 40, 4, 3)
    for side in ("adapter", "raw"):
        assert 0 < r[f"{side}_min_ms"] <= r[f"{side}_median_ms"]
    assert r["ratio_fastest"] == pytest.approx(r["raw_min_ms"] / r["adapter_min_ms"], rel=0.02)
    assert r["ratio_median"] == pytest.approx(r["raw_median_ms"] / r["adapter_median_ms"], rel=0.02)
    assert r["ratio_paired_median"] > 0
    assert list(tmp_path.iterdir()) == []          # nothing left behind in the working folder


@pytest.mark.parametrize("argv", [[], ["chroma"], ["lance", "x"], ["lance", "0"], ["lance", "2", "1"]])
def test_bad_arguments_are_one_line_and_exit_2(argv, capsys):
    assert inserts.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
