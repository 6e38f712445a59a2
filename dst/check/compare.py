"""Comparing two backends' histories of the same case op by op (``dst conform``,
and ``dst replay`` of a real store up to ties).

Each seed's case is drawn once (on the first backend, recording every
decision as an explicit schedule) and then run, op for op and fault for
fault, on every other backend. Each history is checked on its own; then
the answers are compared op by op against the first backend:

* search: same length; an id both returned must have scores within
  ``score_eps`` (the checker's tolerance: relative under l2 and dot);
  neither answer ranks a hit more than that above one it ranked before
  (all pairs, the contract's ranking rule); ids only one side returned
  must sit in the tie group at the bottom (a tie at the cut-off may go
  either way). Searches on an approximate backend are compared by its ANN
  conditions only, so they count as ``ann``, not as agreement, unless
  both sides took the probes' exact path (``search_exact``);
* get: the same vector bytes; get_attrs: the same names with values of
  the same type and value (``1``, ``True`` and ``1.0`` are three different
  answers, though Python calls them equal); other ops: equal answers; an op that one
  backend answered and another failed or left unknown is an ``outcome``
  disagreement.

Which schedule each pair runs (whole-batch faults where two backends cut
batches differently): ``dst.sim.cases``.
"""

from __future__ import annotations

from typing import Any

from dst.history import History, pair
from dst.metrics import tolerance

KINDS = ("store", "store_batch", "delete", "get", "get_attrs", "exists", "count", "search", "maintenance")


def compare_search(a: list, b: list, eps: float, metric: str = "cosine") -> str | None:
    """None if two search answers agree up to ties and score_eps, else why not.

    The contract's ranking rule (DESIGN, search-ranking agreement), over
    all pairs: an id both returned is scored alike (within ``eps``); neither
    side ranks a hit more than ``eps`` above one it ranked before; an id
    only one side returned sits in the tie at the cut-off. "Within ``eps``"
    is the checker's tolerance (``dst.metrics.tolerance``): under ``l2`` and
    ``dot`` relative to the score (the first answer's), as a store computes
    them in float32. Two answers the contract
    both allows (a run of near-ties ordered two ways) agree; comparing rank
    by rank would not (ranks 0 and 1 of ``[b, c, a]`` and ``[c, a, b]`` at
    scores a .5, b .50009, c .50018 differ by 1.8 ``eps``)."""
    if len(a) != len(b):
        return f"{len(a)} hits vs {len(b)}"
    if not a:
        return None
    sa, sb = dict((i, x) for i, x in a), dict((i, x) for i, x in b)
    for i in sorted(sa.keys() & sb.keys()):
        if not abs(sa[i] - sb[i]) <= tolerance(metric, eps, sa[i]):
            return f"id {i!r} scored {sa[i]!r} vs {sb[i]!r}"
    for side, hits in (("first", a), ("second", b)):
        # true(j) <= true(i) + eps for every i < j: against the lowest score
        # ranked before j, all pairs at once.
        low = float("inf")
        for i, x in hits:
            if not x <= low + tolerance(metric, eps, low):
                return f"the {side} answer ranks {i!r} (score {x!r}) after a score of {low!r}"
            low = min(low, x)
    low = min(min(sa.values()), min(sb.values()))
    bar = low + tolerance(metric, eps, low)
    for i in sorted(sa.keys() - sb.keys()):
        if sa[i] > bar:
            return f"id {i!r} (score {sa[i]!r}) returned by one backend only, above the tie at the cut-off"
    for i in sorted(sb.keys() - sa.keys()):
        if sb[i] > bar:
            return f"id {i!r} (score {sb[i]!r}) returned by one backend only, above the tie at the cut-off"
    return None


