import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dst.history import History, HistoryFormatError, first_difference, pair
from dst.sim.runner import run_seed
from dst.sim.scenario import load


def test_roundtrip_of_a_real_history_is_exact():
    _, h = run_seed(load("default"), 3, "sim")
    data = h.to_bytes()
    again = History.from_bytes(data)
    assert again.to_bytes() == data
    assert again.meta == h.meta
    assert len(again.table) == len(h.table)
    for a, b in zip(again.table.vectors, h.table.vectors):
        assert a.tobytes() == b.tobytes()


ids = st.text(min_size=0, max_size=12)  # includes lone surrogates and NUL


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(ids, max_size=5), scores=st.lists(
    st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=5),
    vec=st.lists(st.floats(width=32, allow_nan=True), min_size=1, max_size=6))
def test_roundtrip_of_odd_values(ids, scores, vec):
    h = History(meta={"seed": 1})
    r = h.table.ref(np.array(vec, dtype=np.float32))
    for i, id_ in enumerate(ids):
        h.add(i * 2, i, "invoke", "store", {"id": id_, "vector": r})
        h.add(i * 2 + 1, i, "ok", "store", None, dispatch=i)
    h.add(100, 0, "invoke", "search", {"vector": r, "limit": 3})
    h.add(101, 0, "ok", "search", [[f"x{n}", s] for n, s in enumerate(scores)])
    data = h.to_bytes()
    back = History.from_bytes(data)
    assert back.to_bytes() == data
    assert [e.get("value") for e in back.events][:-1] == [e.get("value") for e in h.events][:-1]
    got = [s for _, s in back.events[-1]["value"]]
    for a, b in zip(got, scores):
        assert (math.isnan(a) and math.isnan(b)) or a == b
    assert back.table[0].tobytes() == h.table[0].tobytes()


def test_vector_table_interns_by_bytes():
    h = History()
    a = h.table.ref(np.array([1.0, 2.0], dtype=np.float32))
    b = h.table.ref(np.array([1.0, 2.0], dtype=np.float64))
    c = h.table.ref(np.array([1.0, 2.0, 0.0], dtype=np.float32))
    assert a == b != c


def test_malformed_lines_name_file_and_line():
    good = History(meta={}).to_bytes()
    with pytest.raises(HistoryFormatError, match=r"^f\.jsonl:2: not JSON"):
        History.from_bytes(good + b"{nope\n", "f.jsonl")
    with pytest.raises(HistoryFormatError, match="no vector-dst/history header"):
        History.from_bytes(b'{"index":0,"time":0,"process":0,"type":"invoke","f":"count"}\n', "g")
    with pytest.raises(HistoryFormatError, match=r"g:2: event lacks"):
        History.from_bytes(good + b'{"type":"ok"}\n', "g")


def test_pair_joins_by_process_and_skips_nemesis():
    h = History()
    h.add(0, 0, "invoke", "count", {})
    h.add(1, 1, "invoke", "get", {"id": "a"})
    h.add(2, "nemesis", "info", "crash", {})
    h.add(3, 1, "ok", "get", None, dispatch=0)
    h.add(4, 2, "invoke", "delete", {"id": "a"})
    ps = pair(h.events)
    assert [(p.process, p.type, p.ret) for p in ps] == [
        (0, "info", float("inf")), (1, "ok", 3), (2, "info", float("inf"))]
    h.add(5, 1, "ok", "get", None)
    with pytest.raises(HistoryFormatError, match="never invoked"):
        pair(h.events)


def test_first_difference_names_the_event():
    _, h = run_seed(load("crud"), 1, "sim")
    a = h.to_bytes()
    h.events[10]["time"] += 1
    assert first_difference(a, h.to_bytes()) == 10
    assert first_difference(a, a) is None
