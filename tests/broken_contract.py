"""Backends that break the protocol's *types*, not its semantics.

Each is the correct sim backend whose answers to one op come back in the
wrong shape: an id that is not a string, a score that is not a finite
number, a vector of the wrong shape, a count that is not an int, a delete
or exists that is not a bool. The harness must report each as a
``contract`` violation naming the op (exit 1), never crash on it, never
pass it. Usable as ``--backend tests.broken_contract:NAME``.

Every defect fires on every call of its op, so any seed that draws the op
(and every final probe) sees it.
"""

from __future__ import annotations

import numpy as np

from backends.sim import SimBackend
from tests.broken_backends import factory_for
from dst.backend import SearchHit


class IntIds(SimBackend):
    """search returns hits whose id is an int (the row number), not the str id."""
    filters = False   # a store of the first protocol: no attributes or filters

    def search(self, query, limit):
        return [SearchHit(n, h.score) for n, h in enumerate(super().search(query, limit))]


class NanScores(SimBackend):
    """search returns NaN for every score (a store dividing by a zero norm)."""
    filters = False   # a store of the first protocol: no attributes or filters

    def search(self, query, limit):
        return [SearchHit(h.id, float("nan")) for h in super().search(query, limit)]


class TextScores(SimBackend):
    """search returns each score as a string, as a JSON driver might."""
    filters = False   # a store of the first protocol: no attributes or filters

    def search(self, query, limit):
        return [SearchHit(h.id, repr(h.score)) for h in super().search(query, limit)]


class TupleHits(SimBackend):
    """search returns (id, score) tuples instead of SearchHit."""
    filters = False   # a store of the first protocol: no attributes or filters

    def search(self, query, limit):
        return [(h.id, h.score) for h in super().search(query, limit)]


class WideGet(SimBackend):
    """get returns the vector with one extra component."""
    filters = False   # a store of the first protocol: no attributes or filters

    def get(self, id):
        v = super().get(id)
        return None if v is None else np.append(v, np.float32(0.0))


class MatrixGet(SimBackend):
    """get returns the vector as a 1 x dim matrix (flattening would hide it)."""
    filters = False   # a store of the first protocol: no attributes or filters

    def get(self, id):
        v = super().get(id)
        return None if v is None else v.reshape(1, -1)


class TextGet(SimBackend):
    """get returns the components as words, which no float conversion takes."""
    filters = False   # a store of the first protocol: no attributes or filters

    def get(self, id):
        v = super().get(id)
        return None if v is None else ["x"] * len(v)


class FloatCount(SimBackend):
    """count returns a float."""
    filters = False   # a store of the first protocol: no attributes or filters

    def count(self):
        return float(super().count())


class IntDelete(SimBackend):
    """delete returns 1/0 instead of True/False."""
    filters = False   # a store of the first protocol: no attributes or filters

    def delete(self, id):
        return int(super().delete(id))


class TextExists(SimBackend):
    """exists returns "yes"/"no"."""
    filters = False   # a store of the first protocol: no attributes or filters

    def exists(self, id):
        return "yes" if super().exists(id) else "no"


# name -> (class, the op whose contract it breaks)
CONTRACT_BROKEN = {
    "int_ids": (IntIds, "search"),
    "nan_scores": (NanScores, "search"),
    "text_scores": (TextScores, "search"),
    "tuple_hits": (TupleHits, "search"),
    "wide_get": (WideGet, "get"),
    "matrix_get": (MatrixGet, "get"),
    "text_get": (TextGet, "get"),
    "float_count": (FloatCount, "count"),
    "int_delete": (IntDelete, "delete"),
    "text_exists": (TextExists, "exists"),
}


for _name, (_cls, _op) in CONTRACT_BROKEN.items():
    globals()[_name] = factory_for(_cls)


def factory_raises(config):
    """A user's factory whose driver cannot open the store (not a dst error)."""
    raise ConnectionRefusedError("no server at the configured address")
