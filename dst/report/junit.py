"""JUnit XML for CI: one case per seed, and for a seed that did not pass the
commands that reproduce it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from dst.errors import UsageError


def write_junit(path: str | Path, suite: str, cases: list[dict[str, Any]],
                properties: dict[str, Any] | None = None) -> None:
    """JUnit XML: one testcase per seed; failures carry the replay command.
    ``properties`` (the run's metric, filters use, ...) become the suite's
    ``<properties>``, in key order."""
    failures = sum(1 for c in cases if c["verdict"] == "violation")
    errors = sum(1 for c in cases if c["verdict"] == "unknown")
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name={quoteattr(suite)} tests="{len(cases)}" failures="{failures}" '
             f'errors="{errors}">']
    if properties:
        lines.append('  <properties>')
        for key in sorted(properties):
            lines.append(f'    <property name={quoteattr(str(key))} value={quoteattr(str(properties[key]))}/>')
        lines.append('  </properties>')
    for c in cases:
        name = quoteattr(f"seed {c['seed']}")
        t = f"{c.get('time_s', 0.0):.3f}"
        if c["verdict"] == "ok":
            lines.append(f'  <testcase classname={quoteattr(suite)} name={name} time="{t}"/>')
        else:
            tag = "failure" if c["verdict"] == "violation" else "error"
            msg = quoteattr(c.get("message", c["verdict"])[:1000])
            body = escape(c.get("detail", ""))
            lines.append(f'  <testcase classname={quoteattr(suite)} name={name} time="{t}">')
            lines.append(f'    <{tag} message={msg}>{body}</{tag}>')
            lines.append('  </testcase>')
    lines.append('</testsuite>')
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--junit {str(path)!r}: cannot write it ({exc.strerror or exc})") from None


def _opt_text(value: Any) -> str:
    """An --opt value as text that ``dst.cli._opt`` parses back to ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def replay_flags(*, location: str | None = None, options: list[tuple[str, Any]] | None = None,
                 budget_steps: int | None = None) -> list[str]:
    """The flags a replay needs beyond what a recorded history holds."""
    flags: list[str] = []
    if location:
        flags += ["--location", location]
    for key, value in options or []:
        flags += ["--opt", f"{key}={_opt_text(value)}"]
    if budget_steps:
        flags += ["--budget-steps", str(budget_steps)]
    return flags


def seed_replay_command(seed: int, *, scenario: str, backend: str, location: str | None = None,
                        options: list[tuple[str, Any]] | None = None, ops: int | None = None,
                        clients: int | None = None, budget_steps: int | None = None,
                        metric: str | None = None, isolate: str | None = None) -> str:
    """``dst replay --seed N`` with every flag that shaped the case
    (``metric``, ``isolate``: the run's ``--metric`` and ``--isolate``, when
    given).

    ``scenario`` is what the user gave ``--scenario`` (a name, or a file's
    path as given), never the scenario's own name: a file outside
    ``scenarios/`` is found only by its path.
    """
    argv = ["dst", "replay", "--seed", str(seed), "--scenario", scenario, "--backend", backend]
    if ops is not None:
        argv += ["--ops", str(ops)]
    if clients is not None:
        argv += ["--clients", str(clients)]
    if metric is not None:
        argv += ["--metric", metric]
    if isolate is not None:
        argv += ["--isolate", isolate]
    argv += replay_flags(location=location, options=options, budget_steps=budget_steps)
    return " ".join(shlex.quote(a) for a in argv)


def history_replay_command(history: str | Path, *, location: str | None = None,
                           budget_steps: int | None = None) -> str:
    """``dst replay FILE``: the recorded history holds scenario, seed,
    backend and options; location and budget are the run's, not the case's."""
    argv = ["dst", "replay", str(history)] + replay_flags(location=location, budget_steps=budget_steps)
    return " ".join(shlex.quote(a) for a in argv)
