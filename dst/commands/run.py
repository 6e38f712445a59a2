"""``dst run``: run seeds against one backend, gate the run, write its report."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

from dst import wallclock
from dst.argtypes import positive, seconds, shard
from dst.argtypes import seed as seed_number
from dst.console import (DEFAULT_BACKEND, OUTCOME_EXIT, add_store_flags, consoles, print_json, print_summary,
                         print_violation, progress, safe)
from dst.errors import UsageError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    run = subparsers.add_parser("run", help="run seeds against one backend")
    add_store_flags(run)
    run.add_argument("--seeds", type=positive, default=100, help="how many seeds (default: 100)")
    run.add_argument("--seed", type=seed_number, default=0, help="first seed (default: 0)")
    run.add_argument("--shard", type=shard, help="run shard I of N of the seed range")
    run.add_argument("--time-budget", type=seconds, help="stop starting seeds after this many seconds")
    run.add_argument("--jobs", type=positive, default=1, help="local worker processes")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where seeds run: local processes (--jobs), or a Ray cluster (docs/cluster.md)")
    run.add_argument("--ray-address", default=None,
                     help="the Ray cluster to run on (default: RAY_ADDRESS, else a local Ray for this run)")
    run.add_argument("--junit", help="also write JUnit XML here")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first seed that does not pass")
    return run


def _seed_list(args: argparse.Namespace) -> list[int]:
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.shard:
        i, n = args.shard
        seeds = seeds[i - 1::n]
    return seeds


def main(args: argparse.Namespace) -> int:
    from dst.backend import resolve_backend
    from dst.check.linearizability import DEFAULT_BUDGET_STEPS
    from dst.report.folders import ensure_writable, new_run_dir, write_run_files
    from dst.report.junit import write_junit
    from dst.sim.campaign import run_campaign
    from dst.sim.executor import open_executor
    from dst.sim.scenario import FAULT_CLASSES, load
    from dst.report.html import reachability_text
    from dst.wallclock import run_token

    console, out = consoles(args)
    args.backend = args.backend or DEFAULT_BACKEND
    scenario = load(args.scenario).with_overrides(args.clients, args.ops, getattr(args, "metric", None),
                                                  getattr(args, "isolate", None))
    factory = resolve_backend(args.backend)
    options = dict(args.opt)
    seeds = _seed_list(args)
    label = f"{scenario.name}-{safe(args.backend)}-s{args.seed}"
    if args.junit:
        ensure_writable(args.junit, "--junit")
    if args.executor == "ray" and args.jobs != 1:
        raise UsageError("dst run: --jobs sizes the local pool; a Ray cluster sizes itself (drop --jobs)")
    if args.ray_address and args.executor != "ray":
        raise UsageError("dst run: --ray-address needs --executor ray")
    if args.executor == "ray" and args.backend == "pgvector" and not args.location \
            and not os.environ.get("DST_PG_DSN"):
        # Else every worker would start an embedded server of its own (docs/cluster.md).
        raise UsageError("dst run: pgvector on Ray needs one shared server: set DST_PG_DSN "
                         "(or give --location DSN)")
    run_dir = new_run_dir(args.report_dir, label)
    token = run_token(run_dir)
    budget = args.budget_steps or DEFAULT_BUDGET_STEPS

    try:
        executor = open_executor(args.executor, jobs=args.jobs, address=args.ray_address, token=token)
    except UsageError:
        run_dir.rmdir()   # made a moment ago, still empty: the run never started
        raise
    # The budget counts from here: joining or starting Ray is not seed time.
    deadline = wallclock.Deadline(args.time_budget)
    bar = progress(console)
    with executor, bar:
        task = bar.add_task(f"{scenario.name} on {args.backend}", total=len(seeds))

        def tick(result: Any) -> None:
            bar.update(task, advance=1,
                       description=f"{scenario.name} on {args.backend}: seed {result.seed} {result.verdict}")
        camp = run_campaign(scenario, seeds, args.backend, hist_dir=run_dir / "histories",
                            fail_fast=args.fail_fast, on_seed=tick, jobs=args.jobs, deadline=deadline,
                            location=args.location, options=options, token=token, factory=factory,
                            budget_steps=budget, concurrency=args.concurrency, executor=executor)
    results, first_fail, elapsed = camp.results, camp.first_fail, camp.elapsed_s
    stopped_early = camp.stopped_early
    # Run-level gates (dst.sim.gates): availability per op kind, ANN recall
    # (a quality gate over the whole run, reported beside the verdict: one
    # query may miss; the mean must reach the scenario's floor) and ANN
    # reachability (every probed live id found by its own vector).
    gates = camp.gates
    recall = gates.recall
    violations, unknowns, unfired = camp.violations, camp.unknowns, camp.unfired
    code = OUTCOME_EXIT[camp.outcome]
    replay_cmd = None
    if first_fail is not None and args.concurrency != "threads":
        replay_cmd = f"dst replay {shlex.quote(str(run_dir / 'history.jsonl'))}"
        if args.location:
            replay_cmd += f" --location {shlex.quote(args.location)}"
    summary = camp.summary(run_dir.name, code, replay_cmd, executor=args.executor)
    write_run_files(run_dir, summary, camp.shown)
    if args.json:
        print_json({**summary, "report_dir": str(run_dir)})
    if args.junit:
        write_junit(args.junit, f"dst.{scenario.name}.{args.backend}", _junit_cases(args, results, run_dir),
                    properties={"metric": scenario.metric, "filters": scenario.filters})

    print_summary(console, summary, results, elapsed)
    if recall is not None:
        console.print(f"recall@k: {'n/a' if recall['mean'] is None else format(recall['mean'], '.4f')} "
                      f"over {recall['searches']} searches (floor {recall['floor']})"
                      + ("" if recall["passed"] or recall["mean"] is None else ": BELOW THE FLOOR"),
                      markup=False)
    reach = gates.reachability
    if reach is not None:
        console.print(f"reachability: {reachability_text(reach)}", markup=False, soft_wrap=True)
    for sentence in gates.sentences(recall=False):
        console.print(sentence, markup=False, soft_wrap=True)
    if stopped_early:
        failed_fast = args.fail_fast and any(r.verdict != "ok" for r in results)
        why = "stopped at the first failing seed" if failed_fast else "time budget reached"
        console.print(f"{why}: ran {len(results)} of {len(seeds)} seeds", markup=False)
    if not results:
        console.print("no seed ran, so nothing was verified: not a pass", markup=False)
    if camp.lost_first is not None:
        print_violation(console, camp.lost_first)
    if first_fail is not None:
        r = first_fail[0]
        print_violation(console, r)
        if replay_cmd:
            out.print(f"replay: {replay_cmd}", markup=False, soft_wrap=True)
        else:
            out.print(f"threads mode is not replayable; the failing history is "
                      f"{run_dir / 'history.jsonl'}", markup=False, soft_wrap=True)
    if unfired and not violations and not unknowns:
        offered = sorted({n for r in results for n in r.offered})
        # The kill nemesis's moments are offered with it (an isolated backend).
        moments = offered + ([k for k in unfired if k.startswith("kill-")] if "kill" in offered else [])
        missing = [k for k in unfired if k not in FAULT_CLASSES and k not in moments]
        hint = "more seeds or ops, or a higher rate"
        if missing:
            hint = (f"{args.backend} offers no nemesis {', '.join(missing)}; it offers "
                    f"{', '.join(offered) or 'none'}")
            if "kill" in missing:
                hint += "; the kill nemesis needs --isolate process"
        console.print(f"fault class{'es' if len(unfired) > 1 else ''} {', '.join(unfired)} "
                      f"enabled but never fired in {len(results)} seeds: the run proves nothing "
                      f"about {'them' if len(unfired) > 1 else 'it'} ({hint})", markup=False)
    console.print(f"report: {run_dir}", markup=False)
    return code


def _junit_cases(args: argparse.Namespace, results: list, run_dir: Path) -> list[dict[str, Any]]:
    """One JUnit case per seed; a seed that did not pass carries commands that
    reproduce it exactly: its recorded history, and the seed with every flag
    that shaped it (scenario as given, options, location, ops, clients,
    budget)."""
    from dst.report.junit import history_replay_command, seed_replay_command
    cases = []
    for r in results:
        msg = r.violations[0].get("message", "") if r.violations else r.reason
        if args.concurrency == "threads":
            detail = (f"threads mode is not replayable (the interleaving was the operating system's); "
                      f"the history is {run_dir / 'histories' / f'seed-{r.seed}.jsonl'}")
        else:
            budget = args.budget_steps
            hist = history_replay_command(run_dir / "histories" / f"seed-{r.seed}.jsonl",
                                          location=args.location, budget_steps=budget)
            by_seed = seed_replay_command(r.seed, scenario=args.scenario, backend=args.backend,
                                          location=args.location, options=args.opt, ops=args.ops,
                                          clients=args.clients, budget_steps=budget,
                                          metric=getattr(args, "metric", None),
                                          isolate=getattr(args, "isolate", None))
            lost = run_dir / "histories" / f"seed-{r.seed}.lost.txt"
            if lost.exists():     # its worker died: no history, only what it said last
                detail = f"the worker died (its last output: {lost}); from the seed: {by_seed}"
            else:
                detail = f"replay: {hist}\nor, from the seed: {by_seed}"
        cases.append({"seed": r.seed, "verdict": r.verdict, "time_s": r.run_s + r.check_s,
                      "message": msg, "detail": detail})
    return cases
