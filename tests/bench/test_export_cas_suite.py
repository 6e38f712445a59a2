"""scripts/export_cas_suite.py writes the etcd-shaped cas-register suite, the
very ops scripts/checker_cpu.py checks, in the JSON layout a Go driver reads
for Porcupine: each op's fields match synthetic_ops, an info op returns at
the end of its history with an unknown output, and the export reads back to
the same Operations."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from dst.bench import checker as bc
from dst.check.linearizability import INF, UNKNOWN
from dst.rng import Rng

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("export_cas_suite", ROOT / "scripts" / "export_cas_suite.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _suite_as_checker_cpu_builds_it():
    # Written out here, as scripts/checker_cpu.py draws it, not taken from the script.
    cfg = bc.ETCD_LIKE
    rng = Rng(0).fork("etcd-like")
    return [bc.synthetic_ops("cas-register", rng.between(*cfg["ops"]), clients=rng.between(*cfg["clients"]),
                             keys=1, seed=rng.below(2**31), info_ppm=cfg["info_ppm"], jepsen_mix=True)
            for _ in range(cfg["histories"])]


def test_export_is_the_checker_cpu_suite_and_reads_back_to_the_same_ops(tmp_path):
    mod = _script()
    out = tmp_path / "suite.json"
    assert mod.main(["--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == mod.FORMAT and doc["initial"] is None
    expected = _suite_as_checker_cpu_builds_it()
    assert len(doc["histories"]) == bc.ETCD_LIKE["histories"] == len(expected)
    n_info = n_cas = 0
    for hist, ops in zip(doc["histories"], expected):
        assert len(hist) == len(ops)
        end = max(t for op in ops for t in (op.call, op.ret) if t != INF) + 1
        for j, op in zip(hist, ops):
            assert j["client"] == op.process and j["call"] == op.call
            f = op.input[0]
            assert j["input"]["op"] == f
            if f == "cas":
                n_cas += 1
                assert (j["input"]["expected"], j["input"]["value"]) == (op.input[1], op.input[2])
            elif f == "write":
                assert (j["input"]["value"], j["input"]["expected"]) == (op.input[1], None)
            if op.output is UNKNOWN:
                n_info += 1
                assert j["output"] == {"value": None, "ok": False, "unknown": True}
                assert j["return"] == end
            else:
                assert j["return"] == op.ret and not j["output"]["unknown"] and j["output"]["ok"]
                assert j["output"]["value"] == (op.output if f == "read" else None)
        back = mod.ops_from_json(hist)
        assert [(o.process, o.f, o.input, o.call, o.ret) for o in back] == \
               [(o.process, o.f, o.input, o.call, o.ret) for o in ops]
        assert all((a.output is UNKNOWN) == (b.output is UNKNOWN) and (b.output is UNKNOWN or a.output == b.output)
                   for a, b in zip(back, ops))
    assert n_info > 0 and n_cas > 0       # the suite has both, so both paths were compared


def test_export_to_an_unwritable_path_is_one_line_and_exit_2(tmp_path, capsys):
    rc = _script().main(["--out", str(tmp_path / "no-such-dir" / "suite.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("export_cas_suite: cannot write")
