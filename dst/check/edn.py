"""Jepsen/Knossos EDN histories: a reader, and conversion to checker ops.

A history is a sequence of op maps, usually one per line::

    {:process 0, :type :invoke, :f :write, :value 3}
    {:process 0, :type :ok, :f :write, :value 3}

(a file holding one vector of maps, as Knossos writes them, reads the
same). The subset of EDN read here: maps, vectors, lists and sets;
keywords, symbols, integers, floats, strings with escapes, characters,
nil, true, false, ``##Inf``/``##NaN``; ``;`` comments, ``#_`` discards, and tagged elements
(``#jepsen.history.Op{...}``, ``#inst "..."``) whose tag is dropped and
value kept. Vectors and lists become tuples (hashable, so they can be
model values), sets frozensets, maps dicts, keywords ``Keyword``.

Every error names the file and line: ``c01.txt:12: unterminated string``.

Conversion (``to_operations``): events pair by process (one open op per
process, Jepsen's rule); ``:fail`` ops did not happen and are dropped;
``:info`` ops and invokes never completed have an unknown outcome (output
``UNKNOWN``, return ``INF``): they may take effect any time after their
invocation, or never. Call and return times are the events' positions in
the file, a monotone integer clock (the line index, for one op per line).
Events of the ``:nemesis`` process are skipped.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dst.check.linearizability import Operation
from dst.check.models.base import EVENT_TYPES, NO_KEY, Call, Event, pair_calls, short
from dst.history import HistoryFormatError

# Nesting deeper than this is not a history; refusing it keeps the
# recursive reader far from Python's recursion limit.
MAX_DEPTH = 100


class EdnError(HistoryFormatError):
    """An EDN file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str

    def __repr__(self) -> str:
        return ":" + self.name


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str

    def __repr__(self) -> str:
        return self.name


_WS = " \t\r\n,"
_TOKEN_END = re.compile(r"[\s,{}\[\]()\";]")
_INT = re.compile(r"[+-]?\d+N?\Z")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "\\": "\\", "/": "/"}
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r", "backspace": "\b",
          "formfeed": "\f"}
_CLOSE = {"[": "]", "(": ")", "{": "}"}
_SYMBOLIC = {"Inf": float("inf"), "-Inf": float("-inf"), "NaN": float("nan")}


