"""The HTML report as a file: self-contained, escaped, small, and carrying
what the timeline script needs (the browser test checks the drawing)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from dst.history import History, pair
from dst.report.html import embed_json, write_check_html, write_check_report, write_report
from dst.sim.runner import run_seed
from dst.sim.scenario import load, parse

HOSTILE = "</script><b>x\"'&<!--\u2028\udc80"
DATA_RE = re.compile(r'<script type="application/json" id="dst-data">(.*?)</script>', re.S)


def blob(doc: str) -> dict:
    m = DATA_RE.search(doc)
    assert m, "the report has no data element"
    return json.loads(m.group(1))


def assert_offline(doc: str) -> None:
    """Nothing in the page can reach the network."""
    assert not re.search(r"https?://", doc, re.I), re.search(r".{40}https?://.{40}", doc, re.I)
    assert not re.search(r"""\b(src|href|srcset|action|poster)\s*=""", doc, re.I)
    assert not re.search(r"@import|url\(|<link\b|<iframe\b|<img\b|fetch\(|XMLHttpRequest|WebSocket", doc, re.I)
    assert "default-src 'none'" in doc          # and a policy that forbids it anyway


@pytest.fixture(scope="module")
def lost_write():
    """A failing run: a backend that acknowledges writes it never applies."""
    result, history = run_seed(load("default"), 0, "tests.broken_backends:lost_write")
    assert result.verdict == "violation"
    return result, history


@pytest.fixture(scope="module")
def wrong_scores():
    """A failing run whose violation is a search answer."""
    result, history = run_seed(load("default"), 0, "tests.broken_backends:rescaled_scores")
    assert result.verdict == "violation" and result.violations[0]["op"]["f"] == "search"
    return result, history


def test_failing_run_report_is_offline_and_carries_the_violation(lost_write, tmp_path):
    result, history = lost_write
    out = tmp_path / "report.html"
    size = write_report(out, history, result.summary())
    doc = out.read_bytes().decode("utf-8")          # strict: no lone surrogates on disk
    assert size == out.stat().st_size
    assert_offline(doc)
    assert doc.count("<script") == 2 and doc.count("</script>") == 2   # the data, the code
    data = blob(doc)
    v = result.violations[0]
    assert data["lead"] == v["op"]["index"]
    assert data["prefix"] == list(dict.fromkeys(v["prefix"]))
    assert data["unplaced"] == v["unplaced"]
    # One entry per paired client/probe op, the vector table left out.
    assert len(data["ops"]) == len(pair(history.events))
    assert "vector" not in data and '"data":"' not in doc
    assert len(data["nem"]) == sum(1 for e in history.events if e["process"] == "nemesis")
    lead = next(o for o in data["ops"] if o[7] == v["op"]["index"])
    assert data["fs"][lead[2]] == v["op"]["f"]
    # The summary and the violation are readable without the script.
    assert "badge-violation" in doc
    assert "tests.broken_backends:lost_write" in doc
    assert html.escape(v["message"]) in doc
    assert 'id="prefix-list"' in doc


def test_passing_run_report(tmp_path):
    result, history = run_seed(load("default"), 3, "sim")
    assert result.verdict == "ok"
    out = tmp_path / "ok.html"
    write_report(out, history, result)               # a SeedResult works too
    doc = out.read_text(encoding="utf-8")
    assert_offline(doc)
    data = blob(doc)
    assert data["lead"] is None and data["prefix"] == []
    assert "badge-ok" in doc and '<section class="violation-panel' not in doc
    kinds = {row[3] for row in data["rows"]}
    assert "client" in kinds and "probe" in kinds
    # Every fault firing of the run is in the fault table.
    for f, n in result.fired.items():
        if n:
            assert re.search(rf"<td>{re.escape(f)}</td><td>[^<]*</td><td>{n}</td>", doc), f


def test_run_level_result_picks_the_seed(lost_write, tmp_path):
    result, history = lost_write
    run = {"run": "r1", "verdict": "violation", "results": [{"seed": 9, "verdict": "ok"}, result.summary()],
           "fault_counts": {"latency": 123}, "seeds": [0, 9], "replay": "dst replay x"}
    write_report(tmp_path / "r.html", history, run)
    doc = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert blob(doc)["lead"] == result.violations[0]["op"]["index"]
    assert "fired (whole run)" in doc and "<td>123</td>" in doc and "dst replay x" in doc


def test_wrong_search_shows_returned_beside_expected(wrong_scores, tmp_path):
    result, history = wrong_scores
    out = tmp_path / "s.html"
    write_report(out, history, result.summary())
    doc = out.read_text(encoding="utf-8")
    assert "returned by the backend" in doc and "expected (the model&#x27;s exact top-k)" in doc
    assert "did not reproduce" not in doc
    # Rescaled scores are off: the returned table flags them, with true scores beside.
    assert "score off by" in doc
    hits = result.violations[0]["op"]["output"]
    for hid, score in hits[:3]:
        assert f"<td>{repr(float(score))}</td>" in doc


def test_hostile_ids_and_titles_are_escaped(tmp_path):
    h = History(meta={"scenario": "s", "seed": 0, "backend": HOSTILE, "dim": 2, "exact": True,
                      "score_eps": 1e-4, "atomic_batches": False})
    v0 = h.table.ref([1.0, 0.0])
    h.add(0, 0, "invoke", "store", {"id": HOSTILE, "vector": v0})
    h.add(5, 0, "ok", "store", None, dispatch=0)
    h.add(6, 1, "invoke", "search", {"vector": v0, "limit": 3})
    h.add(7, "nemesis", "info", "latency", {"process": 1, "delay_us": 3})
    h.add(9, 1, "ok", "search", [[HOSTILE, 1.0], [HOSTILE + "2", 0.5]], dispatch=1)
    result = {"seed": 0, "verdict": "violation", "violations": [{
        "kind": "linearizability", "message": f"search returned id {HOSTILE!r}, which is not live",
        "state": "{" + repr(HOSTILE) + ": #0}",
        "op": {"index": 2, "process": 1, "f": "search", "input": {"vector": v0, "limit": 3},
               "output": [[HOSTILE, 1.0], [HOSTILE + "2", 0.5]], "type": "ok", "completed_at": 4},
        "search": {"op": {"index": 2, "process": 1, "f": "search"}, "message": "m", "state": "{}"},
        "prefix": [0], "unplaced": [2]}]}
    out = tmp_path / "hostile.html"
    write_report(out, h, result, title=HOSTILE)
    raw = out.read_bytes()
    doc = raw.decode("utf-8")                       # valid UTF-8: the surrogate became text
    assert_offline(doc)
    assert doc.count("</script") == 2               # only the two real closing tags
    assert "<b>" not in doc and "<!--" not in doc
    assert "<title>&lt;/script&gt;&lt;b&gt;x&quot;&#x27;&amp;&lt;!--" in doc
    assert "\\udc80" in doc                         # shown, escaped, in the static part
    m = DATA_RE.search(doc)
    assert not re.search(r"[<>&\u2028\u2029]", m.group(1)) and m.group(1).isascii()
    data = json.loads(m.group(1))
    shown = data["ops"][0][8]                       # the id survives, JSON-quoted
    assert shown.startswith('id="</script><b>x\\"\'&<!--\u2028\\udc80"'), shown
    assert data["ops"][1][9].count("</script><b>x") == 2


@pytest.mark.parametrize("text", [HOSTILE, "</SCRIPT >", "<!--<script>", "a\u2029b", "\ud800", "\\u003c"])
def test_embed_json_round_trips_and_hides_markup(text):
    out = embed_json({"k": [text, text]})
    assert out.isascii() and not re.search(r"[<>&\u2028\u2029]", out)
    assert json.loads(out) == {"k": [text, text]}


def test_report_of_5000_ops_at_dim_1536_is_small(tmp_path):
    sc = parse({"name": "big", "clients": 8, "ops_per_seed": 5000, "dims": [1536], "vector_pool": 200,
                "ids": {"hot": 20, "cold": 200, "hostile_share": 0.1}, "limit": {"min": 1, "max": 20},
                "batch": {"min": 1, "max": 6},
                "ops": {"store": 30, "store_batch": 8, "delete": 10, "get": 14, "exists": 8, "count": 4,
                        "search": 20},
                "faults": {"latency": 0.05, "error": 0.02, "lost-ack": 0.02, "timeout": 0.02,
                           "partial-write": 0.1, "crash": 0.001}})
    result, history = run_seed(sc, 0, "sim")
    assert result.ops >= 5000 and history.meta["dim"] == 1536
    out = tmp_path / "big.html"
    size = write_report(out, history, result.summary())
    # "a few MB at most": about 1 MB today; the history itself is ~3.5 MB.
    assert size < 3_000_000, size
    assert size < len(history.to_bytes())
    data = blob(out.read_text(encoding="utf-8"))
    assert len(data["ops"]) == result.ops
    # Packed lanes: one per client however many processes info ops made.
    assert sum(1 for r in data["rows"] if r[3] == "client") == 8 < len(data["procs"])


def test_check_report_of_an_edn_kv_history(tmp_path):
    from dst.commands.check import check_file
    src = Path(__file__).resolve().parents[1] / "data" / "porcupine-kv" / "c01-bad.txt"
    result = check_file(str(src), "kv", fmt="edn")
    assert result["verdict"] == "violation"
    out = tmp_path / "kv.html"
    write_check_html(out, result)
    doc = out.read_text(encoding="utf-8")
    assert_offline(doc)
    data = blob(doc)
    assert data["kind"] == "generic" and data["unit"] == "line"
    assert data["lead"] == result["violation"]["op"]["line"]
    assert data["prefix"] == [o["line"] for o in result["violation"]["prefix"]]
    lead = next(o for o in data["ops"] if o[7] == data["lead"])
    assert lead[8].startswith('key="7"')            # kv ops show their key


def test_check_report_of_a_refuted_part_does_not_claim_the_longest_prefix(tmp_path):
    # c50-bad: the kv model refutes a part before any search (a stale read), so
    # the prefix the report shows is a linearizable one, not the longest; a
    # search's part (c01-bad) keeps the longest-prefix wording.
    from dst.commands.check import check_file
    data_dir = Path(__file__).resolve().parents[1] / "data" / "porcupine-kv"
    wording = {}
    for name in ("c50-bad", "c01-bad"):
        result = check_file(str(data_dir / f"{name}.txt"), "kv", fmt="edn")
        out = tmp_path / f"{name}.html"
        write_check_html(out, result)
        doc = out.read_text(encoding="utf-8")
        wording[name] = (blob(doc)["refuted"], html.unescape(doc))
    refuted, doc = wording["c50-bad"]
    assert refuted is True
    assert "a linearizable prefix (refuted by the model, no search)" in doc
    assert "longest linearizable prefix</" not in doc
    refuted, doc = wording["c01-bad"]
    assert refuted is False and "longest linearizable prefix" in doc


def test_check_report_of_a_register_history_with_faults(tmp_path):
    from dst.check.edn import parse_events
    text = "\n".join([
        "{:process 0, :type :invoke, :f :write, :value 1}",
        "{:process :nemesis, :type :info, :f :start, :value \"partition </script>\"}",
        "{:process 1, :type :invoke, :f :read, :value nil}",
        "{:process 0, :type :info, :f :write, :value 1}",
        "{:process 1, :type :ok, :f :read, :value 2}",
        "{:process 2, :type :invoke, :f :write, :value 3}",
        "{:process :nemesis, :type :info, :f :stop, :value nil}",
    ])
    events = parse_events(text, "r.edn")
    out = tmp_path / "r.html"
    write_check_report(out, events, {"history": "r.edn", "model": "register", "verdict": "ok", "ops": 3,
                                     "steps": 4, "violation": None})
    doc = out.read_text(encoding="utf-8")
    assert doc.count("</script") == 2
    data = blob(doc)
    assert [data["fs"][n[2]] for n in data["nem"]] == ["start", "stop"]
    assert "partition </script>" in data["nem"][0][3]
    types = [o[1] for o in data["ops"]]
    assert types == [2, 0, 2]                       # info, ok, never completed
    assert data["ops"][2][6] == -1
    # Process 2 starts after process 0's info op: the same client lane.
    assert data["procRow"][0] == data["procRow"][2] != data["procRow"][1]
