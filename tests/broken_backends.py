"""Deliberately broken backends: each one bug the harness must catch.

Every factory here is usable as ``--backend tests.broken_backends:NAME``.
Each class is the correct sim backend with exactly one defect, so a test
that catches it shows the checker catches *that* defect.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from backends.sim import SimBackend
from dst.backend import BackendConfig, SearchHit
from dst.errors import BackendError
from dst.validate import check_batch, check_id, check_limit, check_vector


class LostWrite(SimBackend):
    """Acknowledges every 5th single store without applying it."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._n = 0

    def store(self, id, vector):
        self._n += 1
        if self._n % 5 == 0:
            check_id(id)
            check_vector(vector, self.dim)
            return
        super().store(id, vector)


class StaleGet(SimBackend):
    """get() returns the value an id had before its latest overwrite."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._previous: dict[str, np.ndarray] = {}

    def store(self, id, vector):
        old = self._data.get(id) if isinstance(id, str) else None
        super().store(id, vector)
        if old is not None:
            self._previous[id] = old

    def delete(self, id):
        self._previous.pop(id, None) if isinstance(id, str) else None
        return super().delete(id)

    def get(self, id):
        v = super().get(id)
        if v is not None and id in self._previous:
            return self._previous[id].copy()
        return v


class PhantomAfterDelete(SimBackend):
    """Deleted ids keep coming back in search results."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._ghosts: dict[str, np.ndarray] = {}

    def delete(self, id):
        v = self._data.get(id) if isinstance(id, str) else None
        existed = super().delete(id)
        if existed and v is not None:
            self._ghosts[id] = v
        return existed

    def store(self, id, vector):
        super().store(id, vector)
        self._ghosts.pop(id, None)

    def search(self, query, limit):
        hits = super().search(query, limit)
        if self._ghosts and len(hits) < limit:
            q = check_vector(query, self.dim).astype(np.float64)
            for gid in sorted(self._ghosts):
                if gid not in self._data and len(hits) < limit:
                    g = self._ghosts[gid].astype(np.float64)
                    hits.append(SearchHit(gid, float(q @ g / np.sqrt((q @ q) * (g @ g)))))
            hits.sort(key=lambda h: (-h.score, h.id))
        return hits


class CountDrift(SimBackend):
    """count() also counts deletes of ids that were not there."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._drift = 0

    def delete(self, id):
        existed = super().delete(id)
        if not existed:
            self._drift += 1
        return existed

    def count(self):
        return super().count() - self._drift


class OffByOneTopK(SimBackend):
    """search() returns one hit too few when it should return two or more."""
    filters = False   # a store of the first protocol: no attributes or filters

    def search(self, query, limit):
        hits = super().search(query, limit)
        return hits[:-1] if len(hits) >= 2 else hits


class RescaledScores(SimBackend):
    """Scores rescaled to [0, 1] ((cos + 1) / 2) instead of raw cosine."""
    filters = False   # a store of the first protocol: no attributes or filters

    def search(self, query, limit):
        return [SearchHit(h.id, (h.score + 1.0) / 2.0) for h in super().search(query, limit)]


class LostOnReopen(SimBackend):
    """Reopening after a crash loses the last acknowledged write."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        last = _LAST_WRITE.get(self._key)
        if not config.fresh and last is not None:
            if self._data.pop(last, None) is not None:
                self._store.version += 1
        _LAST_WRITE.pop(self._key, None)

    def store(self, id, vector):
        super().store(id, vector)
        _LAST_WRITE[self._key] = id

    def store_batch(self, items):
        items = list(items)
        super().store_batch(items)
        if items:
            _LAST_WRITE[self._key] = items[-1][0]


_LAST_WRITE: dict[tuple[str, str], str] = {}


