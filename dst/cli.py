"""The ``dst`` command line.

Exit codes (DESIGN): 0 all checks passed; 1 a violation was found; 2 bad
usage or setup, or input that cannot be read; 3 a check ended unknown; 4 not
proven (an enabled fault class never fired, an op kind the scenario draws
never completed ok, or a recall floor was never measured); 5 a replay
diverged from its recording; 6 internal error (an exception escaped the
harness; its traceback is saved, see ``_internal_error``). Where several
apply, 1 wins, then 3, then 4.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

from dst import wallclock
from dst.argtypes import positive, seconds, shard
from dst.argtypes import seed as seed_number
from dst.check_cmd import add_check_parser, cmd_check
from dst.errors import DstError, UsageError
from dst.history import History, HistoryFormatError, first_difference

DEFAULT_BACKEND = "lance"  # the embedded default: LanceDB in a local folder

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_UNKNOWN, EXIT_UNFIRED, EXIT_DIVERGED = 0, 1, 2, 3, 4, 5
EXIT_INTERNAL = 6   # an exception escaped the harness itself: a bug of dst, never a finding


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _opt(text: str) -> tuple[str, Any]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    low = value.lower()
    parsed: Any = value
    if low in ("true", "false"):
        parsed = low == "true"
    else:
        for conv in (int, float):
            try:
                parsed = conv(value)
                break
            except ValueError:
                pass
    return key, parsed


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=None,
                   help=f"sim, lance, pgvector, or package.module:factory (default: {DEFAULT_BACKEND})")
    p.add_argument("--location", help="directory or DSN for the backend")
    p.add_argument("--opt", action="append", type=_opt, default=[], metavar="KEY=VALUE",
                   help="backend option (repeatable)")
    p.add_argument("--scenario", default="default", help="scenario name or .toml path (default: default)")
    p.add_argument("--clients", type=positive, help="logical clients (overrides the scenario)")
    p.add_argument("--ops", type=positive, help="random-phase ops per seed (overrides the scenario)")
    p.add_argument("--concurrency", choices=("sim", "threads"), default="sim")
    p.add_argument("--report-dir", default="reports", help="where run reports go (default: reports)")
    p.add_argument("--budget-steps", type=positive, default=None,
                   help="linearizability search budget per seed, in steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON document on stdout, nothing else (implies --quiet)")


def build_parser() -> argparse.ArgumentParser:
    top = _Parser(prog="dst", description="Deterministic simulation testing for vector stores.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run seeds against one backend")
    _common(run)
    run.add_argument("--seeds", type=positive, default=100, help="how many seeds (default: 100)")
    run.add_argument("--seed", type=seed_number, default=0, help="first seed (default: 0)")
    run.add_argument("--shard", type=shard, help="run shard I of N of the seed range")
    run.add_argument("--time-budget", type=seconds, help="stop starting seeds after this many seconds")
    run.add_argument("--jobs", type=positive, default=1, help="local worker processes")
    run.add_argument("--junit", help="also write JUnit XML here")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first seed that does not pass")

    rep = sub.add_parser("replay", help="re-run one recorded case and compare")
    _common(rep)
    rep.add_argument("file", nargs="?", help="a history.jsonl written by dst run")
    rep.add_argument("--seed", type=seed_number, help="replay this seed of --scenario instead of a file")
    add_check_parser(sub)

    shr = sub.add_parser("shrink", help="minimize a failing case into seeds/")
    _common(shr)
    shr.add_argument("file", nargs="?", help="a history.jsonl from dst run, or a seeds/*.json case")
    shr.add_argument("--seed", type=seed_number, help="shrink this seed of --scenario instead of a file")
    shr.add_argument("--time-budget", type=seconds, default=60.0,
                     help="seconds to spend shrinking (default: 60)")
    shr.add_argument("--out", help="where to write the case (default: seeds/<name>.json)")
    shr.add_argument("--name", help="the case's name (default: backend-scenario-seed-kind)")
    shr.add_argument("--note", default="", help="a sentence stored with the case")

    con = sub.add_parser("conform", help="the same cases on several backends, side by side")
    _common(con)
    con.add_argument("--backends", required=True, help="comma-separated, e.g. sim,lance,pgvector")
    con.add_argument("--seeds", type=positive, default=20)
    con.add_argument("--seed", type=seed_number, default=0)
    con.add_argument("--shrink", action="store_true", help="shrink the first disagreement into seeds/")

    bench = sub.add_parser("bench", help="backend, harness and checker benchmarks")
    bench.add_argument("--backends", default="sim,lance,pgvector",
                       help="sim, lance, pgvector (each exact and with its index), or variants: sim, lance, "
                            "lance-hnsw-sq, pgvector, pgvector-hnsw (default: sim,lance,pgvector)")
    bench.add_argument("--sizes", help="vectors per row, comma-separated (default: 1000,10000,100000; "
                                       "--quick: 1000,10000)")
    bench.add_argument("--dims", help="dimensions, comma-separated (default: 128,768; --quick: 128)")
    bench.add_argument("--queries", type=positive, help="search queries per row (default: 200; --quick: 100)")
    bench.add_argument("--upserts", type=positive, help="single upserts timed per row (default: 100; --quick: 50)")
    bench.add_argument("--batch-size", type=positive, default=10_000,
                       help="rows per store_batch when loading (default: 10000)")
    bench.add_argument("--data", choices=("lowrank", "normal"), default="lowrank",
                       help="vectors: rank-32 Gaussian plus noise (default) or standard normal")
    bench.add_argument("--data-seed", type=seed_number, default=0, help="seed of the vectors and queries (default: 0)")
    bench.add_argument("--row-timeout", type=seconds, default=1800.0,
                       help="seconds one row may take before it is killed and reported (default: 1800)")
    bench.add_argument("--pg-location", help="pgvector: DSN or embedded server folder "
                                             "(default: DST_PG_DSN, else ./.dst/pgdata)")
    bench.add_argument("--pg-maintenance-work-mem", default="1GB",
                       help="session maintenance_work_mem for pgvector rows, so HNSW builds in memory "
                            "(default: 1GB; '' leaves the server's)")
    bench.add_argument("--scenario", action="append", help="harness scenario(s) to time (default: default, crud)")
    bench.add_argument("--seeds", type=positive, help="harness seeds per scenario (default: 200; --quick: 50)")
    bench.add_argument("--quick", action="store_true",
                       help="a short run: sizes 1000,10000, dim 128, 100 queries, 50 harness seeds")
    bench.add_argument("--report-dir", default="reports", help="where bench-<time>.json and .svg go")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON on stdout "
                                                          "(tables and progress go to stderr)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from dst import reports
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    reports.current_run_dir = None
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("dst: name a command: run, replay, check, bench (see dst --help)")
        if getattr(args, "json", False) and hasattr(args, "quiet"):
            args.quiet = True
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "shrink":
            return cmd_shrink(args)
        if args.command == "conform":
            from dst.conform import cmd_conform
            return cmd_conform(args)
        if args.command == "run":
            return cmd_run(args)
        return cmd_replay(args)
    except (UsageError, HistoryFormatError) as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    except DstError as exc:
        err.print(f"error: {exc}", markup=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130
    except Exception as exc:  # noqa: BLE001 - anything else is a bug of the harness
        return _internal_error(exc, args, err)


def _internal_error(exc: BaseException, args: argparse.Namespace | None, err) -> int:
    """Exit 6: one line on stderr, the traceback in a file the line names.

    The file is ``traceback.txt`` in the command's report folder when it made
    one; otherwise ``traceback-<time>.txt`` under ``--report-dir`` (or
    ``reports/`` for a command without one, such as ``dst check``), and the
    system's temporary folder if even that cannot be written.
    """
    import tempfile
    import traceback
    from dst import reports
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    command = " ".join(sys.argv[1:]) if args is None else getattr(args, "command", "")
    text = f"dst {command}: internal error\n\n{text}"
    stem = f"traceback-{wallclock.stamp()}"
    where = [(reports.current_run_dir, "traceback")] if reports.current_run_dir is not None else []
    where += [(Path(getattr(args, "report_dir", None) or "reports"), stem),
              (Path(tempfile.gettempdir()), f"dst-{stem}")]
    saved = None
    for folder, name in where:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = _fresh_file(folder, name)
            saved.write_text(text, encoding="utf-8")
            break
        except OSError:
            saved = None
    what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    tail = f"traceback in {saved}" if saved is not None else "the traceback could not be saved"
    err.print(f"internal error: an exception escaped the harness: {what}; {tail}", markup=False)
    return EXIT_INTERNAL


def _fresh_file(folder: Path, name: str) -> Path:
    """``folder/name.txt``, or ``name-1.txt``, ...: never another run's file."""
    for n in range(1000):
        path = folder / f"{name}{f'-{n}' if n else ''}.txt"
        if not path.exists():
            return path
    raise FileExistsError(f"1000 files named {name}*.txt in {folder}")


