"""``dst conform``: the same cases on several backends, side by side.

Each seed's case is drawn once (on the first backend, recording every
decision as an explicit schedule) and then run, op for op and fault for
fault, on every other backend. Each history is checked on its own; then
the answers are compared op by op against the first backend:

* search: same length; an id both returned must have scores within
  ``score_eps``; scores rank by rank within ``score_eps``; ids only one
  side returned must sit in the tie group at the bottom (a tie at the
  cut-off may go either way). Searches on an approximate backend are
  compared by its ANN conditions only, so they count as ``ann``, not as
  agreement;
* get: the same vector bytes; other ops: equal answers; an op that one
  backend answered and another failed or left unknown is an ``outcome``
  disagreement.

A partial-write fault cuts a batch the way each backend allows (see
``dst.faults``): a strict subset on a store without atomic batches, a
connection killed mid-COPY on pgvector, an error before or after the whole
batch on sim and lance. Run as recorded on two backends that cut batches
differently, the same case would leave them in different states by the
harness's choice, not theirs, and every later read would "disagree". So
when the two backends of a comparison do not cut batches the same way, both
run the case with whole-batch faults (``Schedule.whole_batches``): the
error before or after the whole batch, as recorded, which every backend
takes alike and every contract allows. Backends that cut batches the same
way (two without atomic batches, say) share the recorded subsets exactly.

Exit 1 on any disagreement or violation.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from dst import wallclock
from dst.errors import UsageError
from dst.history import History, pair

KINDS = ("store", "store_batch", "delete", "get", "exists", "count", "search", "maintenance")


def compare_search(a: list, b: list, eps: float) -> str | None:
    """None if two search answers agree up to ties and score_eps, else why not."""
    if len(a) != len(b):
        return f"{len(a)} hits vs {len(b)}"
    if not a:
        return None
    for r, ((ia, xa), (ib, xb)) in enumerate(zip(a, b)):
        if not abs(xa - xb) <= eps:
            return f"rank {r}: score {xa!r} ({ia!r}) vs {xb!r} ({ib!r})"
    sa, sb = dict((i, x) for i, x in a), dict((i, x) for i, x in b)
    for i in sorted(sa.keys() & sb.keys()):
        if not abs(sa[i] - sb[i]) <= eps:
            return f"id {i!r} scored {sa[i]!r} vs {sb[i]!r}"
    low = min(min(sa.values()), min(sb.values()))
    for i in sorted(sa.keys() - sb.keys()):
        if sa[i] > low + eps:
            return f"id {i!r} (score {sa[i]!r}) returned by one backend only, above the tie at the cut-off"
    for i in sorted(sb.keys() - sa.keys()):
        if sb[i] > low + eps:
            return f"id {i!r} (score {sb[i]!r}) returned by one backend only, above the tie at the cut-off"
    return None


def compare_histories(ref: History, other: History, eps: float, ann: bool) -> tuple[dict, list]:
    """Per-kind counts (agree, ann, differ) and the list of disagreements."""
    pa, pb = pair(ref.events), pair(other.events)
    counts = {k: {"agree": 0, "ann": 0, "differ": 0} for k in KINDS}
    diffs: list[dict[str, Any]] = []
    if len(pa) != len(pb):
        diffs.append({"index": None, "f": None, "why": f"{len(pa)} ops vs {len(pb)}: the schedules diverged"})
    for x, y in zip(pa, pb):
        if x.f != y.f or x.call != y.call:
            diffs.append({"index": x.index, "f": x.f, "why": "the op sequences diverged here"})
            break
        why = None
        if x.type != y.type:
            why = f"outcome {x.type} vs {y.type}"
        elif x.type == "ok":
            if x.f == "search" and isinstance(x.output, list) and isinstance(y.output, list):
                # An ANN backend's answers are its own; a probe's exact search
                # ("exact": true, search_exact) must agree all the same.
                if ann and not (isinstance(x.input, dict) and x.input.get("exact") is True):
                    counts["search"]["ann"] += 1
                    continue
                why = compare_search(x.output, y.output, eps)
            elif x.f == "get" and isinstance(x.output, int) and isinstance(y.output, int):
                if ref.table[x.output].tobytes() != other.table[y.output].tobytes():
                    why = "different vectors"
            elif x.output != y.output:
                why = "different answers"
        c = counts.setdefault(x.f, {"agree": 0, "ann": 0, "differ": 0})
        if why is None:
            c["agree"] += 1
        else:
            c["differ"] += 1
            diffs.append({"index": x.index, "f": x.f, "input": x.input, "why": why,
                          "outputs": [_show(ref, x), _show(other, y)]})
    return counts, diffs


def has_batch_faults(schedule: Any) -> bool:
    return any(p.fault == "partial-write" for plans in schedule.clients for p in plans)


class _Cases:
    """Runs one seed's case on each backend, with whole-batch faults for the
    pairs that would cut batches differently (module doc). How a backend
    cuts batches is learnt from its first history (``batch_faults``)."""

    def __init__(self, run: Any, ref: str):
        self._run = run          # run(backend, seed, schedule, record) -> (result, history)
        self.ref = ref
        self.mode: dict[str, str] = {}

    def run(self, b: str, schedule: Any, record: bool = False) -> tuple[Any, History]:
        return self._run(b, self._seed, schedule, record)

    def reference(self, seed: int) -> tuple[Any, History]:
        """Draw the seed's case on the reference backend, recording it."""
        self._seed = seed
        r0, h0 = self.run(self.ref, None, True)
        self.mode[self.ref] = h0.meta.get("batch_faults", "whole")
        self._whole_ref: tuple[Any, History] | None = None
        self._r0, self._h0 = r0, h0
        return r0, h0

    def other(self, b: str) -> tuple[Any, History, History, Any]:
        """(result, history) of ``b``, the reference history to compare it
        with, and the schedule both ran."""
        sched = self._r0.schedule
        whole = replace(sched, whole_batches=True)
        differ = has_batch_faults(sched) and self.mode.get(b, self.mode[self.ref]) != self.mode[self.ref]
        r, h = self.run(b, whole if differ else sched)
        if b not in self.mode:
            self.mode[b] = h.meta.get("batch_faults", "whole")
            if has_batch_faults(sched) and self.mode[b] != self.mode[self.ref]:
                differ = True
                r, h = self.run(b, whole)
        if not differ:
            return r, h, self._h0, sched
        if self.mode[self.ref] == "whole":
            return r, h, self._h0, whole   # it ran the recorded case whole already
        if self._whole_ref is None:
            self._whole_ref = self.run(self.ref, whole)
        return r, h, self._whole_ref[1], whole