class DuplicateOnUpsert(SimBackend):
    """An upsert of an existing id adds a second row instead of replacing."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._dups: dict[str, np.ndarray] = {}

    def store(self, id, vector):
        if isinstance(id, str) and id in self._data:
            check_vector(vector, self.dim)
            self._dups[id] = np.array(vector, dtype=np.float32)
            return
        super().store(id, vector)

    def delete(self, id):
        existed = super().delete(id)
        if isinstance(id, str):
            self._dups.pop(id, None)
        return existed

    def count(self):
        return super().count() + len(self._dups)

    def search(self, query, limit):
        hits = super().search(query, limit + len(self._dups))
        q = check_vector(query, self.dim).astype(np.float64)
        for did in sorted(self._dups):
            g = self._dups[did].astype(np.float64)
            hits.append(SearchHit(did, float(q @ g / np.sqrt((q @ q) * (g @ g)))))
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits[:limit]


class NonAtomicBatch(SimBackend):
    """Claims atomic batches, but every 3rd batch of 2+ fails half-way."""
    filters = False   # a store of the first protocol: no attributes or filters

    atomic_batches = True

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._n = 0

    def store_batch(self, items: Iterable):
        items = check_batch(items, self.dim)
        if len(items) >= 2:
            self._n += 1
            if self._n % 3 == 0:
                half = items[: len(items) // 2]
                super().store_batch(half)
                raise BackendError("connection lost during batch")
        super().store_batch(items)


class AcceptsZeroVector(SimBackend):
    """Stores a zero vector instead of refusing it."""
    filters = False   # a store of the first protocol: no attributes or filters

    def store(self, id, vector):
        arr = np.asarray(vector, dtype=np.float32)
        if arr.shape == (self.dim,) and not np.any(arr):
            check_id(id)
            st = self._live()
            st.data[id] = arr.copy()
            st.version += 1
            return
        super().store(id, vector)

    def _matrix(self):
        with np.errstate(invalid="ignore", divide="ignore"):  # the zero row it let in
            ids, m = super()._matrix()
        return ids, np.nan_to_num(m)


class ServerCrashLosesWrites(SimBackend):
    """Offers a crash-server nemesis after which its last write is gone
    (an fsync that never happened)."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._last: str | None = None

    def store(self, id, vector):
        super().store(id, vector)
        self._last = id

    def nemeses(self):
        def crash_server():
            st = self._live()
            with st.lock:
                if self._last is not None and st.data.pop(self._last, None) is not None:
                    st.version += 1
            return {"lost": self._last}
        def kill_connection():
            return {"noop": True}
        return {"crash-server": crash_server, "kill-connection": kill_connection}


class EveryReadFails(SimBackend):
    """Every read (get, exists, count, search) raises BackendError: the
    store answers nothing, so nothing it returns can be wrong."""
    filters = False   # a store of the first protocol: no attributes or filters

    def _fail(self, what: str):
        raise BackendError(f"{what}: read path unavailable")

    def get(self, id):
        self._fail("get")

    def exists(self, id):
        self._fail("exists")

    def count(self):
        self._fail("count")

    def search(self, query, limit):
        self._fail("search")


class FlakyOps(SimBackend):
    """Every 40th call (of the kinds below) raises BackendError before doing
    anything: a store with a 2.5% error rate of its own. exists and count
    never fail, so the probes' cross-checks (count = ids that exist) stay
    meaningful and only availability judges the errors."""
    filters = False   # a store of the first protocol: no attributes or filters

    EVERY = 40

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self._calls = 0

    def _tick(self, what: str):
        self._calls += 1
        if self._calls % self.EVERY == 0:
            raise BackendError(f"{what}: transient server error (call {self._calls})")

    def store(self, id, vector):
        self._tick("store")
        super().store(id, vector)

    def store_batch(self, items):
        self._tick("store_batch")
        super().store_batch(items)

    def delete(self, id):
        self._tick("delete")
        return super().delete(id)

    def get(self, id):
        self._tick("get")
        return super().get(id)

    def search(self, query, limit):
        self._tick("search")
        return super().search(query, limit)


class CannotReopen(SimBackend):
    """Opens fresh, but cannot be reopened (``fresh=False``), as after a
    crash: a store whose recovery is broken."""
    filters = False   # a store of the first protocol: no attributes or filters

    def __init__(self, config: BackendConfig):
        if not config.fresh:
            raise BackendError("cannot open the store: its write-ahead log is corrupt")
        super().__init__(config)


class WorstTopK(SimBackend):
    """An 'ANN' index (exact = False) that answers the worst ``limit`` ids,
    best first: every hit live, scored truly and sorted, so only the
    recall gate can catch it."""
    filters = False   # a store of the first protocol: no attributes or filters

    exact = False
    # No exact path: the probes search the index too, so the probes'
    # recall fallback (no linearization known) has something to measure.
    search_exact = None

    def search(self, query, limit):
        check_limit(limit)
        everything = super().search(query, max(1, super().count()))
        return everything[-limit:] if limit < len(everything) else everything


