"""``dst replay``: re-run one recorded case (a history or a seeds/*.json case) and compare."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dst.argtypes import seed as seed_number
from dst.console import (DEFAULT_BACKEND, EXIT_DIVERGED, EXIT_OK, EXIT_UNKNOWN, EXIT_VIOLATION, add_store_flags,
                         print_json, print_violation, safe)
from dst.check.compare import tolerant_match
from dst.errors import UsageError
from dst.history import History, first_difference


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    rep = subparsers.add_parser("replay", help="re-run one recorded case and compare")
    add_store_flags(rep)
    rep.add_argument("file", nargs="?", help="a history.jsonl written by dst run")
    rep.add_argument("--seed", type=seed_number, help="replay this seed of --scenario instead of a file")
    return rep


def main(args: argparse.Namespace) -> int:
    from dst.backend import resolve_backend
    from dst.check.linearizability import DEFAULT_BUDGET_STEPS
    from dst.report.folders import new_run_dir, write_json
    from dst.sim.runner import replay_config, run_seed
    from dst.sim.scenario import load
    from dst.wallclock import run_token
    from rich.console import Console

    console = Console(stderr=True, highlight=False, quiet=args.quiet, soft_wrap=True)
    recorded: bytes | None = None
    if args.file and args.seed is not None:
        raise UsageError("dst replay: give a FILE or --seed N, not both")
    if args.file and args.file.endswith(".json"):
        return _replay_case(args, console)
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise UsageError(f"dst replay: no such file {args.file!r}")
        recorded = path.read_bytes()
        history = History.from_bytes(recorded, args.file)
        if history.meta.get("concurrency") == "threads":
            raise UsageError(f"dst replay: {args.file} is a threads-mode run; those are not "
                             f"replayable (the interleaving was the operating system's)")
        try:
            scenario, seed, backend, options = replay_config(history)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"dst replay: {args.file} lacks what a replay needs ({exc})") from None
        scenario = scenario.with_overrides(isolate=getattr(args, "isolate", None))
        history_backend = backend
        if args.backend is not None:
            backend = args.backend  # an explicit --backend replays the case elsewhere
            if backend != history_backend:
                options = {}        # the recorded options were the other backend's
        options.update(dict(args.opt))
    elif args.seed is not None:
        history_backend = None
        if args.concurrency == "threads":
            raise UsageError("dst replay: threads-mode runs are not replayable")
        scenario, seed = load(args.scenario).with_overrides(args.clients, args.ops, getattr(args, "metric", None),
                                                  getattr(args, "isolate", None)), args.seed
        backend, options = args.backend or DEFAULT_BACKEND, dict(args.opt)
    else:
        raise UsageError("dst replay: give a history FILE or --seed N")
    factory = resolve_backend(backend)
    run_dir = new_run_dir(args.report_dir, f"replay-{scenario.name}-{safe(backend)}-s{seed}")
    result, history = run_seed(scenario, seed, backend, location=args.location, options=options,
                               token=run_token(run_dir), factory=factory,
                               budget_steps=args.budget_steps or DEFAULT_BUDGET_STEPS)
    mine = history.to_bytes()
    history.write(run_dir / "history.jsonl")
    if recorded is None:
        match = "no recording to compare"
    else:
        diff = first_difference(recorded, mine)
        if diff is None:
            match = "exact"
        elif backend != "sim" and backend == history_backend:
            # A real store may order equal scores differently or round a
            # score in the last bit: compare op by op, ties and score_eps aside.
            match = tolerant_match(History.from_bytes(recorded, args.file), history, scenario.score_eps)
        else:
            match = f"diverged at op {diff}" if diff >= 0 else "diverged in the header or vector table"
    doc = {"replay_of": args.file, "seed": seed, "scenario": scenario.name,
           "backend": backend, "match": match, **result.summary()}
    write_json(run_dir / "result.json", doc)
    from dst.report.html import write_report
    write_report(run_dir / "report.html", history, doc)
    if args.json:
        print_json({**doc, "report_dir": str(run_dir)})
    console.print(f"replay of seed {seed} ({scenario.name} on {backend}): {match}; verdict {result.verdict}",
                  markup=False)
    if result.verdict != "ok":
        print_violation(console, result)
    console.print(f"report: {run_dir}", markup=False)
    if result.verdict == "violation":
        return EXIT_VIOLATION
    if match.startswith("diverged"):
        return EXIT_DIVERGED
    if result.verdict == "unknown":
        return EXIT_UNKNOWN
    return EXIT_OK


def _replay_case(args: argparse.Namespace, console) -> int:
    """Replay a seeds/*.json case and compare with its expected verdict."""
    from dst.check.linearizability import DEFAULT_BUDGET_STEPS
    from dst.report.folders import new_run_dir, write_json
    from dst.sim.runner import run_case
    from dst.sim.shrink import expected_for, read_case, violation_kind
    from dst.wallclock import run_token
    if not Path(args.file).is_file():
        raise UsageError(f"dst replay: no such file {args.file!r}")
    case = read_case(args.file)
    backend = args.backend or case["backend"]
    if backend != case["backend"]:   # the recorded options were the other backend's
        case = {**case, "options": {}}
    run_dir = new_run_dir(args.report_dir, f"replay-{safe(case.get('name', 'case'))}")
    result, history = run_case(case, backend=backend, location=args.location, options=dict(args.opt),
                               token=run_token(run_dir),
                               budget_steps=args.budget_steps or DEFAULT_BUDGET_STEPS)
    history.write(run_dir / "history.jsonl")
    kind = violation_kind(result)
    # A case may expect different verdicts on different servers ("expect"):
    # the server is the one the backend reported (versions()), not assumed.
    exp = expected_for(case, result.versions.get("server"), {**(case.get("options") or {}), **dict(args.opt)})
    same = result.verdict == exp.get("verdict") and kind == exp.get("kind")
    doc = {"replay_of": args.file, "case": case.get("name"), "backend": backend, "kind": kind,
           "expected": exp, "as_expected": same, **result.summary()}
    write_json(run_dir / "result.json", doc)
    if args.json:
        print_json({**doc, "report_dir": str(run_dir)})
    on = backend + (f" ({result.versions['server']}: " + ", ".join(
        f"{k} {v}" for k, v in result.versions.items() if k != "server") + ")" if result.versions else "")
    console.print(f"case {case.get('name')} ({case.get('ops')} ops) on {on}: verdict "
                  f"{result.verdict}{' (' + kind + ')' if kind else ''}; expected {exp.get('verdict')}"
                  f"{' (' + exp['kind'] + ')' if exp.get('kind') else ''}: "
                  f"{'as expected' if same else 'DIFFERENT'}", markup=False)
    if result.verdict != "ok":
        print_violation(console, result)
    console.print(f"report: {run_dir}", markup=False)
    if result.verdict == "violation":
        return EXIT_VIOLATION
    if result.verdict == "unknown":
        return EXIT_UNKNOWN
    return EXIT_OK