def _add(total: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        total[k] = total.get(k, 0) + v


def _show(h: History, p) -> Any:
    if p.type != "ok":
        return {"type": p.type, "value": p.output}
    if p.f == "get" and isinstance(p.output, int):
        return {"vector": h.table[p.output].tolist()[:8]}
    return p.output


def cmd_conform(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from dst.backend import resolve_backend, scoped_options
    from dst.checkers.linearizability import DEFAULT_BUDGET_STEPS
    from dst.cli import EXIT_OK, EXIT_UNKNOWN, EXIT_VIOLATION, _load_scenario, _progress, _safe
    from dst.reports import new_run_dir, write_json
    from dst.wallclock import run_token
    from dst.runner import run_seed

    console = Console(stderr=True, highlight=False, quiet=args.quiet, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True, quiet=args.json)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UsageError("dst conform: --backends needs two or more different backends, e.g. sim,lance")
    if args.concurrency == "threads":
        raise UsageError("dst conform: threads mode cannot run the same case twice; use --concurrency sim")
    factories = {b: resolve_backend(b) for b in names}
    scenario = _load_scenario(args)
    # --opt KEY=VALUE goes to every backend, --opt B:KEY=VALUE to B alone.
    options = {b: scoped_options(args.opt, b, names) for b in names}
    budget = args.budget_steps or DEFAULT_BUDGET_STEPS
    run_dir = new_run_dir(args.report_dir, f"conform-{scenario.name}-{_safe('-'.join(names))}")
    token = run_token(run_dir)
    seeds = list(range(args.seed, args.seed + args.seeds))
    ref = names[0]
    totals = {b: {k: {"agree": 0, "ann": 0, "differ": 0} for k in KINDS} for b in names[1:]}
    verdicts = {b: {"ok": 0, "violation": 0, "unknown": 0} for b in names}
    fired: dict[str, dict[str, int]] = {b: {} for b in names}   # what the faults really did, per backend
    first: dict[str, dict[str, Any]] = {}
    cases: dict[tuple[int, str], Any] = {}
    with _progress(console) as progress:
        task = progress.add_task(f"conform {scenario.name}", total=len(seeds) * len(names))
        def run(b, seed, schedule, record):
            try:
                return run_seed(scenario, seed, b, location=args.location, options=options[b],
                                token=token, factory=factories[b], budget_steps=budget,
                                schedule=schedule, record=record)
            except UsageError as exc:   # a setup error: say which backend refused
                raise UsageError(f"dst conform: backend {b}: {exc}{_scope_hint(exc, args.opt)}") from None
        case = _Cases(run, ref)
        for seed in seeds:
            r0, _ = case.reference(seed)
            verdicts[ref][r0.verdict] += 1
            _add(fired[ref], r0.fired)
            progress.advance(task)
            for b in names[1:]:
                r, h, base, sched = case.other(b)
                verdicts[b][r.verdict] += 1
                _add(fired[b], r.fired)
                ann = not (base.meta.get("exact", True) and h.meta.get("exact", True))
                counts, diffs = compare_histories(base, h, scenario.score_eps, ann)
                for k, c in counts.items():
                    for kk in c:
                        totals[b].setdefault(k, {"agree": 0, "ann": 0, "differ": 0})[kk] += c[kk]
                if diffs and b not in first:
                    first[b] = {"seed": seed, **diffs[0], "disagreements_in_seed": len(diffs)}
                    cases[(seed, b)] = sched
                    base.write(run_dir / f"seed-{seed}-{_safe(ref)}.jsonl")
                    h.write(run_dir / f"seed-{seed}-{_safe(b)}.jsonl")
                progress.advance(task)

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
    for b, d in first.items():
        console.print(f"first disagreement, {ref} vs {b}: seed {d['seed']}, op #{d['index']} "
                      f"{d['f']} {d.get('input')!r}: {d['why']}", markup=False)
        if "outputs" in d:
            console.print(f"  {ref}: {d['outputs'][0]!r}", markup=False)
            console.print(f"  {b}: {d['outputs'][1]!r}", markup=False)
    summary = {"scenario": scenario.name, "backends": names, "seeds": seeds,
               "verdicts": verdicts, "fault_counts": fired, "agreement": totals,
               "first_disagreement": first}
    write_json(run_dir / "result.json", summary)
    if args.json:
        from dst.cli import _print_json
        _print_json({**summary, "report_dir": str(run_dir)})
    violations = any(verdicts[b]["violation"] for b in names)
    code = EXIT_VIOLATION if first or violations else (
        EXIT_UNKNOWN if any(verdicts[b]["unknown"] for b in names) else EXIT_OK)
    if first and args.shrink:
        b, d = next(iter(first.items()))
        _shrink_disagreement(args, scenario, d["seed"], ref, b, cases[(d["seed"], b)], d["f"],
                             options, budget, out, console)
    console.print(f"report: {run_dir}", markup=False)
    return code


def _scope_hint(exc: UsageError, opts: list) -> str:
    """A hint when a plain --opt key, sent to every backend, was refused."""
    plain = [k for k, _ in opts if ":" not in str(k) and repr(str(k)) in str(exc)]
    if not plain:
        return ""
    return f" (--opt {plain[0]}=... goes to every backend; write BACKEND:{plain[0]}=... for one)"


def _shrink_disagreement(args, scenario, seed, ref, other, schedule, f, options, budget, out, console):
    """Shrink a disagreement: keep the backends disagreeing on the same op kind.
    ``options``: each backend's own (``scoped_options``)."""
    from dst.runner import run_seed
    from dst.shrink import Shrinker, case_dict, listing, prune_vectors, slug, write_case

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