def compare_attrs(a: Any, b: Any) -> str | None:
    """None if two get_attrs answers (``{"attrs": {...}}`` or None) are the
    same, with each value's type compared too (bool is an int in Python)."""
    if a is None or b is None:
        return None if a is b else f"{a!r} vs {b!r}"
    xa, xb = a.get("attrs") if isinstance(a, dict) else a, b.get("attrs") if isinstance(b, dict) else b
    if not (isinstance(xa, dict) and isinstance(xb, dict)):
        return None if xa == xb and type(xa) is type(xb) else f"{a!r} vs {b!r}"
    for k in sorted(set(xa) | set(xb), key=str):
        if k not in xa or k not in xb:
            return f"attribute {k!r} only on one side"
        if type(xa[k]) is not type(xb[k]) or xa[k] != xb[k]:
            return f"attribute {k!r}: {xa[k]!r} vs {xb[k]!r}"
    return None


def compare_histories(ref: History, other: History, eps: float, ann: bool) -> tuple[dict, list]:
    """Per-kind counts (agree, ann, differ) and the list of disagreements."""
    pa, pb = pair(ref.events), pair(other.events)
    # The probes' reachability searches (dst.sim.reach) run only on an ANN
    # backend, so one side may have them and the other not: they are left
    # out, and since each moved that side's virtual clock on, the sequences
    # are then lined up by process, op and input instead of by time.
    ra, rb = _without_reach(pa), _without_reach(pb)
    shifted = len(ra) != len(pa) or len(rb) != len(pb)
    pa, pb = ra, rb
    counts = {k: {"agree": 0, "ann": 0, "differ": 0} for k in KINDS}
    diffs: list[dict[str, Any]] = []
    metric = str(ref.meta.get("metric", "cosine"))   # both ran the same scenario
    if len(pa) != len(pb):
        diffs.append({"index": None, "f": None, "why": f"{len(pa)} ops vs {len(pb)}: the schedules diverged"})
    for x, y in zip(pa, pb):
        if x.f != y.f or (x.call != y.call if not shifted
                          else (x.process != y.process or _asked(x.input) != _asked(y.input))):
            diffs.append({"index": x.index, "f": x.f, "why": "the op sequences diverged here"})
            break
        why = None
        if x.type != y.type:
            why = f"outcome {x.type} vs {y.type}"
        elif x.type == "ok":
            if x.f == "search" and isinstance(x.output, list) and isinstance(y.output, list):
                # An ANN backend's answers are its own; a probe's exact search
                # ("exact": true, search_exact) must agree all the same, but
                # only where both sides took that path: a backend without
                # search_exact (Chroma, Milvus under HNSW) answers the probe
                # from its index, and that answer is an ANN one.
                if ann and not (_exact(x.input) and _exact(y.input)):
                    counts["search"]["ann"] += 1
                    continue
                why = compare_search(x.output, y.output, eps, metric)
            elif x.f == "get" and isinstance(x.output, int) and isinstance(y.output, int):
                if ref.table[x.output].tobytes() != other.table[y.output].tobytes():
                    why = "different vectors"
            elif x.f == "get_attrs":
                why = compare_attrs(x.output, y.output)
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


def _exact(value: Any) -> bool:
    return isinstance(value, dict) and value.get("exact") is True


def _asked(value: Any) -> Any:
    """An op's input without the path the harness took (``"exact"``: the
    probe asks for search_exact where the backend has one), which is not
    part of what was asked."""
    if isinstance(value, dict) and "exact" in value:
        return {k: v for k, v in value.items() if k != "exact"}
    return value


def _without_reach(ops: list) -> list:
    return [p for p in ops if not (p.f == "search" and isinstance(p.input, dict) and "reach" in p.input)]


def _show(h: History, p) -> Any:
    if p.type != "ok":
        return {"type": p.type, "value": p.output}
    if p.f == "get" and isinstance(p.output, int):
        return {"vector": h.table[p.output].tolist()[:8]}
    return p.output


def tolerant_match(recorded: History, mine: History, eps: float) -> str:
    """exact-up-to-ties, or where the replay first answered differently."""
    ann = not (recorded.meta.get("exact", True) and mine.meta.get("exact", True))
    _, diffs = compare_histories(recorded, mine, eps, ann)
    if not diffs:
        return "exact (up to tie order and score_eps)"
    first = diffs[0]
    where = first["index"] if first["index"] is not None else "?"
    return f"diverged at op {where} ({first['f']}: {first['why']})"
