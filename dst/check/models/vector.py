"""The ``vector`` model: the oracle every backend is checked against.

State: id -> vector (a number in the history's vector table), with a hash
kept incrementally (XOR of per-entry hashes) so the checker's memo never
re-hashes the whole store. ``step`` is pure: it returns a new state.

Search ranking agreement follows DESIGN, pairwise and not by transitive
tie groups, with true scores in float64 from the stored float32 vectors:

* exact backends: each reported score within ``score_eps`` of the id's
  true score; for every pair of hits i < j, true(j) <= true(i) +
  ``score_eps`` (so a run of near-ties may not drift by more than
  ``score_eps`` in total); every live id left out at most ``score_eps``
  above the lowest hit's; length ``min(limit, live)``; no duplicates, no
  dead ids.
* ANN backends (``exact = False``): no phantom or dead ids, no duplicates,
  true scores, sorted (by the same all-pairs rule), full length when
  enough ids are live. Recall is a run-level quality gate, not a
  per-query condition.
* a search recorded with ``"exact": true`` (the quiescent probes' call of
  the backend's ``search_exact``) becomes op ``search_exact`` and is held to
  the exact rules on any backend; it is no ANN search, so it takes no part
  in recall.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from dst import filters
from dst.check.linearizability import INF, UNKNOWN, Operation
from dst.metrics import METRICS, tolerance
from dst.validate import id_problem, limit_problem, vector_problem

if TYPE_CHECKING:
    from dst.history import PairedOp

INVALID = ("error", "InvalidInput")
WRITES = ("store", "batch", "delete")
SEARCHES = ("search", "search_exact")
READONLY = frozenset(("get", "exists", "get_attrs", "count", "maintenance") + SEARCHES)
NO_ATTRS: dict = {}


class VectorState:
    """``refs`` counts the live ids per vector ref, kept with the writes (a
    table-sized dict), so a search's left-out check costs O(table), not
    O(live ids): with a cap seed's 16k rows that is the difference."""

    __slots__ = ("items", "h", "refs", "attrs")

    def __init__(self, items: dict[str, int], h: int, refs: dict[int, int] | None = None,
                 attrs: dict[str, int] | None = None):
        self.items = items
        self.h = h
        if refs is None:
            refs = {}
            for ref in items.values():
                refs[ref] = refs.get(ref, 0) + 1
        self.refs = refs
        # id -> attribute-set number (the model's table), for ids with any.
        self.attrs = attrs if attrs is not None else {}

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VectorState) and self.h == other.h and self.items == other.items
                and self.attrs == other.attrs)

    def __repr__(self) -> str:
        return f"VectorState({len(self.items)} ids)"


def _eh(id_: str, ref: int) -> int:
    return hash((id_, ref))


def _ah(id_: str, aref: int) -> int:
    return hash((id_, "attrs", aref))


