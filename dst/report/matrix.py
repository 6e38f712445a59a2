"""The matrix report: one grid of verdicts, scenarios by backends.

``write_matrix(folder, doc)`` writes, from the document ``dst matrix``
builds (``matrix.json``'s content):

* ``index.html``: the grid, each cell coloured by its status and linking
  to that cell's own ``report.html`` (a relative link into the same
  folder); self-contained as every report is (inline CSS from
  ``assets/report.css``, no script, no network reference, a policy that
  forbids fetching anything);
* ``matrix.md``: the same grid as a Markdown table, with the reasons for
  n/a and error cells as numbered notes under it (for a README or a PR);
* ``matrix.json``: the document itself.

A cell's status is one of ``STATUSES``; what each means is in
``dst/commands/matrix.py``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from dst.report.html import asset

STATUSES = ("pass", "violation", "unknown", "not proven", "n/a", "error")
# Characters of a reason shown inside a grid cell (the note has all of it).
REASON_CHARS = 160


def cell_css(status: str) -> str:
    """The class a cell of this status gets (report.css colours it)."""
    return "cell-" + {"not proven": "notproven", "n/a": "na"}.get(status, status)


def cell_label(cell: dict[str, Any]) -> str:
    """The short text of a cell: its status, the finding's kind."""
    status = cell["status"]
    if status == "violation":
        return f"violation: {cell.get('kind') or '?'}"
    return status


def cell_detail(cell: dict[str, Any]) -> str:
    """Seeds run (of requested), reachability and recall where measured."""
    bits = []
    if cell.get("seeds_requested") and cell["status"] not in ("n/a", "error"):
        ran, want = cell.get("seeds_run", 0), cell["seeds_requested"]
        bits.append(f"{ran} seed{'' if ran == 1 else 's'}" if ran == want else f"{ran} of {want} seeds")
    reach = cell.get("reachability")
    if reach is not None:
        bits.append(f"reach {reach:.3f}")
    recall = cell.get("recall")
    if recall is not None:
        bits.append(f"recall {recall:.3f}")
    return ", ".join(bits)


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cut(text: str, n: int = REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def render_index(doc: dict[str, Any]) -> str:
    backends, scenarios = doc["backends"], doc["scenarios"]
    cells = {(c["backend"], c["scenario"]): c for c in doc["cells"]}
    head = "".join(f'<th scope="col">{_h(b["label"])}'
                   + (f'<div class="cell-sub">{_h(b["spec"])}</div>' if b["spec"] != b["label"] else "")
                   + "</th>" for b in backends)
    rows = []
    for s in scenarios:
        tds = []
        for b in backends:
            c = cells.get((b["label"], s))
            if c is None:
                tds.append('<td class="cell cell-na" data-status="missing">not run</td>')
                continue
            label = _h(cell_label(c))
            inner = (f'<a class="cell-link" href="{_h(c["report"])}">{label}</a>' if c.get("report")
                     else f'<span class="cell-status">{label}</span>')
            sub = cell_detail(c)
            if sub:
                inner += f'<div class="cell-sub">{_h(sub)}</div>'
            if c.get("reason"):
                inner += f'<div class="cell-reason">{_h(_cut(c["reason"]))}</div>'
            if c.get("shrunk"):
                inner += f'<div class="cell-sub"><a href="{_h(c["shrunk_href"])}">shrunk case</a></div>'
            elif c.get("shrink_note"):
                inner += f'<div class="cell-reason">{_h(_cut(c["shrink_note"]))}</div>'
            tds.append(f'<td class="cell {cell_css(c["status"])}" data-status="{_h(c["status"])}" '
                       f'data-backend="{_h(b["label"])}" data-scenario="{_h(s)}" '
                       f'title="{_h(c.get("reason") or cell_label(c))}">{inner}</td>')
        rows.append(f'<tr><th scope="row">{_h(s)}</th>{"".join(tds)}</tr>')
    legend = "".join(f'<span class="cell {cell_css(st)} legend-item">{_h(st)}</span>' for st in STATUSES)
    facts = [("command", doc.get("command")), ("seeds per cell", doc.get("seeds")),
             ("metric", doc.get("metric") or "each scenario's"),
             ("time budget per cell", f"{doc['time_budget_cell_s']} s" if doc.get("time_budget_cell_s")
              else "none"),
             ("exit code", f"{doc['exit_code']} ({doc.get('exit_reason', '')})"),
             ("versions", ", ".join(f"{k} {v}" for k, v in (doc.get("versions") or {}).items()))]
    fact_rows = "".join(f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in facts if v not in (None, ""))
    title = f"dst matrix {doc.get('name', '')}".strip()
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_h(title)}</title><style>{asset('report.css')}</style></head><body>",
        f"<header><h1>{_h(title)}</h1></header><main>",
        f'<section class="summary"><h2>Summary</h2><table class="facts">{fact_rows}</table></section>',
        '<section><h2>Verdicts</h2><p class="note">Rows are scenarios, columns backends. A cell links to '
        "its run's report; n/a and error cells say why they did not run.</p>",
        f'<table class="matrix" id="matrix"><thead><tr><th>scenario</th>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table>',
        f'<p class="legend">{legend}</p></section>',
        "</main></body></html>\n",
    ])


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: dict[str, Any]) -> str:
    backends, scenarios = doc["backends"], doc["scenarios"]
    cells = {(c["backend"], c["scenario"]): c for c in doc["cells"]}
    notes: list[str] = []
    lines = ["| scenario | " + " | ".join(_md(b["label"]) for b in backends) + " |",
             "|---|" + "---|" * len(backends)]
    for s in scenarios:
        row = []
        for b in backends:
            c = cells.get((b["label"], s))
            if c is None:
                row.append("not run")
                continue
            text = cell_label(c)
            if c["status"] != "pass":
                text = f"**{text}**"
            sub = cell_detail(c)
            if sub:
                text += f" ({sub})"
            if c.get("reason") and c["status"] != "pass":
                note = _md(" ".join(str(c["reason"]).split()))
                if note not in notes:       # one note per distinct reason
                    notes.append(note)
                text += f" [{notes.index(note) + 1}]"
            row.append(_md(text))
        lines.append(f"| {_md(s)} | " + " | ".join(row) + " |")
    out = "\n".join(lines) + "\n"
    out += ("\nreach: the fraction of probed live ids a search for their own vector found (ANN "
            "backends; on an exact backend reachability is implied by the exact-search checks and not "
            "probed); recall: mean recall@k of the ANN searches.\n")
    if notes:
        out += "\n" + "\n".join(f"{n}. {t}" for n, t in enumerate(notes, 1)) + "\n"
    return out


def write_matrix(folder: Path, doc: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(render_index(doc), encoding="utf-8")
    (folder / "matrix.md").write_text(render_markdown(doc), encoding="utf-8")
    (folder / "matrix.json").write_text(json.dumps(doc, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
