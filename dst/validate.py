"""Input validation shared by the sim backend, the oracle and adapters.

Every backend must raise ``InvalidInput`` for exactly the inputs these
functions reject, *before* touching the store, so the oracle (which uses
the same rules) stays in step with every backend.
"""

from __future__ import annotations

import math
import re
import weakref
from typing import Any, Iterable

import numpy as np

from dst.errors import InvalidInput
from dst.filters import attrs_problem, canonical, norm_attrs

ID_MAX_CHARS = 256  # DESIGN: ids are 1..256 Unicode scalar values


def id_problem(id_: Any) -> str | None:
    """Why ``id_`` is not a valid id, or None if it is."""
    if not isinstance(id_, str):
        return f"id must be a str, got {type(id_).__name__}"
    if not id_:
        return "id is empty"
    if len(id_) > ID_MAX_CHARS:
        return f"id has {len(id_)} characters, more than {ID_MAX_CHARS}"
    if "\x00" in id_:
        return "id contains a NUL character"
    if not id_.isascii():
        m = _SURROGATE.search(id_)
        if m:
            return f"id contains the lone surrogate U+{ord(m.group()):04X}"
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


# Arrays declared never to change (``freeze``): id -> (a weak reference to
# the array, {(dim, metric): its problem}). The history's vector table
# freezes every vector it interns, so a pool vector stored or searched
# again and again is checked once per seed, not once per call.
_FROZEN: dict[int, tuple[weakref.ref, dict[tuple[int, str], str | None]]] = {}


def freeze(arr: np.ndarray) -> None:
    """Declare ``arr`` (read-only, owning its data) unchanging from now on:
    ``vector_problem`` then computes its answer once per (dim, metric).
    The entry goes when the array does."""
    key = id(arr)

    def gone(r: weakref.ref, key: int = key) -> None:
        if _FROZEN.get(key, (None,))[0] is r:
            del _FROZEN[key]

    _FROZEN[key] = (weakref.ref(arr, gone), {})


def vector_problem(vector: Any, dim: int, metric: str = "cosine") -> str | None:
    """Why ``vector`` is not a valid ``dim``-vector, or None if it is. A
    zero vector is invalid only under the cosine metric."""
    known = _FROZEN.get(id(vector))
    if known is not None and known[0]() is vector:
        memo = known[1]
        key = (dim, metric)
        if key not in memo:
            memo[key] = _vector_problem(vector, dim, metric)
        return memo[key]
    return _vector_problem(vector, dim, metric)


def _vector_problem(vector: Any, dim: int, metric: str) -> str | None:
    if type(vector) is np.ndarray and vector.dtype == np.float32:
        arr = vector  # the common case: no conversion
    else:
        try:
            with np.errstate(all="ignore"):
                arr = np.asarray(vector, dtype=np.float32)
        except (TypeError, ValueError):
            return "vector is not an array of numbers"
    if arr.ndim != 1:
        return f"vector must be one-dimensional, got shape {arr.shape}"
    if arr.shape[0] != dim:
        return f"vector has {arr.shape[0]} components, expected {dim}"
    # A float64 sum of float32 values cannot overflow, and any inf or nan
    # makes it non-finite: one pass tells whether every component is finite.
    if not math.isfinite(_SUM(arr, dtype=np.float64)):
        finite = np.isfinite(arr)
        i = int(np.argmin(finite))
        return f"vector component {i} is {float(arr[i])!r}, not finite"
    if metric == "cosine" and not _ANY(arr):
        return "vector has zero norm"
    return None


# The reductions arr.sum() and arr.any() run, called without their Python
# wrappers (numpy's _methods): each vector of a seed is checked once, and
# at a few dimensions the wrapper costs more than the sum.
_SUM = np.add.reduce
_ANY = np.logical_or.reduce


def check_id(id_: Any) -> str:
    if type(id_) is str and id_ in _GOOD_IDS:    # checked before: a run reads and writes few ids
        return id_
    problem = id_problem(id_)
    if problem:
        raise InvalidInput(problem)
    if type(id_) is str:
        if len(_GOOD_IDS) >= _GOOD_IDS_MAX:
            _GOOD_IDS.clear()
        _GOOD_IDS.add(id_)
    return id_


