"""Self-contained HTML reports: one file per run, readable offline.

``write_report`` draws a vector-dst run (``reports/<run>/report.html``);
``write_check_report`` draws any paired history, such as a register or kv
history read from Jepsen EDN by ``dst check``; ``write_check_html`` does
either from the result of ``dst.commands.check.check_file``.

What a report holds:

* a summary in plain HTML (backend, scenario, seed, verdict, fault firings
  per class, recall), readable without JavaScript;
* the violation, if any: the op, the checker's message and state, and for
  a wrong search the returned hits beside the exact answer (see
  ``search_comparison`` for what "exact" means here and why it is honest);
* a timeline drawn by a small inline script on a canvas: one lane per
  client (or, switched, per process), a bar from invoke to completion
  coloured ok / fail / info, faults and crashes marked across all lanes,
  the violating op outlined, the longest linearizable prefix underlined.
  Hovering an op shows its input and output; clicking pins them.

Size and speed. The ops travel as one compact JSON blob in a
``<script type="application/json">`` element, never as one DOM node per op,
and vectors appear only as table references (``#12``): the vector table is
left out (the history file has it), so a 5,000-op history at dim 1536
makes a report of about a megabyte, and the script redraws it in a few
milliseconds (about 6 ms for 7,000 ops in headless Chromium), so panning
and zooming stay smooth.

Safety. Nothing is fetched: no ``src=`` or ``href=`` to any network
address, no web fonts, inline CSS and JS only. Every string from the
history (ids may hold quotes, ``<``, ``&``, ``</script>`` and lone
surrogates) reaches the page either HTML-escaped in the static part or as
JSON inside the data element, where ``<``, ``>``, ``&`` and U+2028/2029
are written as ``\\uXXXX`` escapes, so no byte sequence can end the script
element early; the script puts text into the page with ``textContent``
only. Lone surrogates, which UTF-8 cannot carry, are shown as ``\\udXXX``.
"""

from __future__ import annotations

import html
import json
import math
import re
import functools
from collections import defaultdict, deque
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

# One op's input or output text in the report is cut at this many
# characters: the report is for reading; the history file keeps all of it,
# and a kv value of megabytes must not make a report of gigabytes.
MAX_TEXT_CHARS = 4_000
# Batch items and search hits listed in one op's text.
MAX_ITEMS_SHOWN = 60
# Rows of a returned/expected search comparison table.
MAX_TABLE_ROWS = 100
# Characters of a value shown inside a static HTML cell.
MAX_CELL_CHARS = 600

FAULT_ORDER = ("latency", "error", "lost-ack", "timeout", "partial-write", "batch-error", "crash")
TYPE_CODES = {"ok": 0, "fail": 1, "info": 2}
SPECIAL_FIRST = ("load",)
SPECIAL_LAST = ("probe",)


# -- entry points ---------------------------------------------------------------

def write_report(path: str | Path, history: Any, result: Any, title: str | None = None) -> int:
    """Write the HTML report of one vector-dst run; returns bytes written.

    ``history`` is a ``dst.history.History`` (or a path to a history.jsonl,
    or its bytes). ``result`` is what the run found, in any of the shapes
    the harness has: a ``SeedResult``, its ``summary()`` dict, the run-level
    ``result.json`` dict (the entry for the history's seed is picked from
    its ``results``), or the dict ``dst check --model vector`` produces.
    None draws the history without a verdict.
    """
    h = _as_history(history)
    seed_result, run = _split_result(result, h.meta.get("seed"))
    doc = render_report(h, seed_result, run, title)
    return _write(path, doc)


def write_check_report(path: str | Path, events: Iterable[Any], result: dict[str, Any] | None,
                       title: str | None = None) -> int:
    """Write the HTML report of a generic (non-vector) history; returns bytes.

    ``events`` are the history's events in file order, each a
    ``dst.check.models.base.Event`` or a dict with ``line``, ``process``,
    ``type`` (invoke|ok|fail|info), ``f``, ``value`` and optionally
    ``key``. Nemesis events (process ``:nemesis`` or ``"nemesis"``) are
    drawn as faults. ``result`` is the dict of
    ``dst.commands.check.check_file`` / ``summarize`` (ops are matched to its
    violation by the invoke's ``line``). These histories carry no time:
    the axis is the line in the file (or, switched, the event order).
    """
    doc = render_check_report(list(events), result, title)
    return _write(path, doc)


def write_check_html(path: str | Path, result: dict[str, Any], title: str | None = None) -> int:
    """``dst check --html OUT``: re-read the checked file and write its report.

    ``result`` is what ``dst.commands.check.check_file`` returned; its
    ``history``, ``format`` and ``model`` say how to read the file again.
    """
    src = result["history"]
    if result.get("model") == "vector":
        from dst.history import History
        return write_report(path, History.read(src), result, title)
    if result.get("format") == "edn":
        from dst.check.edn import read_events
        events = read_events(src)
    else:
        from dst.check.edn import jsonl_events
        events = jsonl_events(Path(src))
    return write_check_report(path, events, result, title)


def _write(path: str | Path, doc: str) -> int:
    data = doc.encode("utf-8")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return len(data)


# -- inputs ----------------------------------------------------------------------

def _as_history(history: Any):
    from dst.history import History
    if isinstance(history, History):
        return history
    if isinstance(history, (str, Path)):
        return History.read(history)
    if isinstance(history, (bytes, bytearray)):
        return History.from_bytes(bytes(history))
    if isinstance(history, dict) and "events" in history:
        h = History(meta=dict(history.get("meta") or {}))
        for v in history.get("vectors") or []:
            h.table.ref(v)
        h.events = list(history["events"])
        return h
    raise TypeError(f"write_report: expected a History, a path or bytes, got {type(history).__name__}")


