"""The deterministic run: a scenario and a seed become a schedule of ops and
faults, played against one backend in virtual time, recorded as a history
and checked (``dst.sim.runner``)."""
