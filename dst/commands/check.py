"""``dst check HISTORY --model M``: check a recorded history.

Models: ``vector`` (a vector-dst JSON Lines history, checked exactly as
``dst run`` checks it), ``register``, ``cas-register`` and ``kv`` (a
Jepsen/Knossos EDN history, or a vector-dst JSON Lines history whose ops
are the model's).

Exit codes (DESIGN): 0 linearizable; 1 not, with the witness printed; 3
unknown, the search budget ran out; 2 bad usage or an unreadable file, one
line on stderr; 6 an internal error (``dst.cli.main`` saves the traceback).
``python -m dst.commands.check`` runs it standalone.

Budgets are search steps, so a verdict never depends on the machine.
``--budget-s N`` is only a friendlier unit for the same thing: N times
``STEPS_PER_SECOND``, a fixed nominal rate, not a measurement. The same
``--budget-s`` gives the same verdict on a slow machine and a fast one; it
takes about N seconds where the checker runs at the nominal rate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dst.argtypes import positive, seconds
from dst.check.linearizability import DEFAULT_BUDGET_STEPS, CheckResult, Operation, check
from dst.console import EXIT_USAGE, VERDICT_EXIT, error_line
from dst.errors import DstError, UsageError
from dst.history import HistoryFormatError

MODELS = ("vector", "register", "cas-register", "kv")
FORMATS = ("jsonl", "edn")

# The nominal checker speed that converts --budget-s into steps. About what
# one core does on the kv model (`dst bench` prints the real figure); a
# constant, so that --budget-s means the same number of steps everywhere.
# DEFAULT_BUDGET_STEPS is 10 nominal seconds.
STEPS_PER_SECOND = 500_000


# How much of a witness the text output shows (the JSON has all of it).
SHOW_PREFIX_TAIL = 3
SHOW_UNPLACED = 8


def _budget_seconds(text: str) -> float:
    s = seconds(text)
    if s >= 1e9:
        raise argparse.ArgumentTypeError(f"expected fewer than 1e9 seconds, got {text!r}")
    return s


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``check`` on the CLI's subparsers; returns its parser."""
    p = subparsers.add_parser(
        "check", help="check a recorded history (vector-dst JSONL or Jepsen EDN)",
        description="Check a recorded history for linearizability. Exit 0 linearizable, "
                    "1 not (witness printed), 3 unknown (budget ran out), 2 bad usage.")
    p.add_argument("history", help="the history file")
    p.add_argument("--model", required=True, choices=MODELS,
                   help="vector (JSONL from dst run), register, cas-register or kv")
    p.add_argument("--format", choices=FORMATS,
                   help="jsonl (vector-dst) or edn (Jepsen/Knossos); default: .jsonl is "
                        "jsonl, .edn is edn, otherwise by the first line")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-steps", type=positive, metavar="N",
                        help=f"search budget in steps (default: {DEFAULT_BUDGET_STEPS:,})")
    budget.add_argument("--budget-s", type=_budget_seconds, metavar="N",
                        help=f"search budget as nominal seconds: N x {STEPS_PER_SECOND:,} steps "
                             "(a fixed rate, so the verdict does not depend on the machine)")
    p.add_argument("--no-partition", action="store_true",
                   help="check the history whole, even where the model splits it by key")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--html", metavar="OUT", help="also write a self-contained HTML report to OUT")
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``dst check``; returns the exit code. Never raises for bad input."""
    try:
        result = check_file(args.history, args.model, fmt=args.format,
                            budget_steps=budget_from(args), partition=not args.no_partition)
    except (DstError, HistoryFormatError) as exc:    # UsageError is a DstError
        error_line(str(exc))
        return EXIT_USAGE
    if getattr(args, "html", None):
        from dst.report.html import write_check_html
        try:
            write_check_html(args.html, result)
        except OSError as exc:
            error_line(f"dst check: cannot write {args.html}: {exc.strerror}")
            return EXIT_USAGE
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, allow_nan=True))
    else:
        print("\n".join(render(result)))
    return VERDICT_EXIT[result["verdict"]]


def budget_from(args: argparse.Namespace) -> int:
    if getattr(args, "budget_steps", None):
        return int(args.budget_steps)
    if getattr(args, "budget_s", None):
        return max(1, round(args.budget_s * STEPS_PER_SECOND))
    return DEFAULT_BUDGET_STEPS


def sniff_format(path: Path) -> str:
    """jsonl for .jsonl, edn for .edn; otherwise JSON objects are jsonl."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".edn":
        return "edn"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise UsageError(f"dst check: cannot read {str(path)!r} ({exc.strerror})") from None
    text = head.lstrip()
    return "jsonl" if text.startswith(b'{"') else "edn"