class VectorModel:
    """The oracle. ``vectors`` is the history's vector table."""

    name = "vector"

    def __init__(self, vectors: Sequence[np.ndarray], dim: int, score_eps: float = 1e-4,
                 exact: bool = True, metric: str = "cosine"):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}")
        self.vectors = vectors
        self.dim = dim
        self.eps = score_eps
        self.exact = exact
        self.metric = metric
        self._unit: np.ndarray | None = None
        self._scores: dict[int, list[float]] = {}
        self._problems: dict[int, str | None] = {}
        self._valid_ids: set[str] = set()   # ids id_problem passed (ids repeat)
        # Attribute sets and filters, numbered as operations() meets them.
        self.attr_sets: list[dict] = []
        self._attr_keys: list[tuple] = []       # filters.attrs_key of each set, by number
        self._attr_index: dict[tuple, int] = {}
        self.wheres: list[Any] = []
        self._where_index: dict[str, int] = {}
        self._match: dict[int, dict[int | None, bool]] = {}   # per filter number
        self._matchers: dict[int, Any] = {}     # filter number -> filters.matcher

    # -- the model --------------------------------------------------------
    def init(self) -> VectorState:
        return VectorState({}, 0)

    def step(self, state: VectorState, inp: tuple, out: Any) -> tuple[bool, VectorState]:
        f = inp[0]
        bad = inp[-1]
        if bad is not None:
            # Invalid input: refused, nothing changes (also if the ack was lost).
            return (out is UNKNOWN or out == INVALID), state
        if out == INVALID:
            return False, state
        items = state.items
        if f == "store":
            if out is not UNKNOWN and out is not None:
                return False, state
            return True, _put(state, ((inp[1], inp[2], inp[3]),))
        if f == "batch":
            if out is not UNKNOWN and out is not None:
                return False, state
            return True, _put(state, inp[1])
        if f == "delete":
            id_ = inp[1]
            existed = id_ in items
            if out is not UNKNOWN and out is not existed:
                return False, state
            if not existed:
                return True, state
            new = dict(items)
            ref = new.pop(id_)
            h = state.h ^ _eh(id_, ref)
            attrs = state.attrs
            if id_ in attrs:
                attrs = dict(attrs)
                h ^= _ah(id_, attrs.pop(id_))
            return True, VectorState(new, h, _less(state.refs, ref), attrs)
        if out is UNKNOWN:       # a read whose answer nobody saw
            return True, state
        if f == "get":
            return out == items.get(inp[1]), state
        if f == "exists":
            return out is (inp[1] in items), state
        if f == "get_attrs":
            return self._attrs_agree(state, inp[1], out), state
        if f == "count":
            return out == len(items), state
        if f in SEARCHES:
            return self.search_problem(items, inp[1], inp[2], out, state.refs,
                                       exact=f == "search_exact", where=inp[3],
                                       attrs=state.attrs) is None, state
        if f == "maintenance":
            return out is None, state
        if f == "wipe":
            # A server crash emptied the namespace (a backend that declares
            # crash_empties, e.g. an unlogged table): nothing survives it.
            return out is None or out is UNKNOWN, VectorState({}, 0)
        raise AssertionError(f"unknown op {f!r}")

    def replay(self, ops: Sequence[Operation]) -> int:
        """How many of ``ops``, stepped in this order from ``init()``, fit
        before the first that does not: ``step``'s answers, on one state
        changed in place. The witness walks one order and needs no state per
        op, so a write here copies nothing and hashes nothing, and a read is
        judged by step's own rule for it; any other op (refused input, an
        unknown or InvalidInput answer, count, maintenance, a wipe) goes
        through ``step`` itself, on a view of that state.
        tests/check/test_vector_replay.py holds the two to the same answers."""
        view = VectorState({}, 0, {}, {})
        items, refs, attrs = view.items, view.refs, view.attrs
        step = self.step
        n = 0
        for op in ops:
            inp, out = op.input, op.output
            f = inp[0]
            if f in WRITES and inp[-1] is None and out != INVALID:
                if f == "delete":
                    id_ = inp[1]
                    existed = id_ in items
                    if out is not UNKNOWN and out is not existed:
                        return n
                    if existed:
                        ref = items.pop(id_)
                        left = refs[ref] - 1
                        if left:
                            refs[ref] = left
                        else:
                            del refs[ref]
                        attrs.pop(id_, None)
                else:
                    if out is not UNKNOWN and out is not None:
                        return n
                    _put_into(items, refs, attrs, ((inp[1], inp[2], inp[3]),) if f == "store" else inp[1])
            elif inp[-1] is not None or out is UNKNOWN or out == INVALID:
                if not step(view, inp, out)[0]:
                    return n
            # The reads as step has them, its dispatch left out.
            elif f == "get":
                if out != items.get(inp[1]):
                    return n
            elif f == "exists":
                if out is not (inp[1] in items):
                    return n
            elif f == "get_attrs":
                if not self._attrs_agree(view, inp[1], out):
                    return n
            elif f in SEARCHES:
                if self.search_problem(items, inp[1], inp[2], out, refs, exact=f == "search_exact",
                                       where=inp[3], attrs=attrs) is not None:
                    return n
            else:
                ok, nxt = step(view, inp, out)
                if not ok:
                    return n
                if nxt is not view:        # a wipe: a new state
                    view = VectorState(dict(nxt.items), 0, dict(nxt.refs), dict(nxt.attrs))
                    items, refs, attrs = view.items, view.refs, view.attrs
            n += 1
        return n

    def readonly(self, inp: tuple) -> bool:
        """Reads, maintenance, and any op with invalid input (refused)."""
        return inp[-1] is not None or inp[0] in READONLY

    def footprint(self, inp: tuple) -> tuple | None:
        """The ids an op reads or writes; None for an op that may depend on
        or change any of them (count, search, wipe). Ops whose footprints do
        not meet commute in every state (the checker defers ops of unknown
        outcome on that basis): a write of unknown outcome is accepted in
        every state, and an op with invalid input, or maintenance, changes
        nothing whatever the state (no ids)."""
        f = inp[0]
        if inp[-1] is not None or f == "maintenance":
            return ()
        if f == "batch":
            return tuple(row[0] for row in inp[1])
        if f in ("store", "delete", "get", "exists", "get_attrs"):
            return (inp[1],)
        return None

    def projections(self, ops: Sequence[Operation]) -> list[tuple[str, list[Operation]]]:
        """One sub-history per id that some op reads: the ops that touch it
        (a batch's row for it as a store of that row, with the batch's
        interval) and the wipes, in history order. Count and search are left
        out. Every linearization of the whole, restricted to these ops, is
        one of the sub-history (each of them sees only its id, and a write's
        acceptance depends on no state), so a sub-history with none proves
        the whole has none."""
        by: dict[str, list[Operation]] = {}
        read: set[str] = set()
        wipes = [op for op in ops if op.f == "wipe"]
        for op in ops:
            inp = op.input
            f = inp[0]
            if inp[-1] is not None:
                continue         # refused whatever the state: no id's business
            if f == "batch":
                for row in inp[1]:
                    row_in = ("store", row[0], row[1], row[2] if len(row) == 3 else None, None)
                    by.setdefault(row[0], []).append(Operation(op.id, op.process, "store", row_in,
                                                               op.output, op.call, op.ret,
                                                               op.dispatch, op.index))
            elif f in ("store", "delete", "get", "exists", "get_attrs"):
                by.setdefault(inp[1], []).append(op)
                if f != "store" and op.output is not UNKNOWN:
                    read.add(inp[1])
        out = []
        for id_, sub in by.items():
            if id_ in read and len(sub) + len(wipes) < len(ops):
                sub = sorted(sub + wipes, key=lambda op: op.id)
                out.append((f"id {id_!r}", sub))
        return out

    # -- explanations -----------------------------------------------------
    def explain(self, state: VectorState, op: Operation) -> str:
        inp, out = op.input, op.output
        f, bad, items = inp[0], inp[-1], state.items
        if bad is not None:
            return f"input is invalid ({bad}), so InvalidInput was expected; got {_show(out)}"
        if out == INVALID:
            return "the backend refused valid input with InvalidInput"
        if f in ("store", "batch", "maintenance", "wipe"):
            return f"expected no output, got {_show(out)}"
        if f == "delete":
            return f"delete({inp[1]!r}) should return {inp[1] in items}, got {_show(out)}"
        if f == "get":
            want = items.get(inp[1])
            return (f"get({inp[1]!r}) should return {'vector #%d' % want if want is not None else 'None'}"
                    f", got {_show(out, vec=True)}")
        if f == "exists":
            return f"exists({inp[1]!r}) should be {inp[1] in items}, got {_show(out)}"
        if f == "get_attrs":
            want = self.stored_attrs(state, inp[1])
            return f"get_attrs({inp[1]!r}) should return {want!r}, got {_show(out)}"
        if f == "count":
            return f"count() should be {len(items)}, got {_show(out)}"
        if f in SEARCHES:
            return (self.search_problem(items, inp[1], inp[2], out, state.refs, exact=f == "search_exact",
                                        where=inp[3], attrs=state.attrs)
                    or "search output accepted here")
        return "rejected"

    def describe(self, state: VectorState) -> str:
        ids = sorted(state.items)
        shown = ", ".join(f"{i!r}: #{state.items[i]}" + (f" {self.attr_sets[state.attrs[i]]!r}"
                                                        if i in state.attrs else "")
                          for i in ids[:8])
        more = f", ... ({len(ids)} ids)" if len(ids) > 8 else ""
        return "{" + shown + more + "}"

    # -- search ranking -----------------------------------------------------
    def true_scores(self, qref: int) -> list[float]:
        """The score of query ``qref`` with every table vector under the
        model's metric (float64; rows that are no valid vector score 0)."""
        s = self._scores.get(qref)
        if s is None or len(s) < len(self.vectors):  # new, or the table grew
            if self._unit is None or self._unit.shape[0] < len(self.vectors):
                self._build_unit()
            if self._vec_problem(qref) is None:
                # The table's own row: as computed below (the same float64
                # cast and norm), so the same numbers. A copy: a fresh
                # array, as the query always was.
                q = self._unit[qref].copy()
                s = (self._unit - q if self.metric == "l2" else self._unit @ q)
            else:
                q = np.asarray(self.vectors[qref], dtype=np.float64)
                s = (q / math.sqrt(float(q @ q))) if self.metric == "cosine" else q
                s = self._unit - s if self.metric == "l2" else self._unit @ s
            if self.metric == "l2":
                s = (-np.sqrt(np.einsum("ij,ij->i", s, s))).tolist()
            else:
                s = s.tolist()
            self._scores[qref] = s
        return s

    def _build_unit(self) -> None:
        """The table as float64 rows: unit vectors under cosine, else as stored."""
        rows = np.zeros((len(self.vectors), self.dim))
        cosine = self.metric == "cosine"
        norms = [1.0] * len(self.vectors)
        for n, v in enumerate(self.vectors):
            # A valid vector of the model's dim (finite; non-zero under
            # cosine): vector_problem's rule, already known for most refs.
            if v.ndim == 1 and self._vec_problem(n) is None:
                r = v.astype(np.float64)
                rows[n] = r
                if cosine:
                    norms[n] = math.sqrt(float(r @ r))
        if cosine:
            # Each row divided by its norm, all in one call: division is
            # exact per element, so the numbers are those of a row at a time.
            rows /= np.array(norms)[:, None]
        self._unit = rows

    def tol(self, true_score: float) -> float:
        """How far a reported score may be from ``true_score`` (dst.metrics)."""
        return self.eps if self.metric == "cosine" else tolerance(self.metric, self.eps, true_score)

    # -- attributes and filters ----------------------------------------------
    def attr_ref(self, attrs: Any) -> int | None:
        """The number of a (valid) attribute set; None for no attributes."""
        if not attrs:
            return None
        key = filters.attrs_key(attrs)
        n = self._attr_index.get(key)
        if n is None:
            n = self._attr_index[key] = len(self.attr_sets)
            # norm_attrs(attrs), from the key (in name order already): no second sort.
            self.attr_sets.append({name: value for name, _, value in key})
            self._attr_keys.append(key)
        return n

    def where_ref(self, where: Any) -> int | None:
        """The number of a (valid) filter; None for no filter."""
        if where is None:
            return None
        c = filters.canonical(where)
        key = filters.dumps_canonical(c)
        n = self._where_index.get(key)
        if n is None:
            n = self._where_index[key] = len(self.wheres)
            self.wheres.append(c)
        return n

    def stored_attrs(self, state: VectorState, id_: str) -> dict | None:
        if id_ not in state.items:
            return None
        aref = state.attrs.get(id_)
        return dict(self.attr_sets[aref]) if aref is not None else {}

    def _attrs_agree(self, state: VectorState, id_: str, out: Any) -> bool:
        # stored_attrs compared by attrs_key, the stored set's key known already.
        if id_ not in state.items or out is None:
            return out is None and id_ not in state.items
        aref = state.attrs.get(id_)
        return isinstance(out, dict) and filters.attrs_key(out) == (
            self._attr_keys[aref] if aref is not None else ())

    def matching(self, items: dict[str, int], attrs: dict[str, int], where: int | None) -> dict[str, int]:
        """The live ids (and their refs) that pass filter number ``where``."""
        if where is None:
            return items
        test = self._matchers.get(where)
        if test is None:
            test = self._matchers[where] = filters.matcher(self.wheres[where])
        memo = self._match.get(where)       # attribute-set number -> passes
        if memo is None:
            memo = self._match[where] = {None: test(None)}
        # Every attribute set in the state asked first (``attrs`` holds live
        # ids only; None: no attributes), then the live ids kept in order.
        for aref in attrs.values():
            if aref not in memo:
                memo[aref] = test(self.attr_sets[aref])
        return {id_: ref for id_, ref in items.items() if memo[attrs.get(id_)]}

    def search_problem(self, items: dict[str, int], qref: int, limit: int, out: Any,
                       refs: dict[int, int] | None = None, exact: bool = False,
                       where: int | None = None, attrs: dict[str, int] | None = None) -> str | None:
        """None if ``out`` is an admissible answer in this state, else why not.

        ``refs`` (live ids per vector ref, as VectorState keeps it) makes
        the left-out check O(table) instead of O(live ids). ``exact=True``
        holds it to the exact rules even on an ANN backend. ``where`` (a
        filter number) ranks only the live ids that pass it (``attrs``: the
        state's attribute sets)."""
        if not isinstance(out, (list, tuple)):
            return f"search output is {_show(out)}, not a list of hits"
        if len(out) == 2 and out[0] == "malformed":     # _output's mark: hits are (id, score) tuples
            return f"search output is not a list of (id, score) hits: {out[1]}"
        everything = items
        if where is not None:
            items = self.matching(items, attrs or NO_ATTRS, where)
            refs = None
        live = len(items)
        want = min(limit, live)
        if len(out) != want:
            if where is not None:
                return (f"filter {filters.show(self.wheres[where])} matches {live} live ids; "
                        f"search(limit={limit}) returned {len(out)} hits, {want} expected")
            return (f"search(limit={limit}) returned {len(out)} hits; {live} ids are live, "
                    f"so {want} were expected")
        sc = self.true_scores(qref)
        cosine = self.metric == "cosine"
        eps = self.eps
        seen: set = set()
        # The rule holds for every pair i < j, so each hit is compared with
        # the lowest true score above it, not just the previous hit's: a run
        # of near-ties may then not drift by more than score_eps in total.
        # Keeping that minimum makes the all-pairs rule O(k).
        lowest = INF
        lowest_id, lowest_rank = None, -1
        for rank, hit in enumerate(out):
            hid, score = hit
            if hid in seen:
                return f"search returned id {hid!r} twice (rank {rank})"
            seen.add(hid)
            ref = items.get(hid)
            if ref is None:
                if where is not None and hid in everything:
                    aref = (attrs or NO_ATTRS).get(hid)
                    return (f"search returned id {hid!r} at rank {rank}, which does not match the filter "
                            f"{filters.show(self.wheres[where])} (its attributes: "
                            f"{self.attr_sets[aref] if aref is not None else {}!r})")
                return f"search returned id {hid!r} at rank {rank}, which is not live (deleted or never stored)"
            t = sc[ref]
            e = eps if cosine else self.tol(t)
            if not abs(score - t) <= e:
                return (f"search gave id {hid!r} score {score!r} at rank {rank}; its true {self.metric} "
                        f"score is {t!r} (off by more than {_eps_text(self.metric, eps)})")
            if t > lowest + (eps if cosine else self.tol(lowest)):
                return (f"search ranks {hid!r} (true score {t!r}) at rank {rank} below "
                        f"{lowest_id!r} (true score {lowest!r}) at rank {lowest_rank}: out of order "
                        f"by {t - lowest:.3g}, more than {_eps_text(self.metric, eps)}")
            if t < lowest:
                lowest, lowest_id, lowest_rank = t, hid, rank
        if (self.exact or exact) and want < live:
            bar = lowest + (eps if cosine else self.tol(lowest))
            if refs is not None:
                # Every live id above the bar is a hit exactly when as many
                # hits as live ids lie above it (hits are distinct live ids);
                # only then is it worth naming the one left out.
                above = sum(n for ref, n in refs.items() if sc[ref] > bar)
                if above == sum(1 for hid, _ in out if sc[items[hid]] > bar):
                    return None
            for id_, ref in items.items():
                if id_ not in seen and sc[ref] > bar:
                    within = "" if where is None else f" (it matches the filter {filters.show(self.wheres[where])})"
                    return (f"search(limit={limit}) left out {id_!r}{within} with true score {sc[ref]!r}, "
                            f"above its lowest hit ({lowest!r}) by more than {_eps_text(self.metric, eps)}")
        return None

    # -- from a history ---------------------------------------------------
    def operations(self, pairs: Iterable["PairedOp"], atomic_batches: bool) -> list[Operation]:
        """Encode paired history ops as checker operations.

        Failed ops did not happen and are dropped; so are reads whose
        outcome is unknown. A batch on a backend without atomic batches
        becomes one single store per item, sharing the batch's interval.
        The load phase's acknowledged batches (process ``load``, one after
        another at quiescence) are one step, on any backend: nothing could
        observe a state between them, and a 16k-row load then costs the
        search one state, not 16k.
        """
        ops: list[Operation] = []
        load: list["PairedOp"] = []
        wiped = False
        valid_ids, problems = self._valid_ids, self._problems
        for p in pairs:
            if p.process == "load" and self._loaded(p):
                load.append(p)
                continue
            if load:
                ops.append(self._load_step(len(ops), load))
                load = []
            if p.type == "fail":
                continue
            unknown = p.type != "ok"
            if unknown:
                out, ret = UNKNOWN, INF
            else:
                out, ret = p.output, p.ret
                if out is not None and out.__class__ is not bool and out.__class__ is not int:
                    out = self._output(p.f, out)   # None, a bool, an int: as recorded
            v = p.input if isinstance(p.input, dict) else {}
            f = p.f
            if f == "store_batch":
                items = [tuple(it) for it in v.get("items", [])]
                bad = self._batch_problem(items)
                # A partial write's applied ids are only a hint for the
                # witness order (unapplied items go last, i.e. never).
                applied = set(p.applied) if unknown and p.applied is not None else None
                if bad is None:
                    items = [(it[0], it[1], self.attr_ref(it[2]) if len(it) == 3 else None) for it in items]
                if bad is None and not atomic_batches:
                    for i, r, a in items:
                        d = p.dispatch if applied is None or i in applied else None
                        ops.append(Operation(len(ops), p.process, "store", ("store", i, r, a, None),
                                             out, p.call, ret, d, p.index))
                    continue
                inp: tuple = ("batch", tuple(items), bad)
                if applied is not None and not applied:
                    ops.append(Operation(len(ops), p.process, "batch", inp, out, p.call, ret,
                                         None, p.index))
                    continue
            elif f == "store":
                id_, ref, attrs = v.get("id"), v.get("vector"), v.get("attrs")
                # _id_problem and _vec_problem, their memo asked here first.
                bad = (None if id_.__class__ is str and id_ in valid_ids else self._id_problem(id_)) \
                    or (problems[ref] if ref.__class__ is int and ref in problems else self._vec_problem(ref)) \
                    or filters.attrs_problem(attrs)
                inp = ("store", id_, ref, None if bad else self.attr_ref(attrs), bad)
            elif f in ("delete", "get", "exists", "get_attrs"):
                id_ = v.get("id")
                inp = (f, id_, None if id_.__class__ is str and id_ in valid_ids else self._id_problem(id_))
            elif f == "count":
                inp = ("count", None)
            elif f == "search":
                kind = "search_exact" if v.get("exact") is True else "search"
                bad = self._vec_problem(v.get("vector")) or limit_problem(v.get("limit"))
                wref = None
                if bad is None:
                    # One canonical pass: where_ref's own raises what
                    # where_problem would have said.
                    try:
                        wref = self.where_ref(v.get("where"))
                    except ValueError as exc:
                        bad = str(exc)
                inp = (kind, v.get("vector"), v.get("limit"), wref, bad)
            elif f == "maintenance":
                inp = ("maintenance", None)
            elif f == "wipe":
                inp = ("wipe", v.get("carrier"), None)   # the last slot: no input problem
                wiped = True
            else:
                raise ValueError(f"history op {f!r} is not part of the vector model")
            if unknown and inp[0] not in WRITES:
                continue  # an unseen read constrains nothing
            ops.append(Operation(len(ops), p.process, inp[0], inp, out, p.call, ret, p.dispatch, p.index))
        if load:
            ops.append(self._load_step(len(ops), load))
        return _end_before_wipes(ops) if wiped else ops

    def _loaded(self, p: "PairedOp") -> bool:
        """A load-phase batch that was acknowledged and whose input is valid."""
        if p.process != "load" or p.f != "store_batch" or p.type != "ok" or p.output is not None:
            return False
        v = p.input if isinstance(p.input, dict) else {}
        items = v.get("items")
        return isinstance(items, list) and self._batch_problem(items) is None

    def _batch_problem(self, items: list) -> str | None:
        """batch_problem for table refs, each ref's vector checked once."""
        seen: set[str] = set()
        for n, item in enumerate(items):
            if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
                return f"batch item {n} is not an (id, vector) pair or (id, vector, attrs) triple"
            id_, ref = item[0], item[1]
            problem = (self._id_problem(id_) or self._vec_problem(ref)
                       or (filters.attrs_problem(item[2]) if len(item) == 3 else None))
            if problem:
                return f"batch item {n}: {problem}"
            if id_ in seen:
                return f"batch repeats id {id_!r}"
            seen.add(id_)
        return None

    def _load_step(self, n: int, load: list["PairedOp"]) -> Operation:
        """Consecutive load batches as one batch: applied in order, the last
        write of an id winning (as applying them one after another does)."""
        merged: dict[str, tuple[int, int | None]] = {}
        for p in load:
            for item in p.input["items"]:
                id_ = item[0]
                merged.pop(id_, None)
                merged[id_] = (item[1], self.attr_ref(item[2]) if len(item) == 3 else None)
        first, last = load[0], load[-1]
        items = tuple((i, r, a) for i, (r, a) in merged.items())
        return Operation(n, first.process, "batch", ("batch", items, None), None,
                         first.call, last.ret, first.dispatch, first.index)

    def _id_problem(self, id_: Any) -> str | None:
        """id_problem, each valid id checked once."""
        if type(id_) is str and id_ in self._valid_ids:
            return None
        problem = id_problem(id_)
        if problem is None:
            self._valid_ids.add(id_)
        return problem

    def _vec_problem(self, ref: Any) -> str | None:
        """vector_problem for a table ref, computed once per ref."""
        if not isinstance(ref, int):
            return vector_problem(self._vec(ref), self.dim, self.metric)
        if ref not in self._problems:
            self._problems[ref] = vector_problem(self._vec(ref), self.dim, self.metric)
        return self._problems[ref]

    def _vec(self, ref: Any) -> Any:
        if isinstance(ref, int) and 0 <= ref < len(self.vectors):
            return self.vectors[ref]
        return None

    @staticmethod
    def _output(f: str, out: Any) -> Any:
        if f == "get_attrs" and isinstance(out, dict) and set(out) == {"attrs"}:
            return out["attrs"] if isinstance(out["attrs"], dict) else ("malformed", repr(out)[:200])
        if isinstance(out, dict):
            if out.get("error") == "InvalidInput":
                return INVALID
            return ("malformed", out.get("malformed") or out.get("error"))
        if f == "search" and isinstance(out, list):
            try:
                return tuple([(h[0], float(h[1])) for h in out])
            except (TypeError, ValueError, IndexError):
                return ("malformed", repr(out)[:200])
        return out


