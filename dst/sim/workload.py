"""Workloads: the vectors, ids and operations of one seed.

Vectors come from a per-seed pool (so a history refers to each one once,
and searches meet the same vectors again); ids from a universe with a hot
and a cold range so operations collide. A small share of operations get a
bad input, which every backend and the oracle must refuse as InvalidInput.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from functools import partial
from typing import Any, Callable, NamedTuple

import numpy as np

from dst import filters
from dst.history import VectorTable
from dst.rng import PPM, PPM_BITS, Rng, fixed_chance
from dst.sim.scenario import SeedParams
from dst.validate import ID_MAX_CHARS

# Ids that break naive escaping: quotes, backslashes, LIKE wildcards, SQL
# fragments, non-ASCII and width extremes. Each gets a numeric suffix so
# the universe has no duplicates.
HOSTILE_STEMS = (
    "'", '"', "\\", "%", "_", "%_%", "' OR '1'='1", "'; DROP TABLE t; --",
    "a b", "\t", "ü", "日本語", "🙂", "$1", "?", "NULL", "{}", "[0]",
    "col(\"id\") == ", "\u00a0", "x" * (ID_MAX_CHARS - 8),
)

# Families of ids a careless store folds into one: each family's members
# differ only in case, in leading or trailing spaces (a PAD SPACE collation
# ignores trailing ones), in Unicode normalization form (NFC vs NFD, and a
# singleton that NFC maps), or by zero-width or full-width characters
# (NFKC folds those). Every member is a distinct, valid id; a store that
# collates two members together answers a get, exists, count or search of
# the other wrongly. ``tag`` keeps the families of one universe apart.
def _wide(text: str) -> str:
    """The full-width form of ASCII letters and digits."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


ID_FAMILIES = {
    "case": lambda tag: (f"Case{tag}", f"case{tag}", f"CASE{tag}"),
    "case-accented": lambda tag: (f"\u00c9t\u00e9{tag}", f"\u00e9t\u00e9{tag}", f"\u00c9T\u00c9{tag}"),
    "space": lambda tag: (f"pad{tag}", f"pad{tag} ", f" pad{tag}", f"pad{tag}  "),
    "nfc-nfd": lambda tag: (f"caf\u00e9{tag}", f"cafe\u0301{tag}"),
    "nfc-singleton": lambda tag: (f"\u00c5ngstr\u00f6m{tag}", f"A\u030angstro\u0308m{tag}",
                                  f"\u212bngstr\u00f6m{tag}"),
    "zero-width": lambda tag: (f"zw{tag}", f"z\u200bw{tag}", f"zw{tag}\u200d", f"\ufeffzw{tag}"),
    "full-width": lambda tag: (f"wide{tag}", _wide(f"wide{tag}"), f"wide{_wide(str(tag))}"),
}
FAMILY_KINDS = tuple(ID_FAMILIES)
# One family per this many ids of hostile share (default: 32 ids at 0.25 ->
# 2 families; hostile-ids: 24 ids at 1.0 -> up to 6), in at most half the
# universe.
IDS_PER_FAMILY = 4

# On a cap seed, one search in this many asks for a limit around the cap:
# one such answer catches a silent cap, and each costs O(cap) to check.
CAP_SEARCH_ONE_IN = 16

# Bad inputs: each one an InvalidInput case from DESIGN.
BAD_ID_KINDS = ("empty", "nul", "surrogate", "too-long")
BAD_VECTOR_KINDS = ("wrong-dim", "nan", "inf", "zero")

# Near-duplicate perturbation sizes, around score_eps (1e-4): some pairs
# tie within eps, some are just above it.
NEAR_DUP_SCALES = (1e-6, 2e-5, 5e-5, 2e-4, 5e-4)


