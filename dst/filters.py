"""Attributes and the portable filter: what ``filters = True`` backends take.

Attributes (``attrs``) are a dict of at most ``MAX_ATTRS`` keys, each name
matching ``[a-z][a-z0-9_]{0,31}``, each value a ``str`` (at most
``MAX_STR`` characters, no NUL, no lone surrogate; any other content,
quotes and SQL fragments included, is allowed), an ``int`` (64-bit signed)
or a ``bool``. ``None`` and ``{}`` are the same: no attributes. A store
replaces a row's vector and attributes together.

A filter (``where``) is a small tree of plain data, one operator per node:

=========================  ==================================================
``{"eq": [name, value]}``  the attribute is present, of the value's type, equal
``{"ne": [name, value]}``  present, of the value's type, not equal
``{"in": [name, [v...]]}`` present and equal to one of 1..64 values of one type
``{"lt": [name, int]}``    present, an int (never a bool), less than; also
                           ``le``, ``gt``, ``ge``
``{"exists": name}``       present (any type)
``{"and": [f...]}``        all hold (``{"and": []}`` always holds)
``{"or": [f...]}``         one holds (``{"or": []}`` never holds)
``{"not": f}``             ``f`` does not hold
=========================  ==================================================

Missing attributes: every comparison (``eq ne in lt le gt ge``) on an
attribute a row lacks, or holds with another type, is false, and ``not``
of it is true. That is two-valued logic, not SQL's three-valued NULL logic
(where ``NOT (a = 'x')`` is NULL, so false, for a row without ``a``): an
adapter over SQL must produce this answer (``NOT COALESCE(..., FALSE)``).

``canonical(where)`` validates a filter and returns its one canonical form
(``in`` values sorted and deduplicated); ``dumps`` is its canonical JSON
text, the form used in histories, seeds and reports; ``matches`` evaluates
it on a row's attributes (``matcher``: the same, compiled once for many
rows); ``show`` renders it for a person.
"""

from __future__ import annotations

import json
import operator
import re
from typing import Any, Callable, Iterator, Mapping

MAX_ATTRS = 8
MAX_STR = 256
MAX_IN = 64
MAX_DEPTH = 8
MAX_NODES = 64
INT_MIN = -(2 ** 63)
INT_MAX = 2 ** 63 - 1

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")

COMPARE = ("eq", "ne", "in")
ORDER = ("lt", "le", "gt", "ge")
LOGIC = ("and", "or", "not")
OPS = COMPARE + ORDER + ("exists",) + LOGIC


# -- attributes --------------------------------------------------------------------------

def value_problem(value: Any, where: str = "value") -> str | None:
    """Why ``value`` is not an attribute value, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return f"{where} {value} is outside the 64-bit integer range"
        return None
    if isinstance(value, str):
        if len(value) > MAX_STR:
            return f"{where} has {len(value)} characters, more than {MAX_STR}"
        if "\x00" in value:
            return f"{where} contains a NUL character"
        if not value.isascii() and _SURROGATE.search(value):
            return f"{where} contains a lone surrogate"
        return None
    return f"{where} must be a str, int or bool, got {type(value).__name__}"


def name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"attribute name {name!r} is not of the form [a-z][a-z0-9_]{{0,31}}"
    return None


# Attribute names name_problem passed (a bounded memo: names repeat).
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 4096


def attrs_problem(attrs: Any) -> str | None:
    """Why ``attrs`` are not valid attributes (None and {} are), or None."""
    if attrs is None:
        return None
    # type() first: isinstance against typing.Mapping costs a subclass
    # check on every call, and attributes are plain dicts almost always.
    if type(attrs) is not dict and not isinstance(attrs, Mapping):
        return f"attrs must be a dict, got {type(attrs).__name__}"
    if len(attrs) > MAX_ATTRS:
        return f"attrs has {len(attrs)} keys, more than {MAX_ATTRS}"
    # The common case, all valid, needs no order; the sentence names the
    # first bad attribute in name order, so only a problem pays the sort.
    # The same checks as name_problem and value_problem, inline: names
    # repeat, so one that passed is remembered (_GOOD_NAMES).
    for name, value in attrs.items():
        if name not in _GOOD_NAMES:
            if name_problem(name):
                break
            if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
                _GOOD_NAMES.add(name)
        t = type(value)
        if t is bool:
            continue
        if t is int:
            if INT_MIN <= value <= INT_MAX:
                continue
            break
        if t is str:
            if len(value) <= MAX_STR and "\x00" not in value and (value.isascii() or not _SURROGATE.search(value)):
                continue
            break
        if value_problem(value):
            break
    else:
        return None
    for name in sorted(attrs, key=str):
        problem = name_problem(name) or value_problem(attrs[name], f"attribute {name!r}")
        if problem:
            return problem
    return None


def norm_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Valid ``attrs`` as a plain dict in name order ({} for None)."""
    if not attrs:
        return {}
    return dict(sorted(attrs.items()))     # names are distinct: sorted by name alone