class _Reader:
    def __init__(self, text: str, source: str):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.source = source
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def fail(self, message: str, pos: int | None = None) -> EdnError:
        return EdnError(f"{self.source}:{self.line_at(self.i if pos is None else pos)}: {message}")

    def skip(self) -> None:
        s, n = self.s, self.n
        while self.i < n:
            c = s[self.i]
            if c in _WS:
                self.i += 1
            elif c == ";":
                j = s.find("\n", self.i)
                self.i = n if j < 0 else j + 1
            elif s.startswith("#_", self.i):
                self.i += 2
                self.form(0)           # read and drop
            else:
                return

    def at_end(self) -> bool:
        self.skip()
        return self.i >= self.n

    def form(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        self.skip()
        if self.i >= self.n:
            raise self.fail("unexpected end of file")
        s, start = self.s, self.i
        c = s[start]
        if c in "[(":
            return tuple(self.seq(_CLOSE[c], depth))
        if c == "{":
            return self.map(depth)
        if c in ")]}":
            raise self.fail(f"unexpected {c!r}")
        if c == '"':
            return self.string()
        if c == "\\":
            return self.char()
        if c == "#":
            if s.startswith("#{", start):
                self.i += 1
                items = self.seq("}", depth)
                try:
                    return frozenset(items)
                except TypeError:
                    raise self.fail("a set holds a map (not hashable)", start) from None
            if s.startswith("##", start):        # symbolic values ##Inf ##-Inf ##NaN
                self.i += 2
                name = self.token()
                if name not in _SYMBOLIC:
                    raise self.fail(f"unknown symbolic value '##{name}'", start)
                return _SYMBOLIC[name]
            self.i += 1
            tag = self.token()
            if not tag or tag[0] in "0123456789":
                raise self.fail(f"bad dispatch '#{tag}'", start)
            return self.form(depth + 1)   # tagged element: keep the value
        text = self.token()
        if not text:
            raise self.fail(f"unexpected {c!r}")
        return self.atom(text, start)

    def token(self) -> str:
        m = _TOKEN_END.search(self.s, self.i)
        end = self.n if m is None else m.start()
        text = self.s[self.i:end]
        self.i = end
        return text

    def atom(self, text: str, start: int) -> Any:
        if text[0] == ":":
            if len(text) == 1 or text[1] == ":" and len(text) == 2:
                raise self.fail("empty keyword", start)
            return Keyword(text[1:].lstrip(":"))
        if text == "nil":
            return None
        if text == "true":
            return True
        if text == "false":
            return False
        if text[0].isdigit() or (text[0] in "+-" and len(text) > 1 and text[1].isdigit()):
            if _INT.match(text):
                return int(text.rstrip("N"))
            if _FLOAT.match(text):
                return float(text.rstrip("M"))
            raise self.fail(f"bad number {text!r}", start)
        return Symbol(text)

    def seq(self, close: str, depth: int) -> list[Any]:
        start = self.i
        self.i += 1
        out = []
        while True:
            self.skip()
            if self.i >= self.n:
                raise self.fail(f"unclosed {self.s[start]!r}: no matching {close!r} before the "
                                "end of the file", start)
            c = self.s[self.i]
            if c == close:
                self.i += 1
                return out
            if c in ")]}":
                raise self.fail(f"expected {close!r}, found {c!r} "
                                f"(opened on line {self.line_at(start)})")
            out.append(self.form(depth + 1))

    def map(self, depth: int) -> dict[Any, Any]:
        start = self.i
        items = self.seq("}", depth)
        if len(items) % 2:
            raise self.fail("a map needs an even number of forms (key value pairs)", start)
        out: dict[Any, Any] = {}
        for k, v in zip(items[::2], items[1::2]):
            try:
                if k in out:
                    raise self.fail(f"duplicate map key {k!r}", start)
            except TypeError:
                raise self.fail(f"map key {short(k)} is not hashable", start) from None
            out[k] = v
        return out

    def string(self) -> str:
        s, start = self.s, self.i
        i = start + 1
        parts = []
        while True:
            j = i
            while j < self.n and s[j] not in '"\\':
                j += 1
            parts.append(s[i:j])
            if j >= self.n:
                raise self.fail("unterminated string", start)
            if s[j] == '"':
                self.i = j + 1
                return "".join(parts)
            # a backslash escape
            if j + 1 >= self.n:
                raise self.fail("unterminated string", start)
            e = s[j + 1]
            if e in _ESCAPES:
                parts.append(_ESCAPES[e])
                i = j + 2
            elif e == "u":
                hexa = s[j + 2:j + 6]
                if len(hexa) != 4 or not all(h in "0123456789abcdefABCDEF" for h in hexa):
                    raise self.fail(f"bad \\u escape {s[j:j + 6]!r} in string", j)
                parts.append(chr(int(hexa, 16)))
                i = j + 6
            else:
                raise self.fail(f"unknown escape \\{e} in string", j)

    def char(self) -> str:
        start = self.i
        self.i += 1
        if self.i >= self.n:
            raise self.fail("a backslash at the end of the file", start)
        m = _TOKEN_END.search(self.s, self.i + 1)
        end = self.n if m is None else m.start()
        text = self.s[self.i:end]
        self.i = end
        if len(text) == 1:
            return text
        if text in _CHARS:
            return _CHARS[text]
        if text[0] == "u" and len(text) == 5:
            try:
                return chr(int(text[1:], 16))
            except ValueError:
                pass
        raise self.fail(f"unknown character \\{text}", start)


def read_forms(text: str, source: str = "<edn>") -> list[tuple[int, Any]]:
    """Every top-level form, with the line it starts on."""
    r = _Reader(text, source)
    out = []
    while not r.at_end():
        line = r.line_at(r.i)
        out.append((line, r.form(0)))
    return out


def _maps(text: str, source: str) -> list[tuple[int, dict]]:
    """The op maps: top-level maps, or the maps inside top-level vectors."""
    r = _Reader(text, source)
    out: list[tuple[int, dict]] = []
    while not r.at_end():
        start = r.i
        c = r.s[start]
        if c in "[(":
            close = _CLOSE[c]
            r.i += 1
            while True:
                r.skip()
                if r.i >= r.n:
                    raise r.fail(f"unclosed {c!r}: no matching {close!r} before the end of the "
                                 "file", start)
                if r.s[r.i] == close:
                    r.i += 1
                    break
                line = r.line_at(r.i)
                out.append((line, _need_map(r, r.form(1), line)))
        else:
            line = r.line_at(start)
            out.append((line, _need_map(r, r.form(0), line)))
    return out


def _need_map(r: _Reader, form: Any, line: int) -> dict:
    if not isinstance(form, dict):
        raise EdnError(f"{r.source}:{line}: expected an op map {{:process ..., :type ...}}, "
                       f"got {short(form)}")
    return form


_K = {name: Keyword(name) for name in ("process", "type", "f", "value", "key")}
NEMESIS = Keyword("nemesis")


def _name(v: Any) -> Any:
    return v.name if isinstance(v, (Keyword, Symbol)) else v


def parse_events(text: str, source: str = "<edn>") -> list[Event]:
    """The op maps of an EDN history as format-neutral events."""
    events = []
    for line, m in _maps(text, source):
        missing = [k for k in ("process", "type", "f") if _K[k] not in m]
        if missing:
            raise EdnError(f"{source}:{line}: op map lacks {', '.join(':' + k for k in missing)}")
        type_ = _name(m[_K["type"]])
        if type_ not in EVENT_TYPES:
            raise EdnError(f"{source}:{line}: :type must be :invoke, :ok, :fail or :info, "
                           f"got {short(m[_K['type']])}")
        f = _name(m[_K["f"]])
        if not isinstance(f, str):
            raise EdnError(f"{source}:{line}: :f must be a keyword, got {short(m[_K['f']])}")
        process = m[_K["process"]]
        try:
            hash(process)
        except TypeError:
            raise EdnError(f"{source}:{line}: :process must be a number or keyword") from None
        events.append(Event(line, process, type_, f, m.get(_K["value"]), m.get(_K["key"], NO_KEY)))
    return events


def read_events(path: str | Path) -> list[Event]:
    """Read an EDN history file. Raises EdnError naming the file and line."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise EdnError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise EdnError(f"{path}:{line}: not UTF-8 text") from None
    return parse_events(text, str(path))


def is_nemesis(process: Any) -> bool:
    return process == NEMESIS or process == "nemesis"


def to_operations(events: list[Event], model: Any, source: str = "<edn>"
                  ) -> tuple[list[Operation], list[Call]]:
    """Pair events and encode them for ``model``: (ops, the call of each op).

    ``model`` is a register, cas-register or kv model (anything with
    ``operations(calls, source)``). Errors name ``source`` and a line.
    """
    calls = pair_calls(events, source, skip=is_nemesis)
    return model.operations(calls, source)


def to_json(value: Any) -> Any:
    """An EDN value as JSON data: keywords ":k", tuples lists, sets sorted."""
    if isinstance(value, Keyword):
        return ":" + value.name
    if isinstance(value, Symbol):
        return value.name
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    if isinstance(value, frozenset):
        return sorted((to_json(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else repr(k)): to_json(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def jsonl_events(path: Path) -> list:
    """A vector-dst JSONL history's events, with their line numbers."""
    from dst.history import History
    h = History.read(path)
    first = 2 + len(h.table)           # the header, then one line per vector
    return [Event(first + n, e["process"], e["type"], e["f"], e.get("value"), e.get("key", NO_KEY))
            for n, e in enumerate(h.events)]