BROKEN = {
    "lost_write": LostWrite,
    "stale_get": StaleGet,
    "phantom_after_delete": PhantomAfterDelete,
    "count_drift": CountDrift,
    "off_by_one_topk": OffByOneTopK,
    "rescaled_scores": RescaledScores,
    "lost_on_reopen": LostOnReopen,
    "duplicate_on_upsert": DuplicateOnUpsert,
    "non_atomic_batch": NonAtomicBatch,
    "accepts_zero_vector": AcceptsZeroVector,
    "every_read_fails": EveryReadFails,
    "cannot_reopen": CannotReopen,
}

# Caught by the availability budget (its own errors are rare, and a
# scenario's backend_error_ppm may allow them), and by the recall gate
# (no single answer is wrong): kept apart from BROKEN, whose members each
# fail a seed of the default scenario.
FLAKY = {"flaky_ops": FlakyOps}
ANN_BROKEN = {"worst_topk": WorstTopK}

# Broken only under a backend nemesis (scenario pg-faults), so kept apart
# from BROKEN, which the default scenario must catch.
NEMESIS_BROKEN = {"server_crash_loses_writes": ServerCrashLosesWrites}


def pg_batch_not_atomic(config: BackendConfig):
    """pgvector claiming atomic batches while it writes a batch as one
    autocommit INSERT per row, and reports a batch that broke off as not
    applied: a connection killed mid-batch leaves the rows before the kill.
    (Imported lazily: the rest of this module needs no PostgreSQL.)"""
    import psycopg
    from psycopg.types.json import Jsonb

    from backends.pgvector import PgvectorBackend
    from dst.errors import NotApplied

    class PgBatchNotAtomic(PgvectorBackend):
        def _store_batch(self, checked, kill):
            conn = self._live_conn()
            try:
                for n, (id_, vec, attrs) in enumerate(checked):   # items are (id, vector, attrs)
                    if kill is not None and n == kill[0]:
                        self._kill_inside(kill[1])
                    conn.execute(self._q_store, (id_, vec, Jsonb(attrs or {})))
            except psycopg.Error as exc:
                self._after_failure(conn)
                raise NotApplied(f"batch failed: {exc}") from None

    b = PgBatchNotAtomic(config)
    b.name = "broken:PgBatchNotAtomic"
    return b


def factory_for(cls):
    """A factory opening ``cls``, named after it (what ``--backend module:name`` resolves)."""
    def open_backend(config: BackendConfig):
        b = cls(config)
        b.name = f"broken:{cls.__name__}"
        return b
    open_backend.__name__ = cls.__name__
    return open_backend


for _name, _cls in {**BROKEN, **NEMESIS_BROKEN, **FLAKY, **ANN_BROKEN}.items():
    globals()[_name] = factory_for(_cls)


# -- filters and metrics (issue 12): each the sim backend with one defect ------
# in how it evaluates a filter, keeps attributes, or scores under a metric.
# Every one is caught by `dst run` on the filters scenario (the metric ones
# under --metric l2 / --metric dot) and shrunk by `dst shrink`.

class _FilteringBroken(SimBackend):
    """Helper: search everything with no filter, then keep the hits ``keep``
    says pass (the hits stay in score order; a broken predicate is the
    defect of each subclass)."""

    def keep(self, where, attrs) -> bool:
        raise NotImplementedError

    def raw_search(self, query, limit, exact, where=None):
        if where is None:
            return super().raw_search(query, limit, exact, None)
        everything = super().raw_search(query, max(1, len(self._store.data)), exact, None)
        attrs = self._store.attrs
        return [h for h in everything if self.keep(where, attrs.get(h.id) or {})][:limit]


class FilterIgnored(SimBackend):
    """Takes a filter and searches as if there were none."""

    def raw_search(self, query, limit, exact, where=None):
        return super().raw_search(query, limit, exact, None)


def _ne_as_eq(node):
    (op, arg), = node.items()
    if op in ("and", "or"):
        return {op: [_ne_as_eq(c) for c in arg]}
    if op == "not":
        return {"not": _ne_as_eq(arg)}
    return {"eq": arg} if op == "ne" else node


class NeAsEq(SimBackend):
    """Evaluates ``ne`` as ``eq`` (a flipped operator table)."""

    def raw_search(self, query, limit, exact, where=None):
        return super().raw_search(query, limit, exact, None if where is None else _ne_as_eq(where))


def _missing_matches(where, attrs) -> bool:
    """dst.filters.matches, except a comparison on an attribute the row
    does not have is true (three-valued logic gone wrong)."""
    from dst.filters import matches
    (op, arg), = where.items()
    if op in ("and", "or"):
        parts = [_missing_matches(c, attrs) for c in arg]
        return all(parts) if op == "and" else any(parts)
    if op == "not":
        return not _missing_matches(arg, attrs)
    if op != "exists" and arg[0] not in attrs:
        return True
    return matches(where, attrs)


