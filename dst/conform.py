"""The same cases on several backends, side by side (``dst conform``).

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

from dataclasses import replace
from typing import Any

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


class Cases:
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


def add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        total[k] = total.get(k, 0) + v


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
