"""The console layer: what every command shares at the terminal.

Exit codes (DESIGN): 0 all checks passed; 1 a violation was found; 2 bad
usage or setup, or input that cannot be read; 3 a check ended unknown; 4 not
proven (an enabled fault class never fired, an op kind the scenario draws
never completed ok, or a recall or reachability floor was never measured); 5 a replay
diverged from its recording; 6 internal error (an exception escaped the
harness; ``dst.cli`` saves its traceback). Where several apply, 1 wins, then
3, then 4.

Also here: the argument parser whose usage errors are one line, the flags
the store commands share, the one-line error printer, the progress bar, the
run summary table and JSON output. Only ``dst.cli`` and ``dst.commands``
import this module; the layers below return data and never print.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from dst.argtypes import positive
from dst.errors import UsageError

DEFAULT_BACKEND = "lance"  # the embedded default: LanceDB in a local folder

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_UNKNOWN, EXIT_UNFIRED, EXIT_DIVERGED = 0, 1, 2, 3, 4, 5
EXIT_INTERNAL = 6   # an exception escaped the harness itself: a bug of dst, never a finding

VERDICT_EXIT = {"ok": EXIT_OK, "violation": EXIT_VIOLATION, "unknown": EXIT_UNKNOWN}
# A whole run's outcome (dst.sim.campaign.OUTCOMES) as an exit code.
OUTCOME_EXIT = {"ok": EXIT_OK, "violation": EXIT_VIOLATION, "unknown": EXIT_UNKNOWN, "not proven": EXIT_UNFIRED}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def key_value(text: str) -> tuple[str, Any]:
    """``--opt KEY=VALUE``: true/false, an int, a float, else the text."""
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


def add_store_flags(p: argparse.ArgumentParser) -> None:
    """The flags of every command that runs cases against a store."""
    p.add_argument("--backend", default=None,
                   help=f"sim, lance, pgvector, or package.module:factory (default: {DEFAULT_BACKEND})")
    p.add_argument("--location", help="directory or DSN for the backend")
    p.add_argument("--opt", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                   help="backend option (repeatable)")
    p.add_argument("--scenario", default="default", help="scenario name or .toml path (default: default)")
    p.add_argument("--clients", type=positive, help="logical clients (overrides the scenario)")
    p.add_argument("--ops", type=positive, help="random-phase ops per seed (overrides the scenario)")
    p.add_argument("--concurrency", choices=("sim", "threads"), default="sim")
    p.add_argument("--metric", choices=("cosine", "l2", "dot"), default=None,
                   help="score by this metric (overrides the scenario's; default: cosine)")
    p.add_argument("--isolate", choices=("none", "process"), default=None,
                   help="run the backend in a child process that crashes and the kill nemesis "
                        "SIGKILL (overrides the scenario's; default: none)")
    p.add_argument("--report-dir", default="reports", help="where run reports go (default: reports)")
    p.add_argument("--budget-steps", type=positive, default=None,
                   help="linearizability search budget per seed, in steps")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON document on stdout, nothing else (implies --quiet)")


def consoles(args: argparse.Namespace):
    """(stderr console for progress and tables, stdout console for results)."""
    from rich.console import Console
    err = Console(stderr=True, highlight=False, quiet=args.quiet, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True, quiet=args.json)
    return err, out


def error_line(message: str, console=None) -> None:
    """The one-line error: ``error: ...`` on stderr, newlines folded."""
    line = " ".join(str(message).split("\n"))
    if console is None:
        print(f"error: {line}", file=sys.stderr)
    else:
        console.print(f"error: {line}", markup=False)


def safe(text: str) -> str:
    """A backend or scenario name as a folder-name fragment."""
    return "".join(c if c.isalnum() else "_" for c in text)[:40]


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=True, default=str) + "\n")
    sys.stdout.flush()


def progress(console):
    """A progress bar on a terminal; nothing at all when output is a file or
    a pipe (where it would only leave a stray blank line behind)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True,
                    disable=not console.is_terminal)


def print_summary(console, summary: dict[str, Any], results, elapsed: float) -> None:
    from rich.table import Table
    verdicts = {"ok": 0, "violation": 0, "unknown": 0}
    for r in results:
        verdicts[r.verdict] += 1
    t = Table(title=f"dst run: {summary['scenario']} on {summary['backend']}", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("seeds", str(len(results)))
    for k, v in (summary.get("versions") or {}).items():
        t.add_row(f"{k} version" if k != "server" else "server", str(v))
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
    reach = summary.get("reachability")
    if reach:
        if not reach.get("applies"):
            text = "implied (exact search)"
        elif reach.get("fraction") is None:
            text = "not measured"
        else:
            text = f"{reach['found']}/{reach['checked']} = {reach['fraction']:.4f}"
        t.add_row(f"reachability (floor {reach.get('floor')})", text)
    t.add_row("seconds", f"{elapsed:.2f}")
    console.print(t)
    word = {0: "[green]PASS[/]", 1: "[red]VIOLATION[/]", 3: "[yellow]UNKNOWN[/]",
            4: "[yellow]NOT PROVEN[/] (a fault class never fired, an op kind never completed ok, "
               "or a recall or reachability floor was never measured)"}
    console.print(f"result: {word[summary['exit_code']]} (exit {summary['exit_code']})")


def print_violation(console, r) -> None:
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
