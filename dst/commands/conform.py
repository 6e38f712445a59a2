"""``dst conform``: the same cases on several backends, side by side.

How the cases are paired: ``dst.sim.cases``; compared: ``dst.check.compare``. Exit 1 on any
disagreement or violation.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from dst import wallclock
from dst.argtypes import positive
from dst.argtypes import seed as seed_number
from dst.check.compare import KINDS, compare_histories
from dst.console import EXIT_OK, EXIT_UNKNOWN, EXIT_VIOLATION, add_store_flags, print_json, progress, safe
from dst.errors import UsageError
from dst.sim.cases import Cases


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    con = subparsers.add_parser("conform", help="the same cases on several backends, side by side")
    add_store_flags(con)
    con.add_argument("--backends", required=True, help="comma-separated, e.g. sim,lance,pgvector")
    con.add_argument("--seeds", type=positive, default=20)
    con.add_argument("--seed", type=seed_number, default=0)
    con.add_argument("--shrink", action="store_true", help="shrink the first disagreement into seeds/")
    return con


LISTED_PER_BACKEND = 200   # disagreements kept per backend in result.json


def add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        total[k] = total.get(k, 0) + v


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from dst.backend import resolve_backend, scoped_options
    from dst.check.linearizability import DEFAULT_BUDGET_STEPS
    from dst.report.folders import new_run_dir, write_json
    from dst.sim.runner import run_seed
    from dst.sim.scenario import load
    from dst.wallclock import run_token

    console = Console(stderr=True, highlight=False, quiet=args.quiet, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True, quiet=args.json)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UsageError("dst conform: --backends needs two or more different backends, e.g. sim,lance")
    if args.concurrency == "threads":
        raise UsageError("dst conform: threads mode cannot run the same case twice; use --concurrency sim")
    factories = {b: resolve_backend(b) for b in names}
    scenario = load(args.scenario).with_overrides(args.clients, args.ops, getattr(args, "metric", None),
                                                  getattr(args, "isolate", None))
    # --opt KEY=VALUE goes to every backend, --opt B:KEY=VALUE to B alone.
    options = {b: scoped_options(args.opt, b, names) for b in names}
    budget = args.budget_steps or DEFAULT_BUDGET_STEPS
    run_dir = new_run_dir(args.report_dir, f"conform-{scenario.name}-{safe('-'.join(names))}")
    token = run_token(run_dir)
    seeds = list(range(args.seed, args.seed + args.seeds))
    ref = names[0]
    if scenario.filters == "auto":
        # The same case runs on every backend: with filters only if all take them.
        lacking = []
        for b in names:
            try:
                if not _declares_filters(factories[b], args.location, options[b], token, scenario.metric):
                    lacking.append(b)
            except UsageError as exc:   # a setup error: say which backend refused
                raise UsageError(f"dst conform: backend {b}: {exc}{_scope_hint(exc, args.opt)}") from None
        scenario = replace(scenario, filters="off" if lacking else "on")
        if lacking:
            console.print(f"filters off: {', '.join(lacking)} does not declare them", markup=False)
    totals = {b: {k: {"agree": 0, "ann": 0, "differ": 0} for k in KINDS} for b in names[1:]}
    verdicts = {b: {"ok": 0, "violation": 0, "unknown": 0} for b in names}
    fired: dict[str, dict[str, int]] = {b: {} for b in names}   # what the faults really did, per backend
    first: dict[str, dict[str, Any]] = {}
    listed: dict[str, list[dict[str, Any]]] = {b: [] for b in names[1:]}   # every disagreement, capped
    not_ok: dict[str, list[dict[str, Any]]] = {b: [] for b in names}    # each seed a backend's own check failed
    cases: dict[tuple[int, str], Any] = {}
    with progress(console) as bar:
        task = bar.add_task(f"conform {scenario.name}", total=len(seeds) * len(names))
        def run(b, seed, schedule, record):
            try:
                return run_seed(scenario, seed, b, location=args.location, options=options[b],
                                token=token, factory=factories[b], budget_steps=budget,
                                schedule=schedule, record=record)
            except UsageError as exc:   # a setup error: say which backend refused
                raise UsageError(f"dst conform: backend {b}: {exc}{_scope_hint(exc, args.opt)}") from None
        case = Cases(run, ref)
        for seed in seeds:
            r0, h0 = case.reference(seed)
            verdicts[ref][r0.verdict] += 1
            _note_not_ok(not_ok[ref], r0, h0, run_dir, ref)
            add_counts(fired[ref], r0.fired)
            bar.advance(task)
            for b in names[1:]:
                r, h, base, sched = case.other(b)
                verdicts[b][r.verdict] += 1
                _note_not_ok(not_ok[b], r, h, run_dir, b)
                add_counts(fired[b], r.fired)
                ann = not (base.meta.get("exact", True) and h.meta.get("exact", True))
                counts, diffs = compare_histories(base, h, scenario.score_eps, ann)
                for k, c in counts.items():
                    for kk in c:
                        totals[b].setdefault(k, {"agree": 0, "ann": 0, "differ": 0})[kk] += c[kk]
                room = LISTED_PER_BACKEND - len(listed[b])
                listed[b].extend({"seed": seed, **{k: d[k] for k in ("index", "f", "why") if k in d}}
                                 for d in diffs[:max(0, room)])
                if diffs and b not in first:
                    first[b] = {"seed": seed, **diffs[0], "disagreements_in_seed": len(diffs)}
                    cases[(seed, b)] = sched
                    base.write(run_dir / f"seed-{seed}-{safe(ref)}.jsonl")
                    h.write(run_dir / f"seed-{seed}-{safe(b)}.jsonl")
                bar.advance(task)

    t = Table(title=f"dst conform: {scenario.name}, {len(seeds)} seeds, reference {ref}")
    t.add_column("op")
    for b in names[1:]:
        t.add_column(f"{b} agrees", justify="right")
    for k in KINDS:
        row = []
        for b in names[1:]:
            c = totals[b].get(k, {"agree": 0, "ann": 0, "differ": 0})
            n = c["agree"] + c["differ"]
            cell = f"{c['agree']}/{n}" if n else "-"
            if c["ann"]:
                cell += f" (+{c['ann']} ann)"
            row.append(cell if not c["differ"] else f"[red]{cell}[/]")
        t.add_row(k, *row)
    console.print(t)
    for b in names:
        v = verdicts[b]
        console.print(f"{b}: {v['ok']} ok, {v['violation']} violation, {v['unknown']} unknown", markup=False)
    for b in names:
        for n in not_ok[b]:
            console.print(f"{b} seed {n['seed']}: {n['verdict']}: {n['why']} ({n['history']})", markup=False)
    for b, d in first.items():
        console.print(f"first disagreement, {ref} vs {b}: seed {d['seed']}, op #{d['index']} "
                      f"{d['f']} {d.get('input')!r}: {d['why']}", markup=False)
        if "outputs" in d:
            console.print(f"  {ref}: {d['outputs'][0]!r}", markup=False)
            console.print(f"  {b}: {d['outputs'][1]!r}", markup=False)
    summary = {"scenario": scenario.name, "backends": names, "seeds": seeds,
               "verdicts": verdicts, "fault_counts": fired, "agreement": totals,
               "first_disagreement": first, "disagreements": listed, "not_ok": not_ok}
    write_json(run_dir / "result.json", summary)
    if args.json:
        print_json({**summary, "report_dir": str(run_dir)})
    violations = any(verdicts[b]["violation"] for b in names)
    code = EXIT_VIOLATION if first or violations else (
        EXIT_UNKNOWN if any(verdicts[b]["unknown"] for b in names) else EXIT_OK)
    if first and args.shrink:
        b, d = next(iter(first.items()))
        _shrink_disagreement(args, scenario, d["seed"], ref, b, cases[(d["seed"], b)], d["f"],
                             options, budget, out, console)
    console.print(f"report: {run_dir}", markup=False)
    return code


def _note_not_ok(into: list, r: Any, h: Any, run_dir: Path, b: str) -> None:
    """A seed whose own check did not pass on backend ``b``: what and where
    (its history is written beside result.json)."""
    if r.verdict == "ok":
        return
    v = r.violations[0] if r.violations else {}
    why = " ".join(str(x) for x in (v.get("kind"), v.get("check"), v.get("message")) if x) or r.reason
    path = run_dir / f"seed-{r.seed}-{safe(b)}-{r.verdict}.jsonl"
    h.write(path)
    into.append({"seed": r.seed, "verdict": r.verdict, "why": why, "history": str(path)})


def _declares_filters(factory: Any, location: Any, options: dict[str, Any], token: str, metric: str) -> bool:
    """Whether backend ``name`` declares ``filters = True``: opened once on a
    namespace of its own, then dropped (or closed)."""
    from dst.backend import BackendConfig, open_backend
    config = BackendConfig(dim=8, location=location, namespace=f"dst_{token}_caps"[:63], fresh=True,
                           options=options, metric=metric)
    b = open_backend(factory, config)
    try:
        return getattr(b, "filters", False) is True
    finally:
        done = getattr(b, "drop", None) or getattr(b, "close", None)
        if callable(done):
            done()


def _scope_hint(exc: UsageError, opts: list) -> str:
    """A hint when a plain --opt key, sent to every backend, was refused."""
    plain = [k for k, _ in opts if ":" not in str(k) and repr(str(k)) in str(exc)]
    if not plain:
        return ""
    return f" (--opt {plain[0]}=... goes to every backend; write BACKEND:{plain[0]}=... for one)"


def _shrink_disagreement(args, scenario, seed, ref, other, schedule, f, options, budget, out, console):
    """Shrink a disagreement: keep the backends disagreeing on the same op kind.
    ``options``: each backend's own (``scoped_options``)."""
    from dst.sim.runner import run_seed
    from dst.sim.shrink import Shrinker, case_dict, listing, prune_vectors, slug, write_case

    def disagrees(cand) -> bool:
        _, ha = run_seed(scenario, seed, ref, location=args.location, options=options[ref],
                         budget_steps=budget, schedule=cand)
        _, hb = run_seed(scenario, seed, other, location=args.location, options=options[other],
                         budget_steps=budget, schedule=cand)
        ann = not (ha.meta.get("exact", True) and hb.meta.get("exact", True))
        _, diffs = compare_histories(ha, hb, scenario.score_eps, ann)
        return any(d.get("f") == f for d in diffs)

    t0 = wallclock.monotonic_s()
    small = Shrinker(disagrees, budget_s=60.0).shrink(schedule)
    pruned = prune_vectors(small)
    if disagrees(pruned):
        small = pruned
    name = slug(f"conform-{ref}-vs-{other.split(':')[-1]}-{scenario.name}-s{seed}-{f}")
    path = Path("seeds") / f"{name}.json"
    case = case_dict(name=name, scenario=scenario, seed=seed, backend=other, options=options[other],
                     schedule=small, expected_verdict="disagreement", expected_kind=f"conform:{f}",
                     note=f"{ref} and {other} disagree on {f}")
    case["conform"] = [ref, other]
    if options[ref] != options[other]:
        case["conform_options"] = {ref: options[ref], other: options[other]}
    write_case(path, case)
    console.print(f"shrunk the disagreement to {small.n_ops()} ops in "
                  f"{wallclock.monotonic_s() - t0:.1f} s", markup=False)
    for line in listing(small):
        out.print(line, markup=False)
    out.print(f"wrote {path}", markup=False)
