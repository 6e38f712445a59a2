"""Deliberately broken backends for what the default scenario must reach:
ids a store collates together, and search limits it silently caps.

Every factory here is usable as ``--backend tests.broken_ids:NAME``. Each
class is the correct sim backend with exactly one defect of a kind real
stores have:

* a collation that folds distinct ids into one row: case-insensitive (as
  MySQL's ``_ci`` collations), PAD SPACE (trailing spaces ignored, as
  MySQL's PAD SPACE collations and SQL's CHAR comparison), normalizing to
  NFC or to NFKC (full-width forms folded), or ignoring zero-width
  characters (as a nondeterministic ICU collation may). The row keeps the id it was
  first written with, as an upsert on a collated primary key does;
* a top-k cap: search answers at most N hits whatever the limit (as an ANN
  scan bounded by ef_search, or a server's max top-k, cut silently).
"""

from __future__ import annotations

import unicodedata
from typing import Callable, Iterable

from backends.sim import SimBackend
from tests.broken_backends import factory_for
from dst.backend import BackendConfig
from dst.validate import check_batch, check_id

# (location, namespace) -> {collation key: the id the row is stored under}.
_NAMES: dict[tuple, dict[str, str]] = {}


class Collating(SimBackend):
    """Rows are found by ``key(id)``: ids with the same key are one row."""
    filters = False   # a store of the first protocol: no attributes or filters

    key: Callable[[str], str] = staticmethod(lambda s: s)

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        if config.fresh or self._key not in _NAMES:
            _NAMES[self._key] = {}
        names = _NAMES[self._key]
        names.clear()
        for stored in self._data:     # a reopened store: the same rows, the same keys
            names.setdefault(self.key(stored), stored)
        self._names = names

    def _row(self, id_: str) -> str:
        """The id of the row ``id_`` collates to (``id_`` itself if none)."""
        return self._names.get(self.key(id_), id_)

    def store(self, id, vector):
        check_id(id)
        row = self._row(id)
        super().store(row, vector)
        self._names[self.key(id)] = row

    def store_batch(self, items: Iterable):
        checked = check_batch(items, self.dim)
        rows: dict[str, str] = {}      # key -> row, this batch's new rows included
        merged: dict[str, object] = {}
        for id_, v in checked:
            row = rows.setdefault(self.key(id_), self._row(id_))
            merged[row] = v
        super().store_batch(list(merged.items()))
        self._names.update(rows)

    def delete(self, id):
        check_id(id)
        row = self._row(id)
        existed = super().delete(row)
        if existed:
            self._names.pop(self.key(id), None)
        return existed

    def get(self, id):
        check_id(id)
        return super().get(self._row(id))

    def exists(self, id):
        check_id(id)
        return super().exists(self._row(id))


class CaseInsensitive(Collating):
    """A case-insensitive collation: 'Key' and 'key' are one row."""

    key = staticmethod(str.casefold)


class PadSpace(Collating):
    """A PAD SPACE collation: 'key' and 'key ' are one row."""

    key = staticmethod(lambda s: s.rstrip(" "))


class NfcNormalizing(Collating):
    """Ids compared after NFC normalization: 'caf\\u00e9' (NFC) and
    'cafe\\u0301' (NFD) are one row."""

    key = staticmethod(lambda s: unicodedata.normalize("NFC", s))


class NfkcNormalizing(Collating):
    """Ids compared after NFKC normalization: full-width 'ｋｅｙ' is 'key'."""

    key = staticmethod(lambda s: unicodedata.normalize("NFKC", s))


class IgnoresZeroWidth(Collating):
    """Zero-width characters ignored in comparisons: 'k\\u200bey' is 'key'."""

    key = staticmethod(lambda s: s.translate({0x200B: None, 0x200C: None, 0x200D: None, 0xFEFF: None}))


class CappedSearch(SimBackend):
    """search answers at most ``cap`` hits, whatever the limit."""
    filters = False   # a store of the first protocol: no attributes or filters

    cap = 1024

    def search(self, query, limit):
        hits = super().search(query, limit)
        return hits[: self.cap]


class CappedSearch1024(CappedSearch):
    cap = 1024


class CappedSearch100(CappedSearch):
    cap = 100


COLLATIONS = {
    "case_insensitive": CaseInsensitive,
    "pad_space": PadSpace,
    "nfc_normalizing": NfcNormalizing,
    "nfkc_normalizing": NfkcNormalizing,
    "ignores_zero_width": IgnoresZeroWidth,
}
CAPS = {
    "capped_search_1024": CappedSearch1024,
    "capped_search_100": CappedSearch100,
}
BROKEN_IDS = {**COLLATIONS, **CAPS}


for _name, _cls in BROKEN_IDS.items():
    globals()[_name] = factory_for(_cls)