def _split_result(result: Any, seed: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the seed's result, the run's result) from whichever shape came."""
    if result is None:
        return None, None
    if hasattr(result, "summary") and callable(result.summary):
        return result.summary(), None
    if not isinstance(result, dict):
        raise TypeError(f"write_report: result must be a dict or SeedResult, got {type(result).__name__}")
    if isinstance(result.get("results"), list):
        match = [r for r in result["results"] if isinstance(r, dict) and r.get("seed") == seed]
        return (match[0] if match else None), result
    return result, None


# -- text helpers ----------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """Lone surrogates as visible ``\\udXXX`` escapes (UTF-8 cannot carry them)."""
    return _SURROGATE.sub(lambda m: "\\u%04x" % ord(m.group()), text)


def _cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text) - limit} more characters; the history file has them all)"


def _h(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    """Escaped HTML text of any value."""
    return html.escape(_cut(_clean(value if isinstance(value, str) else str(value)), limit), quote=True)


def _json_text(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return _clean(text)


def _id(value: Any) -> str:
    """An id as the report shows it: JSON-quoted, surrogates escaped."""
    return _json_text(value)


def _ref(value: Any) -> str:
    """A vector reference as ``#n`` (the number in the history's table)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"#{value}"
    return _json_text(value)


def _error_text(out: Any) -> str | None:
    if isinstance(out, dict) and "error" in out:
        msg = out.get("message")
        return f"{_clean(str(out['error']))}" + (f": {_clean(str(msg))}" if msg else "")
    return None


