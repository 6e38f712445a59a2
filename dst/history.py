"""Histories: plain records, JSON Lines, one per event (Jepsen's shape).

File layout::

    {"format": "vector-dst/history", "version": 1, "meta": {...}}
    {"vector": 0, "dim": 8, "data": "<base64 of little-endian float32>"}
    ...                       one line per distinct vector, written once
    {"index": 0, "time": 12, "process": 0, "type": "invoke", "f": "store",
     "value": {"id": "k1", "vector": 0}}
    {"index": 1, "time": 80, "process": 0, "type": "ok", "f": "store",
     "value": null, "dispatch": 0}

Ops refer to vectors by their number in the table. An invoke's ``value``
is the input; the completion's ``value`` is the output (for search a list
of ``[id, score]``; for get a vector number or null; an error is
``{"error": "InvalidInput", "message": ...}``). ``dispatch`` is the witness
sequence number of an op that reached the backend. Faults are events of
process ``"nemesis"``. ``info`` means the outcome is unknown.

Encoding is exact: float32 data as raw bytes, scores with Python's
round-tripping float repr, ids through JSON string escapes (lone surrogates
included, as invalid-id inputs need them). The same history always
serialises to the same bytes.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from dst.validate import freeze

FORMAT = "vector-dst/history"
VERSION = 1

EVENT_TYPES = ("invoke", "ok", "fail", "info")


# float32 as a dtype: ``is`` against it is cheaper than ``== np.float32``
# (any other float32 dtype takes the general path, to the same bytes).
_F32 = np.dtype(np.float32)


class HistoryFormatError(ValueError):
    """A history file that cannot be read; names the file and line."""


class VectorTable:
    """Interned vectors: each distinct (dtype float32, shape) array once."""

    __slots__ = ("vectors", "_index", "_lock")

    def __init__(self) -> None:
        self.vectors: list[np.ndarray] = []
        self._index: dict[bytes, int] = {}
        self._lock = threading.Lock()  # threads mode interns from many threads

    def ref(self, vector: Any) -> int:
        if type(vector) is np.ndarray and vector.dtype is _F32 and vector.ndim == 1:
            arr = vector     # the common case: tobytes and copy give C order anyway
        else:
            arr = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(-1))
        key = arr.shape[0].to_bytes(4, "little") + arr.tobytes()
        n = self._index.get(key)
        if n is None:
            with self._lock:
                n = self._index.get(key)
                if n is None:
                    n = len(self.vectors)
                    arr = arr.copy()
                    arr.flags.writeable = False
                    freeze(arr)      # never written again: validated once (dst.validate)
                    self.vectors.append(arr)
                    self._index[key] = n
        return n

    def find(self, arr: np.ndarray) -> int | None:
        """The number of the interned vector equal to ``arr`` (a float32
        1-D array), or None: a lookup that never interns."""
        return self._index.get(arr.shape[0].to_bytes(4, "little") + arr.tobytes())

    def __getitem__(self, n: int) -> np.ndarray:
        return self.vectors[n]

    def __len__(self) -> int:
        return len(self.vectors)


@dataclass
class History:
    meta: dict[str, Any] = field(default_factory=dict)
    table: VectorTable = field(default_factory=VectorTable)
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, time: int, process: Any, type_: str, f: str, value: Any,
            dispatch: int | None = None, **extra: Any) -> dict:
        """Append one event; ``dispatch`` (the witness number of an op that
        reached the backend; None: the event has no such key) is the extra
        key nearly every completion has, so it is a parameter, not a keyword
        dict per event."""
        assert type_ in EVENT_TYPES, type_
        events = self.events
        event = {"index": len(events), "time": time, "process": process,
                 "type": type_, "f": f, "value": value}
        if dispatch is not None:
            event["dispatch"] = dispatch
        if extra:
            event.update(extra)
        events.append(event)
        return event

    # -- serialisation ----------------------------------------------------
    def lines(self) -> Iterator[str]:
        yield _dump({"format": FORMAT, "version": VERSION, "meta": self.meta})
        for n, v in enumerate(self.table.vectors):
            yield _dump({"vector": n, "dim": int(v.shape[0]),
                         "data": base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")})
        for e in self.events:
            yield _dump(e)

    def to_bytes(self) -> bytes:
        return ("\n".join(self.lines()) + "\n").encode("ascii")

    def write(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<history>") -> "History":
        h = cls()
        header_seen = False
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise HistoryFormatError(f"{source}:{line}: not UTF-8 text (byte {exc.start} is "
                                     f"0x{data[exc.start]:02x})") from None
        for lineno, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise HistoryFormatError(f"{source}:{lineno}: not JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise HistoryFormatError(f"{source}:{lineno}: expected a JSON object")
            if "format" in rec:
                if rec.get("format") != FORMAT or rec.get("version") != VERSION:
                    raise HistoryFormatError(
                        f"{source}:{lineno}: not a {FORMAT} v{VERSION} file "
                        f"(format={rec.get('format')!r}, version={rec.get('version')!r})")
                h.meta = rec.get("meta") or {}
                if not isinstance(h.meta, dict):
                    raise HistoryFormatError(f"{source}:{lineno}: the header's meta is not a JSON object")
                header_seen = True
            elif "vector" in rec and "data" in rec:
                try:
                    arr = np.frombuffer(base64.b64decode(rec["data"]), dtype="<f4")
                except (ValueError, TypeError):
                    raise HistoryFormatError(f"{source}:{lineno}: bad vector data") from None
                if rec["vector"] != len(h.table) or arr.shape[0] != rec.get("dim"):
                    raise HistoryFormatError(f"{source}:{lineno}: vector table out of order")
                h.table.ref(arr)
                if len(h.table) != rec["vector"] + 1:
                    raise HistoryFormatError(f"{source}:{lineno}: vector {rec['vector']} repeats an earlier one")
            elif "type" in rec:
                missing = [k for k in ("index", "time", "process", "type", "f") if k not in rec]
                if missing or rec["type"] not in EVENT_TYPES:
                    raise HistoryFormatError(
                        f"{source}:{lineno}: event lacks {missing} or has type {rec.get('type')!r}")
                h.events.append(rec)
            else:
                raise HistoryFormatError(f"{source}:{lineno}: unknown record")
        if not header_seen:
            raise HistoryFormatError(f"{source}: no {FORMAT} header line")
        return h

    @classmethod
    def read(cls, path: str | Path) -> "History":
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise HistoryFormatError(f"{path}: cannot read ({exc.strerror})") from None
        return cls.from_bytes(data, str(path))


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=True)


def first_difference(a: bytes, b: bytes) -> int | None:
    """The 0-based event index where two serialised histories first differ.

    Header and vector-table lines count as -1 (they differ before any op).
    None if identical.
    """
    if a == b:
        return None
    la, lb = a.split(b"\n"), b.split(b"\n")
    for x, y in zip(la, lb):
        if x != y:
            try:
                rec = json.loads(x or y)
                return int(rec["index"]) if "index" in rec else -1
            except (ValueError, KeyError, TypeError):
                return -1
    # one is a prefix of the other: first extra event
    extra = (la if len(la) > len(lb) else lb)[min(len(la), len(lb))]
    try:
        return int(json.loads(extra)["index"])
    except (ValueError, KeyError, TypeError):
        return -1


@dataclass(slots=True)
class PairedOp:
    """An invoke joined with its completion (by process, as in Jepsen)."""

    process: Any
    f: str
    input: Any
    type: str            # ok | fail | info (info also for invokes never completed)
    output: Any
    call: int
    ret: float           # inf when the op never completed
    dispatch: int | None
    index: int           # the invoke's index
    applied: list | None = None   # a partial write's applied ids (a witness hint)


def pair(events: list[dict[str, Any]]) -> list[PairedOp]:
    """Join invokes and completions; ignore nemesis events.

    Raises HistoryFormatError when a process has two open ops or completes
    one it never invoked.
    """
    open_: dict[Any, PairedOp] = {}      # process -> its open op
    out: list[PairedOp] = []
    append = out.append
    partial: dict[int, list] = {}
    inf = float("inf")
    for e in events:
        proc = e["process"]
        if proc == "nemesis":
            # A cut (or errored) batch's applied ids: a hint for the witness.
            f = e["f"]
            if f == "partial-write" or f == "batch-error":
                v = e.get("value")
                if isinstance(v, dict) and v.get("dispatch") is not None and v.get("applied") is not None:
                    partial[v["dispatch"]] = v["applied"]
            continue
        key = tuple(proc) if type(proc) is list else proc   # a JSON list as a key
        type_ = e["type"]
        if type_ == "invoke":
            if key in open_:
                raise HistoryFormatError(f"event {e['index']}: process {proc!r} invoked twice without completing")
            p = open_[key] = PairedOp(proc, e["f"], e.get("value"), "info", None, e["time"],
                                      inf, e.get("dispatch"), e["index"])
            append(p)
        else:
            p = open_.pop(key, None)
            if p is None:
                raise HistoryFormatError(f"event {e['index']}: process {proc!r} completes an op it never invoked")
            p.type = type_
            p.output = e.get("value")
            if type_ != "info":
                p.ret = e["time"]
            d = e.get("dispatch")
            if d is not None:
                p.dispatch = d
    if partial:
        for p in out:
            if p.dispatch is not None and p.dispatch in partial:
                p.applied = partial[p.dispatch]
    return out
