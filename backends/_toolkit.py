"""What every adapter shares, so that each adapter file holds only what is
specific to its store.

* ``Options`` / ``Option``: the ``--opt`` keys an adapter takes, each with
  a type, a default and its allowed values. ``parse`` refuses an unknown
  key (a setup error naming it and the known ones, ``check_options``) and
  a value of the wrong type (one sentence naming the key), before anything
  is opened.
* ``ValidatingBackend``: a base class whose protocol methods check their
  input (id, vector, batch, limit; ``dst.validate``'s rules, the oracle's)
  and only then call the adapter's ``raw_*`` methods. Many stores accept
  what DESIGN calls invalid (zero vectors, NaN, repeated ids in a batch),
  so the check must come first; with this base it cannot be forgotten.
* Ownership: a store's namespace carries the mark ``OWNER_KEY = OWNER``
  (schema metadata, a row, a collection property) or, for a store that
  lives in a directory, an ``OWNER_FILE`` in it. ``require_owned`` refuses
  one without the mark (``NotOurs``): vector-dst never writes, empties or
  drops what it did not create.
* ``classify``: a context manager that lets ``InvalidInput`` and
  ``BackendError`` through and turns any other exception (a driver's) into
  ``BackendError``, or ``NotApplied`` when the adapter can tell the call
  had no effect. ``describe`` is the one-line text of an exception.
* ``check_namespace`` and ``store_name``: a namespace checked against a
  store's naming rules, or mapped onto them (deterministically, without
  collisions between different namespaces).

Users writing their own backend may use this module too; what is public is
what has no leading underscore.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from dst.backend import SearchHit, check_options
from dst.errors import BackendError, InvalidInput, NotApplied, UsageError
from dst.validate import (ID_MAX_CHARS, check_attrs, check_batch_attrs, check_batch_matrix, check_id,
                          check_limit, check_query, check_vector, check_where)

__all__ = [
    "Option", "Options", "ValidatingBackend", "check_dim", "OWNER", "OWNER_KEY", "OWNER_FILE",
    "NotOurs", "owner_mark", "is_owner_mark", "require_owned", "mark_dir", "dir_owned",
    "classify", "describe", "check_namespace", "store_name",
]


# -- options ----------------------------------------------------------------------

_UNSET = object()
_BOOLS = {"true": True, "false": False}


@dataclass(frozen=True)
class Option:
    """One ``--opt`` key.

    ``kind``: ``bool`` (``true``/``false`` in any case, a bool, or 0/1),
    ``int`` (an int or its decimal text; ``lo``/``hi`` bound it), ``float``
    (likewise), or ``str``. ``choices`` (for ``str``) lists the allowed
    values; ``fold`` (``"lower"``/``"upper"``) normalizes the case first.
    ``default`` is what ``parse`` gives when the key is absent; ``None``
    means "not set" and is never type-checked.
    """

    name: str
    kind: type = str
    default: Any = None
    choices: tuple[str, ...] | None = None
    lo: float | None = None
    hi: float | None = None
    fold: str | None = None

    def parse(self, value: Any) -> tuple[Any, str | None]:
        """(the value, None) or (None, what it must be)."""
        if self.kind is bool:
            v = _BOOLS.get(value.lower(), value) if isinstance(value, str) else value
            if isinstance(v, bool):
                return v, None
            if type(v) is int and v in (0, 1):
                return bool(v), None
            return None, "true or false"
        if self.kind in (int, float):
            return self._number(value)
        v = value if isinstance(value, str) else str(value)
        if self.fold in ("lower", "upper"):
            v = v.lower() if self.fold == "lower" else v.upper()
        if self.choices is not None and v not in self.choices:
            return None, _one_of(self.choices)
        return v, None

    def _number(self, value: Any) -> tuple[Any, str | None]:
        integral = self.kind is int
        v = value
        if isinstance(v, str):
            try:
                v = int(v) if integral else float(v)
            except ValueError:
                v = value
        ok = not isinstance(v, bool) and (isinstance(v, int) if integral else isinstance(v, (int, float)))
        if ok and not integral:
            v = float(v)
            ok = np.isfinite(v)
        if ok and ((self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi)):
            ok = False
        if ok:
            return v, None
        noun = "an integer" if integral else "a number"
        if self.lo is not None and self.hi is not None:
            return None, f"{noun} from {_num(self.lo)} to {_num(self.hi)}"
        if self.lo is not None:
            return None, f"{noun} of at least {_num(self.lo)}"
        if self.hi is not None:
            return None, f"{noun} of at most {_num(self.hi)}"
        return None, noun


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _one_of(choices: tuple[str, ...]) -> str:
    if len(choices) <= 3:
        return " or ".join([", ".join(choices[:-1]), choices[-1]]) if len(choices) > 1 else choices[0]
    return "one of " + ", ".join(choices)


class Options:
    """The options of one backend. ``prefix`` starts every value error
    (default ``"NAME backend:"``); ``error`` is its class (default
    ``UsageError``: a setup error, exit 2). An unknown key is always a
    ``UsageError`` (``check_options``)."""

    def __init__(self, backend: str, *options: Option, prefix: str | None = None,
                 error: type[Exception] = UsageError):
        self.backend = backend
        self.specs = {o.name: o for o in options}
        if len(self.specs) != len(options):
            raise ValueError(f"{backend}: an option is declared twice")
        self.prefix = f"{backend} backend:" if prefix is None else prefix
        self.error = error

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: o.default for k, o in self.specs.items()}

    def parse(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared key, parsed (absent ones at their default)."""
        check_options(self.backend, raw, self.specs)
        out: dict[str, Any] = {}
        for key, spec in self.specs.items():
            value = raw.get(key, _UNSET)
            if value is _UNSET or value is None:
                out[key] = spec.default
                continue
            v, want = spec.parse(value)
            if want is not None:
                raise self.error(f"{self.prefix} {key} must be {want}, got {value!r}")
            out[key] = v
        return out

    def fail(self, message: str) -> Exception:
        """An option error of this backend's class and prefix (for checks
        that involve several keys): ``raise opts.fail("...")``."""
        return self.error(f"{self.prefix} {message}")