def _end_before_wipes(ops: list[Operation]) -> list[Operation]:
    """A write still open when a wipe (a server crash that empties the
    namespace) came cannot take effect after it: its session died with the
    server. Its interval ends just before the wipe, so the search places it
    before the wipe (where any effect is wiped) and never after; left open
    it could bring a row back after recovery, which the store must not.
    The one exception is the wipe's ``carrier``, the call the crash fired
    under: the crash may have come before that call reached the store, which
    then ran it after recovery; it stays open."""
    wipes = sorted((op.call, op.input[1]) for op in ops if op.f == "wipe")
    if not wipes:
        return ops
    for op in ops:
        if op.ret == INF and op.f in WRITES:
            later = [(t, carrier) for t, carrier in wipes if t > op.call]
            if later and (op.dispatch is None or op.dispatch != later[0][1]):
                op.ret = max(op.call, later[0][0] - 1)
    return ops


def _put(state: VectorState, rows: Iterable[tuple]) -> VectorState:
    """``state`` after upserts of ``(id, ref)`` or ``(id, ref, attrs ref)``
    rows: vector and attributes replaced together."""
    new = dict(state.items)
    refs = dict(state.refs)
    h = state.h
    attrs = state.attrs
    copied = False
    for row in rows:
        id_, ref = row[0], row[1]
        aref = row[2] if len(row) == 3 else None
        olda = attrs.get(id_)
        if olda != aref:
            if not copied:
                attrs, copied = dict(attrs), True
            if olda is not None:
                h ^= _ah(id_, olda)
                del attrs[id_]
            if aref is not None:
                h ^= _ah(id_, aref)
                attrs[id_] = aref
        old = new.get(id_)
        if old == ref:
            continue
        if old is not None:
            h ^= _eh(id_, old)
            n = refs[old] - 1
            if n:
                refs[old] = n
            else:
                del refs[old]
        new[id_] = ref
        refs[ref] = refs.get(ref, 0) + 1
        h ^= _eh(id_, ref)
    return VectorState(new, h, refs, attrs)