# Valid ids seen by check_id (plain str only: a subclass may compare or hash
# otherwise), up to this many (then it starts over).
_GOOD_IDS: set[str] = set()
_GOOD_IDS_MAX = 16384


def check_vector(vector: Any, dim: int, metric: str = "cosine") -> np.ndarray:
    """Validate and return the vector as a fresh float32 array."""
    known = _FROZEN.get(id(vector))
    if known is not None and known[0]() is vector:
        # vector_problem's memo, read here (every store's and search's path)
        memo = known[1]
        key = (dim, metric)
        problem = memo[key] if key in memo else vector_problem(vector, dim, metric)
    else:
        problem = _vector_problem(vector, dim, metric)
    if problem:
        raise InvalidInput(problem)
    return np.array(vector, dtype=np.float32)


def frozen(arr: Any) -> bool:
    """Whether ``arr`` was declared unchanging (``freeze``): the same bytes
    for as long as it lives, so a reader may remember what it computed
    from it by identity."""
    known = _FROZEN.get(id(arr))
    return known is not None and known[0]() is arr


def check_query(vector: Any, dim: int, metric: str = "cosine") -> np.ndarray:
    """Validate a search query: ``check_vector``'s fresh float32 copy, or
    the vector itself when it is a frozen float32 array (it never changes,
    and a search only reads its query)."""
    known = _FROZEN.get(id(vector))
    if (known is not None and known[0]() is vector and type(vector) is np.ndarray
            and vector.dtype is _F32 and vector.ndim == 1):
        memo = known[1]
        key = (dim, metric)
        problem = memo[key] if key in memo else vector_problem(vector, dim, metric)
        if problem:
            raise InvalidInput(problem)
        return vector
    return check_vector(vector, dim, metric)


_F32 = np.dtype(np.float32)


def limit_problem(limit: Any) -> str | None:
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)):
        return f"limit must be an integer, got {type(limit).__name__}"
    if limit < 1:
        return f"limit must be at least 1, got {int(limit)}"
    return None


def check_limit(limit: Any) -> int:
    if type(limit) is int and limit >= 1:      # the common case (a bool is not an int here)
        return limit
    problem = limit_problem(limit)
    if problem:
        raise InvalidInput(problem)
    return int(limit)


def check_attrs(attrs: Any) -> dict[str, Any]:
    """Validate attributes; return them as a plain dict ({} for None)."""
    problem = attrs_problem(attrs)
    if problem:
        raise InvalidInput(problem)
    return norm_attrs(attrs)


def check_where(where: Any) -> Any:
    """Validate a filter; return its canonical form (None for none). One
    canonical pass: its ValueError is where_problem's sentence."""
    try:
        return canonical(where)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def batch_problem(items: Iterable[Any], dim: int, metric: str = "cosine") -> str | None:
    """Why a batch is invalid: the first bad item, or a repeated id. Items
    are ``(id, vector)`` or ``(id, vector, attrs)``."""
    seen: set[str] = set()
    for n, item in enumerate(items):
        attrs = None
        try:
            if isinstance(item, (list, tuple)) and len(item) == 3:
                id_, vector, attrs = item
            else:
                id_, vector = item
        except (TypeError, ValueError):
            return f"batch item {n} is not an (id, vector) pair or (id, vector, attrs) triple"
        problem = id_problem(id_) or vector_problem(vector, dim, metric) or attrs_problem(attrs)
        if problem:
            return f"batch item {n}: {problem}"
        if id_ in seen:
            return f"batch repeats id {id_!r}"
        seen.add(id_)
    return None


