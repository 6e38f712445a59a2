"""One seed's case on several backends (``dst conform``).

A partial-write fault cuts a batch the way each backend allows (see
``dst.sim.faults``): a strict subset on a store without atomic batches, a
connection killed mid-COPY on pgvector, an error before or after the whole
batch on sim and lance. Run as recorded on two backends that cut batches
differently, the same case would leave them in different states by the
harness's choice, not theirs, and every later read would "disagree". So
when the two backends of a comparison do not cut batches the same way, both
run the case with whole-batch faults (``Schedule.whole_batches``): the
error before or after the whole batch, as recorded, which every backend
takes alike and every contract allows. Backends that cut batches the same
way (two without atomic batches, say) share the recorded subsets exactly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dst.history import History


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
