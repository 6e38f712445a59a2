"""The sim backend: an in-memory, exact, deterministic vector store.

It is the reference implementation of DESIGN's semantics: exact scores in
float64 under every metric (cosine, l2, dot: ``BackendConfig.metric``),
equal scores ordered by id, attributes and the portable filter of
``dst.filters``, validation before any change. Writes
apply synchronously, so what a call acknowledged is exactly what it did.

Crashes are modelled with a process-wide registry keyed by
``(location, namespace)``: a handle dropped without ``close()`` and
reopened with ``fresh=False`` finds exactly the acknowledged state. In an
isolation child (``--isolate process``) the process itself can be killed,
so the store also keeps a journal on disk (``Journal``): each write is one
record, appended with one ``write`` before the call returns (an atomic
batch is one record, a non-atomic one a record per item), and a reopen in
a new process replays it (a torn last record, never acknowledged, is
ignored).

Options (``--opt KEY=VALUE``):

==============  ==============================================================
atomic_batches  ``true`` (default); ``false``: the variant whose batches are
                not atomic, as many real stores' are: it says so, each item
                is applied on its own (threads may see half a batch), and the
                harness cuts its batches for real (a partial write applies a
                strict subset) and checks each item as its own store
==============  ==============================================================

Any other key is refused (a setup error naming it). ``search_exact`` is
``search``: the store has no index to bypass.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import os
import tempfile
import threading
from typing import Iterable

import numpy as np

from backends._toolkit import Option, Options, ValidatingBackend, check_dim
from dst.backend import BackendConfig, SearchHit, metric_or_default
from dst.errors import BackendError
from dst.filters import matcher
from dst.isolate import in_child
from dst.validate import frozen

class _Store:
    """One namespace's durable state, shared by every handle opened on it.

    The lock makes each call atomic when several handles are used from
    threads (threads mode); ``version`` tells handles their search matrix
    is out of date after another handle wrote.
    """

    __slots__ = ("data", "attrs", "version", "lock", "matrix", "dirty", "noted", "journal")

    def __init__(self) -> None:
        self.data: dict[str, np.ndarray] = {}
        self.attrs: dict[str, dict] = {}      # only ids with attributes
        self.version = 0
        self.lock = threading.RLock()
        self.matrix: _Matrix | None = None    # the search rows (None: build them anew)
        # Ids written since the matrix was brought up to date, and how many
        # version bumps they account for: when every bump is accounted for,
        # the matrix is patched row by row instead of rebuilt (a 16k-row
        # store stays cheap to search between single writes).
        self.dirty: set[str] = set()
        self.noted = 0
        self.journal: Journal | None = None

    def touch(self, ids: Iterable[str]) -> None:
        """Record a write of ``ids`` (call with the lock held)."""
        self.dirty.update(ids)
        self.version += 1
        self.noted += 1


class _Matrix:
    """The search rows of a store at ``version``: ``buf[:n]`` holds the
    rows of ``ids`` (sorted) in that order, float64 (unit rows under
    cosine); rows past ``n`` are spare room for inserts. Patched in place
    under the store's lock, so what ``_matrix`` returns is valid only while
    the lock is held."""

    __slots__ = ("version", "ids", "buf", "n")

    def __init__(self, version: int, ids: list[str], buf: np.ndarray):
        self.version = version
        self.ids = ids
        self.buf = buf
        self.n = len(ids)


# (location, namespace) -> its store. Only this module writes it.
_REGISTRY: dict[tuple[str, str], _Store] = {}


OPTIONS = Options("sim", Option("atomic_batches", bool, True))
OPTION_DEFAULTS = OPTIONS.defaults


class SimBackend(ValidatingBackend):
    name = "sim"
    exact = True
    atomic_batches = True
    filters = True

    def __init__(self, config: BackendConfig):
        self.dim = check_dim(config.dim)
        self.metric = metric_or_default(getattr(config, "metric", "cosine"))
        self.atomic_batches = OPTIONS.parse(config.options)["atomic_batches"]
        self._key = (config.location or "sim-default", config.namespace)
        if config.fresh or self._key not in _REGISTRY:
            # Every namespace in the registry was made by this module, so a
            # fresh open may reset it.
            st = _REGISTRY[self._key] = _Store()
            if in_child():
                st.journal = Journal(self._key, fresh=config.fresh)
                st.journal.replay(st)
        self._store = _REGISTRY[self._key]
        self._closed = False
        # Vector bytes -> its search row (_row): the harness stores a few
        # pool vectors again and again.
        self._row_memo: dict[bytes, np.ndarray] = {}
        self._hit_memo: dict[tuple[str, float], SearchHit] = {}
        self._query_memo: dict[bytes, np.ndarray] = {}
        self._frozen_queries: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def _data(self) -> dict[str, np.ndarray]:
        return self._store.data

    # -- writes (input already checked by ValidatingBackend) ---------------
    def raw_store(self, id: str, vector: np.ndarray, attrs: dict | None = None) -> None:
        st = self._live()
        with st.lock:
            if st.journal is not None:
                _log(st, [(id, vector, attrs)])
            # _put and touch, written out (every store's path)
            st.data[id] = vector
            if attrs:
                st.attrs[id] = dict(attrs)
            else:
                st.attrs.pop(id, None)
            st.dirty.add(id)
            st.version += 1
            st.noted += 1

    def raw_store_batch(self, ids: list[str], matrix: np.ndarray, attrs: list[dict] | None = None) -> None:
        st = self._live()
        rows = attrs if attrs is not None else [None] * len(ids)
        if not self.atomic_batches:
            for id_, v, a in zip(ids, matrix, rows):   # one item at a time: no promise for the whole
                with st.lock:
                    _log(st, [(id_, v, a)])
                    _put(st, id_, v, a)
                    st.touch((id_,))
            return
        with st.lock:
            if st.journal is not None:
                _log(st, list(zip(ids, matrix, rows)))
            # _put and touch, written out (every batch's path)
            data, st_attrs = st.data, st.attrs
            for id_, v, a in zip(ids, matrix, rows):
                data[id_] = v
                if a:
                    st_attrs[id_] = dict(a)
                else:
                    st_attrs.pop(id_, None)
            st.dirty.update(ids)
            st.version += 1
            st.noted += 1

    def raw_delete(self, id: str) -> bool:
        st = self._live()
        with st.lock:
            if st.journal is not None and id in st.data:
                st.journal.append({"d": id})
            existed = st.data.pop(id, None) is not None
            st.attrs.pop(id, None)
            if existed:
                st.touch((id,))
        return existed

    # -- reads ----------------------------------------------------------
    def raw_get(self, id: str) -> np.ndarray | None:
        if self._closed:
            self._live()        # raises
        v = self._store.data.get(id)
        return None if v is None else v.copy()

    def raw_get_attrs(self, id: str) -> dict | None:
        st = self._live()
        with st.lock:
            if id not in st.data:
                return None
            return dict(st.attrs.get(id) or {})

    def raw_exists(self, id: str) -> bool:
        if self._closed:
            self._live()        # raises
        return id in self._store.data

    def raw_count(self) -> int:
        return len(self._live().data)

    def raw_search(self, query: np.ndarray, limit: int, exact: bool, where=None) -> list[SearchHit]:
        """Brute force either way: the store has no index to bypass."""
        st = self._live()
        with st.lock:      # the matrix is patched in place: used under the lock
            ids, rows = self._matrix()
            if where is not None and ids:
                test = matcher(where)      # the filter's tree walked once, not once per row
                attrs = st.attrs
                keep = [n for n, i in enumerate(ids) if test(attrs.get(i))]
                ids = [ids[n] for n in keep]
                rows = rows[keep]
            if not ids:
                return []
            q = self._query(query)
            if self.metric == "l2":
                d = rows - q
                scores = -np.sqrt(np.einsum("ij,ij->i", d, d))
            else:
                scores = rows @ q
            if len(ids) <= SMALL_ROWS:
                # Python's sort is stable under reverse=True: descending scores,
                # equal ones in row (so id) order, as numpy's stable argsort of
                # the negated scores gives, without its calls on a small store.
                vals = scores.tolist()
                order = sorted(range(len(vals)), key=vals.__getitem__, reverse=True)
                del order[limit:]
                pairs: Iterable = zip(order, map(vals.__getitem__, order))
            else:
                # Stable sort on descending score: rows are in id order, so equal
                # scores come out ordered by id.
                order = (-scores).argsort(kind="stable")[:limit]
                pairs = zip(order.tolist(), scores[order].tolist())
            # A hit is immutable and the same (id, score) comes back search
            # after search: made once. Zero scores are made anew (0.0 and -0.0
            # are equal keys but different answers).
            memo = self._hit_memo
            if len(memo) > HIT_MEMO_MAX:
                memo.clear()
            out = []
            for i, v in pairs:
                hid = ids[i]
                h = memo.get((hid, v)) if v != 0.0 else None
                if h is None:
                    h = SearchHit(hid, v)
                    if v != 0.0:
                        memo[(hid, v)] = h
                out.append(h)
            return out

    def _query(self, query: np.ndarray) -> np.ndarray:
        """The query as the scores take it (float64; a unit vector under
        cosine), computed once per distinct query vector: the harness
        searches with a few pool vectors again and again."""
        if frozen(query):
            # Unchanging (the history's table vectors): remembered by
            # identity, no bytes to hash. The entry holds the array, so its
            # id stays its own while remembered.
            hit = self._frozen_queries.get(id(query))
            if hit is not None and hit[0] is query:
                return hit[1]
            if len(self._frozen_queries) >= ROW_MEMO_MAX:
                self._frozen_queries.clear()
            q = self._query_row(query)
            self._frozen_queries[id(query)] = (query, q)
            return q
        key = query.tobytes()
        q = self._query_memo.get(key)
        if q is None:
            if len(self._query_memo) >= ROW_MEMO_MAX:
                self._query_memo.clear()
            q = self._query_memo[key] = self._query_row(query)
        return q

    def _query_row(self, query: np.ndarray) -> np.ndarray:
        q = query.astype(np.float64)
        if self.metric == "cosine":
            q = q / np.sqrt(q @ q)
        return q

    def search_exact(self, query: np.ndarray, limit: int, where=None) -> list[SearchHit]:
        """The probes' exhaustive search: ``search`` itself (a subclass's
        ``search`` answers the probes too)."""
        if where is None:       # a subclass's search may predate filters
            return self.search(query, limit)
        return self.search(query, limit, where=where)

    def close(self) -> None:
        self._closed = True

    def drop(self) -> None:
        """Forget this namespace (the harness created it)."""
        st = _REGISTRY.pop(self._key, None)
        if st is not None and st.journal is not None:
            st.journal.remove()
        self._closed = True

    # -- internals --------------------------------------------------------
    def _live(self) -> _Store:
        if self._closed:
            raise BackendError("sim backend handle is closed")
        return self._store

    def _matrix(self) -> tuple[list[str], np.ndarray]:
        """The live ids (sorted) and their search rows, brought up to date:
        patched in place after a few writes, rebuilt otherwise. Valid only
        while the store's lock is held (the next patch changes them)."""
        st = self._live()
        with st.lock:
            mx = st.matrix
            if mx is None or mx.version != st.version:
                if (mx is not None and st.version - mx.version == st.noted
                        and len(st.dirty) <= PATCH_ROWS_MAX and mx.buf.shape[1] == self.dim):
                    _patch(mx, st.data, st.dirty, self._row)
                else:
                    ids = sorted(st.data)
                    if ids:
                        m = self._rows(np.stack([st.data[i] for i in ids]))
                    else:
                        m = np.zeros((0, self.dim))
                    mx = st.matrix = _Matrix(st.version, ids, m)
                mx.version = st.version
                st.dirty = set()
                st.noted = 0
            return mx.ids, mx.buf[:mx.n]

    def _rows(self, m: np.ndarray) -> np.ndarray:
        """Search rows: unit vectors under cosine, the vectors otherwise (float64)."""
        return _unit_rows(m) if self.metric == "cosine" else m.astype(np.float64)

    def _row(self, v: np.ndarray) -> np.ndarray:
        """One vector's search row, computed as a one-row ``_rows`` (the
        same bits as in bulk), once per distinct vector."""
        key = v.tobytes()
        row = self._row_memo.get(key)
        if row is None:
            if len(self._row_memo) >= ROW_MEMO_MAX:
                self._row_memo.clear()
            row = self._row_memo[key] = self._rows(v[None, :])[0]
        return row