def attrs_key(attrs: Mapping[str, Any] | None) -> tuple:
    """A hashable form of valid attributes that tells ``1`` from ``True``."""
    if not attrs:
        return ()
    return tuple([(k, type(attrs[k]).__name__, attrs[k]) for k in sorted(attrs)])


# -- filters -----------------------------------------------------------------------------

def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "str"


def _sort_key(value: Any) -> tuple:
    return (_kind(value), value)


def where_problem(where: Any) -> str | None:
    """Why ``where`` is not a valid filter (None, no filter, is), or None."""
    if where is None:
        return None
    try:
        canonical(where)
    except ValueError as exc:
        return str(exc)
    return None


def canonical(where: Any) -> Any:
    """The canonical form of a valid filter (None stays None); ``ValueError``
    with one sentence for an invalid one."""
    if where is None:
        return None
    count = [0]
    return _canon(where, 0, count)


def _canon(node: Any, depth: int, count: list[int]) -> Any:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ValueError(f"filter has more than {MAX_NODES} nodes")
    if depth >= MAX_DEPTH:
        raise ValueError(f"filter is nested deeper than {MAX_DEPTH}")
    if (type(node) is not dict and not isinstance(node, Mapping)) or len(node) != 1:
        raise ValueError(f"filter node {_short(node)} is not a one-key dict")
    (op, arg), = node.items()
    if op not in OPS:
        raise ValueError(f"filter operator {_short(op)} is unknown (known: {', '.join(OPS)})")
    if op in ("and", "or"):
        if not isinstance(arg, (list, tuple)):
            raise ValueError(f"filter {op!r} takes a list of filters, got {_short(arg)}")
        return {op: [_canon(c, depth + 1, count) for c in arg]}
    if op == "not":
        return {"not": _canon(arg, depth + 1, count)}
    if op == "exists":
        problem = name_problem(arg)
        if problem:
            raise ValueError(f"filter exists: {problem}")
        return {"exists": arg}
    if not isinstance(arg, (list, tuple)) or len(arg) != 2:
        raise ValueError(f"filter {op!r} takes [name, value], got {_short(arg)}")
    name, value = arg
    problem = name_problem(name)
    if problem:
        raise ValueError(f"filter {op}: {problem}")
    if op in ORDER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"filter {op} on {name!r} needs an int, got {_short(value)}")
        problem = value_problem(value, f"filter {op} value")
        if problem:
            raise ValueError(problem)
        return {op: [name, value]}
    if op == "in":
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"filter in on {name!r} needs a non-empty list of values, got {_short(value)}")
        if len(value) > MAX_IN:
            raise ValueError(f"filter in on {name!r} has {len(value)} values, more than {MAX_IN}")
        for v in value:
            problem = value_problem(v, "filter in value")
            if problem:
                raise ValueError(problem)
        kinds = {_kind(v) for v in value}
        if len(kinds) > 1:
            raise ValueError(f"filter in on {name!r} mixes value types ({', '.join(sorted(kinds))})")
        out: list[Any] = []
        for v in sorted(value, key=_sort_key):
            if not out or out[-1] != v:
                out.append(v)
        return {"in": [name, out]}
    problem = value_problem(value, f"filter {op} value")
    if problem:
        raise ValueError(problem)
    return {op: [name, value]}


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def dumps(where: Any) -> str:
    """The canonical JSON text of a filter (``null`` for none)."""
    return dumps_canonical(canonical(where))