def embed_json(obj: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``.

    ASCII only (lone surrogates become ``\\udXXX`` escapes, which
    ``JSON.parse`` reads back), and ``<``, ``>``, ``&``, U+2028, U+2029 as
    ``\\uXXXX``: no ``</script>`` or ``<!--`` can appear, whatever the data.
    """
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


# -- vector op text --------------------------------------------------------------

def vector_input_text(f: str, value: Any) -> str:
    """One op's input, vectors as ``#n``."""
    if not isinstance(value, dict):
        return "" if value is None else _cut(_json_text(value))
    if f == "store":
        return f"id={_id(value.get('id'))} vector={_ref(value.get('vector'))}"
    if f == "store_batch":
        items = value.get("items")
        if not isinstance(items, list):
            return _cut(_json_text(value))
        shown = []
        for it in items[:MAX_ITEMS_SHOWN]:
            if isinstance(it, (list, tuple)) and len(it) == 2:
                shown.append(f"{_id(it[0])}\u2192{_ref(it[1])}")
            else:
                shown.append(_json_text(it))
        more = f", ... ({len(items) - MAX_ITEMS_SHOWN} more)" if len(items) > MAX_ITEMS_SHOWN else ""
        return _cut(f"{len(items)} item{'s' if len(items) != 1 else ''}: " + ", ".join(shown) + more)
    if f in ("get", "delete", "exists"):
        return f"id={_id(value.get('id'))}"
    if f == "count":
        return ""
    if f == "search":
        return f"query={_ref(value.get('vector'))} limit={_json_text(value.get('limit'))}"
    if f == "maintenance":
        return f"kind={_id(value.get('kind'))}"
    return _cut(_json_text(value))


def vector_output_text(f: str, type_: str, value: Any) -> str:
    """One op's output (or error), vectors as ``#n``, hits one per line."""
    err = _error_text(value)
    if err is not None:
        return _cut(err)
    if type_ != "ok":
        return "" if value is None else _cut(_json_text(value))
    if f == "get":
        return "None" if value is None else _ref(value)
    if f == "search" and isinstance(value, list):
        lines = []
        for rank, hit in enumerate(value[:MAX_ITEMS_SHOWN]):
            if isinstance(hit, (list, tuple)) and len(hit) == 2:
                lines.append(f"{rank + 1}. {_id(hit[0])} {_json_text(hit[1])}")
            else:
                lines.append(f"{rank + 1}. {_json_text(hit)}")
        if len(value) > MAX_ITEMS_SHOWN:
            lines.append(f"... ({len(value) - MAX_ITEMS_SHOWN} more hits)")
        return _cut(f"{len(value)} hit{'s' if len(value) != 1 else ''}" + ("\n" if lines else "")
                    + "\n".join(lines))
    if value is None:
        return "ok"
    return _cut(_json_text(value))


def _generic_input(f: str, value: Any, event: Any) -> str:
    """A generic op's input: its key (kv histories), then its value."""
    from dst.check.models.base import NO_KEY
    key = event.get("key", NO_KEY) if isinstance(event, dict) else getattr(event, "key", NO_KEY)
    text = _generic_text(value)
    if key is NO_KEY:
        return text
    return f"key={_generic_text(key) or 'nil'}" + (f" value={text}" if text else "")


def _generic_text(value: Any) -> str:
    if value is None:
        return ""
    from dst.check.edn import to_json
    return _cut(_json_text(to_json(value)))


# -- the timeline data -------------------------------------------------------------

class _Proc:
    __slots__ = ("label", "first", "last", "open_end", "kind", "ended_info")

    def __init__(self, label: str, first: int, kind: str):
        self.label = label
        self.first = first
        self.last = first
        self.open_end = False
        self.kind = kind
        self.ended_info = False


def _process_label(process: Any) -> str:
    from dst.check.edn import to_json
    p = to_json(process)
    return _clean(p if isinstance(p, str) else json.dumps(p, ensure_ascii=False, default=repr))


def _hashable(x: Any) -> Any:
    return tuple(_hashable(v) for v in x) if isinstance(x, list) else x


def build_timeline(events: Sequence[Any], *, ident: Callable[[Any, int], Any],
                   time_of: Callable[[Any], int] | None,
                   input_text: Callable[[str, Any, Any], str],
                   output_text: Callable[[str, str, Any], str],
                   is_nemesis: Callable[[Any], bool]) -> dict[str, Any]:
    """The timeline as compact data for the script.

    ``events`` are records with ``process``, ``type``, ``f``, ``value``
    (attributes or keys); ``ident(event, position)`` names an invoke the
    way the checker's result does (the history index, or the file line);
    ``time_of`` gives virtual time, or None where the history has none.

    Ops pair by process, Jepsen's rule. The pairing is lenient where the
    checker is strict (a report must draw even a history the checker
    refused): a second invoke on an open process leaves the first open, and
    a completion with no invoke is counted in ``notes``.

    Packed lanes: after an info op a client goes on as a new process, so a
    run has many processes and few clients. Processes whose lifetimes do
    not overlap share a lane, the way their client did (which client took
    which new process is inferred from timing; it changes nothing checked).
    """
    get = (lambda e, k, d=None: e.get(k, d)) if events and isinstance(events[0], dict) else \
        (lambda e, k, d=None: getattr(e, k, d))
    procs: dict[Any, int] = {}
    plist: list[_Proc] = []
    fs: dict[str, int] = {}
    ops: list[list[Any]] = []
    nem: list[list[Any]] = []
    open_: dict[Any, int] = {}
    notes: list[str] = []
    t_end = 0
    t_start: int | None = None
    for pos, e in enumerate(events):
        process = get(e, "process")
        f = str(get(e, "f"))
        type_ = get(e, "type")
        value = get(e, "value")
        t = int(time_of(e)) if time_of is not None else pos
        t_end = max(t_end, t)
        if t_start is None:
            t_start = t
        if f not in fs:
            fs[f] = len(fs)
        if is_nemesis(process):
            target = -1
            if isinstance(value, dict) and "process" in value:
                target = procs.get(_hashable(value["process"]), -1)
            nem.append([t, pos, fs[f], _cut(_nemesis_text(f, value), 600), target])
            continue
        key = _hashable(process)
        if key not in procs:
            label = _process_label(process)
            kind = "load" if label in SPECIAL_FIRST else "probe" if label in SPECIAL_LAST else "client"
            procs[key] = len(plist)
            plist.append(_Proc(label, pos, kind))
        pi = procs[key]
        proc = plist[pi]
        if type_ == "invoke":
            if key in open_:
                notes.append(f"event {pos}: process {proc.label} invoked again with an op open")
            open_[key] = len(ops)
            # [proc, type, f, t0, t1, i0, i1, id, input, output, dispatch]
            ops.append([pi, TYPE_CODES["info"], fs[f], t, -1, pos, -1, ident(e, pos),
                        input_text(f, value, e), "", _dispatch(get(e, "dispatch"))])
            proc.last = pos
            proc.open_end = True
            continue
        slot = open_.pop(key, None)
        if slot is None:
            notes.append(f"event {pos}: process {proc.label} completes an op it never invoked")
            continue
        op = ops[slot]
        op[1] = TYPE_CODES.get(type_, 2)
        op[4] = t
        op[6] = pos
        op[9] = output_text(f, type_, value)
        d = _dispatch(get(e, "dispatch"))
        if d >= 0:
            op[10] = d
        proc.last = pos
        # Drawn to its completion event (an info op's bar ends where the
        # client gave up), so the lane is free again after it.
        proc.open_end = False
        proc.ended_info = type_ == "info"
    rows, proc_row = _pack(plist)
    # One lane per process: load, then by number (names after), probe last.
    rank = {"load": 0, "client": 1, "probe": 2}

    def order(n: int) -> tuple:
        p = plist[n]
        num = p.label.isdigit() or (p.label[:1] == "-" and p.label[1:].isdigit())
        return (rank[p.kind], not num, int(p.label) if num else 0, p.label)

    by_process = sorted(range(len(plist)), key=order)
    return {
        "procs": [p.label for p in plist], "procRow": proc_row, "rows": rows,
        "procOrder": by_process,
        "fs": list(fs), "ops": ops, "nem": nem,
        "tStart": t_start or 0, "tEnd": t_end, "iEnd": max(len(events) - 1, 0),
        "notes": notes[:20],
    }


def _dispatch(d: Any) -> int:
    return d if isinstance(d, int) and not isinstance(d, bool) else -1


def _nemesis_text(f: str, value: Any) -> str:
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if k == "applied" and isinstance(v, list):
                shown = ", ".join(_id(i) for i in v[:MAX_ITEMS_SHOWN])
                more = f", ... ({len(v) - MAX_ITEMS_SHOWN} more)" if len(v) > MAX_ITEMS_SHOWN else ""
                parts.append(f"applied=[{shown}{more}]")
            else:
                parts.append(f"{_clean(str(k))}={_json_text(v)}")
        return f"{f}: " + " ".join(parts)
    if value is None:
        return f
    return f"{f}: {_generic_text(value)}"


def _pack(plist: list[_Proc]) -> tuple[list[list[str]], list[int]]:
    """Lanes: "load" first, clients packed, "probe" last.

    A client process occupies [first event, last event], or to the end of
    the history when its last op never completed. It takes a lane freed
    before it started, preferring one whose process ended with an info op
    (only that makes a client change process), then the one freed most
    recently (the client's next process starts a think time later); else
    a new lane.
    """
    proc_row = [0] * len(plist)
    rows: list[list[str]] = []
    members: list[list[str]] = []
    for n, p in enumerate(plist):
        if p.kind == "load":
            if not rows:
                rows.append(["load", "load", "", "load"])
                members.append([])
            proc_row[n] = 0
            members[0].append(p.label)
    lane_end: list[tuple[int, float, bool]] = []     # (row, end, ended with info) of client lanes
    clients = sorted((n for n, p in enumerate(plist) if p.kind == "client"), key=lambda n: plist[n].first)
    for n in clients:
        p = plist[n]
        free = [(info, end, k) for k, (row, end, info) in enumerate(lane_end) if end < p.first]
        if free:
            k = max(free)[2]
            row = lane_end[k][0]
        else:
            row = len(rows)
            rows.append([f"c{len(lane_end)}", f"client {len(lane_end)}", "", "client"])
            members.append([])
            lane_end.append((row, -1, False))
            k = len(lane_end) - 1
        lane_end[k] = (row, math.inf if p.open_end else p.last, p.ended_info)
        proc_row[n] = row
        members[row].append(p.label)
    for n, p in enumerate(plist):
        if p.kind == "probe":
            if not rows or rows[-1][0] != "probe":
                rows.append(["probe", "probe", "", "probe"])
                members.append([])
            proc_row[n] = len(rows) - 1
            members[-1].append(p.label)
    for row, names in zip(rows, members):
        if row[3] == "client":
            shown = ", ".join(names[:40]) + (f", ... ({len(names) - 40} more)" if len(names) > 40 else "")
            row[2] = (f"process{'es' if len(names) > 1 else ''} {shown}"
                      + (" (after an info op a client continues as a new process; which lane a new "
                         "process joins is inferred from timing)" if len(names) > 1 else ""))
        else:
            row[2] = f"process {row[1]}"
    return rows, proc_row


# -- the search comparison ------------------------------------------------------------

def search_comparison(model: Any, items: dict[str, int], qref: int, limit: int,
                      output: Any, where: int | None = None,
                      attrs: dict[str, int] | None = None) -> dict[str, Any]:
    """Returned hits beside the exact top-k, in one model state.

    ``items`` is the oracle's state (id -> vector number) at the point the
    checker judged the search: the recorded dispatch order up to the op
    (the witness), or the longest linearizable prefix when there is no
    witness. The caller reconstructs it by stepping the same model over
    the same ops and accepts it only if it gives back the checker's own
    state description and message, so the table describes exactly what was
    judged, not a guess.

    True scores are the model's float64 cosines of the stored float32
    vectors. Expected: every live id ranked by true score, ties by id, the
    first ``min(limit, live)``. An expected id left out of a full-length
    answer is allowed when its true score is at most ``score_eps`` above
    the lowest hit's (the checker's rule: near-ties are interchangeable),
    so it is marked "tied", not "missing".
    """
    sc = model.true_scores(qref)
    eps = model.eps
    live = items
    attrs = attrs or {}
    if where is not None:
        items = model.matching(live, attrs, where)
    ranked = sorted(items.items(), key=lambda kv: (-sc[kv[1]], kv[0]))
    k = min(limit, len(ranked)) if isinstance(limit, int) else len(ranked)
    expected = ranked[:k]
    kth = sc[expected[-1][1]] if expected else None
    returned_at: dict[Any, int] = {}
    hits = output if isinstance(output, (list, tuple)) else []
    rows_ret = []
    trues: list[float] = []       # true scores of the returned live ids
    prev = math.inf
    for rank, hit in enumerate(hits):
        try:
            hid, score = hit[0], float(hit[1])
        except (TypeError, ValueError, IndexError):
            rows_ret.append({"rank": rank + 1, "id": _json_text(hit), "ref": "", "score": "",
                             "true": "", "note": "not a hit"})
            continue
        try:
            ref = items.get(hid)
        except TypeError:
            ref = None
        note = []
        true = None
        if isinstance(hid, str) or hid is None:
            if hid in returned_at:
                note.append(f"duplicate of rank {returned_at[hid]}")
            else:
                returned_at[hid] = rank + 1
        if ref is None and where is not None and isinstance(hid, str) and hid in live:
            aref = attrs.get(hid)
            got = model.attr_sets[aref] if aref is not None else {}
            note.append(f"live but does not match the filter (attrs {_json_text(got)})")
            ref = None
        elif ref is None:
            note.append("not live in this state")
        else:
            true = sc[ref]
            trues.append(true)
            if not abs(score - true) <= eps:
                note.append(f"score off by {score - true:+.3g}")
            if true > prev + eps:       # prev: the lowest true score above (all pairs)
                note.append("out of order")
            prev = min(prev, true)
            if kth is not None and true < kth - eps:
                note.append("below the exact k-th by more than score_eps")
        rows_ret.append({"rank": rank + 1, "id": _id(hid), "ref": "" if ref is None else f"#{ref}",
                         "score": repr(score), "true": "" if true is None else repr(true),
                         "note": "; ".join(note) or "ok"})
    lowest = min(trues, default=None)
    rows_exp = []
    for rank, (id_, ref) in enumerate(expected):
        at = returned_at.get(id_)
        if at is not None:
            note = f"returned at rank {at}"
        elif lowest is not None and len(hits) >= k and sc[ref] <= lowest + eps:
            # The checker's rule: an id left out may score at most
            # score_eps above the lowest hit's true score.
            note = "not returned; tied with the lowest hit within score_eps (allowed)"
        elif len(hits) < k:
            note = f"missing (only {len(hits)} of {k} hits came back)"
        else:
            note = "missing"
        rows_exp.append({"rank": rank + 1, "id": _id(id_), "ref": f"#{ref}", "true": repr(sc[ref]),
                         "note": note})
    filt = None
    if where is not None:
        from dst import filters as _filters
        tree = model.wheres[where]
        filt = {"show": _filters.show(tree), "json": _filters.dumps(tree), "matching": len(items)}
    return {"query": f"#{qref}", "limit": limit, "live": len(live), "k": k, "eps": eps,
            "filter": filt, "metric": getattr(model, "metric", "cosine"),
            "returned": rows_ret, "expected": rows_exp,
            "kth": None if kth is None else repr(kth)}


def _vector_states(h: Any, violation: dict[str, Any]) -> tuple[Any, dict[str, tuple[Any, Any, str]]]:
    """The model states the checker judged the violation's ops in.

    Returns (model, {role: (state, op, where)}), role "lead" for the
    violation's op and state, "search" for the full search's. A state is kept
    only when stepping the model reproduces the checker's own description
    of it and its message about the op; otherwise the report says the
    state could not be reconstructed rather than show a guess.
    """
    from dst.check.linearizability import INF, UNKNOWN, Operation
    from dst.check.models.vector import VectorModel
    from dst.history import pair
    m = h.meta
    model = VectorModel(h.table.vectors, int(m["dim"]), float(m.get("score_eps", 1e-4)),
                        exact=bool(m.get("exact", True)), metric=str(m.get("metric") or "cosine"))
    ops = model.operations(pair(h.events), bool(m.get("atomic_batches", False)))
    found: dict[str, tuple[Any, Any, str]] = {}
    lead = (violation.get("op") or {}).get("index")
    full = (violation.get("search") or {}).get("op", {}).get("index")

    def accept(state: Any, op: Any, want_state: Any, want_msg: Any) -> bool:
        return model.describe(state) == want_state and model.explain(state, op) == want_msg

    # 1. The recorded dispatch order (the witness), as the checker steps it.
    order = sorted((o for o in ops if o.dispatch is not None), key=lambda o: (o.dispatch, o.id))
    rest = [o for o in ops if o.dispatch is None]
    broke_at = None
    if all(o.ret == INF for o in rest):
        state = model.init()
        for op in order + rest:
            ok, nxt = model.step(state, op.input, op.output)
            if not ok:
                broke_at = op
                if op.index == lead and accept(state, op, violation.get("state"), violation.get("message")):
                    found["lead"] = (state, op, "in the recorded dispatch order, just before this op")
                break
            state = nxt
    # 2. The longest linearizable prefix of the full search. Where the
    # witness broke at an op that returned at time T, the checker first
    # searches the history cut at T (ops still open then have an unknown
    # output), so the prefix may come from either history: try both.
    # The lead comes from the full search too when there was no witness;
    # then its state and message are the search's.
    s = violation.get("search") or {}
    targets = [("search", full)]
    if "lead" not in found and lead == full and violation.get("state") == s.get("state") \
            and violation.get("message") == s.get("message"):
        targets.append(("lead", lead))
    targets = [(role, i) for role, i in targets if i is not None]
    cuts = [INF]
    if broke_at is not None and broke_at.ret != INF:
        cuts.insert(0, broke_at.ret)
    for cut in cuts:
        if not targets:
            break
        view = [o if not (cut < o.ret < INF) else
                Operation(o.id, o.process, o.f, o.input, UNKNOWN, o.call, INF, o.dispatch, o.index)
                for o in ops if o.call <= cut]
        by_index: dict[int, deque] = defaultdict(deque)
        for op in view:
            by_index[op.index].append(op)
        state = model.init()
        good = True
        for idx in violation.get("prefix") or []:
            q = by_index.get(idx)
            if not q:
                good = False
                break
            ok, state = model.step(state, q[0].input, q[0].output)
            q.popleft()
            if not ok:
                good = False
                break
        if not good:
            continue
        for role, idx in list(targets):
            for op in (o for o in view if o.index == idx):
                if accept(state, op, s.get("state"), s.get("message")):
                    found[role] = (state, op, "after the longest linearizable prefix")
                    targets.remove((role, idx))
                    break
    return model, found


# -- the page ----------------------------------------------------------------------------

def render_report(h: Any, seed_result: dict[str, Any] | None, run: dict[str, Any] | None,
                  title: str | None = None) -> str:
    """The report of a vector-dst history as an HTML string."""
    meta = h.meta or {}
    verdict = (seed_result or {}).get("verdict") or (run or {}).get("verdict") or "not checked"
    violations = list((seed_result or {}).get("violations") or [])
    timeline = build_timeline(
        h.events, ident=lambda e, pos: e.get("index", pos), time_of=lambda e: e.get("time", 0),
        input_text=lambda f, v, e: vector_input_text(f, v), output_text=vector_output_text,
        is_nemesis=lambda p: p == "nemesis")
    v = violations[0] if violations else None
    data = dict(timeline)
    data.update({"kind": "vector", "hasTime": True, "unit": "us", "idLabel": "#",
                 "verdict": verdict, **_violation_marks(v, key="index")})
    title = title or (f"vector-dst: {verdict} \u2014 {meta.get('scenario', '?')} seed "
                      f"{meta.get('seed', '?')} on {meta.get('backend', '?')}")
    parts = [_summary_html(h, meta, seed_result, run, verdict, timeline)]
    parts.append(_vector_violation_html(h, violations, seed_result))
    return _page(title, verdict, "".join(parts), data)


def render_check_report(events: list[Any], result: dict[str, Any] | None,
                        title: str | None = None) -> str:
    """The report of a generic history (register, cas-register, kv)."""
    from dst.check.edn import is_nemesis
    result = result or {}
    verdict = result.get("verdict") or "not checked"
    timeline = build_timeline(
        events, ident=lambda e, pos: (e.get("line", pos) if isinstance(e, dict) else getattr(e, "line", pos)),
        # The file's line numbers are the axis: these histories carry no time.
        time_of=lambda e: e.get("line", 0) if isinstance(e, dict) else getattr(e, "line", 0),
        input_text=_generic_input,
        output_text=lambda f, t, v: _generic_text(v) if v is not None else ("ok" if t == "ok" else ""),
        is_nemesis=is_nemesis)
    v = result.get("violation")
    data = dict(timeline)
    data.update({"kind": "generic", "hasTime": True, "unit": "line", "idLabel": "line ",
                 "verdict": verdict, **_violation_marks(v, key="line")})
    name = result.get("history", "history")
    title = title or f"dst check: {verdict} \u2014 {name} ({result.get('model', '?')} model)"
    facts = [("history", name), ("model", result.get("model")), ("format", result.get("format")),
             ("verdict", verdict), ("ops", result.get("ops")),
             ("parts", result.get("partitions")), ("search steps", result.get("steps")),
             ("budget (steps)", result.get("budget_steps"))]
    if result.get("reason"):
        facts.append(("reason", result["reason"]))
    body = ['<section class="summary"><h2>Summary</h2>', _facts_html(facts), "</section>"]
    if v:
        body.append('<section class="violation-panel"><h2>Violation</h2>')
        where = f" in {v['partition']} ({v.get('partition_ops')} ops)" if v.get("partition") else ""
        body.append(f'<p class="why">No linearization{_h(where)}. {_h(v.get("message", ""))}</p>')
        op = v.get("op") or {}
        body.append(_facts_html([
            ("first op that could not be placed", _generic_op_line(op)),
            ("state there", v.get("state")),
            (_prefix_label(v), f"{len(v.get('prefix') or [])} ops"),
            ("could not place next", ", ".join(f"line {o.get('line')}" for o in v.get("unplaced") or [])),
        ]))
        body.append('<div id="prefix-list" class="prefix-list"></div></section>')
    return _page(title, verdict, "".join(body), data)


def _generic_op_line(op: dict[str, Any]) -> str:
    """One op of a check result (``dst.commands.check._op_data``) as a line."""
    key = f" key={_json_text(op['key'])}" if "key" in op else ""
    value = "" if op.get("value") is None else f" {_json_text(op['value'])}"
    out = " (outcome unknown)" if op.get("type") != "ok" else f" \u2192 {_json_text(op.get('output'))}"
    return _cut(f"line {op.get('line')}: process {_json_text(op.get('process'))} {op.get('f')}{key}{value}{out}")


def _prefix_label(v: dict[str, Any]) -> str:
    """A part the model refuted without a search has a linearizable prefix,
    not the longest one (dst check says the same)."""
    return ("a linearizable prefix (refuted by the model, no search)" if v.get("refuted")
            else "longest linearizable prefix")


def _violation_marks(v: dict[str, Any] | None, key: str) -> dict[str, Any]:
    if not v or "op" not in v:
        return {"lead": None, "leadMsg": (v or {}).get("message"), "searchOp": None,
                "prefix": [], "unplaced": []}

    def ident(o: Any) -> Any:
        return o.get(key) if isinstance(o, dict) else o

    prefix: list[Any] = []
    seen: set = set()
    for o in v.get("prefix") or []:
        i = ident(o)
        if i not in seen:
            seen.add(i)
            prefix.append(i)
    s = v.get("search") or {}
    return {"lead": ident(v["op"]), "leadMsg": v.get("message"),
            "searchOp": ident(s.get("op")) if s.get("op") else None,
            "searchMsg": s.get("message"),
            "prefix": prefix, "unplaced": [ident(o) for o in v.get("unplaced") or []],
            "refuted": bool(v.get("refuted"))}


def reachability_text(reach: dict[str, Any]) -> str:
    """One line for a run's (or a seed's) reachability (dst.sim.reach)."""
    if reach.get("applies") is False:
        return f"implied, not probed ({reach.get('why')})"
    checked, found = reach.get("checked", 0), reach.get("found", 0)
    floor = reach.get("floor")
    if not checked:
        return "not measured (no live id was searched by its own vector)" + (
            f"; floor {floor}: NOT PASSED" if floor else "")
    text = f"{found / checked:.4f} ({found} of {checked} live ids found by their own vector)"
    if floor:
        text += f" (floor {floor}: {'passed' if found / checked >= floor else 'BELOW'})"
    else:
        text += " (no floor set: reported, not gated)"
    lost = reach.get("unreachable") or []
    if lost:
        text += "; unreachable: " + ", ".join(
            f"{u['id']!r} ({'seed ' + str(u['seed']) + ', ' if 'seed' in u else ''}{u['when']})" for u in lost[:8])
    return text


def _facts_html(rows: list[tuple[str, Any]]) -> str:
    out = ['<table class="facts">']
    for k, val in rows:
        if val is None or val == "":
            continue
        out.append(f"<tr><th>{_h(k)}</th><td>{_h(val)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _summary_html(h: Any, meta: dict[str, Any], seed_result: dict[str, Any] | None,
                  run: dict[str, Any] | None, verdict: str, timeline: dict[str, Any]) -> str:
    sr = seed_result or {}
    params = meta.get("params") or {}
    t_us = timeline["tEnd"] - timeline["tStart"]
    facts: list[tuple[str, Any]] = [
        ("backend", meta.get("backend")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or (run or {}).get("versions")
                                                      or {}).items()) or None),
        ("scenario", meta.get("scenario")), ("seed", meta.get("seed")),
        ("verdict", verdict),
        ("dimension", meta.get("dim")),
        ("metric", meta.get("metric") or ("cosine" if "dim" in meta else None)),
        ("filters", None if "filters" not in meta else ("on" if meta.get("filters") else "off")),
        ("search", None if "exact" not in meta else ("exact" if meta.get("exact") else "approximate (ANN)")),
        ("atomic batches", meta.get("atomic_batches")),
        ("concurrency", meta.get("concurrency")),
        ("ops", f"{len(timeline['ops'])} ({len(h.events)} events, {len(timeline['nem'])} faults)"),
        ("virtual time", f"{t_us:,} \u00b5s"),
        ("crashes", sr.get("crashes")),
        ("check steps", sr.get("check_steps", sr.get("steps"))),
    ]
    if verdict == "ok" and seed_result:
        facts.append(("proved by", "the recorded dispatch order" if sr.get("witness", sr.get("witness_order"))
                      else "the full search"))
    if sr.get("reason"):
        facts.append(("reason", sr["reason"]))
    if sr.get("match"):               # dst replay: exact, or where it diverged
        facts.append(("replay of " + str(sr.get("replay_of") or "the seed"), sr["match"]))
    recall = (run or {}).get("recall") or sr.get("recall")
    if isinstance(recall, dict) and recall.get("mean") is not None:
        text = f"{recall['mean']:.4f} over {recall.get('searches')} searches"
        if recall.get("floor") is not None:
            text += f" (floor {recall['floor']}: {'passed' if recall.get('passed') else 'BELOW'})"
        facts.append(("recall@k", text))
    elif isinstance(recall, dict) and recall.get("floor"):
        facts.append(("recall@k", f"not measured (no search answered; floor {recall['floor']})"))
    reach = (run or {}).get("reachability") or sr.get("reachability")
    if isinstance(reach, dict):
        facts.append(("reachability", reachability_text(reach)))
    # Availability: one line per op kind, the run's totals when there are.
    avail = (run or {}).get("availability") or sr.get("availability") or {}
    where = "whole run" if (run or {}).get("availability") else "this seed"
    for f in sorted(avail):
        row = avail[f]
        text = (f"ok {row.get('ok', 0)}, fail {row.get('fail', 0)}, info {row.get('info', 0)}, "
                f"own errors {row.get('own', 0)}")
        if row.get("messages"):
            text += f" (first: {row['messages'][0]})"
        facts.append((f"availability: {f} ({where})", text))
    if run:
        facts.append(("run", run.get("run")))
        facts.append(("seeds in the run", len(run.get("seeds") or [])))
        if run.get("replay"):
            facts.append(("replay", run["replay"]))
    out = ['<section class="summary"><h2>Summary</h2>', _facts_html(facts)]
    # Fault firings per class: this history's nemesis events, the run's totals.
    here: dict[str, int] = {}
    fs = timeline["fs"]
    for n in timeline["nem"]:
        here[fs[n[2]]] = here.get(fs[n[2]], 0) + 1
    ppm = params.get("fault_ppm") or {}
    fired = sr.get("fired") or {}
    totals = (run or {}).get("fault_counts") or {}
    classes = list(FAULT_ORDER) + sorted((set(here) | set(ppm) | set(fired)) - set(FAULT_ORDER))
    classes = [c for c in dict.fromkeys(classes) if c in here or c in ppm or c in fired or c in totals]
    if classes:
        out.append('<table class="faults"><thead><tr><th>fault</th><th>rate (this seed)</th>'
                   '<th>fired (this history)</th>' + ("<th>fired (whole run)</th>" if totals else "")
                   + "</tr></thead><tbody>")
        for c in classes:
            rate = ppm.get(c)
            rate_text = "" if rate is None else ("off" if rate == 0 else f"{rate / 10_000:g}%")
            as_ = (sr.get("realised") or {}).get(c)
            if rate and as_:
                rate_text += f" (fires as {as_} here)"
            n = here.get(c, 0)
            warn = ' class="unfired"' if rate and n == 0 and not as_ else ""
            out.append(f"<tr{warn}><td>{_h(c)}</td><td>{_h(rate_text)}</td><td>{n}</td>"
                       + (f"<td>{_h(totals.get(c, 0))}</td>" if totals else "") + "</tr>")
        out.append("</tbody></table>")
    if timeline["notes"]:
        out.append('<p class="note">The history pairs oddly: '
                   + "; ".join(_h(n) for n in timeline["notes"]) + "</p>")
    out.append("</section>")
    return "".join(out)


