"""The regression corpus: every file in seeds/ replays to its recorded verdict."""

from pathlib import Path

import pytest

from dst.check.compare import compare_histories
from dst.sim.runner import run_case
from dst.sim.shrink import expectations, expected_for, read_case, violation_kind

SEEDS = sorted((Path(__file__).resolve().parents[2] / "seeds").glob("*.json"))


def test_the_corpus_is_not_empty():
    assert len(SEEDS) >= 10


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_case_replays_to_its_expected_verdict(path, tmp_path):
    case = read_case(path)
    exp = case["expected"]
    if expectations(case):
        # Replayed per server below; the plain replay (the default server)
        # must expect what the default server's entry says.
        from dst import pg_embedded
        assert expected_for(case, pg_embedded.DEFAULT_SERVER, case.get("options") or {}) == exp
        return
    if "conform" in case:
        ref, other = case["conform"]
        # Each backend with its own options (dst conform's BACKEND:KEY=VALUE).
        own = case.get("conform_options") or {}
        _, ha = run_case({**case, "options": own.get(ref, case.get("options"))}, backend=ref,
                         location=str(tmp_path / "a"))
        _, hb = run_case({**case, "options": own.get(other, case.get("options"))}, backend=other,
                         location=str(tmp_path / "b"))
        ann = not (ha.meta.get("exact", True) and hb.meta.get("exact", True))
        _, diffs = compare_histories(ha, hb, ha.meta["score_eps"], ann)
        assert exp["verdict"] == "disagreement"
        assert any(f"conform:{d['f']}" == exp["kind"] for d in diffs), diffs
        return
    result, _ = run_case(case, location=str(tmp_path))
    assert result.verdict == exp["verdict"], result.violations
    assert violation_kind(result) == exp["kind"]


# One reproducer, several versions: each "expect" entry of a case, replayed
# on its embedded server (the repository's folder for it, whatever DST_PG_DSN
# says: the entry is about that server), with the entry's options added.
VERSIONED = [(p, key) for p in SEEDS for key, *_ in expectations(read_case(p))]


@pytest.mark.parametrize("path, key", VERSIONED, ids=[f"{p.stem}[{k}]" for p, k in VERSIONED])
def test_case_replays_to_its_expected_verdict_on_each_server(path, key):
    from dst import pg_embedded
    case = read_case(path)
    (_, server, opts, exp), = [e for e in expectations(case) if e[0] == key]
    folder = Path(__file__).resolve().parents[2] / pg_embedded.SERVERS[server].default_dir
    options = {**(case.get("options") or {}), **opts, "server": server}
    result, _ = run_case(case, location=str(folder), options=options)
    assert result.versions["server"] == server
    assert expected_for(case, server, options) == exp
    assert (result.verdict, violation_kind(result)) == (exp["verdict"], exp["kind"]), result.violations
