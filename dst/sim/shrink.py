"""Shrinking: reduce a failing case while the same kind of failure persists.

A case is an explicit ``Schedule`` (see ``dst.sim.schedule``). The passes, in
order, each repeated until nothing more goes:

1. the id universe cut to the ids the ops use (the probes get shorter);
2. whole clients dropped; then ops dropped by delta debugging (halves,
   quarters, ... single ops); the load phase likewise;
3. faults and crashes removed one by one; delays set to their minimum;
4. dimensions cut (vectors truncated) and components snapped to a coarse
   grid; ids renamed to short ones;
5. filters simplified (``dst.filters.simpler``: no filter, clauses
   dropped, ``in`` sets cut) and attributes simplified (all of a row's
   dropped, then one key at a time), in the ops and in the load phase.

Every candidate is run for real and checked; a candidate is kept only when
the predicate (by default: a violation of the same kind) still holds.
Bounded by a wall-clock budget and a trial count (``TRIALS_MAX``).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dst import filters, wallclock
from dst.sim.schedule import CASE_FORMAT, CASE_VERSION, OpPlan, Schedule
from dst.validate import id_problem, vector_problem

TRIALS_MAX = 5_000   # a shrink that needs more trials than this is not converging

_SEARCH_KINDS = (("returned", "length"), ("true cosine", "score"), ("true l2", "score"),
                 ("true dot", "score"), ("out of order", "order"),
                 ("left out", "left-out"), ("not live", "dead-id"), ("twice", "duplicate"))


def violation_kind(result: Any) -> str | None:
    """A coarse name for a seed's first violation, kept while shrinking."""
    if result.verdict != "violation" or not result.violations:
        return None
    v = result.violations[0]
    if v["kind"] == "invariant":
        return f"invariant:{v.get('check')}"
    if v["kind"] == "availability":      # the backend's own errors, by op kind
        return f"availability:{v.get('f')}"
    if v["kind"].startswith("durability:"):   # e.g. durability:reopen
        return v["kind"]
    if v["kind"] == "contract":
        return f"contract:{v.get('check')}"
    f = (v.get("op") or {}).get("f", "?")
    msg = v.get("message", "")
    if msg.startswith("input is invalid"):
        return f"linearizability:{f}:accepted-invalid"
    if msg.startswith("the backend refused valid input"):
        return f"linearizability:{f}:refused-valid"
    if f == "search":
        for needle, tag in _SEARCH_KINDS:
            if needle in msg:
                return f"linearizability:search:{tag}"
    return f"linearizability:{f}"


def kinds_of(result: Any) -> set[str]:
    return {violation_kind(result)} - {None}


