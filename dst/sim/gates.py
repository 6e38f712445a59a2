"""Run-level gates: what a pass needs beyond every seed's own verdict.

A seed's verdict says its answers were right. Some conditions only make
sense over the whole run, and ``dst run`` and the pytest plugin's
``dst_run`` judge them alike (DESIGN "What a pass means"):

* availability (``dst.sim.availability``): the backend's own errors per op
  kind within ``backend_error_ppm`` over the run (else a violation, exit
  1); every op kind the scenario draws completed ``ok`` at least once
  (else not proven, exit 4);
* ANN recall: on a backend whose search is not exact, the mean recall@k
  over the run at or above the scenario's ``recall_floor`` (else exit 1).
  A floor with no measurement (no search answered) is not a pass (exit
  4). A floor of 0 configures no gate.
* ANN reachability (``dst.sim.reach``): the fraction of the probed live ids
  found by a search for their own vector at or above the scenario's
  ``reachability_floor`` (else a violation of kind ``reachability`` naming
  the unreachable ids, exit 1); a floor with nothing measured is not
  proven (exit 4). On exact backends it is implied, reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from dst.sim import availability
from dst.sim.reach import run_reachability


@dataclass
class RunGates:
    availability: dict[str, dict[str, Any]]          # per op kind, over the run
    availability_violations: list[dict[str, Any]]    # kinds over their budget, over the run
    drawn: list[str]                                 # op kinds some seed's mix draws
    never_ok: list[str]                              # ... of which none completed ok
    recall: dict[str, Any] | None                    # None: no seed ran on an ANN backend
    recall_failed: bool = False
    recall_unmeasured: bool = False
    reachability: dict[str, Any] | None = None       # dst.sim.reach.run_reachability
    reachability_violation: dict[str, Any] | None = None
    reachability_unmeasured: bool = False

    @property
    def violated(self) -> bool:
        return bool(self.availability_violations) or self.recall_failed or self.reachability_violation is not None

    @property
    def not_proven(self) -> bool:
        return bool(self.never_ok) or self.recall_unmeasured or self.reachability_unmeasured

    def sentences(self, recall: bool = True) -> list[str]:
        """One sentence per gate that did not pass (not the seeds' own
        findings); ``recall=False`` leaves out a recall below the floor (for
        a caller that prints the recall line itself)."""
        out = [f"availability violation: {v['message']}" for v in self.availability_violations]
        if self.recall_failed and recall:
            r = self.recall
            out.append(f"recall@k {r['mean']:.4f} over {r['searches']} searches is below the "
                       f"scenario's floor {r['floor']}")
        if self.reachability_violation is not None:
            out.append(f"reachability violation: {self.reachability_violation['message']}")
        if self.never_ok:
            names = ", ".join(self.never_ok)
            out.append(f"op kind{'s' if len(self.never_ok) > 1 else ''} {names} drawn by the scenario "
                       f"but never completed ok in the run: the run proves nothing about "
                       f"{'them' if len(self.never_ok) > 1 else 'it'}")
        if self.recall_unmeasured:
            out.append(f"the ANN recall floor {self.recall['floor']} was never measured (no search was "
                       f"answered): the recall gate is not passed")
        if self.reachability_unmeasured:
            out.append(f"the reachability floor {self.reachability['floor']} was never measured (no "
                       f"live id was searched by its own vector and answered): the reachability gate "
                       f"is not passed")
        return out


def evaluate(results: Sequence[Any], backend_error_ppm: int, recall_floor: float,
             reachability_floor: float = 0.0) -> RunGates:
    """The run-level gates over ``results`` (SeedResults, in seed order)."""
    tally = availability.merge(r.availability for r in results)
    drawn = sorted({k for r in results for k in r.drawn_ops})
    over = availability.violations(tally, backend_error_ppm, whole_run=True)
    for v in over:    # where to look: the first seed with such an error
        seed = next((r.seed for r in results if (r.availability.get(v["f"]) or {}).get("own")), None)
        v["seed"] = seed
        v["message"] += f" (first in seed {seed})"
    gates = RunGates(availability=tally, availability_violations=over, drawn=drawn,
                     never_ok=availability.never_ok(tally, drawn), recall=None)
    ann = [r for r in results if not r.exact]
    if ann:
        rec = [r.recall for r in ann if r.recall is not None]
        searches = sum(n for _, n in rec)
        mean = sum(t for t, _ in rec) / searches if searches else None
        gated = recall_floor > 0
        gates.recall = {"mean": mean, "searches": searches, "floor": recall_floor,
                        "measured": mean is not None,
                        "passed": (mean is not None and mean >= recall_floor) if gated else True}
        gates.recall_failed = mean is not None and gated and mean < recall_floor
        gates.recall_unmeasured = mean is None and gated
    reach = gates.reachability = run_reachability(results, reachability_floor)
    if reach is not None and reach["applies"] and reachability_floor > 0:
        if reach["fraction"] is None:
            gates.reachability_unmeasured = True
        elif reach["fraction"] < reachability_floor:
            gates.reachability_violation = reachability_finding(reach)
    return gates


def reachability_finding(reach: dict[str, Any]) -> dict[str, Any]:
    """The violation of kind ``reachability``: the figure and the ids."""
    named = ", ".join(f"{u['id']!r} (seed {u['seed']}, {u['when']})" for u in reach["unreachable"][:8])
    more = reach["unreachable_count"] - min(8, len(reach["unreachable"]))
    message = (f"{reach['found']} of {reach['checked']} live ids searched by their own vector were in "
               f"the top k ({reach['fraction']:.4f}), below the scenario's reachability_floor "
               f"{reach['floor']}; unreachable: {named}" + (f" and {more} more" if more > 0 else ""))
    return {"kind": "reachability", "message": message, "unreachable": reach["unreachable"],
            "fraction": reach["fraction"], "floor": reach["floor"]}
