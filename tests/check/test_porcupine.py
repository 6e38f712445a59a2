"""Porcupine's kv histories (verdict in the file name), partitioned and whole.

Whole, c10 takes the search about 1.65 million steps (about 2-3 s here;
Porcupine in Go: 2.75 s): well inside the default budget, so the test
asserts the real verdict, never unknown.
"""

from pathlib import Path

import pytest

from dst.check.linearizability import DEFAULT_BUDGET_STEPS, check
from dst.check.edn import read_events, to_operations
from dst.check.models.kv import KvModel

DATA = Path(__file__).resolve().parents[1] / "data" / "porcupine-kv"
CASES = [("c01-ok", "ok"), ("c01-bad", "violation"), ("c10-ok", "ok"), ("c10-bad", "violation")]


def load(name):
    path = DATA / f"{name}.txt"
    model = KvModel()
    ops, origin = to_operations(read_events(path), model, str(path))
    return model, ops, origin


@pytest.mark.parametrize("partition", [True, False], ids=["partitioned", "whole"])
@pytest.mark.parametrize("name, expected", CASES)
def test_porcupine_verdicts(name, expected, partition):
    model, ops, _ = load(name)
    r = check(model, ops, partition=partition)
    assert r.verdict == expected, r.reason
    assert r.steps < DEFAULT_BUDGET_STEPS
    if partition:
        assert r.partitions == len({op.input[1] for op in ops}) > 1
        assert r.steps < 5_000          # per key, each part is easy
    if expected == "violation":
        fl = r.failure
        assert fl.unplaced and fl.op in fl.unplaced
        assert fl.explanation.startswith("get ")
        # the prefix really is linearizable, in that order
        state = model.init()
        for op in fl.prefix:
            ok, state = model.step(state, op.input, op.output)
            assert ok
        assert state == fl.state
        # and nothing pending there fits next, except ops of unknown outcome
        assert not any(model.step(fl.state, op.input, op.output)[0] for op in fl.unplaced
                       if op.f == "get")


def test_histories_read_as_expected():
    sizes = {name: len(load(name)[1]) for name, _ in CASES}
    assert sizes == {"c01-ok": 58, "c01-bad": 38, "c10-ok": 337, "c10-bad": 405}


def test_c01_bad_witness_names_the_key_and_the_stale_get():
    model, ops, origin = load("c01-bad")
    r = check(model, ops)
    fl = r.failure
    assert fl.partition_label == "key '7'" and fl.partition_ops == 5
    assert origin[fl.op.id].line == 59
    assert fl.explanation == "get '7' returned 'x 0 0 y', but the key holds 'x 0 0 yx 0 3 y'"
    assert [origin[o.id].line for o in fl.prefix] == [3, 37, 55]


def test_partitioned_checks_are_deterministic():
    for name, _ in CASES:
        model, ops, _ = load(name)
        a, b = check(model, ops), check(model, ops)
        assert (a.verdict, a.steps, a.details) == (b.verdict, b.steps, b.details)


def test_whole_c10_with_too_small_a_budget_is_unknown():
    model, ops, _ = load("c10-ok")
    r = check(model, ops, partition=False, budget_steps=20_000)
    assert r.verdict == "unknown" and r.steps == 20_000