class MissingAttrMatches(_FilteringBroken):
    """A comparison on a missing attribute matches (DESIGN: it is false)."""

    def keep(self, where, attrs):
        return _missing_matches(where, attrs)


class L2Squared(SimBackend):
    """Under l2, scores minus the squared distance (the order is right, the
    scores are not)."""

    def raw_search(self, query, limit, exact, where=None):
        hits = super().raw_search(query, limit, exact, where)
        if self.metric != "l2":
            return hits
        return [SearchHit(h.id, -(h.score * h.score)) for h in hits]


class DotSignFlipped(SimBackend):
    """Under dot, takes the inner product for a distance: ranks by and
    answers minus the inner product (the worst rows first)."""

    def raw_search(self, query, limit, exact, where=None):
        if self.metric != "dot":
            return super().raw_search(query, limit, exact, where)
        everything = super().raw_search(query, max(1, len(self._store.data)), exact, where)
        return [SearchHit(h.id, -h.score) for h in reversed(everything)][:limit]


# The spliced-filter store: renders the filter to a SQL-like string by
# pasting values between quotes with no escaping, then parses that string
# back with a small parser and evaluates it. A quote in a value ends the
# literal early: the rest is read as more query (wrong answers) or is a
# syntax error (BackendError on valid input).

def _splice(node) -> str:
    (op, arg), = node.items()
    if op in ("and", "or"):
        if not arg:
            return "TRUE" if op == "and" else "FALSE"
        return "(" + f" {op.upper()} ".join(_splice(c) for c in arg) + ")"
    if op == "not":
        return f"(NOT {_splice(arg)})"
    if op == "exists":
        return f"({arg} IS NOT NULL)"
    name, value = arg
    if op == "in":
        return f"({name} IN (" + ", ".join(_lit_naive(v) for v in value) + "))"
    sym = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
    return f"({name} {sym} {_lit_naive(value)})"


def _lit_naive(v) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    return "'" + v + "'"          # the defect: no escaping