# -- validation ---------------------------------------------------------------------

def check_dim(dim: Any, max_dim: int | None = None, why: str = "") -> int:
    """A backend's ``dim``, or ``BackendError``: an integer of at least 1
    (and at most ``max_dim``, the store's limit, ``why`` naming it)."""
    integral = not isinstance(dim, bool) and isinstance(dim, (int, np.integer))
    if max_dim is None:
        if not integral or dim < 1:
            raise BackendError(f"dim must be at least 1, got {dim!r}")
        return int(dim)
    if not integral or not 1 <= dim <= max_dim:
        note = f" ({why})" if why else ""
        raise BackendError(f"dim must be an integer from 1 to {max_dim}{note}, got {dim!r}")
    return int(dim)


_SURROGATE = re.compile("[\ud800-\udfff]")
_FLOAT32 = np.dtype(np.float32)


def plain_pairs(items: list[Any], dim: int, metric: str = "cosine") -> tuple[list[str], np.ndarray] | None:
    """A batch of plain ``(id, vector)`` pairs checked in bulk, a few
    passes in C instead of a few per item: a non-empty list of 2-tuples (or
    2-lists), every id a ``str`` and every vector an ``ndarray``, that
    ``np.array`` makes into one float32 ``(n, dim)`` matrix (numpy promotes
    to float32 only from types float32 holds exactly, so the values are
    those the per-item check converts to), and valid by ``dst.validate``'s
    rules (ids distinct, 1 to ID_MAX_CHARS characters, no NUL, no lone
    surrogate; every component finite; no zero row under cosine). Returns
    (ids, a fresh matrix), or None for anything else, valid or not: the
    caller then takes ``check_batch_attrs``, which accepts everything this
    accepts, and gives the sentence naming the first bad item."""
    if not items or not set(map(type, items)) <= {tuple, list} or set(map(len, items)) != {2}:
        return None
    ids = [i for i, _ in items]
    vecs = [v for _, v in items]
    if set(map(type, ids)) != {str} or set(map(type, vecs)) != {np.ndarray}:
        return None
    lengths = list(map(len, ids))
    joined = "".join(ids)
    if (min(lengths) < 1 or max(lengths) > ID_MAX_CHARS or "\x00" in joined
            or not (joined.isascii() or _SURROGATE.search(joined) is None)
            or len(set(ids)) != len(ids)):
        return None
    try:
        m = np.array(vecs)
    except (TypeError, ValueError):     # ragged shapes
        return None
    if m.dtype != _FLOAT32 or m.shape != (len(ids), dim):
        return None
    # One pass for both rules: each row's sum of squares is finite when its
    # components are (squares cannot cancel an inf or nan) and non-zero when
    # the row is not all zero. An overflow (components past ~1e19) or an
    # underflow (all below ~1e-23) proves nothing: then the direct checks.
    sq = np.einsum("ij,ij->i", m, m)
    if not np.isfinite(sq).all() and not np.isfinite(m).all():
        return None
    if metric == "cosine" and not sq.all() and not m.any(axis=1).all():
        return None
    return ids, m


