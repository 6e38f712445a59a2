"""``dst shrink``: minimize a failing case into seeds/."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from dst import wallclock
from dst.argtypes import seconds
from dst.argtypes import seed as seed_number
from dst.console import (DEFAULT_BACKEND, EXIT_OK, EXIT_VIOLATION, add_store_flags, consoles, print_json,
                         progress)
from dst.errors import UsageError
from dst.history import History


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    shr = subparsers.add_parser("shrink", help="minimize a failing case into seeds/")
    add_store_flags(shr)
    shr.add_argument("file", nargs="?", help="a history.jsonl from dst run, or a seeds/*.json case")
    shr.add_argument("--seed", type=seed_number, help="shrink this seed of --scenario instead of a file")
    shr.add_argument("--time-budget", type=seconds, default=60.0,
                     help="seconds to spend shrinking (default: 60)")
    shr.add_argument("--out", help="where to write the case (default: seeds/<name>.json)")
    shr.add_argument("--name", help="the case's name (default: backend-scenario-seed-kind)")
    shr.add_argument("--note", default="", help="a sentence stored with the case")
    return shr


def main(args: argparse.Namespace) -> int:
    from dst.check.linearizability import DEFAULT_BUDGET_STEPS
    from dst.sim.runner import replay_config, run_case, run_seed
    from dst.sim.scenario import load, parse
    from dst.sim.schedule import Schedule
    from dst.sim.shrink import (Shrinker, case_dict, kinds_of, listing, prune_vectors, read_case, slug,
                            violation_kind, write_case)

    console, out = consoles(args)
    budget = args.budget_steps or DEFAULT_BUDGET_STEPS
    options = dict(args.opt)
    if args.file and args.seed is not None:
        raise UsageError("dst shrink: give a FILE or --seed N, not both")
    if args.out:
        from dst.report.folders import ensure_writable
        ensure_writable(args.out, "--out")
    if args.file and args.file.endswith(".json"):
        case = read_case(args.file)
        from dst.sim.runner import scenario_raw
        scenario = parse(scenario_raw(case["scenario_config"]), default_name=case["scenario"])
        seed, backend = int(case["seed"]), args.backend or case["backend"]
        if backend != case["backend"]:   # the recorded options were the other backend's
            case = {**case, "options": {}}
        options = {**(case.get("options") or {}), **options}
        schedule = Schedule.from_dict(case["schedule"])
        result, _ = run_case(case, backend=backend, location=args.location, options=options,
                             budget_steps=budget)
    else:
        if args.file:
            if not Path(args.file).is_file():
                raise UsageError(f"dst shrink: no such file {args.file!r}")
            history = History.read(args.file)
            if history.meta.get("concurrency") == "threads":
                raise UsageError("dst shrink: threads-mode runs are not replayable, so not shrinkable")
            try:
                scenario, seed, recorded, rec_options = replay_config(history)
            except (KeyError, TypeError, ValueError) as exc:
                raise UsageError(f"dst shrink: {args.file} lacks what a replay needs ({exc})") from None
            scenario = scenario.with_overrides(isolate=getattr(args, "isolate", None))
            backend = args.backend or recorded
            if backend != recorded:      # the recorded options were the other backend's
                rec_options = {}
            options = {**rec_options, **options}
        elif args.seed is not None:
            scenario = load(args.scenario).with_overrides(args.clients, args.ops, getattr(args, "metric", None),
                                                  getattr(args, "isolate", None))
            seed, backend = args.seed, args.backend or DEFAULT_BACKEND
        else:
            raise UsageError("dst shrink: give a history FILE, a seeds/*.json case, or --seed N")
        result, _ = run_seed(scenario, seed, backend, location=args.location, options=options,
                             budget_steps=budget, record=True)
        schedule = result.schedule
    kind = violation_kind(result)
    if kind is None:
        raise UsageError(f"dst shrink: seed {seed} of {scenario.name} on {backend} gives "
                         f"{result.verdict}, not a violation: nothing to shrink")
    n0 = schedule.n_ops()
    console.print(f"shrinking seed {seed} ({scenario.name} on {backend}): {n0} ops, {kind}", markup=False)
    t0 = wallclock.monotonic_s()

    def still_fails(cand: Schedule) -> bool:
        r, _ = run_seed(scenario, seed, backend, location=args.location, options=options,
                        budget_steps=budget, schedule=cand)
        return kind in kinds_of(r)

    bar = progress(console)
    with bar:
        task = bar.add_task(f"shrinking ({kind})", total=None)
        shrinker = Shrinker(still_fails, budget_s=args.time_budget,
                            progress=lambda stage, n: bar.update(
                                task, description=f"shrinking: {stage}, {n} ops"))
        small = shrinker.shrink(schedule)
        pruned = prune_vectors(small)      # renumbered: keep it only if it still fails
        if still_fails(pruned):
            small = pruned
    took = wallclock.monotonic_s() - t0
    final, _ = run_seed(scenario, seed, backend, location=args.location, options=options,
                        budget_steps=budget, schedule=small)
    final_kind = violation_kind(final)
    name = args.name or slug(f"{backend.split(':')[-1]}-{scenario.name}-s{seed}-{kind}")
    path = Path(args.out) if args.out else Path("seeds") / f"{name}.json"
    case = case_dict(name=name, scenario=scenario, seed=seed, backend=backend, options=options,
                     schedule=small, expected_verdict=final.verdict, expected_kind=final_kind,
                     note=args.note)
    try:
        write_case(path, case)
    except OSError as exc:
        raise UsageError(f"dst shrink: cannot write {str(path)!r} ({exc.strerror or exc}); "
                         f"name another file with --out") from None
    console.print(f"shrunk {n0} -> {small.n_ops()} ops in {took:.1f} s ({shrinker.trials} trials)"
                  + ("" if not shrinker.out_of_budget() else "; stopped by the budget"), markup=False)
    for line in listing(small):
        out.print(line, markup=False)
    if final.violations:
        out.print(f"violation: {final.violations[0].get('message', '')}", markup=False)
    out.print(f"wrote {path}; replay: dst replay {shlex.quote(str(path))}", markup=False)
    if args.json:
        print_json({"case": str(path), "ops_before": n0, "ops": small.n_ops(), "seconds": round(took, 3),
                     "trials": shrinker.trials, "verdict": final.verdict, "kind": final_kind,
                     "listing": listing(small)})
    return EXIT_VIOLATION if final.verdict == "violation" else EXIT_OK