class Shrinker:
    def __init__(self, test: Callable[[Schedule], bool], budget_s: float = 60.0,
                 trials_max: int = TRIALS_MAX, progress: Callable[[str, int], None] | None = None):
        self.test = test
        self.deadline = wallclock.Deadline(budget_s)
        self.trials_max = trials_max
        self.trials = 0
        self.progress = progress or (lambda msg, n: None)

    def _try(self, cand: Schedule) -> bool:
        if cand is None:
            return False
        if self.trials >= self.trials_max or self.deadline.expired():
            return False
        self.trials += 1
        try:
            return self.test(cand)
        except Exception:  # noqa: BLE001 - a candidate that breaks the harness is not kept
            return False

    def out_of_budget(self) -> bool:
        return self.trials >= self.trials_max or self.deadline.expired()

    def shrink(self, s: Schedule) -> Schedule:
        passes = [self._universe, self._clients, self._ops, self._load, self._faults,
                  self._timing, self._dims, self._snap, self._universe, self._ids,
                  self._items, self._filters, self._attrs]
        while not self.out_of_budget():
            before = _size(s)
            for p in passes:
                s = p(s)
                self.progress(p.__name__.strip("_"), s.n_ops())
            if _size(s) >= before:
                break
        return s

    # -- passes -------------------------------------------------------------
    def _universe(self, s: Schedule) -> Schedule:
        used = _used_ids(s)
        ids = [i for i in s.ids if i in used]
        if len(ids) < len(s.ids):
            cand = replace(s, ids=ids or s.ids[:1])
            if self._try(cand):
                return cand
        return s

    def _clients(self, s: Schedule) -> Schedule:
        c = 0
        while c < len(s.clients) and len(s.clients) > 1:
            cand = replace(s, clients=s.clients[:c] + s.clients[c + 1:],
                           start_us=s.start_us[:c] + s.start_us[c + 1:])
            if self._try(cand):
                s = cand
            else:
                c += 1
        return s

    def _ops(self, s: Schedule) -> Schedule:
        flat = [(c, p) for c, plans in enumerate(s.clients) for p in plans]

        def build(items):
            clients = [[p for cc, p in items if cc == c] for c in range(len(s.clients))]
            return replace(s, clients=clients)

        flat = _ddmin(flat, lambda items: self._try(build(items)))
        return build(flat)

    def _load(self, s: Schedule) -> Schedule:
        if not s.load:
            return s
        load = _ddmin(list(s.load), lambda items: self._try(replace(s, load=items)))
        s = replace(s, load=load)
        # Then the rows inside each load batch (a 500-row load is one op).
        for n, op in enumerate(s.load):
            items = op["value"].get("items")
            if op["f"] != "store_batch" or not items or len(items) < 2:
                continue

            def with_items(kept, n=n):
                batch = {"f": "store_batch", "value": {**s.load[n]["value"], "items": kept}}
                return replace(s, load=s.load[:n] + [batch] + s.load[n + 1:])
            kept = _ddmin(list(items), lambda kept: self._try(with_items(kept)))
            s = with_items(kept)
        return s

    def _faults(self, s: Schedule) -> Schedule:
        for c, plans in enumerate(s.clients):
            for i, p in enumerate(plans):
                for change in ({"crash_us": None}, {"fault": None, "never": False, "keep": None}):
                    if all(getattr(p, k) == v for k, v in change.items()):
                        continue
                    cand = _with_plan(s, c, i, replace(p, **change))
                    if self._try(cand):
                        s, p = cand, cand.clients[c][i]
        return s

    def _timing(self, s: Schedule) -> Schedule:
        def calm(p: OpPlan) -> OpPlan:
            return replace(p, d1=0, d2=1, think_us=0)
        cand = replace(s, clients=[[calm(p) for p in plans] for plans in s.clients],
                       start_us=[0] * len(s.clients))
        if cand.to_dict() != s.to_dict() and self._try(cand):
            return cand
        return s

    def _dims(self, s: Schedule) -> Schedule:
        for d in (2, 3, 4, 8, 16, 32, 64):
            if d >= s.dim:
                break
            cand = _truncate(s, d)
            if self._try(cand):
                return cand
        return s

    def _snap(self, s: Schedule) -> Schedule:
        for grid in (1.0, 0.5, 0.1):
            cand = _retable(s, [_snapped(v, s.dim, grid) for v in s.vectors])
            if cand.to_dict() != s.to_dict() and self._try(cand):
                return cand
        return s

    def _ids(self, s: Schedule) -> Schedule:
        used = sorted(_used_ids(s) | set(s.ids))
        # Ids the ops use first, so they get the shortest names.
        ops_ids = _used_ids(s)
        valid = sorted((i for i in used if id_problem(i) is None), key=lambda i: (i not in ops_ids, i))
        short = {old: _short_name(n) for n, old in enumerate(valid)}
        if all(len(k) <= 2 for k in short):
            return s
        if any(v in used and v not in short for v in short.values()):
            return s
        cand = _rename(s, short)
        if self._try(cand):
            return cand
        return s

    def _items(self, s: Schedule) -> Schedule:
        """The rows of each store_batch op dropped by delta debugging (an
        empty batch is a valid op, so it may go to none)."""
        for c, plans in enumerate(s.clients):
            for i in range(len(plans)):
                p = s.clients[c][i]
                items = p.value.get("items") if p.f == "store_batch" and isinstance(p.value, dict) else None
                if not isinstance(items, list) or len(items) < 2:
                    continue

                def with_items(kept, c=c, i=i, items=items, q=p):
                    # kept: indices into the original batch; a partial
                    # write's mask is cut to the same rows.
                    v = {**q.value, "items": [items[k] for k in kept]}
                    keep = None if q.keep is None else [q.keep[k] for k in kept if k < len(q.keep)]
                    return _with_plan(s, c, i, replace(q, value=v, keep=keep))
                kept = _ddmin(list(range(len(items))), lambda kept: self._try(with_items(kept)))
                s = with_items(kept)
        return s

    def _filters(self, s: Schedule) -> Schedule:
        """Each search's filter made simpler while the failure holds:
        simplest first, and again from the simpler one once it is kept."""
        for c, plans in enumerate(s.clients):
            for i in range(len(plans)):
                while True:
                    p = s.clients[c][i]
                    where = p.value.get("where") if isinstance(p.value, dict) else None
                    if where is None or filters.where_problem(where) is not None:
                        break   # none, or a bad one the case may be about
                    for cand_where in filters.simpler(where):
                        v = {k: x for k, x in p.value.items() if k != "where"}
                        if cand_where is not None:
                            v["where"] = cand_where
                        cand = _with_plan(s, c, i, replace(p, value=v))
                        if self._try(cand):
                            s = cand
                            break
                    else:
                        break
                    if self.out_of_budget():
                        return s
        return s

    def _attrs(self, s: Schedule) -> Schedule:
        """Attributes made simpler: a whole load batch's dropped at once,
        then each row's (store and batch items, ops and load) dropped, then
        one key at a time."""
        for n, op in enumerate(s.load):
            items = op["value"].get("items") or []
            if op["f"] == "store_batch" and any(len(it) > 2 for it in items):
                cand = _with_load(s, n, {**op["value"], "items": [list(it[:2]) for it in items]})
                if self._try(cand):
                    s = cand
        for n in range(len(s.load)):
            s = self._value_attrs(s, lambda s, n=n: s.load[n]["value"],
                                  lambda s, v, n=n: _with_load(s, n, v))
        for c, plans in enumerate(s.clients):
            for i in range(len(plans)):
                s = self._value_attrs(
                    s, lambda s, c=c, i=i: s.clients[c][i].value,
                    lambda s, v, c=c, i=i: _with_plan(s, c, i, replace(s.clients[c][i], value=v)))
        return s

    def _value_attrs(self, s: Schedule, get: Callable, put: Callable) -> Schedule:
        """Simpler attributes in one op's input (``get``/``put`` reach it):
        a store's ``attrs`` and each batch item's third element, each cut
        again from the last kept candidate until none holds."""
        value = get(s)
        if not isinstance(value, dict):
            return s
        slots: list[int | None] = [None] if "attrs" in value else []
        if isinstance(value.get("items"), list):
            slots += list(range(len(value["items"])))
        for k in slots:
            while not self.out_of_budget():
                cur = get(s)
                attrs = cur.get("attrs") if k is None else (cur["items"][k][2:] or [None])[0]
                if not isinstance(attrs, dict) or filters.attrs_problem(attrs) is not None:
                    break    # none, or a bad one the case may be about
                for cand_attrs in _simpler_attrs(attrs):
                    if k is None:
                        v = {x: y for x, y in cur.items() if x != "attrs"}
                        if cand_attrs is not None:
                            v["attrs"] = cand_attrs
                    else:
                        it = cur["items"][k]
                        new = list(cur["items"])
                        new[k] = list(it[:2]) if cand_attrs is None else [it[0], it[1], cand_attrs]
                        v = {**cur, "items": new}
                    cand = put(s, v)
                    if self._try(cand):
                        s = cand
                        break
                else:
                    break
        return s