class ValidatingBackend:
    """The protocol's methods, checking input before the store is touched.

    A subclass sets ``name``, ``dim``, ``exact``, ``atomic_batches`` (and
    ``metric``, ``filters`` when it has them) and implements the ``raw_*``
    methods, which get only valid input:

    * ``raw_store(id, vector)``: ``vector`` a fresh float32 array of ``dim``
    * ``raw_store_batch(ids, matrix)``: distinct ids, a float32 ``(n, dim)``
      matrix (``n`` may be 0)
    * ``raw_delete(id) -> bool``, ``raw_get(id) -> ndarray | None``,
      ``raw_exists(id) -> bool``, ``raw_count() -> int``
    * ``raw_search(query, limit, exact) -> list[SearchHit]``: ``exact`` True
      for ``search_exact`` (the probes'; past any ANN index). A store with
      no such path sets ``search_exact = None`` in its class. ``query`` is a
      float32 array of ``dim``, possibly the caller's own (a frozen one,
      ``dst.validate.check_query``): read it, never write into it.

    A subclass with ``filters = True`` takes attributes and filters
    (``dst.filters``); its raw methods get them as one more argument:
    ``raw_store(id, vector, attrs)`` (a dict in name order, ``{}`` for
    none), ``raw_store_batch(ids, matrix, attrs)`` (one dict per id),
    ``raw_search(query, limit, exact, where)`` (the canonical filter, or
    None), and it implements ``raw_get_attrs(id) -> dict | None``. Without
    ``filters``, attributes and filters are refused (``NotApplied``).

    ``metric`` (``cosine`` by default) decides which vectors are valid: a
    zero vector only under cosine. Invalid input raises ``InvalidInput``
    here and no ``raw_*`` is called.
    """

    name = "backend"
    dim = 0
    exact = True
    atomic_batches = True
    metric = "cosine"
    filters = False

    # The checks, for adapter methods beyond the protocol.
    def valid_id(self, id_: Any) -> str:
        return check_id(id_)

    def valid_vector(self, vector: Any) -> np.ndarray:
        return check_vector(vector, self.dim, self.metric)

    def valid_batch(self, items: Iterable[tuple[Any, Any]]) -> tuple[list[str], np.ndarray]:
        return check_batch_matrix(items, self.dim, self.metric)

    def valid_limit(self, limit: Any) -> int:
        return check_limit(limit)

    # The protocol.
    def store(self, id: str, vector: np.ndarray, attrs: Mapping[str, Any] | None = None) -> None:
        check_id(id)
        v = check_vector(vector, self.dim, self.metric)
        a = check_attrs(attrs) if attrs is not None else {}    # what check_attrs(None) gives
        if self.filters:
            self.raw_store(id, v, a)
        else:
            self._no_filters(a)
            self.raw_store(id, v)

    def store_batch(self, items: Iterable[Any]) -> None:
        items = items if type(items) is list else list(items)
        plain = plain_pairs(items, self.dim, self.metric)
        if plain is not None:
            (ids, matrix), attrs = plain, None
        else:
            ids, matrix, attrs = check_batch_attrs(items, self.dim, self.metric)
        if self.filters:
            self.raw_store_batch(ids, matrix, attrs if attrs is not None else [{} for _ in ids])
        else:
            self._no_filters(attrs)
            self.raw_store_batch(ids, matrix)

    def delete(self, id: str) -> bool:
        return self.raw_delete(check_id(id))

    def get(self, id: str) -> np.ndarray | None:
        return self.raw_get(check_id(id))

    def get_attrs(self, id: str) -> dict[str, Any] | None:
        check_id(id)
        if not self.filters:
            self._no_filters(True)
        return self.raw_get_attrs(id)

    def exists(self, id: str) -> bool:
        return self.raw_exists(check_id(id))

    def count(self) -> int:
        return self.raw_count()

    def search(self, query: np.ndarray, limit: int, where: Any = None) -> list[SearchHit]:
        return self._search(query, limit, where, False)

    def search_exact(self, query: np.ndarray, limit: int, where: Any = None) -> list[SearchHit]:
        """The probes' search, past any ANN index."""
        return self._search(query, limit, where, True)

    def _search(self, query: Any, limit: Any, where: Any, exact: bool) -> list[SearchHit]:
        q = check_query(query, self.dim, self.metric)
        n = check_limit(limit)
        w = check_where(where) if where is not None else None    # what check_where(None) gives
        if self.filters:
            return self.raw_search(q, n, exact, w)
        self._no_filters(w is not None)
        return self.raw_search(q, n, exact)

    def _no_filters(self, used: Any) -> None:
        if used:
            raise NotApplied(f"the {self.name} backend has no attributes or filters (filters = False)")

    # What a subclass implements.
    def raw_store(self, id: str, vector: np.ndarray, *attrs: dict[str, Any]) -> None:
        raise NotImplementedError

    def raw_store_batch(self, ids: list[str], matrix: np.ndarray, *attrs: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def raw_delete(self, id: str) -> bool:
        raise NotImplementedError

    def raw_get(self, id: str) -> np.ndarray | None:
        raise NotImplementedError

    def raw_get_attrs(self, id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def raw_exists(self, id: str) -> bool:
        raise NotImplementedError

    def raw_count(self) -> int:
        raise NotImplementedError

    def raw_search(self, query: np.ndarray, limit: int, exact: bool, *where: Any) -> list[SearchHit]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# -- ownership ----------------------------------------------------------------------

OWNER_KEY = "dst.owner"
OWNER = "vector-dst"
OWNER_FILE = ".vector-dst-owner"


class NotOurs(BackendError):
    """The namespace exists and vector-dst did not create it: nothing was
    done to it."""

    applied = False


def owner_mark() -> dict[str, str]:
    """The mark to store with a namespace (metadata, properties, a row)."""
    return {OWNER_KEY: OWNER}


def is_owner_mark(meta: Mapping[Any, Any] | None) -> bool:
    """Whether ``meta`` (str or bytes keys and values, as Arrow gives them)
    carries the mark."""
    if not meta:
        return False
    for key in (OWNER_KEY, OWNER_KEY.encode()):
        value = meta.get(key)
        if value is not None:
            return (value.decode("utf-8", "replace") if isinstance(value, bytes) else value) == OWNER
    return False


def require_owned(owned: bool, what: str, hint: str = "refusing to touch it", *,
                  message: str | None = None) -> None:
    """Raise ``NotOurs`` unless ``owned``: ``"{what} was not created by
    vector-dst; {hint}"`` (``what`` names the namespace and where it is),
    or ``message`` when given."""
    if not owned:
        raise NotOurs(message or f"{what} was not created by vector-dst; {hint}")


def mark_dir(path: str | os.PathLike[str], **extra: Any) -> None:
    """Mark a store's directory as vector-dst's (before the store writes
    into it). ``extra`` (JSON values: the dimension, say) goes with it."""
    os.makedirs(path, exist_ok=True)
    body = json.dumps({**owner_mark(), **extra}, sort_keys=True)
    tmp = os.path.join(path, OWNER_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body + "\n")
    os.replace(tmp, os.path.join(path, OWNER_FILE))


def dir_owned(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The mark file's content if ``path`` holds vector-dst's mark, else None."""
    try:
        with open(os.path.join(path, OWNER_FILE), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and is_owner_mark(meta) else None


# -- error classification ---------------------------------------------------------------

def describe(exc: BaseException | None, limit: int = 400) -> str:
    """``Type: message`` on one line, at most ``limit`` characters."""
    if exc is None:
        return "unknown error"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:limit]


@contextmanager
def classify(what: str, *, not_applied: Callable[[Exception], bool] | None = None,
             text: Callable[[Exception], str] = describe,
             after: Callable[[], None] | None = None) -> Iterator[None]:
    """Map what escapes the block onto the protocol's errors.

    ``InvalidInput`` and ``BackendError`` pass through; any other
    ``Exception`` becomes ``BackendError("{what}: {text(exc)}")`` (outcome
    unknown), or ``NotApplied`` when ``not_applied(exc)`` says the call
    certainly had no effect. ``after`` runs first (cleanup after a
    failure, e.g. dropping a broken connection). The driver's exception is
    not chained: its traceback is not the user's concern.
    """
    try:
        yield
    except (InvalidInput, BackendError):
        raise
    except Exception as exc:  # noqa: BLE001 - DESIGN: no driver exception escapes
        cls = NotApplied if not_applied is not None and not_applied(exc) else BackendError
        err = cls(f"{what}: {text(exc)}")
        if after is not None:
            after()
        raise err from None


# -- namespaces -------------------------------------------------------------------------

def check_namespace(ns: Any, *, max_bytes: int | None = None, too_long: str | None = None,
                    reserved: Mapping[str, str] | None = None) -> str:
    """``ns`` if it is a non-empty str without NUL, at most ``max_bytes``
    in UTF-8 (``too_long`` names the limit in the error) and not a key of
    ``reserved`` (name -> what vector-dst uses it for); else ``BackendError``."""
    if not isinstance(ns, str) or not ns or "\x00" in ns:
        raise BackendError(f"namespace must be a non-empty string without NUL, got {ns!r}")
    try:
        size = len(ns.encode("utf-8"))
    except UnicodeEncodeError:
        raise BackendError(f"namespace {ns!r} is not valid Unicode text (a lone surrogate)") from None
    if max_bytes is not None and size > max_bytes:
        raise BackendError(f"namespace {ns!r} is longer than {too_long or f'{max_bytes} bytes'}")
    if reserved and ns in reserved:
        raise BackendError(f"namespace {ns!r} is the name of {reserved[ns]}")
    return ns


def store_name(ns: str, *, max_len: int = 63, allowed: str = "A-Za-z0-9_",
               first: str = "A-Za-z_", min_len: int = 1) -> str:
    """``ns`` as a name the store accepts: itself when it already obeys
    the rules (only ``allowed`` characters, a ``first`` one first, length
    ``min_len`` to ``max_len``); otherwise the illegal characters replaced
    by ``_``, cut, and a hash of the whole ``ns`` appended, so two
    namespaces never share a name. ``allowed``/``first`` are regex
    character-class bodies."""
    legal = re.compile(f"[{first}][{allowed}]*\\Z")
    if min_len <= len(ns) <= max_len and legal.match(ns):
        return ns
    digest = hashlib.blake2b(ns.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
    body = re.sub(f"[^{allowed}]", "_", ns)
    if not body or not re.match(f"[{first}]", body):
        body = "n" + body
    keep = max_len - len(digest) - 1
    if keep < 1:
        raise ValueError(f"max_len {max_len} leaves no room for a name")
    name = f"{body[:keep]}_{digest}"
    if re.search(f"[^{allowed}]", name) or not re.match(f"[{first}]", name):
        raise ValueError(f"cannot form a name from [{allowed}] starting with [{first}]")
    return name