# Attribute values that break naive escaping in a filter string: quotes,
# backslashes, LIKE wildcards, SQL and format fragments, control characters
# (no NUL: no store keeps one), non-ASCII, the empty string, the longest.
HOSTILE_VALUES = (
    "'", '"', "\\", "\\'", "%", "_", "%_%", "' OR '1'='1", "'; DROP TABLE t; --", "a b", "\t", "\n",
    "\r\n", "\x01", "\x1f", "\x7f", "\u2028", "ü", "日本語", "🙂", "$1", "?", "%s", "{0}", "${x}",
    "NULL", "null", "", "{}", "[0]", "1e3", "tenant = 't1'", "x" * filters.MAX_STR,
)
TENANTS = 10            # tenant t0..t9, one row in ten each
N_RANGE = 1000          # n uniform in [0, 1000): n < 1 is 0.1%, n < 10 1%, ... n < 1000 all
BIG_INTS = (filters.INT_MIN, filters.INT_MAX, -1, 0, 2 ** 53 + 1)
TENANT_VALUES = tuple(f"t{i}" for i in range(TENANTS))
# The selectivity ladder over n: 0%, 0.1%, 1%, 10%, 50%, 100% of the rows that have n.
N_CUTS = (0, 1, 10, 100, 500, 1000)


# The op mix's weights in all up to which next_op looks a draw's kind up in
# a list (one entry per unit of weight) rather than among running totals.
OP_TABLE_MAX = 4096

# The ops that name one id (next_op draws it as pick_id does).
_ONE_ID = frozenset(("store", "delete", "get", "exists"))


class OpSpec(NamedTuple):
    """One operation to invoke: kind and input (vectors as table refs).
    A named tuple: one is made per op, and a tuple is the cheapest record."""

    f: str
    value: dict[str, Any]


# An OpSpec made from a (f, value) tuple without the Python-level __new__
# a named tuple's constructor runs.
_spec = partial(tuple.__new__, OpSpec)