def check_batch_matrix(items: Iterable[tuple[Any, Any]], dim: int,
                       metric: str = "cosine") -> tuple[list[str], np.ndarray]:
    """Validate a batch; return its ids and its vectors as one float32 matrix.

    Vectorized for the common case (float32 arrays of the right shape):
    per-item checks cost more than the write itself at 10,000 items. Any
    problem, and anything unusual, goes through the per-item path, so the
    InvalidInput sentence is always the same.
    """
    items = list(items)
    try:
        ids = [i for i, _ in items]
        vecs = [x for _, x in items]
    except (TypeError, ValueError):
        ids, vecs = [], []
    plain = bool(items) and len(ids) == len(items) and all(
        type(x) is np.ndarray and x.dtype == np.float32 and x.shape == (dim,) for x in vecs)
    if plain:
        m = np.stack(vecs)
        if (_ids_plain(ids) and len(set(ids)) == len(ids)
                and (_known_valid(vecs, dim, metric)
                     or (bool(np.isfinite(m.sum(axis=1, dtype=np.float64)).all())
                         and (metric != "cosine" or bool(m.any(axis=1).all()))))):
            return ids, m
    problem = batch_problem(items, dim, metric)
    if problem:
        raise InvalidInput(problem)
    if not items:
        return [], np.zeros((0, dim), dtype=np.float32)
    return [i for i, _ in items], np.stack([np.asarray(v, dtype=np.float32) for _, v in items])


def _known_valid(vecs: list[np.ndarray], dim: int, metric: str) -> bool:
    """Every vector frozen (``freeze``) and valid: no arithmetic on the
    batch when its vectors were checked before (the history's table)."""
    key = (dim, metric)
    for x in vecs:
        known = _FROZEN.get(id(x))
        if known is None or known[0]() is not x:
            return False
        memo = known[1]
        if key not in memo:
            memo[key] = _vector_problem(x, dim, metric)
        if memo[key] is not None:
            return False
    return True


def _ids_plain(ids: list[Any]) -> bool:
    """All ids valid, checked in bulk where they are plain ASCII strings."""
    if not all(type(i) is str for i in ids):
        return all(id_problem(i) is None for i in ids)
    lengths = list(map(len, ids))
    if min(lengths) < 1 or max(lengths) > ID_MAX_CHARS:
        return False
    joined = "".join(ids)
    if "\x00" in joined:
        return False
    # Only non-ASCII text can hold a lone surrogate.
    return joined.isascii() or _SURROGATE.search(joined) is None


def check_batch(items: Iterable[tuple[Any, Any]], dim: int,
                metric: str = "cosine") -> list[tuple[str, np.ndarray]]:
    """Validate a batch; return (id, float32 vector) pairs (fresh copies)."""
    ids, m = check_batch_matrix(items, dim, metric)
    return list(zip(ids, m))


def check_batch_attrs(items: Iterable[Any], dim: int, metric: str = "cosine"
                      ) -> tuple[list[str], np.ndarray, list[dict[str, Any]] | None]:
    """Validate a batch of ``(id, vector)`` pairs and/or ``(id, vector,
    attrs)`` triples: its ids, its vectors as one float32 matrix, and each
    item's attributes as a plain dict, or None when no item has any."""
    items = list(items)
    if not any(isinstance(it, (list, tuple)) and len(it) == 3 for it in items):
        ids, m = check_batch_matrix(items, dim, metric)
        return ids, m, None
    # Attributes and item shapes first, one pass; ids and vectors then take
    # check_batch_matrix's vectorized path. Any problem goes through the
    # per-item batch_problem, so the sentence names the first bad item.
    shaped = all(isinstance(it, (list, tuple)) and len(it) in (2, 3) for it in items)
    if not shaped or any(attrs_problem(it[2]) for it in items if len(it) == 3):
        raise InvalidInput(batch_problem(items, dim, metric) or "batch is invalid")
    attrs = [norm_attrs(it[2]) if len(it) == 3 else {} for it in items]
    ids, m = check_batch_matrix([(it[0], it[1]) for it in items], dim, metric)
    return ids, m, (attrs if any(attrs) else None)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in float64 of two float32 vectors."""
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    return float(a64 @ b64 / (math.sqrt(a64 @ a64) * math.sqrt(b64 @ b64)))
