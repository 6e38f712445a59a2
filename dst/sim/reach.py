"""ANN reachability: can every live row be found by searching for itself?

An ANN index can hold a row that ``get`` and ``exists`` return and that no
search ever finds (a graph node cut off by deletes and updates, a row left
out of every list of an IVF index). Per query the checker cannot see it (a
search may miss), and the mean recall@k over random queries hardly moves
when a few rows are lost for good. So at quiescence the probe
(``dst.sim.scheduler``) searches a sample of live ids, each by its own
stored vector, through the backend's ANN ``search`` with limit
``reachability_k``; those searches carry ``"reach": id`` in the history.

This module scores them from the history alone (so ``dst check`` and
replays see the same numbers). For the searched id ``x`` with true score
``own`` against its own vector, over the live rows the same probe's gets
reported:

* *found*: ``x`` is among the hits, or a hit whose true score is within
  ``score_eps`` of ``own`` or above (a row with an identical vector, or
  under cosine a parallel one, is the same answer and may stand for it);
* *outranked*: the exact top ``k`` holds ``k`` rows scoring above ``own``
  (more than ``score_eps``), so no correct store need return ``x`` for this
  query; it is left out of the measure (only under ``dot``, where a row is
  not always its own best match; under cosine and l2 ``own`` is the top
  score);
* *unanswered*: the search did not complete ``ok`` (a fault, a backend
  error): not measured;
* otherwise *unreachable*: named in the finding.

The run-level gate is in ``dst.sim.gates``: the fraction found over all
measured searches of the run must reach ``reachability_floor``; a floor with
nothing measured is not a pass. On an exact backend nothing is probed:
every search there (the probe's exhaustive one included) is held to the
exact rules, under which each live row is returned where its score puts it,
so reachability is implied; the run says so instead of giving a number.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

# Unreachable ids kept per seed (the count is always whole): enough to
# start from, bounded for a store that loses thousands.
UNREACHABLE_MAX = 20

EXACT_REASON = ("exact search: every search, the probe's exhaustive one included, is held to the "
                "exact rules, which already show each live row where its score ranks it")


def reach_outcome(x: str, hit_ids: Iterable[str], score_of: Callable[[str], float | None], own: float,
                  kth: float, tol: Callable[[float], float]) -> str:
    """One reach search, scored: ``"outranked"``, ``"found"`` or
    ``"unreachable"`` (the rules in the module doc).

    ``x``: the id searched by its own vector; ``hit_ids``: the ids the
    search returned; ``score_of(id)``: an id's true score against x's
    vector, None for an id that is not live; ``own``: x's true score
    against its own vector; ``kth``: the k-th best true score over the live
    rows; ``tol(score)``: how far a score may be off. Shared by the probe's
    scoring here and by ``dst bench``'s reachability column."""
    if own < kth - tol(kth):
        return "outranked"
    bar = own - tol(own)
    for h in hit_ids:
        if h == x:
            return "found"
        s = score_of(h)
        if s is not None and s >= bar:
            return "found"
    return "unreachable"


def seed_reachability(model: Any, pairs: Iterable[Any]) -> dict[str, Any]:
    """Score one seed's reach searches (``pairs``: dst.history.pair output).

    Live rows are those the same probe's gets returned a vector for (a probe
    is a run of consecutive ``probe`` ops; any other op ends it).
    """
    checked = found = outranked = unanswered = 0
    unreachable: list[dict[str, Any]] = []
    items: dict[str, int] = {}
    for op in sorted(pairs, key=lambda o: o.call):
        if op.process != "probe":
            items = {}
            continue
        v = op.input if isinstance(op.input, dict) else {}
        if op.f == "get" and op.type == "ok" and isinstance(op.output, int) and not isinstance(op.output, bool):
            items[v.get("id")] = op.output
            continue
        if op.f != "search" or "reach" not in v:
            continue
        x = v["reach"]
        if op.type != "ok" or not isinstance(op.output, list) or x not in items:
            unanswered += 1
            continue
        k = int(v["limit"])
        sc = model.true_scores(items[x])
        best = sorted((sc[r] for r in items.values()), reverse=True)
        outcome = reach_outcome(x, [h[0] for h in op.output], lambda h: sc[items[h]] if h in items else None,
                                sc[items[x]], best[min(k, len(best)) - 1], model.tol)
        if outcome == "outranked":
            outranked += 1
            continue
        checked += 1
        if outcome == "found":
            found += 1
        elif len(unreachable) < UNREACHABLE_MAX:
            unreachable.append({"id": x, "when": v.get("when", "probe")})
        else:
            unreachable.append(None)     # counted, not named
    named = [u for u in unreachable if u is not None]
    return {"checked": checked, "found": found, "outranked": outranked, "unanswered": unanswered,
            "unreachable": named, "unreachable_count": len(unreachable)}


def run_reachability(results: Iterable[Any], floor: float) -> dict[str, Any] | None:
    """The run's figure over its seeds' (SeedResult.reach), or None when no
    seed ran. On a run whose seeds were all on exact backends: not
    applicable, with the reason (never a number that was not measured)."""
    results = list(results)
    if not results:
        return None
    ann = [r for r in results if not r.exact]
    if not ann:
        return {"applies": False, "why": EXACT_REASON, "floor": floor, "fraction": None,
                "checked": 0, "found": 0, "measured": False, "passed": True, "unreachable": []}
    checked = sum((r.reach or {}).get("checked", 0) for r in ann)
    found = sum((r.reach or {}).get("found", 0) for r in ann)
    fraction = found / checked if checked else None
    gated = floor > 0
    named = [{"seed": r.seed, **u} for r in ann for u in (r.reach or {}).get("unreachable", [])]
    return {"applies": True, "floor": floor, "fraction": fraction, "checked": checked, "found": found,
            "outranked": sum((r.reach or {}).get("outranked", 0) for r in ann),
            "unanswered": sum((r.reach or {}).get("unanswered", 0) for r in ann),
            "unreachable_count": sum((r.reach or {}).get("unreachable_count", 0) for r in ann),
            "unreachable": named[:UNREACHABLE_MAX], "measured": fraction is not None,
            "passed": (fraction is not None and fraction >= floor) if gated else True}