# json.dumps with these arguments builds this very encoder on every call.
_CANONICAL_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def dumps_canonical(c: Any) -> str:
    """``dumps`` of a filter already in canonical form (no second pass)."""
    return _CANONICAL_TEXT(c)


def matches(where: Any, attrs: Mapping[str, Any] | None) -> bool:
    """Whether a row with ``attrs`` passes the (valid) filter ``where``."""
    if where is None:
        return True
    a = attrs or {}
    (op, arg), = where.items()
    if op == "and":
        return all(matches(c, a) for c in arg)
    if op == "or":
        return any(matches(c, a) for c in arg)
    if op == "not":
        return not matches(arg, a)
    if op == "exists":
        return arg in a
    name, value = arg
    if name not in a:
        return False
    have = a[name]
    if op in ORDER:
        if isinstance(have, bool) or not isinstance(have, int):
            return False
        return (have < value if op == "lt" else have <= value if op == "le"
                else have > value if op == "gt" else have >= value)
    if op == "in":
        return _kind(have) == _kind(value[0]) and have in value
    same = _kind(have) == _kind(value)
    if op == "eq":
        return same and have == value
    return same and have != value        # ne


def matcher(where: Any) -> Callable[[Mapping[str, Any] | None], bool]:
    """``matches(where, ·)`` as one function: the (valid) filter's tree is
    walked once, here, not once per row. Same answers as ``matches``.

    The compiled nodes take the row's attributes as they come (None or an
    empty mapping: no attributes), so a row costs one call per node, no
    wrapper; each leaf's type test is written into it, not called."""
    if where is None:
        return _always
    return _compile(where)


def _always(attrs: Any) -> bool:
    return True


def _compile(node: Any) -> Callable[[Mapping[str, Any] | None], bool]:
    (op, arg), = node.items()
    if op in ("and", "or"):
        kids = [_compile(c) for c in arg]
        if op == "and":
            def all_(a: Mapping[str, Any] | None) -> bool:
                for k in kids:
                    if not k(a):
                        return False
                return True
            return all_

        def any_(a: Mapping[str, Any] | None) -> bool:
            for k in kids:
                if k(a):
                    return True
            return False
        return any_
    if op == "not":
        kid = _compile(arg)
        return lambda a: not kid(a)
    if op == "exists":
        return lambda a: arg in a if a else False
    name, value = arg
    if op in ORDER:
        return _order_leaf(name, _COMPARE[op], value)
    # A comparison holds only on a value of the filter value's kind
    # (_kind): bool, int (never a bool) or str (anything not an int).
    return _LEAVES[op][_kind(value[0] if op == "in" else value)](name, value)


_COMPARE = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}


def _order_leaf(name: str, cmp: Callable[[Any, Any], bool], value: int) -> Callable[..., bool]:
    def order(a: Mapping[str, Any] | None) -> bool:
        if not a or name not in a:
            return False
        have = a[name]
        if isinstance(have, bool) or not isinstance(have, int):
            return False
        return cmp(have, value)
    return order


def _eq_bool(name: str, value: Any) -> Callable[..., bool]:
    return lambda a: bool(a) and name in a and isinstance(a[name], bool) and a[name] == value


def _eq_int(name: str, value: Any) -> Callable[..., bool]:
    def eq(a: Mapping[str, Any] | None) -> bool:
        if not a or name not in a:
            return False
        have = a[name]
        return isinstance(have, int) and not isinstance(have, bool) and have == value
    return eq


def _eq_str(name: str, value: Any) -> Callable[..., bool]:
    def eq(a: Mapping[str, Any] | None) -> bool:
        if not a or name not in a:
            return False
        have = a[name]
        return not isinstance(have, int) and have == value
    return eq


def _ne_bool(name: str, value: Any) -> Callable[..., bool]:
    return lambda a: bool(a) and name in a and isinstance(a[name], bool) and a[name] != value