def _op_line(op: dict[str, Any], brief: bool = False) -> str:
    f = op.get("f", "")
    out = vector_output_text(f, op.get("type", "ok"), op.get("output"))
    if brief:
        out = out.split("\n")[0] + " (compared below)"
    return (f"#{op.get('index')} process {op.get('process')}: {f} "
            f"{vector_input_text(f, op.get('input'))} \u2192 {op.get('type')} {out}")


def _vector_violation_html(h: Any, violations: list[dict[str, Any]], sr: dict[str, Any] | None) -> str:
    if not violations:
        if (sr or {}).get("verdict") == "unknown":
            return ('<section class="violation-panel unknown"><h2>Unknown</h2><p class="why">'
                    f'{_h(sr.get("reason") or "the check ran out of budget")}; not a pass.</p></section>')
        return ""
    out = ['<section class="violation-panel"><h2>Violation</h2>']
    v = violations[0]
    if "op" not in v:
        out.append(f'<p class="why">{_h(v.get("message", ""))}</p>')
        out.append(_facts_html([("found", v.get("when")), ("check", v.get("kind"))]))
    else:
        comps = _comparisons(h, v)
        lead = v["op"]
        s = v.get("search") or {}
        out.append(f'<p class="why">{_h(v.get("message", ""))}</p>')
        out.append(_facts_html([("op", _op_line(lead, "lead" in comps)),
                                ("state there", v.get("state"))]))
        if "lead" in comps:
            out.append(_comparison_html(*comps["lead"]))
        if (s.get("op") or {}).get("index") != lead.get("index") or s.get("message") != v.get("message"):
            sop = s.get("op") or {}
            brief = "search" in comps
            out.append("<h3>Full search</h3><p class=\"note\">The recorded order is one "
                       "linearization to try; the full search tried them all. Where it got stuck:</p>")
            out.append(_facts_html([
                ("first op it could not place", _op_line(sop, brief)),
                ("why", s.get("message")), ("state after the prefix", s.get("state")),
            ]))
            if brief:
                out.append(_comparison_html(*comps["search"]))
        out.append(_facts_html([
            (_prefix_label(v), f"{len(v.get('prefix') or [])} ops (underlined in the timeline)"),
            ("could not place next", ", ".join(f"#{i}" for i in v.get("unplaced") or [])),
            ("search steps", v.get("steps")),
        ]))
        out.append('<div id="prefix-list" class="prefix-list"></div>')
    if len(violations) > 1:
        out.append(f"<h3>{len(violations) - 1} more finding{'s' if len(violations) > 2 else ''}</h3><ul>")
        for extra in violations[1:20]:
            out.append(f"<li>{_h(extra.get('kind', ''))}: {_h(extra.get('message', ''))}</li>")
        out.append("</ul>")
    out.append("</section>")
    return "".join(out)


