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


def test_the_pgvector_comparison_loads_each_raw_round_in_a_new_session(tmp_path, monkeypatch):
    """Each adapter load runs in a fresh adapter's new session; the raw side's
    loads do too (renew_loader), and nothing is left in the database."""
    import psycopg

    from dst import pg_embedded
    from dst.bench.backends import _PgRaw
    monkeypatch.chdir(tmp_path)
    pids = []
    real_fresh = _PgRaw.fresh

    def fresh(self):
        real_fresh(self)
        pids.append(self.loader.info.backend_pid)

    monkeypatch.setattr(_PgRaw, "fresh", fresh)
    r = inserts.compare("pgvector", rounds=3, n=40, dim=4)
    assert (r["backend"], r["n"], r["rounds"]) == ("pgvector", 40, 3)
    assert 0 < r["raw_min_ms"] <= r["raw_median_ms"] and 0 < r["adapter_min_ms"]
    assert len(pids) == 4 and len(set(pids)) == 4        # the untimed load and three rounds
    with psycopg.connect(pg_embedded.resolve(None)) as conn:
        left = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'dstins%'").fetchone()[0]
    assert left == 0