def _ne_int(name: str, value: Any) -> Callable[..., bool]:
    def ne(a: Mapping[str, Any] | None) -> bool:
        if not a or name not in a:
            return False
        have = a[name]
        return isinstance(have, int) and not isinstance(have, bool) and have != value
    return ne


def _ne_str(name: str, value: Any) -> Callable[..., bool]:
    def ne(a: Mapping[str, Any] | None) -> bool:
        if not a or name not in a:
            return False
        have = a[name]
        return not isinstance(have, int) and have != value
    return ne


def _in_bool(name: str, value: Any) -> Callable[..., bool]:
    return lambda a: bool(a) and name in a and isinstance(a[name], bool) and a[name] in value


def _in_int(name: str, value: Any) -> Callable[..., bool]:
    def in_(a: Mapping[str, Any] | None) -> bool:
        if not a or name not in a:
            return False
        have = a[name]
        return isinstance(have, int) and not isinstance(have, bool) and have in value
    return in_


def _in_str(name: str, value: Any) -> Callable[..., bool]:
    def in_(a: Mapping[str, Any] | None) -> bool:
        if not a or name not in a:
            return False
        have = a[name]
        return not isinstance(have, int) and have in value
    return in_


_LEAVES = {
    "eq": {"bool": _eq_bool, "int": _eq_int, "str": _eq_str},
    "ne": {"bool": _ne_bool, "int": _ne_int, "str": _ne_str},
    "in": {"bool": _in_bool, "int": _in_int, "str": _in_str},
}


def show(where: Any) -> str:
    """A filter for a person: ``tenant = 't3' and not (n < 10)``."""
    if where is None:
        return "no filter"
    return _show(where, top=True)


_SYMBOL = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _show(node: Any, top: bool = False) -> str:
    (op, arg), = node.items()
    if op in ("and", "or"):
        if not arg:
            return "true" if op == "and" else "false"
        text = f" {op} ".join(_show(c) for c in arg)
        return text if top or len(arg) == 1 else f"({text})"
    if op == "not":
        return f"not {_show(arg)}"
    if op == "exists":
        return f"exists({arg})"
    name, value = arg
    if op == "in":
        return f"{name} in [{', '.join(_lit(v) for v in value)}]"
    return f"{name} {_SYMBOL[op]} {_lit(value)}"


def _lit(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else repr(v)


def names(where: Any) -> list[str]:
    """The attribute names a filter mentions, sorted."""
    out: set[str] = set()
    for node in walk(where):
        (op, arg), = node.items()
        if op == "exists":
            out.add(arg)
        elif op in COMPARE or op in ORDER:
            out.add(arg[0])
    return sorted(out)


def walk(where: Any) -> Iterator[Any]:
    """Every node of a filter, depth first."""
    if where is None:
        return
    stack = [where]
    while stack:
        node = stack.pop()
        yield node
        (op, arg), = node.items()
        if op in ("and", "or"):
            stack.extend(reversed(arg))
        elif op == "not":
            stack.append(arg)


def simpler(where: Any) -> Iterator[Any]:
    """Simpler filters than ``where``, for shrinking, simplest first: no
    filter at all, then each node replaced by ``true`` (dropped from its
    ``and``/``or``) or by one of its children, then ``in`` value sets cut
    to one value."""
    if where is None:
        return
    yield None
    seen = {dumps(where)}
    for cand in _simpler(where):
        c = canonical(cand)
        key = dumps(c)
        if key not in seen:
            seen.add(key)
            yield c


def _simpler(node: Any) -> Iterator[Any]:
    (op, arg), = node.items()
    if op in ("and", "or"):
        for c in arg:                 # a child alone
            yield c
        for i in range(len(arg)):      # one child dropped
            yield {op: arg[:i] + arg[i + 1:]}
        for i, c in enumerate(arg):    # one child simplified
            for s in _simpler(c):
                yield {op: arg[:i] + [s] + arg[i + 1:]}
    elif op == "not":
        yield arg
        for s in _simpler(arg):
            yield {"not": s}
    elif op == "in" and len(arg[1]) > 1:
        yield {"eq": [arg[0], arg[1][0]]}
        yield {"in": [arg[0], arg[1][:len(arg[1]) // 2]]}