def _comparisons(h: Any, v: dict[str, Any]) -> dict[str, tuple[dict[str, Any] | None, str]]:
    """Search comparisons for the violation's op ("lead") and the full
    search's ("search"): (comparison or None, where the state comes from)."""
    recs = {"lead": v.get("op"), "search": (v.get("search") or {}).get("op")}
    recs = {role: r for role, r in recs.items() if r and r.get("f") == "search" and r.get("type") == "ok"
            and isinstance(r.get("output"), list)}
    if not recs or "dim" not in (h.meta or {}):
        return {}
    try:
        model, states = _vector_states(h, v)
    except Exception as exc:  # noqa: BLE001 - a report must not die on an odd history
        return {role: (None, f"the model state could not be reconstructed ({exc!r})") for role in recs}
    out: dict[str, tuple[dict[str, Any] | None, str]] = {}
    for role in recs:
        got = states.get(role)
        if got is None:
            out[role] = (None, "stepping the model over the recorded ops did not reproduce the "
                               "checker's state for this op, so no expected answer is shown")
            continue
        state, op, where = got
        if op.input[-1] is not None or not isinstance(op.output, tuple):
            continue
        wref = op.input[3] if len(op.input) > 4 else None
        out[role] = (search_comparison(model, state.items, op.input[1], op.input[2], op.output,
                                       where=wref, attrs=getattr(state, "attrs", None) or {}), where)
    return out


