"""Report folders: ``reports/<run>/`` with history.jsonl, result.json, JUnit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from dst import wallclock
from dst.errors import UsageError


# The report folder the current command made, if any: where ``dst.cli``
# saves the traceback of an internal error. Set by ``new_run_dir``, cleared by
# ``dst.cli.main`` before each command (one command per process at a time).
current_run_dir: Path | None = None


def new_run_dir(base: str | Path, label: str) -> Path:
    """A fresh folder under ``base``; never reuses (or clobbers) an old one.

    A ``base`` that cannot hold folders (not writable, a file, a missing
    drive) is a ``UsageError``: one sentence, exit 2, before any seed runs.
    """
    global current_run_dir
    base = Path(base)
    stem = f"{wallclock.stamp()}-{label}"
    for n in range(1000):
        d = base / (stem if n == 0 else f"{stem}-{n}")
        try:
            d.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            if d.is_dir():
                continue
            raise UsageError(f"--report-dir {str(base)!r}: cannot make a folder in it "
                             f"({d} exists and is not a folder)") from None
        except OSError as exc:
            raise UsageError(f"--report-dir {str(base)!r}: cannot make a folder in it "
                             f"({exc.strerror or exc})") from None
        current_run_dir = d
        return d
    raise UsageError(f"--report-dir {str(base)!r}: cannot make a fresh report folder "
                     f"(1000 named {stem}* exist)")


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=True) + "\n")


def write_junit(path: str | Path, suite: str, cases: list[dict[str, Any]]) -> None:
    """JUnit XML: one testcase per seed; failures carry the replay command."""
    failures = sum(1 for c in cases if c["verdict"] == "violation")
    errors = sum(1 for c in cases if c["verdict"] == "unknown")
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuite name={quoteattr(suite)} tests="{len(cases)}" failures="{failures}" '
             f'errors="{errors}">']
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