def _load_scenario(args: argparse.Namespace):
    from dst.scenario import load
    return load(args.scenario).with_overrides(args.clients, args.ops)


def _seed_list(args: argparse.Namespace) -> list[int]:
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.shard:
        i, n = args.shard
        seeds = seeds[i - 1::n]
    return seeds


def cmd_run(args: argparse.Namespace) -> int:
    from dst.backend import resolve_backend
    from dst.reports import ensure_writable, new_run_dir, write_json, write_junit
    from dst.wallclock import run_token
    from dst.runner import run_seeds
    from dst.checkers.linearizability import DEFAULT_BUDGET_STEPS
    from dst.scenario import FAULT_CLASSES
    from rich.console import Console

    console = Console(stderr=True, highlight=False, quiet=args.quiet, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True, quiet=args.json)
    args.backend = args.backend or DEFAULT_BACKEND
    scenario = _load_scenario(args)
    factory = resolve_backend(args.backend)
    options = dict(args.opt)
    seeds = _seed_list(args)
    label = f"{scenario.name}-{_safe(args.backend)}-s{args.seed}"
    if args.junit:
        ensure_writable(args.junit, "--junit")
    run_dir = new_run_dir(args.report_dir, label)
    token = run_token(run_dir)
    budget = args.budget_steps or DEFAULT_BUDGET_STEPS
    deadline = wallclock.Deadline(args.time_budget)

    results = []
    fired = {k: 0 for k in FAULT_CLASSES}
    enabled: set[str] = set()
    first_fail: tuple[Any, History] | None = None
    last_history: History | None = None
    started = wallclock.monotonic_s()
    stopped_early = False
    progress = _progress(console)
    with progress:
        task = progress.add_task(f"{scenario.name} on {args.backend}", total=len(seeds))
        for result, history in run_seeds(scenario, seeds, args.backend, jobs=args.jobs,
                                         deadline=deadline, location=args.location,
                                         options=options, token=token, factory=factory,
                                         budget_steps=budget, concurrency=args.concurrency):
            seed = result.seed
            results.append(result)
            if history is not None:
                last_history = history
            for k, v in result.fired.items():
                fired[k] = fired.get(k, 0) + v
            enabled.update(result.enabled)
            if result.verdict != "ok":
                hist_dir = run_dir / "histories"
                hist_dir.mkdir(exist_ok=True)
                history.write(hist_dir / f"seed-{seed}.jsonl")
                if first_fail is None or (first_fail[0].verdict != "violation"
                                          and result.verdict == "violation"):
                    first_fail = (result, history)
            progress.update(task, advance=1,
                            description=f"{scenario.name} on {args.backend}: seed {seed} {result.verdict}")
            if args.fail_fast and result.verdict != "ok":
                stopped_early = True
                break
    elapsed = wallclock.monotonic_s() - started
    if len(results) < len(seeds) and not stopped_early:
        stopped_early = True  # the time budget stopped new seeds

    shown = first_fail[1] if first_fail else last_history
    if shown is not None:
        shown.write(run_dir / "history.jsonl")
    # Run-level gates (dst.gates): availability per op kind, and ANN recall,
    # a quality gate over the whole run reported beside the verdict (one
    # query may miss; the mean must reach the scenario's floor).
    from dst.gates import evaluate
    gates = evaluate(results, scenario.backend_error_ppm, scenario.recall_floor)
    recall = gates.recall
    violations = [r for r in results if r.verdict == "violation"]
    unknowns = [r for r in results if r.verdict == "unknown"]
    unfired = [k for k in sorted(enabled, key=_fault_order) if fired.get(k, 0) == 0]
    if violations or gates.violated:
        code = EXIT_VIOLATION
    elif unknowns:
        code = EXIT_UNKNOWN
    elif unfired or gates.not_proven:
        code = EXIT_UNFIRED
    else:
        code = EXIT_OK
    replay_cmd = None
    if first_fail is not None and args.concurrency != "threads":
        replay_cmd = f"dst replay {shlex.quote(str(run_dir / 'history.jsonl'))}"
        if args.location:
            replay_cmd += f" --location {shlex.quote(args.location)}"
    total_ops = sum(r.ops for r in results)
    summary = {
        "run": run_dir.name, "scenario": scenario.name, "backend": args.backend,
        "options": options, "seeds": [s for s in seeds[:len(results)]],
        "seeds_requested": len(seeds), "stopped_early": stopped_early,
        "verdict": "violation" if violations or gates.violated else "unknown" if unknowns else "ok",
        "exit_code": code, "fault_counts": fired, "faults_enabled": sorted(enabled),
        "faults_never_fired": unfired, "ops": total_ops, "recall": recall,
        # Per op kind over the run: ok / fail / info / own (the backend's own
        # errors) and their first messages; the gates' findings beside it.
        "availability": gates.availability, "backend_error_ppm": scenario.backend_error_ppm,
        "availability_violations": gates.availability_violations,
        "ops_drawn": gates.drawn, "ops_never_ok": gates.never_ok,
        "recall_unmeasured": gates.recall_unmeasured,
        # A scenario class the backend cannot take as such, and what it fired as instead.
        "faults_realised_as": {k: v for r in results for k, v in sorted(r.realised.items())},
        "timings": {"wall_s": round(elapsed, 3),
                    "run_s": round(sum(r.run_s for r in results), 3),
                    "check_s": round(sum(r.check_s for r in results), 3)},
        "replay": replay_cmd,
        "results": [r.summary() for r in results],
    }
    if shown is not None:
        from dst.html_report import write_report
        write_report(run_dir / "report.html", shown, summary)
    write_json(run_dir / "result.json", summary)
    if args.json:
        _print_json({**summary, "report_dir": str(run_dir)})
    if args.junit:
        write_junit(args.junit, f"dst.{scenario.name}.{args.backend}", _junit_cases(args, results, run_dir))

    _print_summary(console, summary, results, elapsed)
    if recall is not None:
        console.print(f"recall@k: {'n/a' if recall['mean'] is None else format(recall['mean'], '.4f')} "
                      f"over {recall['searches']} searches (floor {recall['floor']})"
                      + ("" if recall["passed"] or recall["mean"] is None else ": BELOW THE FLOOR"),
                      markup=False)
    for sentence in gates.sentences(recall=False):
        console.print(sentence, markup=False, soft_wrap=True)
    if stopped_early:
        why = "stopped at the first failing seed" if args.fail_fast and first_fail else "time budget reached"
        console.print(f"{why}: ran {len(results)} of {len(seeds)} seeds", markup=False)
    if first_fail is not None:
        r = first_fail[0]
        _print_violation(console, r)
        if replay_cmd:
            out.print(f"replay: {replay_cmd}", markup=False, soft_wrap=True)
        else:
            out.print(f"threads mode is not replayable; the failing history is "
                      f"{run_dir / 'history.jsonl'}", markup=False, soft_wrap=True)
    if unfired and not violations and not unknowns:
        offered = sorted({n for r in results for n in r.offered})
        missing = [k for k in unfired if k not in FAULT_CLASSES and k not in offered]
        hint = "more seeds or ops, or a higher rate"
        if missing:
            hint = (f"{args.backend} offers no nemesis {', '.join(missing)}; it offers "
                    f"{', '.join(offered) or 'none'}")
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
    from dst.reports import history_replay_command, seed_replay_command
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
                                          clients=args.clients, budget_steps=budget)
            detail = f"replay: {hist}\nor, from the seed: {by_seed}"
        cases.append({"seed": r.seed, "verdict": r.verdict, "time_s": r.run_s + r.check_s,
                      "message": msg, "detail": detail})
    return cases