def check_file(history: str, model_name: str, fmt: str | None = None,
               budget_steps: int = DEFAULT_BUDGET_STEPS, partition: bool = True) -> dict[str, Any]:
    """Check one history file; the result as plain (JSON-ready) data.

    Raises UsageError or HistoryFormatError (one sentence each) for bad
    usage and unreadable files.
    """
    path = Path(history)
    if model_name not in MODELS:
        raise UsageError(f"dst check: unknown model {model_name!r} (choose from {', '.join(MODELS)})")
    if not path.exists():
        raise UsageError(f"dst check: no such file {history!r}")
    if not path.is_file():
        raise UsageError(f"dst check: {history!r} is not a file")
    fmt = fmt or sniff_format(path)
    if model_name == "vector":
        if fmt != "jsonl":
            raise UsageError(f"dst check: the vector model reads vector-dst JSONL histories; "
                             f"{history} is {fmt.upper()} (use --model register, cas-register or kv)")
        return _check_vector(path, budget_steps)
    model = make_model(model_name)
    if fmt == "edn":
        from dst.check.edn import read_events
        events = read_events(path)
    else:
        from dst.check.edn import jsonl_events
        events = jsonl_events(path)
    from dst.check.edn import to_operations
    ops, origin = to_operations(events, model, str(path))
    try:
        res = check(model, ops, budget_steps=budget_steps, partition=partition)
    except TypeError as exc:      # a value the model cannot hash or compare
        raise HistoryFormatError(f"{history}: a value in this history cannot be a "
                                 f"{model_name} value ({exc})") from None
    return summarize(res, model, ops, origin, history=str(path), fmt=fmt,
                     budget_steps=budget_steps, partition=partition)


def make_model(name: str) -> Any:
    if name == "register":
        from dst.check.models.register import RegisterModel
        return RegisterModel(cas=False)
    if name == "cas-register":
        from dst.check.models.register import RegisterModel
        return RegisterModel(cas=True)
    if name == "kv":
        from dst.check.models.kv import KvModel
        return KvModel()
    raise UsageError(f"dst check: unknown model {name!r}")


def _check_vector(path: Path, budget_steps: int) -> dict[str, Any]:
    from dst.history import History
    from dst.sim.runner import check_history
    h = History.read(path)
    if "dim" not in h.meta:
        raise UsageError(f"dst check: {path} has no 'dim' in its header; the vector model "
                         "needs a history written by dst run")
    try:
        r = check_history(h, budget_steps=budget_steps)
    except HistoryFormatError as exc:
        raise HistoryFormatError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryFormatError(f"{path}: not a history the vector model can read ({exc})") from None
    return {"history": str(path), "format": "jsonl", "model": "vector", "verdict": r.verdict,
            "ops": r.ops, "steps": r.steps, "budget_steps": budget_steps,
            "witness_order": r.witness, "reason": r.reason, "violations": r.violations,
            "violation": r.violations[0] if r.violations else None}


# -- the result as data ----------------------------------------------------------

def summarize(res: CheckResult, model: Any, ops: list[Operation], origin: list, *,
              history: str, fmt: str, budget_steps: int, partition: bool) -> dict[str, Any]:
    """A CheckResult of a register/kv history as JSON-ready data.

    ``violation`` (None unless the verdict is one) holds the witness of the
    first failing part: the part, the op that had to go next and why it
    could not, the model state there, the longest linearizable prefix and
    the ops that could not be placed after it. ``violations`` has one such
    entry per failing part found.
    """
    failures = [_failure_data(fl, model, origin) for fl in res.failures]
    parts = res.details.get("partitions", [])
    return {
        "history": history, "format": fmt, "model": model.name, "verdict": res.verdict,
        "ops": len(ops), "partitioned": partition, "partitions": res.partitions,
        "steps": res.steps, "budget_steps": budget_steps, "reason": res.reason,
        "violation": failures[0] if failures else None, "violations": failures,
        "parts": list(parts) if len(parts) > 1 else [],
    }