def _tokens(text: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise BackendError("syntax error: unterminated string")
            out.append(("str", text[i + 1:j]))
            i = j + 1
        elif c in "()," :
            out.append((c, c))
            i += 1
        elif text.startswith(("!=", "<=", ">="), i):
            out.append(("op", text[i:i + 2]))
            i += 2
        elif c in "=<>":
            out.append(("op", c))
            i += 1
        elif c == "-" or c.isdigit():
            j = i + 1
            while j < len(text) and text[j].isdigit():
                j += 1
            try:
                out.append(("int", int(text[i:j])))
            except ValueError:
                raise BackendError(f"syntax error near {text[i:i + 10]!r}") from None
            i = j
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            kw = word.upper()
            if kw in ("AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE"):
                out.append(("kw", kw))
            else:
                out.append(("name", word))
            i = j
        else:
            raise BackendError(f"syntax error near {text[i:i + 10]!r}")
    return out


class _Parser:
    """expr := term (OR term)*; term := factor (AND factor)*;
    factor := NOT factor | ( expr ) | TRUE | FALSE | name IS NOT NULL
    | name op literal | name IN ( literal, ... ). Yields a predicate."""

    def __init__(self, tokens):
        self.t = tokens
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else ("end", None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if tok[0] == "end" or (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            raise BackendError(f"syntax error at token {self.i}: {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self):
        p = self.expr()
        if self.peek()[0] != "end":
            raise BackendError(f"syntax error: trailing {self.peek()[1]!r}")
        return p

    def expr(self):
        parts = [self.term()]
        while self.peek() == ("kw", "OR"):
            self.take()
            parts.append(self.term())
        return lambda a: any(p(a) for p in parts)

    def term(self):
        parts = [self.factor()]
        while self.peek() == ("kw", "AND"):
            self.take()
            parts.append(self.factor())
        return lambda a: all(p(a) for p in parts)

    def literal(self):
        kind, v = self.peek()
        if kind in ("str", "int"):
            self.take()
            return v
        if (kind, v) in (("kw", "TRUE"), ("kw", "FALSE")):
            self.take()
            return v == "TRUE"
        raise BackendError(f"syntax error: a literal expected, got {v!r}")

    def factor(self):
        kind, v = self.peek()
        if (kind, v) == ("kw", "NOT"):
            self.take()
            inner = self.factor()
            return lambda a: not inner(a)
        if kind == "(":
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        if (kind, v) in (("kw", "TRUE"), ("kw", "FALSE")):
            self.take()
            return (lambda a: True) if v == "TRUE" else (lambda a: False)
        name = self.take("name")[1]
        kind, v = self.peek()
        if (kind, v) == ("kw", "IS"):
            self.take()
            self.take("kw", "NOT")
            self.take("kw", "NULL")
            return lambda a: name in a
        if (kind, v) == ("kw", "IN"):
            self.take()
            self.take("(")
            vals = [self.literal()]
            while self.peek()[0] == ",":
                self.take()
                vals.append(self.literal())
            self.take(")")
            return lambda a: name in a and any(_same(a[name], x) and a[name] == x for x in vals)
        sym = self.take("op")[1]
        lit = self.literal()
        return lambda a: _cmp(a, name, sym, lit)


def _same(x, y) -> bool:
    return isinstance(x, bool) == isinstance(y, bool) and type(x) is type(y)


def _cmp(a, name, sym, lit) -> bool:
    if name not in a or not _same(a[name], lit):
        return False
    x = a[name]
    if sym in ("<", "<=", ">", ">=") and (isinstance(x, bool) or not isinstance(x, int)):
        return False
    return {"=": x == lit, "!=": x != lit, "<": x < lit if sym == "<" else False,
            "<=": x <= lit if sym == "<=" else False, ">": x > lit if sym == ">" else False,
            ">=": x >= lit if sym == ">=" else False}[sym]


def spliced_predicate(where):
    """The filter as the naive store reads it: spliced to text, parsed back."""
    return _Parser(_tokens(_splice(where))).parse()


class SplicedFilter(_FilteringBroken):
    """Renders the filter to a query string by naive splicing and parses it
    back: a quote in a value breaks it (wrong answers or a syntax error)."""

    def raw_search(self, query, limit, exact, where=None):
        self._pred = None if where is None else spliced_predicate(where)
        return super().raw_search(query, limit, exact, where)

    def keep(self, where, attrs):
        return self._pred(attrs)


class GetAttrsDrops(SimBackend):
    """get_attrs leaves out one attribute (the name sorted last) of a row
    with two or more."""

    def raw_get_attrs(self, id):
        a = super().raw_get_attrs(id)
        if a and len(a) >= 2:
            a.pop(sorted(a)[-1])
        return a


class KeepsOldAttrs(SimBackend):
    """A row stored again without attributes keeps its old ones (a store
    must replace the vector and the attributes together)."""

    def raw_store(self, id, vector, attrs=None):
        old = self._live().attrs.get(id)
        super().raw_store(id, vector, attrs)
        if not attrs and old:
            self._store.attrs[id] = old

    def raw_store_batch(self, ids, matrix, attrs=None):
        st = self._live()
        old = {i: st.attrs[i] for i in ids if i in st.attrs}
        super().raw_store_batch(ids, matrix, attrs)
        rows = attrs if attrs is not None else [None] * len(ids)
        for i, a in zip(ids, rows):
            if not a and i in old:
                st.attrs[i] = old[i]


# Each caught on the filters scenario; METRIC_OF names the metric a
# defect needs (--metric), the rest run with the scenario's (cosine).
FILTER_BROKEN = {
    "filter_ignored": FilterIgnored,
    "ne_as_eq": NeAsEq,
    "missing_attr_matches": MissingAttrMatches,
    "l2_squared": L2Squared,
    "dot_sign_flipped": DotSignFlipped,
    "spliced_filter": SplicedFilter,
    "get_attrs_drops": GetAttrsDrops,
    "keeps_old_attrs": KeepsOldAttrs,
}
METRIC_OF = {"l2_squared": "l2", "dot_sign_flipped": "dot"}

for _name, _cls in FILTER_BROKEN.items():
    globals()[_name] = factory_for(_cls)


class BoolAttrsAsInt(SimBackend):
    """get_attrs answers a bool attribute as the int 1 or 0 (a store keeping
    bools in an integer column): Python calls True == 1, so only a
    type-aware comparison (dst conform's get_attrs) tells them apart."""

    def raw_get_attrs(self, id):
        a = super().raw_get_attrs(id)
        return {k: int(v) if isinstance(v, bool) else v for k, v in a.items()} if a else a


bool_attrs_as_int = factory_for(BoolAttrsAsInt)