class Workload:
    def __init__(self, params: SeedParams, rng: Rng, table: VectorTable):
        self.params = params
        self.s = params.scenario
        self.dim = params.dim
        self.table = table
        self.rng = rng
        self.ids = self._make_ids(rng.fork("ids"))
        self.hot = self.ids[: self.s.hot_ids]
        self.cold = self.ids[self.s.hot_ids:]
        self.pool = self._make_pool(rng.fork("vectors"))
        kinds = [k for k in self.params.op_weights if self.params.op_weights[k] > 0]
        self.kinds = kinds
        self.weights = [self.params.op_weights[k] for k in kinds]
        # next_op's draws written out (the same numbers as the Rng methods
        # they stand for): the kind is below(total) placed among the running
        # totals (rng.weighted), a pick is (items, n, n.bit_length()) for
        # below(n) (rng.choice), a share its chance.
        self._op_edges: list[int] = []
        for w in self.weights:
            self._op_edges.append((self._op_edges[-1] if self._op_edges else 0) + w)
        self._op_total = self._op_edges[-1] if kinds else 0
        # x -> its kind, for a mix of at most OP_TABLE_MAX weight in all.
        self._op_of: list[str] | None = None
        if self._op_total <= OP_TABLE_MAX:
            self._op_of = []
            for kind, w in zip(kinds, self.weights):
                self._op_of += [kind] * w
        self._op_bits = self._op_total.bit_length()
        s = self.s
        self._hot_pick = _pick(self.hot)
        self._cold_pick = _pick(self.cold) if self.cold else self._hot_pick
        # pick_id: the hot range unless there is a cold one and chance(hot
        # share) says no; a chance at 0 or 1e6 draws nothing.
        self._hot_draws = bool(self.cold) and 0 < s.hot_share_ppm < PPM
        self._id_pick = self._hot_pick if not self.cold or s.hot_share_ppm >= PPM else self._cold_pick
        self._pool_pick = _pick(self.pool)
        # The shares drawn with every op, as fixed_chance says (None: drawn).
        self._invalid_fixed = fixed_chance(s.invalid_ppm)
        self._attrs_fixed = fixed_chance(s.attrs_share_ppm)
        self._get_attrs_fixed = fixed_chance(s.get_attrs_share_ppm)
        self._limit_pick = (s.limit_min, s.limit_max - s.limit_min + 1,
                            (s.limit_max - s.limit_min + 1).bit_length())
        self._streams: dict[int, _Stream] = {}
        # Bad inputs come from a child of the drawing client's own RNG, by its
        # seed: in threads mode each client's op stream is then its own,
        # whatever the interleaving (one shared child would not be).
        self._bad: dict[int, Rng] = {}
        # Attributes and filters: on once the backend is known to take them
        # (the runner decides, from the scenario's [filters] use). They are
        # drawn from children of their own, so the op stream is the same
        # with filters on or off.
        self.use_filters = False
        self._flt: dict[int, Rng] = {}

    # -- setup --------------------------------------------------------------
    def _make_ids(self, rng: Rng) -> list[str]:
        n = self.s.hot_ids + self.s.cold_ids
        ids = self._families(rng.fork("families"), n)
        for i in range(len(ids), n):
            if rng.chance(self.s.hostile_share_ppm):
                ids.append(f"{rng.choice(HOSTILE_STEMS)}{i}")
            else:
                ids.append(f"k{i}")
        assert len(set(ids)) == len(ids), "the id universe repeats an id"
        return ids

    def _families(self, rng: Rng, n: int) -> list[str]:
        """Confusable families (ID_FAMILIES), where ids are hostile at all.

        They open the universe, interleaved by member: first members come
        first, so each family has one in the hot range and its others in
        the hot range or just after, and ops meet two members of one family
        in most seeds. Kinds go round from a drawn start, so the families of
        one seed are of different kinds.
        """
        if self.s.hostile_share_ppm <= 0 or n < 2:
            return []
        count = max(1, round(n * self.s.hostile_share_ppm / PPM / IDS_PER_FAMILY))
        start = rng.below(len(FAMILY_KINDS))
        families: list[list[str]] = []
        room = max(2, n // 2)    # the other half stays for the hostile stems
        for j in range(count):
            members = list(ID_FAMILIES[FAMILY_KINDS[(start + j) % len(FAMILY_KINDS)]](j))
            k = min(rng.between(2, len(members)), room)
            if k < 2:
                break
            families.append(rng.sample(members, k))
            room -= k
        out: list[str] = []
        for m in range(max(len(f) for f in families)):
            out.extend(f[m] for f in families if m < len(f))
        return out

    def _make_pool(self, rng: Rng) -> list[int]:
        """Vector refs of the pool, in a fixed order.

        Vector i is gaussian (the first always), clustered (one of four
        centers plus a tenth of noise), a duplicate (a scaled copy of an
        earlier vector: the same direction, so exactly equal scores) or a
        near-duplicate (an earlier vector plus noise of a NEAR_DUP_SCALES
        size), each as float32, never zero. The kinds and choices come from
        ``rng``, the noise from its numpy child, one standard_normal(dim)
        per gaussian, clustered and near-duplicate vector in pool order
        after the centers'. The two streams never depend on each other, so
        the choices are drawn first, all the noise in one call (the same
        numbers as one call per vector), and the gaussian and clustered
        vectors made in a few whole-array steps; the copies, which depend
        on earlier vectors, one by one, as before.
        """
        g = rng.np
        dim, kinds, size = self.dim, self.params.vector_kinds, self.s.vector_pool
        centers = g.standard_normal((4, dim))
        # Per vector: kind, the noise row it takes (-1: none), the center or
        # source vector, the scale.
        made: list[tuple[str, int, int, float]] = []
        rows = 0
        for i in range(size):
            kind = rng.choice(kinds) if i else "gaussian"
            if kind == "gaussian":
                made.append((kind, rows, 0, 0.0))
                rows += 1
            elif kind == "clustered":
                made.append((kind, rows, rng.below(4), 0.0))
                rows += 1
            elif kind == "duplicates":
                src = rng.below(i)
                made.append((kind, -1, src, rng.choice((1.0, 2.0, 0.5))))
            else:  # near-duplicates
                src = rng.below(i)
                made.append((kind, rows, src, rng.choice(NEAR_DUP_SCALES)))
                rows += 1
        noise = g.standard_normal((rows, dim))
        out = np.zeros((size, dim), dtype=np.float64)     # the copies' rows are set below
        gauss = [i for i, m in enumerate(made) if m[0] == "gaussian"]
        out[gauss] = noise[[made[i][1] for i in gauss]]
        clust = [i for i, m in enumerate(made) if m[0] == "clustered"]
        if clust:
            out[clust] = centers[[made[i][2] for i in clust]] + 0.1 * noise[[made[i][1] for i in clust]]
        v32 = out.astype(np.float32)
        v32[~np.logical_or.reduce(v32, axis=1)] = 1.0    # never a zero vector in the valid pool
        base = v32.astype(np.float64)      # each vector as float64, what the copies scale
        for i, (kind, row, src, scale) in enumerate(made):
            if kind == "duplicates":
                v = base[src] * scale
            elif kind == "near-duplicates":
                s, nz = base[src], noise[row]
                # np.linalg.norm of a 1-D float64 array is sqrt(x.dot(x)):
                # the same number without its wrapper's checks.
                v = s + scale * math.sqrt(s.dot(s)) * nz / max(math.sqrt(nz.dot(nz)), 1e-12)
            else:
                continue
            v32[i] = v
            if not np.logical_or.reduce(v32[i]):
                v32[i] = 1.0
            base[i] = v32[i]
        ref = self.table.ref
        return [ref(v) for v in v32]

    # -- drawing ------------------------------------------------------------
    def pick_id(self, rng: Rng) -> str:
        if not self.cold or rng.chance(self.s.hot_share_ppm):
            return rng.choice(self.hot)
        return rng.choice(self.cold)

    def pick_ids(self, rng: Rng, n: int) -> list[str]:
        """``n`` distinct ids (at most the universe): pick_id's draws."""
        return self._ids_drawn(rng.bits_source(), n)

    def _ids_drawn(self, bits: Callable[[int], int], n: int) -> list[str]:
        """pick_ids on a generator's getrandbits, each pick_id written out
        (as in next_op)."""
        n = min(n, len(self.ids))
        chosen: list[str] = []
        seen: set[str] = set()
        hot_draws, ppm = self._hot_draws, self.s.hot_share_ppm
        # Bounded: at most 4n draws from the hot/cold mix, then fill in order.
        for _ in range(4 * n):
            if len(chosen) == n:
                break
            if hot_draws:
                x = bits(PPM_BITS)
                while x >= PPM:
                    x = bits(PPM_BITS)
                ids, m, k = self._hot_pick if x < ppm else self._cold_pick
            else:
                ids, m, k = self._id_pick
            x = bits(k)
            while x >= m:
                x = bits(k)
            i = ids[x]
            if i not in seen:
                seen.add(i)
                chosen.append(i)
        for i in self.ids:
            if len(chosen) == n:
                break
            if i not in seen:
                seen.add(i)
                chosen.append(i)
        return chosen

    def pick_vector(self, rng: Rng) -> int:
        return rng.choice(self.pool)

    def pick_limit(self, rng: Rng) -> int:
        """The scenario's limit range; on a cap seed, one search in
        CAP_SEARCH_ONE_IN asks for a limit at or just around the cap (more
        rows are live; the probes' exhaustive search goes past it too)."""
        cap = self.params.cap
        if cap is not None and rng.below(CAP_SEARCH_ONE_IN) == 0:
            return rng.choice(cap_limits(cap))
        return rng.between(self.s.limit_min, self.s.limit_max)

    def bulk_items(self) -> list[list]:
        """A cap seed's bulk rows: ids outside the universe (``bulk0``, ...),
        loaded once and never touched by an op, so the probes check them by
        count and exhaustive search, not one by one."""
        cap = self.params.cap
        if cap is None:
            return []
        rng = self.rng.fork("bulk")
        items = [[f"bulk{i}", self.pick_vector(rng)] for i in range(cap_rows(cap))]
        return self.with_attrs(items, self.rng.fork("bulk-attrs"))

    def with_attrs(self, items: list[list], r: Rng) -> list[list]:
        """Batch items given attributes (when filters are on), from ``r``."""
        if not self.use_filters:
            return items
        for it in items:
            if r.chance(self.s.attrs_share_ppm):
                it.append(self.row_attrs(r))
        return items

    def next_op(self, rng: Rng, maintenance: bool) -> OpSpec:
        """Draw one operation from the seed's mix, with a chance of bad input.

        Every op is planned here, so the common draws are written out on
        the client's getrandbits (``Rng.bits_source``): each is the Rng
        method named beside it, the same numbers in the same order. The
        rarer ops (batches, maintenance, cap limits, bad inputs) call the
        methods themselves.
        """
        st = self._streams.get(rng.seed)
        if st is None:
            st = self._stream(rng)
        bits = st.bits
        s = self.s
        total, k = self._op_total, self._op_bits
        assert total > 0, self.weights     # (rng.weighted's own check: no draw from nothing)
        while True:
            x = bits(k)                     # rng.weighted(self.kinds, self.weights)
            while x >= total:
                x = bits(k)
            f = self._op_of[x] if self._op_of is not None else self.kinds[bisect_right(self._op_edges, x)]
            if f != "maintenance" or maintenance:
                break
            if len(self.kinds) == 1:
                f = "store"
                break
        if f in _ONE_ID:
            if self._hot_draws:             # pick_id
                x = bits(PPM_BITS)
                while x >= PPM:
                    x = bits(PPM_BITS)
                ids, n, k = self._hot_pick if x < s.hot_share_ppm else self._cold_pick
            else:
                ids, n, k = self._id_pick
            x = bits(k)
            while x >= n:
                x = bits(k)
            if f == "store":
                pool, n, k = self._pool_pick    # pick_vector
                y = bits(k)
                while y >= n:
                    y = bits(k)
                value: dict[str, Any] = {"id": ids[x], "vector": pool[y]}
            else:
                value = {"id": ids[x]}
        elif f == "search":
            pool, n, k = self._pool_pick        # pick_vector
            y = bits(k)
            while y >= n:
                y = bits(k)
            if self.params.cap is None:         # pick_limit: between(limit_min, limit_max)
                lo, n, k = self._limit_pick
                x = bits(k)
                while x >= n:
                    x = bits(k)
                limit = lo + x
            else:
                limit = self.pick_limit(rng)
            value = {"vector": pool[y], "limit": limit}
        elif f == "count":
            value = {}
        elif f == "store_batch":
            items = []
            pool, n, k = self._pool_pick
            for i in self._ids_drawn(bits, rng.between(s.batch_min, s.batch_max)):
                y = bits(k)                     # pick_vector
                while y >= n:
                    y = bits(k)
                items.append([i, pool[y]])
            value = {"items": items}
        else:
            value = {"kind": rng.choice(s.maintenance_kinds)}
        bad = self._invalid_fixed               # rng.chance(invalid_ppm)
        if bad is None:
            x = bits(PPM_BITS)
            while x >= PPM:
                x = bits(PPM_BITS)
            bad = x < s.invalid_ppm
        if bad:
            value = self._corrupt(f, value, self._bad_rng(rng))
        if self.use_filters:
            # Attributes or a filter for the op (and, at the invalid rate, a
            # bad one), from the client's filters child: its own stream, so
            # the draws above are the same with filters on or off.
            bits = st.fbits
            if bits is None:
                bits = st.fbits = st.flt.bits_source()
            bad = self._invalid_fixed                   # r.chance(invalid_ppm)
            if bad is None:
                x = bits(PPM_BITS)
                while x >= PPM:
                    x = bits(PPM_BITS)
                bad = x < s.invalid_ppm
            if f == "store":
                if bad:
                    value["attrs"] = self.bad_attrs(st.flt)
                else:
                    yes = self._attrs_fixed             # r.chance(attrs_share_ppm)
                    if yes is None:
                        x = bits(PPM_BITS)
                        while x >= PPM:
                            x = bits(PPM_BITS)
                        yes = x < s.attrs_share_ppm
                    if yes:
                        value["attrs"] = drawn_attrs(bits)
            elif f == "store_batch":
                r = st.flt
                items = value["items"]
                for it in items:
                    yes = self._attrs_fixed             # r.chance(attrs_share_ppm)
                    if yes is None:
                        x = bits(PPM_BITS)
                        while x >= PPM:
                            x = bits(PPM_BITS)
                        yes = x < s.attrs_share_ppm
                    if yes:
                        it.append(drawn_attrs(bits))
                if bad and items:
                    it = items[r.below(len(items))]
                    del it[2:]
                    it.append(self.bad_attrs(r))
            elif f == "search":
                if bad:
                    value["where"] = self.bad_where(st.flt)
                elif st.flt.chance(s.filter_share_ppm):
                    value["where"] = self.pick_where(st.flt)
            elif f == "get":
                yes = self._get_attrs_fixed                 # r.chance(get_attrs_share_ppm)
                if yes is None:
                    x = bits(PPM_BITS)
                    while x >= PPM:
                        x = bits(PPM_BITS)
                    yes = x < s.get_attrs_share_ppm
                if yes:
                    f = "get_attrs"
        return _spec((f, value))

    def _stream(self, rng: Rng) -> "_Stream":
        st = self._streams[rng.seed] = _Stream(rng.bits_source(), self._flt_rng(rng))
        return st

    # -- attributes and filters ------------------------------------------------
    def _flt_rng(self, rng: Rng) -> Rng:
        r = self._flt.get(rng.seed)
        if r is None:
            r = self._flt[rng.seed] = rng.fork("filters")
        return r

    def row_attrs(self, r: Rng) -> dict[str, Any]:
        """One row's attributes: low-cardinality values, some left out."""
        return drawn_attrs(r.bits_source())

    def leaf_where(self, r: Rng) -> dict[str, Any]:
        k = r.below(12)
        if k == 0:
            return {"eq": ["tenant", f"t{r.below(TENANTS + 1)}"]}     # t10: matches nothing
        if k == 1:
            return {"ne": ["tenant", f"t{r.below(TENANTS)}"]}
        if k == 2:
            # In canonical form: the values sorted, once each.
            return {"in": ["tenant", sorted({TENANT_VALUES[r.below(TENANTS)] for _ in range(r.between(1, 3))})]}
        if k in (3, 4, 5):
            return {r.choice(("lt", "le", "gt", "ge")): ["n", r.choice(N_CUTS)]}
        if k == 6:
            return {"eq": ["flag", r.below(2) == 0]}
        if k == 7:
            return {"exists": r.choice(("label", "big", "nope"))}
        if k == 8:
            return {"eq": ["label", r.choice(HOSTILE_VALUES)]}
        if k == 9:
            return {r.choice(("eq", "lt", "ge")): ["big", r.choice(BIG_INTS)]}
        if k == 10:    # another type than the rows hold: matches nothing, its not everything
            return r.choice(({"eq": ["n", "5"]}, {"eq": ["tenant", 5]}, {"eq": ["flag", 1]}))
        return {"ne": ["label", r.choice(HOSTILE_VALUES)]}

    def pick_where(self, r: Rng) -> Any:
        """A filter: a leaf, or a small and/or/not over leaves, made in its
        canonical form (``filters.canonical(w) == w``: every leaf is valid
        as drawn, and an ``in`` sorts its values; tests/sim/test_plan_equivalence.py),
        so it is not walked again here. The store still validates it as any
        filter it is given."""
        k = r.below(10)
        if k < 5:
            w: Any = self.leaf_where(r)
        elif k == 5:
            w = {"not": self.leaf_where(r)}
        elif k in (6, 7):
            w = {"and": [self.leaf_where(r), self.leaf_where(r)]}
        elif k == 8:
            w = {"or": [self.leaf_where(r), {"not": self.leaf_where(r)}]}
        else:
            w = r.choice(({"and": []}, {"or": []}, {"not": {"and": []}}))
        return w

    def bad_attrs(self, r: Rng) -> Any:
        """Attributes every backend must refuse as InvalidInput."""
        return r.choice((
            {f"a{i}": i for i in range(filters.MAX_ATTRS + 1)},
            {"Tenant": "t1"}, {"1n": 1}, {"": 1}, {"n" * 33: 1}, {"n": 1.5}, {"n": None},
            {"n": [1]}, {"n": 2 ** 63}, {"n": -(2 ** 63) - 1}, {"label": "x" * (filters.MAX_STR + 1)},
            {"label": "a\x00b"}, {"label": "\ud800"}, ["tenant", "t1"],
        ))

    def bad_where(self, r: Rng) -> Any:
        """Filters every backend must refuse as InvalidInput."""
        return r.choice((
            {"eq": ["Tenant", "t1"]}, {"lt": ["n", "5"]}, {"lt": ["n", True]}, {"like": ["tenant", "t%"]},
            {"in": ["n", []]}, {"in": ["n", [1, "a"]]}, {"eq": ["n"]}, {"and": {}}, "tenant = 't1'",
            {"eq": ["n", 1.5]}, {"eq": ["label", "a\x00"]}, {"exists": "N"}, {"eq": ["n", 1], "ne": ["n", 2]},
            {"gt": ["n", 2 ** 63]}, [],
        ))

    def _bad_rng(self, rng: Rng) -> Rng:
        r = self._bad.get(rng.seed)
        if r is None:
            r = self._bad[rng.seed] = rng.fork("bad-inputs")
        return r

    def _corrupt(self, f: str, value: dict[str, Any], r: Rng) -> dict[str, Any]:
        value = dict(value)
        if f in ("store", "delete", "get", "exists") and (f != "store" or r.below(2) == 0):
            value["id"] = self.bad_id(r)
        elif f == "store":
            value["vector"] = self.bad_vector(r)
        elif f == "search":
            if r.below(2) == 0:
                value["limit"] = r.choice((0, -1))
            else:
                value["vector"] = self.bad_vector(r)
        elif f == "store_batch":
            items = [list(it) for it in value["items"]] or [[self.hot[0], self.pool[0]]]
            how = r.below(3)
            if how == 0:      # the same id twice
                items.append([items[0][0], self.pick_vector(r)])
            elif how == 1:
                items[r.below(len(items))][1] = self.bad_vector(r)
            else:
                items[r.below(len(items))][0] = self.bad_id(r)
            value["items"] = items
        return value

    def bad_id(self, r: Rng) -> str:
        kind = r.choice(BAD_ID_KINDS)
        if kind == "empty":
            return ""
        if kind == "nul":
            return "k\x00" + str(r.below(10))
        if kind == "surrogate":
            return "k\ud800"
        return "k" * (ID_MAX_CHARS + 1)

    def bad_vector(self, r: Rng) -> int:
        kind = r.choice(BAD_VECTOR_KINDS)
        v = np.array(self.table[self.pool[0]], dtype=np.float32)
        if kind == "wrong-dim":
            v = np.ones(self.dim + 1, dtype=np.float32)
        elif kind == "nan":
            v[r.below(self.dim)] = np.nan
        elif kind == "inf":
            v[r.below(self.dim)] = np.inf
        else:
            v = np.zeros(self.dim, dtype=np.float32)
        return self.table.ref(v)


class _Stream:
    """One client's draws: its RNG's getrandbits, and the child its filters
    come from (whose getrandbits is taken at its first draw)."""

    __slots__ = ("bits", "flt", "fbits")

    def __init__(self, bits: Callable[[int], int], flt: Rng):
        self.bits = bits
        self.flt = flt
        self.fbits: Callable[[int], int] | None = None


def _pick(items: list) -> tuple[list, int, int]:
    """What ``rng.choice(items)`` draws with: below(n) takes n.bit_length() bits."""
    return items, len(items), len(items).bit_length()


_TENANT_BITS = TENANTS.bit_length()
_N_BITS = N_RANGE.bit_length()
_LABEL_N, _LABEL_BITS = len(HOSTILE_VALUES), len(HOSTILE_VALUES).bit_length()
_BIG_N, _BIG_BITS = len(BIG_INTS), len(BIG_INTS).bit_length()


def drawn_attrs(bits: Callable[[int], int]) -> dict[str, Any]:
    """One row's attributes (``Workload.row_attrs``) drawn on ``bits``, a
    generator's getrandbits: low-cardinality values, some left out.

    Drawn in this order (the seed's stream): tenant if below(10) < 9, then
    below(TENANTS); n if below(20) < 19, then below(N_RANGE); flag if
    below(5) < 4, then below(2) == 0; label if below(5) < 2, then
    choice(HOSTILE_VALUES); big if below(10) == 0, then choice(BIG_INTS).
    Each below(m) is written out (m.bit_length() bits until under m). Put
    in name order (big, flag, label, n, tenant), as filters.norm_attrs
    would, without sorting a dict per row.
    """
    x = bits(4)                          # below(10) < 9
    while x >= 10:
        x = bits(4)
    tenant = None
    if x < 9:
        x = bits(_TENANT_BITS)
        while x >= TENANTS:
            x = bits(_TENANT_BITS)
        tenant = TENANT_VALUES[x]
    x = bits(5)                          # below(20) < 19
    while x >= 20:
        x = bits(5)
    n = None
    if x < 19:
        n = bits(_N_BITS)
        while n >= N_RANGE:
            n = bits(_N_BITS)
    x = bits(3)                          # below(5) < 4
    while x >= 5:
        x = bits(3)
    flag = None
    if x < 4:
        x = bits(2)                      # below(2) == 0
        while x >= 2:
            x = bits(2)
        flag = x == 0
    x = bits(3)                          # below(5) < 2
    while x >= 5:
        x = bits(3)
    label = None
    if x < 2:
        x = bits(_LABEL_BITS)
        while x >= _LABEL_N:
            x = bits(_LABEL_BITS)
        label = HOSTILE_VALUES[x]
    x = bits(4)                          # below(10) == 0
    while x >= 10:
        x = bits(4)
    # None is no value an attribute takes here: it marks one left out.
    got: dict[str, Any] = {}
    if x == 0:
        x = bits(_BIG_BITS)
        while x >= _BIG_N:
            x = bits(_BIG_BITS)
        got["big"] = BIG_INTS[x]
    if flag is not None:
        got["flag"] = flag
    if label is not None:
        got["label"] = label
    if n is not None:
        got["n"] = n
    if tenant is not None:
        got["tenant"] = tenant
    return got


def cap_limits(cap: int) -> tuple[int, ...]:
    """Search limits around a store's cap: just below, at, just above, and
    an eighth above (a store that silently caps at ``cap`` answers short)."""
    return tuple(x for x in (cap - 1, cap, cap + 1, cap + 1 + cap // 8) if x >= 1)


def cap_rows(cap: int) -> int:
    """Bulk rows of a cap seed: more than the largest limit of cap_limits."""
    return cap + 2 + cap // 8