def _comparison_html(comp: dict[str, Any] | None, where: str) -> str:
    if comp is None:
        return f"<p class=\"note\">{_h(where)}</p>"
    head = (f"<p class=\"note\">Returned hits beside the exact answer. Query {_h(comp['query'])}, limit {_h(comp['limit'])}, "
            f"{comp['live']} ids live {_h(where)}; exact top-{comp['k']} by true {_h(comp.get('metric', 'cosine'))} score (float64), "
            f"ties by id; score_eps {_h(comp['eps'])}.</p>")
    f = comp.get("filter")
    if f:
        head += (f"<p class=\"note filter\">Filter <code>{_h(f['show'])}</code> (canonical JSON "
                 f"<code>{_h(f['json'])}</code>) matches {f['matching']} of {comp['live']} live ids; "
                 f"the expected answer ranks only the matching ids.</p>")

    def table(rows: list[dict[str, Any]], cols: list[tuple[str, str]], caption: str) -> str:
        t = [f'<table class="hits"><caption>{_h(caption)}</caption><thead><tr>']
        t += [f"<th>{_h(name)}</th>" for name, _ in cols]
        t.append("</tr></thead><tbody>")
        for r in rows[:MAX_TABLE_ROWS]:
            bad = "" if r.get("note", "").startswith(("ok", "returned", "not returned; tied")) else ' class="bad"'
            t.append(f"<tr{bad}>" + "".join(f"<td>{_h(r.get(k, ''))}</td>" for _, k in cols) + "</tr>")
        if len(rows) > MAX_TABLE_ROWS:
            t.append(f'<tr><td colspan="{len(cols)}">... {len(rows) - MAX_TABLE_ROWS} more</td></tr>')
        t.append("</tbody></table>")
        return "".join(t)

    ret = table(comp["returned"], [("rank", "rank"), ("id", "id"), ("vector", "ref"), ("reported score", "score"),
                                   ("true score", "true"), ("check", "note")], "returned by the backend")
    exp = table(comp["expected"], [("rank", "rank"), ("id", "id"), ("vector", "ref"), ("true score", "true"),
                                   ("", "note")], "expected (the model's exact top-k)")
    return head + f'<div class="side-by-side">{ret}{exp}</div>'


