"""Write the etcd-shaped cas-register suite as JSON, for a checker in another
language (Porcupine, in Go) to check the very histories ours checks.

    PYTHONPATH=$PWD python scripts/export_cas_suite.py --out /tmp/cas-suite.json

The suite is the one ``scripts/checker_cpu.py`` and ``dst.bench.checker``
time: ``ETCD_LIKE`` (100 histories, 100-400 ops, 5-10 clients), each from
``synthetic_ops("cas-register", ..., jepsen_mix=True)``, drawn from
``Rng(seed).fork("etcd-like")`` in the same order, so the same ops.

Per op: ``client`` (the process: a timed-out client's process is replaced,
as in Jepsen), ``input`` {op: read/write/cas, value, expected} (for a cas,
``value`` is the new value and ``expected`` the old one; nil is null and is
the register's initial value), ``output`` {value, ok, unknown}, ``call`` and
``return`` (integer ticks, closed intervals). An ``info`` op (outcome
unknown) has ``unknown`` true and returns at the end of its history, one
tick after the last finite time in it, as Porcupine's etcd test closes the
ops Jepsen left open. Every history is linearizable by construction.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dst.bench import checker as bc
from dst.check.linearizability import INF, UNKNOWN, Operation
from dst.rng import Rng

FORMAT = "vector-dst cas-register suite 1"


def build_suite(seed: int = 0) -> list[list[Operation]]:
    """The suite's histories, drawn exactly as scripts/checker_cpu.py draws them."""
    cfg = bc.ETCD_LIKE
    rng = Rng(seed).fork("etcd-like")
    out = []
    for _ in range(cfg["histories"]):
        out.append(bc.synthetic_ops("cas-register", rng.between(*cfg["ops"]),
                                    clients=rng.between(*cfg["clients"]), keys=1,
                                    seed=rng.below(2**31), info_ppm=cfg["info_ppm"],
                                    jepsen_mix=True))
    return out


def op_to_json(op: Operation, end: int) -> dict[str, Any]:
    f = op.input[0]
    if f == "read":
        inp = {"op": "read", "value": None, "expected": None}
    elif f == "write":
        inp = {"op": "write", "value": op.input[1], "expected": None}
    elif f == "cas":
        inp = {"op": "cas", "value": op.input[2], "expected": op.input[1]}
    else:
        raise ValueError(f"not a cas-register op: {op.input!r}")
    if op.output is UNKNOWN:
        assert op.ret == INF, op
        out = {"value": None, "ok": False, "unknown": True}
        ret = end
    else:
        # A read's output is its value; a write's None; a cas's True (the
        # suite keeps only cas that succeeded or timed out).
        out = {"value": op.output if f == "read" else None,
               "ok": op.output is not False, "unknown": False}
        ret = int(op.ret)
    return {"client": op.process, "input": inp, "output": out, "call": int(op.call), "return": ret}


def history_to_json(ops: list[Operation]) -> list[dict[str, Any]]:
    finite = [t for op in ops for t in (op.call, op.ret) if t != INF]
    end = int(max(finite, default=0)) + 1
    return [op_to_json(op, end) for op in ops]


def suite_json(seed: int = 0) -> dict[str, Any]:
    hs = build_suite(seed)
    return {"format": FORMAT, "initial": None, "seed": seed,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in bc.ETCD_LIKE.items()},
            "histories": [history_to_json(ops) for ops in hs]}


def ops_from_json(history: list[dict[str, Any]]) -> list[Operation]:
    """Our Operations back from one exported history (an info op's return
    goes back to INF): what the round-trip test compares with synthetic_ops."""
    ops = []
    for i, o in enumerate(history):
        inp_j, out_j = o["input"], o["output"]
        f = inp_j["op"]
        inp: tuple = (("read",) if f == "read" else ("write", inp_j["value"]) if f == "write"
                      else ("cas", inp_j["expected"], inp_j["value"]))
        if out_j["unknown"]:
            out: Any = UNKNOWN
            ret: float = INF
        else:
            out = out_j["value"] if f == "read" else None if f == "write" else out_j["ok"]
            ret = o["return"]
        ops.append(Operation(i, o["client"], f, inp, out, o["call"], ret, None, None))
    return ops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file to write ('-' for stdout)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    text = json.dumps(suite_json(a.seed), separators=(",", ":"))
    if a.out == "-":
        sys.stdout.write(text + "\n")
    else:
        try:
            with open(a.out, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except OSError as e:
            print(f"export_cas_suite: cannot write {a.out}: {e.strerror}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