class Journal:
    """The store's writes on disk, for a process that may be killed.

    One JSON line per record, each appended with a single ``os.write`` of
    the whole line before the call returns: a SIGKILL leaves the page cache
    (and so the file) with whole records and at most one torn last line,
    which was never acknowledged and is ignored on replay. (It models
    surviving a process kill, not a power cut: nothing is fsynced.)
    """

    def __init__(self, key: tuple[str, str], fresh: bool):
        loc, ns = key
        # The location when it is a folder; else the harness's scratch folder
        # for its isolation children (one per harness process).
        folder = loc if os.path.isdir(loc) else os.environ.get("DST_ISOLATE_DIR") or \
            os.path.join(tempfile.gettempdir(), "dst-sim-journal")
        os.makedirs(folder, exist_ok=True)
        name = hashlib.blake2b(f"{loc}|{ns}".encode(), digest_size=10).hexdigest()
        self.path = os.path.join(folder, f"sim-{name}.journal")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self.fd = os.open(self.path, flags, 0o644)

    def append(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        if os.write(self.fd, line) != len(line):
            raise BackendError("sim journal: a short write")

    def replay(self, st: "_Store") -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        for line in data.split(b"\n")[:-1]:     # the part after the last newline is torn
            rec = json.loads(line)
            if "d" in rec:
                st.data.pop(rec["d"], None)
                st.attrs.pop(rec["d"], None)
                continue
            for id_, b64, attrs in rec["s"]:
                _put(st, id_, np.frombuffer(base64.b64decode(b64), dtype="<f4").astype(np.float32), attrs)
        st.touch(sorted(st.data))

    def remove(self) -> None:
        os.close(self.fd)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _log(st: _Store, rows: list) -> None:
    """Journal ``rows`` ((id, vector, attrs)) as one record, before applying them."""
    if st.journal is not None:
        st.journal.append({"s": [[i, base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii"),
                                  dict(a) if a else None] for i, v, a in rows]})


def _put(st: _Store, id_: str, vector: np.ndarray, attrs: dict | None) -> None:
    """Replace a row's vector and attributes together (lock held)."""
    st.data[id_] = vector
    if attrs:
        st.attrs[id_] = dict(attrs)
    else:
        st.attrs.pop(id_, None)


# Above this many rows written since the last search, rebuild instead of patching.
PATCH_ROWS_MAX = 64
# (id, score) -> its SearchHit, up to this many (then it starts over).
HIT_MEMO_MAX = 65536
# Up to this many rows, a search sorts in Python and a patch shifts the rows
# in place for each insert and delete.
SMALL_ROWS = 256
# Distinct vectors whose search row a handle remembers (then it starts over).
ROW_MEMO_MAX = 4096


def _unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows as float64 unit vectors (row by row the same bits as in bulk)."""
    m = m.astype(np.float64)
    m /= np.sqrt(np.einsum("ij,ij->i", m, m))[:, None]
    return m


def _patch(mx: _Matrix, data: dict[str, np.ndarray], dirty: set[str], row) -> None:
    """Bring ``mx`` up to date with the writes of ``dirty`` (``row(v)``: one
    vector's search row), in place: a rewritten row replaced where it is, a
    new or deleted one shifting the rows after it by one. The rows end as a
    rebuild would make them, in id order, bit for bit. On a large matrix
    more than a few inserts and deletes take ``_patched`` (one copy for
    all of them) instead of a shift each."""
    ids, buf, n = mx.ids, mx.buf, mx.n
    changed = sorted(dirty)
    if n > SMALL_ROWS:
        moves = 0
        for id_ in changed:
            pos = bisect.bisect_left(ids, id_)
            moves += (pos < n and ids[pos] == id_) != (id_ in data)
        if moves > 2:
            mx.ids, m = _patched(ids, buf[:n], data, dirty, row)
            mx.buf, mx.n = m, len(mx.ids)
            return
    for id_ in changed:
        v = data.get(id_)
        pos = bisect.bisect_left(ids, id_)
        if pos < n and ids[pos] == id_:
            if v is None:
                del ids[pos]
                buf[pos:n - 1] = buf[pos + 1:n]
                n -= 1
            else:
                buf[pos] = row(v)
        elif v is not None:
            if n == buf.shape[0]:
                grown = np.empty((max(16, 2 * n), buf.shape[1]))
                grown[:n] = buf[:n]
                buf = mx.buf = grown
            buf[pos + 1:n + 1] = buf[pos:n]
            buf[pos] = row(v)
            ids.insert(pos, id_)
            n += 1
    mx.n = n


def _patched(ids: list[str], m: np.ndarray, data: dict[str, np.ndarray],
             dirty: set[str], row) -> tuple[list[str], np.ndarray]:
    """The search matrix after writes of ``dirty``: a new list and array,
    rows in id order, exactly as a rebuild would make them (``row(v)``: one
    vector's row). One delete and one insert for all the rows that went
    and came, not one copy of the matrix per row."""
    changed = sorted(dirty)
    ids = list(ids)
    gone = []
    for id_ in changed:
        if id_ not in data:
            pos = bisect.bisect_left(ids, id_)
            if pos < len(ids) and ids[pos] == id_:
                gone.append(pos)
    if gone:
        for pos in reversed(gone):
            del ids[pos]
        m = np.delete(m, gone, axis=0)
    # New ids, placed against the list without them (np.insert's indices
    # are into the array it is given; equal ones keep their order).
    added = [id_ for id_ in changed if id_ in data]
    at = []
    new_ids = []
    for id_ in added:
        pos = bisect.bisect_left(ids, id_)
        if pos < len(ids) and ids[pos] == id_:
            continue
        at.append(pos)
        new_ids.append(id_)
    if new_ids:
        m = np.insert(m, at, np.array([row(data[i]) for i in new_ids]), axis=0)
        for k, id_ in enumerate(new_ids):      # sorted: each lands after the ones before it
            ids.insert(at[k] + k, id_)
    elif not gone and added:
        m = m.copy()      # rows only replaced: a copy of our own
    fresh = set(new_ids)
    for id_ in added:
        if id_ not in fresh:
            m[bisect.bisect_left(ids, id_)] = row(data[id_])
    return ids, m


def open_backend(config: BackendConfig) -> SimBackend:
    return SimBackend(config)