def _simpler_attrs(attrs: dict[str, Any]):
    """None (no attributes), then ``attrs`` less one key, each key in turn
    (an attribute set of one key yields only None)."""
    yield None
    if len(attrs) > 1:
        for k in sorted(attrs):
            yield {x: y for x, y in attrs.items() if x != k}


def _with_load(s: Schedule, n: int, value: dict[str, Any]) -> Schedule:
    return replace(s, load=s.load[:n] + [{"f": s.load[n]["f"], "value": value}] + s.load[n + 1:])


def _ddmin(items: list, keep_if: Callable[[list], bool]) -> list:
    """Drop chunks (halves, quarters, ... single items) while keep_if holds."""
    chunk = max(len(items) // 2, 1)
    while chunk >= 1 and items:
        i = 0
        while i < len(items):
            cand = items[:i] + items[i + chunk:]
            if keep_if(cand):
                items = cand
            else:
                i += chunk
        if chunk == 1:
            break
        chunk //= 2
    return items


def _size(s: Schedule) -> tuple:
    faults = sum(1 for plans in s.clients for p in plans if p.fault or p.crash_us is not None)
    return (s.n_ops(), len(s.load), len(s.clients), faults, s.dim, len(s.ids),
            sum(len(i) for i in s.ids))


def _with_plan(s: Schedule, c: int, i: int, p: OpPlan) -> Schedule:
    clients = [list(plans) for plans in s.clients]
    clients[c][i] = p
    return replace(s, clients=clients)


def _used_ids(s: Schedule) -> set[str]:
    used: set[str] = set()
    for plans in s.clients:
        for p in plans:
            _collect_ids(p.value, used)
    for op in s.load:
        _collect_ids(op["value"], used)
    return used


def _collect_ids(value: dict[str, Any], out: set[str]) -> None:
    if "id" in value and isinstance(value["id"], str):
        out.add(value["id"])
    for it in value.get("items", []) or []:
        if isinstance(it[0], str):
            out.add(it[0])


def _truncate(s: Schedule, d: int) -> Schedule:
    vecs = []
    for v in s.vectors:
        n = v.shape[0]
        if n == s.dim:
            w = v[:d].copy()
            if not np.any(w):
                w[0] = 1.0      # keep valid vectors valid
        elif n == s.dim + 1:
            w = np.ones(d + 1, dtype=np.float32)    # the wrong-dim case stays wrong
        else:
            w = v[: max(1, min(n, d))].copy()
        vecs.append(w.astype(np.float32))
    return _retable(replace(s, dim=d), vecs)


def _retable(s: Schedule, vectors: list[np.ndarray]) -> Schedule:
    """New vectors for the table; ones that became equal are merged, and
    every reference in the schedule is renumbered to match."""
    index: dict[tuple[int, bytes], int] = {}
    table: list[np.ndarray] = []
    remap: list[int] = []
    for v in vectors:
        key = (v.shape[0], v.tobytes())
        if key not in index:
            index[key] = len(table)
            table.append(v)
        remap.append(index[key])

    return _renumber(replace(s, vectors=table), remap)


def _renumber(s: Schedule, remap: Any) -> Schedule:
    """Every vector reference in the schedule r becomes remap[r]."""
    def fix(value: dict[str, Any]) -> dict[str, Any]:
        v = dict(value)
        if isinstance(v.get("vector"), int):
            v["vector"] = remap[v["vector"]]
        if "items" in v:
            v["items"] = [[it[0], remap[it[1]] if isinstance(it[1], int) else it[1], *it[2:]]
                          for it in v["items"]]
        return v
    clients = [[replace(p, value=fix(p.value)) for p in plans] for plans in s.clients]
    load = [{"f": op["f"], "value": fix(op["value"])} for op in s.load]
    return replace(s, clients=clients, load=load, probe_query=remap[s.probe_query])


def _snapped(v: np.ndarray, dim: int, grid: float) -> np.ndarray:
    if v.shape[0] != dim or vector_problem(v, dim):
        return v
    w = (np.round(v.astype(np.float64) / grid) * grid).astype(np.float32)
    return w if np.any(w) and np.all(np.isfinite(w)) else v


def _short_name(n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[n] if n < 26 else letters[n // 26 - 1] + letters[n % 26]


def _rename(s: Schedule, names: dict[str, str]) -> Schedule:
    def fix(value: dict[str, Any]) -> dict[str, Any]:
        v = dict(value)
        if isinstance(v.get("id"), str):
            v["id"] = names.get(v["id"], v["id"])
        if "items" in v:
            v["items"] = [[names.get(it[0], it[0]) if isinstance(it[0], str) else it[0], *it[1:]]
                          for it in v["items"]]
        return v
    clients = [[replace(p, value=fix(p.value)) for p in plans] for plans in s.clients]
    load = [{"f": op["f"], "value": fix(op["value"])} for op in s.load]
    return replace(s, clients=clients, load=load, ids=[names.get(i, i) for i in s.ids])


# -- case files -----------------------------------------------------------------

def prune_vectors(s: Schedule) -> Schedule:
    """Drop the vectors no input refers to (a case keeps only what it uses)."""
    used = {s.probe_query}

    def collect(value: dict[str, Any]) -> None:
        if isinstance(value.get("vector"), int):
            used.add(value["vector"])
        for it in value.get("items", []) or []:
            if isinstance(it[1], int):
                used.add(it[1])
    for plans in s.clients:
        for p in plans:
            collect(p.value)
    for op in s.load:
        collect(op["value"])
    order = sorted(used)
    remap = {old: new for new, old in enumerate(order)}
    return _renumber(replace(s, vectors=[s.vectors[i] for i in order]), remap)


def case_dict(*, name: str, scenario: Any, seed: int, backend: str, options: dict[str, Any],
              schedule: Schedule, expected_verdict: str, expected_kind: str | None,
              note: str = "") -> dict[str, Any]:
    return {"format": CASE_FORMAT, "version": CASE_VERSION, "name": name,
            "scenario": scenario.name, "scenario_config": scenario.to_dict(), "seed": seed,
            "backend": backend, "options": options, "ops": schedule.n_ops(),
            "expected": {"verdict": expected_verdict, "kind": expected_kind},
            "note": note, "schedule": schedule.to_dict()}


def write_case(path: Path, case: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(case, indent=1, ensure_ascii=True) + "\n")


def read_case(path: str | Path) -> dict[str, Any]:
    from dst.errors import UsageError
    try:
        case = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(case, dict) or case.get("format") != CASE_FORMAT:
        raise UsageError(f"{path}: not a {CASE_FORMAT} file")
    if case.get("version") != CASE_VERSION:
        raise UsageError(f"{path}: case format version {case.get('version')!r}, "
                         f"this dst reads {CASE_VERSION}")
    missing = [k for k in CASE_KEYS if k not in case]
    if missing:
        raise UsageError(f"{path}: not a complete case (no {', '.join(missing)})")
    # Read what a replay reads now, so a damaged case is a sentence here and
    # not an exception half-way through the run.
    from dst.sim.runner import scenario_raw
    from dst.sim.scenario import parse
    try:
        int(case["seed"])
        parse(scenario_raw(case["scenario_config"]), default_name=str(case["scenario"]),
              source=f"{path}: scenario_config")
        Schedule.from_dict(case["schedule"])
        expectations(case)
    except UsageError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise UsageError(f"{path}: a damaged case ({type(exc).__name__}: {exc})") from None
    return case


# What every case holds (``case_dict`` writes them all).
CASE_KEYS = ("name", "scenario", "scenario_config", "seed", "backend", "schedule", "expected")
VERDICTS = ("ok", "violation", "unknown")


def expectations(case: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """A case's per-version expectations, its optional ``expect``: one
    reproducer, what it does on each server (pgvector's ``pg16``, ``pg18``).
    Each key is ``SERVER`` or ``SERVER KEY=VALUE ...`` (backend options the
    replay adds); each value a verdict (``"ok"``, ``"violation"``,
    ``"unknown"``) or ``{"verdict": ..., "kind": ...}``; a ``violation``
    given as a bare verdict has the kind of the case's ``expected``.
    Returns (key, server, options, expected) in the file's order."""
    from dst.errors import UsageError
    raw = case.get("expect")
    if raw is None:
        return []
    if not isinstance(raw, dict) or not raw:
        raise UsageError("expect must be an object: {\"SERVER[ KEY=VALUE ...]\": verdict, ...}")
    out = []
    for key, val in raw.items():
        words = str(key).split()
        server, opts = words[0], {}
        for w in words[1:]:
            k, eq, v = w.partition("=")
            if not eq or not k:
                raise UsageError(f"expect key {key!r}: {w!r} is not KEY=VALUE")
            opts[k] = v
        if isinstance(val, str):
            kind = (case.get("expected") or {}).get("kind") if val == "violation" else None
            val = {"verdict": val, "kind": kind}
        if not isinstance(val, dict) or val.get("verdict") not in VERDICTS:
            raise UsageError(f"expect[{key!r}] must be one of {', '.join(VERDICTS)} or "
                             "{\"verdict\": ..., \"kind\": ...}")
        out.append((str(key), server, opts, {"verdict": val["verdict"], "kind": val.get("kind")}))
    return out


def expected_for(case: dict[str, Any], server: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """What a replay on ``server`` with ``options`` should see: the
    ``expect`` entry for that server whose options the replay's include
    (the one naming the most of them), else the case's ``expected``."""
    best = None
    for _, srv, opts, exp in expectations(case):
        if srv != server or any(str(options.get(k)).lower() != v.lower() for k, v in opts.items()):
            continue
        if best is None or len(opts) > best[0]:
            best = (len(opts), exp)
    return best[1] if best is not None else dict(case.get("expected") or {})


def listing(schedule: Schedule) -> list[str]:
    """The case as a short readable listing, one line per op."""
    lines = [f"dim {schedule.dim}, {len(schedule.clients)} client(s), ids {schedule.ids}"]
    for op in schedule.load:
        lines.append(f"  load   {_show(op['f'], op['value'])}")
    for c, plans in enumerate(schedule.clients):
        for p in plans:
            extra = []
            if p.fault:
                extra.append(f"fault={p.fault}" + (" (never dispatched)" if p.never else ""))
            if p.crash_us is not None:
                extra.append(f"then crash after {p.crash_us}us")
            lines.append(f"  c{c}     {_show(p.f, p.value)}" + (f"   [{', '.join(extra)}]" if extra else ""))
    return lines


def _show(f: str, v: dict[str, Any]) -> str:
    if f == "store":
        attrs = f", {_attrs_text(v['attrs'])}" if "attrs" in v else ""
        return f"store({v.get('id')!r}, #{v.get('vector')}{attrs})"
    if f == "store_batch":
        return "store_batch([" + ", ".join(
            f"({it[0]!r}, #{it[1]}" + "".join(f", {_attrs_text(a)}" for a in it[2:]) + ")"
            for it in v.get("items", [])) + "])"
    if f in ("delete", "get", "exists", "get_attrs"):
        return f"{f}({v.get('id')!r})"
    if f == "search":
        where = ""
        if "where" in v:
            w = v["where"]
            where = f", where {filters.show(w) if filters.where_problem(w) is None else repr(w)}"
        exact = ", exact" if v.get("exact") is True else ""
        return f"search(#{v.get('vector')}, limit={v.get('limit')}{where}{exact})"
    if f == "maintenance":
        return f"maintenance({v.get('kind')!r})"
    return f"{f}()"


def _attrs_text(a: Any) -> str:
    return repr(a) if not isinstance(a, dict) else "{" + ", ".join(f"{k}: {x!r}" for k, x in sorted(a.items())) + "}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]
