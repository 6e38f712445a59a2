"""Deliberately broken ANN backends for the reachability probe (issue 13).

``unreachable_subset`` is the sim backend declared an ANN index (``exact =
False``) whose ``search`` never returns the ids of a fixed sliver of the id
space (1 in 16, by a stable hash), as an index that lost their entries would
(Chroma issue 7758 reports live rows that ``get`` returns and no ``query``
finds). ``get``, ``exists``, ``count`` and the exact path ``search_exact``
(what the probes' exhaustive search uses) all see them, and every answer of
``search`` is live, truly scored, sorted and full length while enough ids
are live: no single answer is wrong, so only the reachability gate catches
it (recall@k drops by about 1/16, above a 0.8 floor).

``honest_ann`` is the same without the defect: exact answers declared ANN,
the control for false alarms.

Usable as ``--backend tests.broken_reach:unreachable_subset``.
"""

from __future__ import annotations

import hashlib

from backends.sim import SimBackend
from tests.broken_backends import factory_for

LOST_ONE_IN = 16


def lost(id_: str) -> bool:
    """Whether the broken index has lost this id: a stable hash, so the same
    ids on every run and in every process."""
    digest = hashlib.blake2b(id_.encode("utf-8", "surrogatepass"), digest_size=2).digest()
    return int.from_bytes(digest, "big") % LOST_ONE_IN == 0


class HonestAnn(SimBackend):
    """Declared ANN, answers exactly: every live id is reachable."""
    filters = False
    exact = False

    def search_exact(self, query, limit, where=None):
        # The toolkit's exact path (SimBackend's routes through search).
        return self._search(query, limit, where, True)


class UnreachableSubset(HonestAnn):
    def raw_search(self, query, limit, exact, where=None):
        if exact:
            return super().raw_search(query, limit, True, where)
        everything = super().raw_search(query, max(1, self.raw_count()), False, where)
        return [h for h in everything if not lost(h.id)][:limit]


unreachable_subset = factory_for(UnreachableSubset)
honest_ann = factory_for(HonestAnn)
