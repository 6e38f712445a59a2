"""Virtual time: integer microseconds, monotone, asserted.

Nothing in a deterministic run sleeps or reads the wall clock; the
scheduler moves this clock from event to event.
"""

from __future__ import annotations


class ClockError(AssertionError):
    """Someone tried to move virtual time backwards."""


class VirtualClock:
    # ``now_us`` is a plain slot, read on every event (a property would be a
    # call per read); only advance_to and advance_by move it.
    __slots__ = ("now_us",)

    def __init__(self, start_us: int = 0):
        if not isinstance(start_us, int) or start_us < 0:
            raise ClockError(f"start time must be a non-negative int, got {start_us!r}")
        self.now_us = start_us

    def advance_to(self, t_us: int) -> None:
        """Jump to ``t_us``; refuses to go backwards (like trio's MockClock)."""
        if not isinstance(t_us, int):
            raise ClockError(f"virtual time is an int of microseconds, got {t_us!r}")
        if t_us < self.now_us:
            raise ClockError(f"virtual time cannot go back from {self.now_us} to {t_us} us")
        self.now_us = t_us

    def advance_by(self, dt_us: int) -> None:
        if not isinstance(dt_us, int) or dt_us < 0:
            raise ClockError(f"a clock step is a non-negative int, got {dt_us!r}")
        self.now_us += dt_us