def _failure_data(fl: Any, model: Any, origin: list) -> dict[str, Any]:
    describe = getattr(model, "describe", repr)
    return {
        "partition": fl.partition_label, "partition_index": fl.partition,
        "partition_ops": fl.partition_ops,
        "op": _op_data(fl.op, origin), "message": fl.explanation,
        "state": describe(fl.state), "state_data": _state_data(fl.state),
        "prefix": [_op_data(o, origin) for o in fl.prefix], "refuted": fl.refuted,
        "unplaced": [_op_data(o, origin) for o in fl.unplaced],
    }


def _op_data(op: Operation, origin: list) -> dict[str, Any]:
    from dst.check.edn import to_json
    from dst.check.models.base import NO_KEY
    c = origin[op.id]
    d = {"line": c.line, "end_line": c.end_line, "process": to_json(c.process), "f": c.f,
         "type": c.type, "value": to_json(c.input),
         "output": None if c.end_line is None else to_json(c.output)}
    if c.key is not NO_KEY:
        d["key"] = to_json(c.key)
    return d


def _state_data(state: Any) -> Any:
    from dst.check.edn import to_json
    from dst.check.models.base import MapState
    if isinstance(state, MapState):
        return {(k if isinstance(k, str) else repr(k)): to_json(v)
                for k, v in sorted(state.items.items(), key=lambda kv: repr(kv[0]))}
    return to_json(state)


# -- the result as text -----------------------------------------------------------

def render(result: dict[str, Any]) -> list[str]:
    """A few lines: the verdict, and for a violation where and why."""
    name = result["history"]
    model = result["model"]
    verdict = result["verdict"]
    parts = result.get("partitions", 1)
    size = f"{result['ops']} ops" + (f" in {parts} parts" if parts > 1 else "")
    head = f"model {model}, {size}, {result['steps']:,} search steps"
    if verdict == "ok":
        return [f"{name}: linearizable ({head})"]
    if verdict == "unknown":
        return [f"{name}: UNKNOWN ({head}): {result['reason']}",
                "  the verdict is not a pass; give more --budget-steps to decide it"]
    v = result["violation"]
    kind = (v or {}).get("kind", "linearizability")
    lines = [f"{name}: NOT LINEARIZABLE ({head})" if kind == "linearizability"
             else f"{name}: VIOLATION, {kind} ({head})"]
    if model == "vector":
        op = v.get("op", {})
        lines.append(f"  op #{op.get('index')} (process {op.get('process')}): {op.get('f')} "
                     f"{op.get('input')!r} -> {op.get('output')!r}")
        if "state" in v:
            lines.append(f"  state there: {v['state']}")
        lines.append(f"  why: {v.get('message')}")
        return lines
    where = f" in {v['partition']} ({v['partition_ops']} ops)" if v["partition"] else ""
    if v.get("refuted"):    # the model's refutation, no search: the prefix is not the longest
        lines.append(f"  no linearization{where} (refuted by the model, no search): a linearizable "
                     f"prefix has {len(v['prefix'])} ops")
    else:
        lines.append(f"  no linearization{where}: the longest linearizable prefix has "
                     f"{len(v['prefix'])} ops")
    tail = v["prefix"][-SHOW_PREFIX_TAIL:]
    if tail:
        skipped = len(v["prefix"]) - len(tail)
        lines.append("  prefix ends" + (f" (after {skipped} more)" if skipped else "") + ":")
        lines.extend(f"    {_op_text(o)}" for o in tail)
    lines.append(f"  state there: {v['state']}")
    lines.append("  cannot place next (none fits):")
    for o in v["unplaced"][:SHOW_UNPLACED]:
        lines.append(f"    {_op_text(o)}")
    if len(v["unplaced"]) > SHOW_UNPLACED:
        lines.append(f"    ... and {len(v['unplaced']) - SHOW_UNPLACED} more")
    lines.append(f"  first to return: line {v['op']['line']}: {v['message']}")
    if len(result["violations"]) > 1:
        lines.append(f"  ({len(result['violations'])} failing parts; --json lists them all)")
    return lines


def _op_text(o: dict[str, Any]) -> str:
    key = f" {o['key']!r}" if "key" in o else ""
    value = "" if o["value"] is None else f" {o['value']!r}"
    if o["type"] == "ok":
        out = f" -> {o['output']!r}" if o["f"] in ("read", "get") else " ok"
    else:
        out = " (outcome unknown)"
    return f"line {o['line']}: process {o['process']} {o['f']}{key}{value}{out}"


if __name__ == "__main__":
    # ``python -m dst.commands.check``: the same command, standalone (the
    # same exit codes as ``dst check``, internal error 6 included).
    from dst.cli import main as dst_main
    sys.exit(dst_main(["check", *sys.argv[1:]]))