def _put_into(items: dict[str, int], refs: dict[int, int], attrs: dict[str, int],
              rows: Iterable[tuple]) -> None:
    """``_put`` on mutable dicts, in place (no hash: for ``replay``). The
    same changes in the same order, so every dict keeps the order
    ``_put``'s copies would have."""
    for row in rows:
        id_, ref = row[0], row[1]
        aref = row[2] if len(row) == 3 else None
        olda = attrs.get(id_)
        if olda != aref:
            if olda is not None:
                del attrs[id_]
            if aref is not None:
                attrs[id_] = aref
        old = items.get(id_)
        if old == ref:
            continue
        if old is not None:
            n = refs[old] - 1
            if n:
                refs[old] = n
            else:
                del refs[old]
        items[id_] = ref
        refs[ref] = refs.get(ref, 0) + 1


def _eps_text(metric: str, eps: float) -> str:
    return f"score_eps={eps}" if metric == "cosine" else f"score_eps={eps} (relative under {metric})"


def _less(refs: dict[int, int], ref: int) -> dict[int, int]:
    """``refs`` with one id of ``ref`` fewer."""
    out = dict(refs)
    n = out[ref] - 1
    if n:
        out[ref] = n
    else:
        del out[ref]
    return out


def _show(out: Any, vec: bool = False) -> str:
    if out is UNKNOWN:
        return "no answer"
    if out == INVALID:
        return "InvalidInput"
    if vec and isinstance(out, int) and not isinstance(out, bool):
        return f"vector #{out}"
    return repr(out)