def _page(title: str, verdict: str, body: str, data: dict[str, Any]) -> str:
    vclass = {"ok": "ok", "violation": "violation", "unknown": "unknown"}.get(verdict, "none")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        # Nothing may be fetched: a policy that forbids every origin.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_h(title, 300)}</title><style>{asset('report.css')}</style></head><body>",
        f"<header><h1>{_h(title, 300)}</h1><span class=\"badge badge-{vclass}\">{_h(verdict.upper())}</span>"
        "</header><main>",
        body,
        '<section class="timeline-section"><h2>Timeline</h2>',
        "<noscript><p class=\"note\">The timeline is drawn by an inline script; the summary above "
        "needs none.</p></noscript>",
        '<div id="timeline"></div></section></main>',
        '<div id="dst-status" hidden data-rendered="0"></div>',
        '<div id="tooltip" class="tooltip" hidden></div>',
        f'<script type="application/json" id="dst-data">{embed_json(data)}</script>',
        f"<script>{asset('report.js')}</script></body></html>\n",
    ])


# The page's style (assets/report.css) and its timeline script
# (assets/report.js): plain DOM and canvas; text enters the page only through
# textContent. The script leaves markers for tests: one .lane[data-lane] per
# drawn lane, one .violation[data-op] over the violating op, and #dst-status
# with data-rendered="1", counts, the violation marker's page box
# (data-lead-box="x,y,w,h") and data-error if the script threw.
@functools.lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The text of ``dst/report/assets/<name>`` (package data), inlined into
    every report so that the file stays self-contained."""
    return (resources.files("dst.report") / "assets" / name).read_text(encoding="utf-8")