def _tolerant_match(recorded: History, mine: History, eps: float) -> str:
    """exact-up-to-ties, or where the replay first answered differently."""
    from dst.conform import compare_histories
    ann = not (recorded.meta.get("exact", True) and mine.meta.get("exact", True))
    _, diffs = compare_histories(recorded, mine, eps, ann)
    if not diffs:
        return "exact (up to tie order and score_eps)"
    first = diffs[0]
    where = first["index"] if first["index"] is not None else "?"
    return f"diverged at op {where} ({first['f']}: {first['why']})"


def _print_json(doc: Any) -> None:
    import json
    sys.stdout.write(json.dumps(doc, ensure_ascii=True, default=str) + "\n")
    sys.stdout.flush()


def _fault_order(name: str) -> tuple:
    from dst.scenario import FAULT_CLASSES
    return (0, FAULT_CLASSES.index(name), "") if name in FAULT_CLASSES else (1, 0, name)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:40]


def _progress(console):
    """A progress bar on a terminal; nothing at all when output is a file or
    a pipe (where it would only leave a stray blank line behind)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True,
                    disable=not console.is_terminal)


def _print_summary(console, summary: dict[str, Any], results, elapsed: float) -> None:
    from rich.table import Table
    verdicts = {"ok": 0, "violation": 0, "unknown": 0}
    for r in results:
        verdicts[r.verdict] += 1
    t = Table(title=f"dst run: {summary['scenario']} on {summary['backend']}", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("seeds", str(len(results)))
    t.add_row("ops checked", str(summary["ops"]))
    for k, v in verdicts.items():
        t.add_row(f"verdict {k}", str(v))
    for f, row in summary.get("availability", {}).items():
        t.add_row(f"op {f} ok/fail/info/own errors",
                  f"{row['ok']}/{row['fail']}/{row['info']}/{row['own']}")
    for k, v in summary["fault_counts"].items():
        realised = [a for a, b in summary["faults_realised_as"].items() if b == k]
        state = "" if k in summary["faults_enabled"] or v else " (off)"
        if k in summary["faults_realised_as"]:
            state = f" (fires as {summary['faults_realised_as'][k]} here)"
        elif realised:
            state += f" (drawn as {', '.join(realised)})"
        t.add_row(f"fault {k}{state}", str(v))
    t.add_row("seconds", f"{elapsed:.2f}")
    console.print(t)
    word = {0: "[green]PASS[/]", 1: "[red]VIOLATION[/]", 3: "[yellow]UNKNOWN[/]",
            4: "[yellow]NOT PROVEN[/] (a fault class never fired, an op kind never completed ok, "
               "or the recall floor was never measured)"}
    console.print(f"result: {word[summary['exit_code']]} (exit {summary['exit_code']})")


def _print_violation(console, r) -> None:
    if r.verdict == "unknown":
        console.print(f"seed {r.seed}: unknown: {r.reason}", markup=False)
        return
    v = r.violations[0]
    console.print(f"seed {r.seed}: {v['kind']} violation", markup=False, style="red")
    if "op" in v:
        op = v["op"]
        console.print(f"  op #{op['index']} (process {op['process']}): {op['f']} {op['input']!r} "
                      f"-> {op['output']!r}", markup=False, soft_wrap=True)
        if v.get("state") is not None:
            console.print(f"  state there: {v['state']}", markup=False, soft_wrap=True)
    console.print(f"  why: {v['message']}", markup=False, soft_wrap=True)


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dst.bench import FULL, QUICK, BenchConfig, print_json, run_bench
    from dst.bench_backends import BackendPlan, parse_variants

    preset = QUICK if args.quick else FULL
    try:   # before the benchmarks run, not after
        Path(args.report_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report-dir {args.report_dir!r}: cannot make it ({exc.strerror or exc})") from None

    def ints(text: str | None, flag: str, default: list[int]) -> list[int]:
        if text is None:
            return list(default)
        try:
            vals = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"dst bench: {flag} takes whole numbers separated by commas, got {text!r}") from None
        if not vals or min(vals) < 1:
            raise UsageError(f"dst bench: {flag} needs numbers of at least 1, got {text!r}")
        return sorted(set(vals))

    try:
        variants = parse_variants(args.backends)
    except ValueError as exc:
        raise UsageError(f"dst bench: --backends: {exc}") from None
    plan = BackendPlan(variants=variants, sizes=ints(args.sizes, "--sizes", preset["sizes"]),
                       dims=ints(args.dims, "--dims", preset["dims"]),
                       queries=args.queries or preset["queries"], upserts=args.upserts or preset["upserts"],
                       batch_size=args.batch_size, data=args.data, seed=args.data_seed,
                       row_timeout_s=args.row_timeout, pg_location=args.pg_location,
                       pg_maintenance_work_mem=args.pg_maintenance_work_mem or None)
    config = BenchConfig(report_dir=args.report_dir, scenarios=args.scenario or ["default", "crud"],
                         seeds=args.seeds or preset["seeds"], plan=plan, quick=args.quick)
    console = Console(highlight=False, soft_wrap=True, stderr=args.json)
    out, path = run_bench(config, console)
    console.print(f"wrote {path} and {path.with_suffix('.svg').name}", markup=False)
    if args.json:
        print_json(out)
    return EXIT_OK


def _replay_case(args: argparse.Namespace, console) -> int:
    """Replay a seeds/*.json case and compare with its expected verdict."""
    from dst.checkers.linearizability import DEFAULT_BUDGET_STEPS
    from dst.reports import new_run_dir, write_json
    from dst.wallclock import run_token
    from dst.runner import run_case
    from dst.shrink import read_case, violation_kind
    if not Path(args.file).is_file():
        raise UsageError(f"dst replay: no such file {args.file!r}")
    case = read_case(args.file)
    backend = args.backend or case["backend"]
    if backend != case["backend"]:   # the recorded options were the other backend's
        case = {**case, "options": {}}
    run_dir = new_run_dir(args.report_dir, f"replay-{_safe(case.get('name', 'case'))}")
    result, history = run_case(case, backend=backend, location=args.location, options=dict(args.opt),
                               token=run_token(run_dir),
                               budget_steps=args.budget_steps or DEFAULT_BUDGET_STEPS)
    history.write(run_dir / "history.jsonl")
    kind = violation_kind(result)
    exp = case.get("expected") or {}
    same = result.verdict == exp.get("verdict") and kind == exp.get("kind")
    doc = {"replay_of": args.file, "case": case.get("name"), "backend": backend, "kind": kind,
           "expected": exp, "as_expected": same, **result.summary()}
    write_json(run_dir / "result.json", doc)
    if args.json:
        _print_json({**doc, "report_dir": str(run_dir)})
    console.print(f"case {case.get('name')} ({case.get('ops')} ops) on {backend}: verdict "
                  f"{result.verdict}{' (' + kind + ')' if kind else ''}; expected {exp.get('verdict')}"
                  f"{' (' + exp['kind'] + ')' if exp.get('kind') else ''}: "
                  f"{'as expected' if same else 'DIFFERENT'}", markup=False)
    if result.verdict != "ok":
        _print_violation(console, result)
    console.print(f"report: {run_dir}", markup=False)
    if result.verdict == "violation":
        return EXIT_VIOLATION
    if result.verdict == "unknown":
        return EXIT_UNKNOWN
    return EXIT_OK


def cmd_shrink(args: argparse.Namespace) -> int:
    from dst.checkers.linearizability import DEFAULT_BUDGET_STEPS
    from dst.runner import replay_config, run_case, run_seed
    from dst.schedule import Schedule
    from dst.shrink import (Shrinker, case_dict, kinds_of, listing, prune_vectors, read_case, slug,
                            violation_kind, write_case)
    from rich.console import Console

    console = Console(stderr=True, highlight=False, quiet=args.quiet, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True, quiet=args.json)
    budget = args.budget_steps or DEFAULT_BUDGET_STEPS
    options = dict(args.opt)
    if args.file and args.seed is not None:
        raise UsageError("dst shrink: give a FILE or --seed N, not both")
    if args.out:
        from dst.reports import ensure_writable
        ensure_writable(args.out, "--out")
    if args.file and args.file.endswith(".json"):
        case = read_case(args.file)
        from dst.runner import _scenario_raw
        from dst.scenario import parse
        scenario = parse(_scenario_raw(case["scenario_config"]), default_name=case["scenario"])
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
            backend = args.backend or recorded
            if backend != recorded:      # the recorded options were the other backend's
                rec_options = {}
            options = {**rec_options, **options}
        elif args.seed is not None:
            scenario, seed, backend = _load_scenario(args), args.seed, args.backend or DEFAULT_BACKEND
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

    progress = _progress(console)
    with progress:
        task = progress.add_task(f"shrinking ({kind})", total=None)
        shrinker = Shrinker(still_fails, budget_s=args.time_budget,
                            progress=lambda stage, n: progress.update(
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
        _print_json({"case": str(path), "ops_before": n0, "ops": small.n_ops(), "seconds": round(took, 3),
                     "trials": shrinker.trials, "verdict": final.verdict, "kind": final_kind,
                     "listing": listing(small)})
    return EXIT_VIOLATION if final.verdict == "violation" else EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from dst.backend import resolve_backend
    from dst.checkers.linearizability import DEFAULT_BUDGET_STEPS
    from dst.reports import new_run_dir, write_json
    from dst.wallclock import run_token
    from dst.runner import replay_config, run_seed
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
        scenario, seed = _load_scenario(args), args.seed
        backend, options = args.backend or DEFAULT_BACKEND, dict(args.opt)
    else:
        raise UsageError("dst replay: give a history FILE or --seed N")
    factory = resolve_backend(backend)
    run_dir = new_run_dir(args.report_dir, f"replay-{scenario.name}-{_safe(backend)}-s{seed}")
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
            match = _tolerant_match(History.from_bytes(recorded, args.file), history, scenario.score_eps)
        else:
            match = f"diverged at op {diff}" if diff >= 0 else "diverged in the header or vector table"
    doc = {"replay_of": args.file, "seed": seed, "scenario": scenario.name,
           "backend": backend, "match": match, **result.summary()}
    write_json(run_dir / "result.json", doc)
    from dst.html_report import write_report
    write_report(run_dir / "report.html", history, doc)
    if args.json:
        _print_json({**doc, "report_dir": str(run_dir)})
    console.print(f"replay of seed {seed} ({scenario.name} on {backend}): {match}; verdict {result.verdict}",
                  markup=False)
    if result.verdict != "ok":
        _print_violation(console, result)
    console.print(f"report: {run_dir}", markup=False)
    if result.verdict == "violation":
        return EXIT_VIOLATION
    if match.startswith("diverged"):
        return EXIT_DIVERGED
    if result.verdict == "unknown":
        return EXIT_UNKNOWN
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
