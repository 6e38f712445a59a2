"""The ``dst`` command line: builds the parser from ``dst.commands`` and
dispatches to the command's ``main(args)``.

Exit codes: ``dst.console`` (EXIT_*). An exception that escapes a command is
exit 6 here, its traceback saved to a file (``_internal_error``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from dst import wallclock
from dst.commands import bench, check, conform, matrix, replay, run, shrink
from dst.console import EXIT_INTERNAL, EXIT_USAGE, Parser
from dst.errors import DstError, UsageError
from dst.history import HistoryFormatError

# In the order ``dst --help`` lists them.
COMMANDS = {"run": run, "replay": replay, "check": check, "shrink": shrink, "conform": conform,
            "bench": bench, "matrix": matrix}


def build_parser() -> argparse.ArgumentParser:
    top = Parser(prog="dst", description="Deterministic simulation testing for vector stores.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from dst.report import folders
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    folders.current_run_dir = None
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("dst: name a command: run, replay, check, bench (see dst --help)")
        if getattr(args, "json", False) and hasattr(args, "quiet"):
            args.quiet = True
        return COMMANDS[args.command].main(args)
    except (UsageError, HistoryFormatError, DstError) as exc:
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
    from dst.report import folders
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    command = " ".join(sys.argv[1:]) if args is None else getattr(args, "command", "")
    text = f"dst {command}: internal error\n\n{text}"
    stem = f"traceback-{wallclock.stamp()}"
    where = [(folders.current_run_dir, "traceback")] if folders.current_run_dir is not None else []
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


if __name__ == "__main__":
    sys.exit(main())
