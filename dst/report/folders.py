"""Report folders: ``reports/<run>/`` with history.jsonl, result.json (JUnit XML:
``dst.report.junit``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    return new_dir(base, f"{wallclock.stamp()}-{label}")


def new_dir(base: str | Path, stem: str) -> Path:
    """A fresh folder ``base/stem`` (or ``stem-1``, ...), as ``new_run_dir``."""
    global current_run_dir
    base = Path(base)
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


def ensure_writable(path: str | Path, flag: str) -> None:
    """Fail before any work (``UsageError``, exit 2) when ``path`` cannot be
    written, rather than lose a finished run's verdict to it at the end.
    Leaves no file behind that was not there."""
    p = Path(path)
    for parent in (p.parent, *p.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{flag} {str(path)!r}: cannot write it ({parent} is not a folder)")
            break
    existed = p.exists()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("a", encoding="utf-8"):
            pass
        if not existed:
            p.unlink()
    except OSError as exc:
        raise UsageError(f"{flag} {str(path)!r}: cannot write it ({exc.strerror or exc})") from None


def write_run_files(run_dir: Path, summary: dict[str, Any], shown: Any) -> None:
    """A run's folder: ``history.jsonl`` and ``report.html`` of the history
    it shows (the first failure's, else the last seed's; none when no seed
    ran) and ``result.json``."""
    if shown is not None:
        from dst.report.html import write_report
        shown.write(run_dir / "history.jsonl")
        write_report(run_dir / "report.html", shown, summary)
    write_json(run_dir / "result.json", summary)
