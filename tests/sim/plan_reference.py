"""The planning code as it was before its draws were written out (main at
0fa8215: RandomDecider.plan and load_ops, Workload.next_op, _filtered,
row_attrs, pick_ids, with_attrs, pick_where and leaf_where; and the pool
made one vector at a time), kept as the reference the fast planner
must equal draw for draw (tests/sim/test_plan_equivalence.py).

It draws through ``RefRng``: the standard library's ``randrange`` on a
``random.Random`` per child, one Python call per draw, the way every draw
was meant. The workload's setup (ids, pool) and its rare helpers
(``_corrupt``, ``bad_attrs``, ``bad_where``, ``pick_limit``...) are the
module's own, called with a RefRng; they are not what the fast path
rewrote.
"""
from __future__ import annotations

import random
from typing import Any

from dst import filters
from dst.isolate import KILL
from dst.rng import PPM, derive_seed
from dst.sim.faults import FaultPlan, split_mask
from dst.sim.schedule import KILL_MOMENTS, KILL_MOMENTS_BATCH, OpPlan
from dst.sim.workload import BIG_INTS, HOSTILE_VALUES, N_CUTS, N_RANGE, TENANTS, Workload


class RefRng:
    """Rng's draws as randrange defines them, one call per draw."""

    def __init__(self, seed: int):
        self.seed = seed
        self.r = random.Random(seed)

    def fork(self, name: str) -> "RefRng":
        return RefRng(derive_seed(self.seed, name))

    def below(self, n: int) -> int:
        return self.r.randrange(n)

    def between(self, lo: int, hi: int) -> int:
        return lo + self.r.randrange(hi - lo + 1)

    def chance(self, ppm: int) -> bool:
        if ppm <= 0:
            return False
        if ppm >= PPM:
            return True
        return self.r.randrange(PPM) < ppm

    def choice(self, items):
        return items[self.r.randrange(len(items))]

    def weighted(self, items, weights):
        x = self.r.randrange(sum(weights))
        for item, w in zip(items, weights):
            if x < w:
                return item
            x -= w
        raise AssertionError("unreachable")

    def sample(self, items, k):
        return self.r.sample(list(items), k)


class RefPlanner:
    """The old RandomDecider's per-op planning over ``w`` (a Workload whose
    setup is done), drawing from RefRng children of ``seed``."""

    def __init__(self, w: Workload, seed: int, record_rng_names: bool = True):
        rng = RefRng(seed)
        self.w = w
        self.s = w.s
        self.faults = FaultPlan(w.params.fault_ppm, rng.fork("faults"))
        self.timing = rng.fork("timing")
        self.partial = rng.fork("partial")
        self.nemesis_rng = rng.fork("nemeses")
        self.client_rngs = [rng.fork(f"client-{c}") for c in range(self.s.clients)]
        self.workload_rng = rng.fork("workload")
        self.bad: dict[int, RefRng] = {}
        self.flt: dict[int, RefRng] = {}
        self.left = self.s.ops
        self.ids = w.ids

    # -- RandomDecider ------------------------------------------------------------
    def delay(self, hi: int) -> int:
        return self.timing.between(0, hi) if hi > 0 else 0

    def load_ops(self, has_maintenance: bool) -> list[dict[str, Any]]:
        n, s, w = self.s.load_items, self.s, self.w
        ops: list[dict[str, Any]] = []
        if n > 0:
            rng = self.client_rngs[0].fork("load")
            ids = list(w.ids)
            for i in range(len(ids), n):
                ids.append(f"load{i}")
            ids = ids[:n]
            attr_rng = self.client_rngs[0].fork("load-attrs")
            for start in range(0, n, s.load_batch):
                items = [[i, rng.choice(w.pool)] for i in ids[start:start + s.load_batch]]
                items = self.with_attrs(items, attr_rng)
                ops.append({"f": "store_batch", "value": {"items": items}})
            if has_maintenance:
                ops.append({"f": "maintenance", "value": {"kind": "index"}})
        if w.params.cap is not None:
            from dst.sim.workload import cap_rows
            rng = self.workload_rng.fork("bulk")
            items = [[f"bulk{i}", rng.choice(w.pool)] for i in range(cap_rows(w.params.cap))]
            bulk = self.with_attrs(items, self.workload_rng.fork("bulk-attrs"))
            for start in range(0, len(bulk), s.load_batch):
                ops.append({"f": "store_batch", "value": {"items": bulk[start:start + s.load_batch]}})
        return ops

    def first_think(self, client: int) -> int:
        return self.delay(self.s.think_us_max)

    def plan(self, client: int, has_maintenance: bool, nemeses: tuple[str, ...] = ()) -> OpPlan | None:
        if self.left <= 0:
            return None
        self.left -= 1
        s, timing, faults = self.s, self.timing, self.faults
        f, value = self.next_op(self.client_rngs[client], has_maintenance)
        fault = faults.op_fault(f)
        crash_us = None
        if faults.crash():
            crash_us = self.delay(s.crash_delay_us_max)
        d1 = self.delay(s.dispatch_us_max)
        never = False
        keep = None
        if fault == "latency":
            d1 += timing.between(1, s.latency_us_max)
        elif fault == "timeout":
            if timing.below(3) == 0:
                never = True
            else:
                d1 = timing.between(s.timeout_us // 2, 3 * s.timeout_us)
        d2 = 1 + self.delay(s.complete_us_max)
        if fault == "latency":
            d2 += timing.between(0, s.latency_us_max)
        if fault == "partial-write":
            keep = split_mask(self.partial, len(value.get("items", [])))
        think_us = self.delay(s.think_us_max)
        p = OpPlan(f, value, think_us, fault, d1, d2, never, crash_us, keep)
        for name in nemeses:
            if self.nemesis_rng.chance(s.nemesis_ppm.get(name, 0)) and p.nemesis is None:
                p.nemesis = name
                p.nemesis_us = self.nemesis_rng.between(0, 2_000)
                if name == KILL:
                    moments = KILL_MOMENTS_BATCH if p.f == "store_batch" else KILL_MOMENTS
                    p.kill = self.nemesis_rng.choice(moments)
                    p.kill_at_ppm = self.nemesis_rng.below(PPM)
        return p

    # -- Workload -----------------------------------------------------------------
    def pick_id(self, rng: RefRng) -> str:
        w = self.w
        if not w.cold or rng.chance(self.s.hot_share_ppm):
            return rng.choice(w.hot)
        return rng.choice(w.cold)

    def pick_ids(self, rng: RefRng, n: int) -> list[str]:
        n = min(n, len(self.w.ids))
        chosen: list[str] = []
        seen: set[str] = set()
        for _ in range(4 * n):
            if len(chosen) == n:
                break
            i = self.pick_id(rng)
            if i not in seen:
                seen.add(i)
                chosen.append(i)
        for i in self.w.ids:
            if len(chosen) == n:
                break
            if i not in seen:
                seen.add(i)
                chosen.append(i)
        return chosen

    def with_attrs(self, items: list[list], r: RefRng) -> list[list]:
        if not self.w.use_filters:
            return items
        for it in items:
            if r.chance(self.s.attrs_share_ppm):
                it.append(self.row_attrs(r))
        return items

    def next_op(self, rng: RefRng, maintenance: bool) -> tuple[str, dict[str, Any]]:
        s, w = self.s, self.w
        while True:
            f = rng.weighted(w.kinds, w.weights)
            if f != "maintenance" or maintenance:
                break
            if len(w.kinds) == 1:
                f = "store"
                break
        if f == "store":
            value: dict[str, Any] = {"id": self.pick_id(rng), "vector": rng.choice(w.pool)}
        elif f == "store_batch":
            n = rng.between(s.batch_min, s.batch_max)
            value = {"items": [[i, rng.choice(w.pool)] for i in self.pick_ids(rng, n)]}
        elif f in ("delete", "get", "exists"):
            value = {"id": self.pick_id(rng)}
        elif f == "count":
            value = {}
        elif f == "search":
            value = {"vector": rng.choice(w.pool), "limit": w.pick_limit(rng)}
        else:
            value = {"kind": rng.choice(s.maintenance_kinds)}
        if rng.chance(s.invalid_ppm):
            b = self.bad.get(rng.seed)
            if b is None:
                b = self.bad[rng.seed] = rng.fork("bad-inputs")
            value = w._corrupt(f, value, b)
        if w.use_filters:
            r = self.flt.get(rng.seed)
            if r is None:
                r = self.flt[rng.seed] = rng.fork("filters")
            f, value = self.filtered(f, value, r)
        return f, value

    def filtered(self, f: str, value: dict[str, Any], r: RefRng) -> tuple[str, dict[str, Any]]:
        s, w = self.s, self.w
        bad = r.chance(s.invalid_ppm)
        if f == "store":
            if bad:
                value["attrs"] = w.bad_attrs(r)
            elif r.chance(s.attrs_share_ppm):
                value["attrs"] = self.row_attrs(r)
        elif f == "store_batch":
            items = value["items"]
            for it in items:
                if r.chance(s.attrs_share_ppm):
                    it.append(self.row_attrs(r))
            if bad and items:
                it = items[r.below(len(items))]
                del it[2:]
                it.append(w.bad_attrs(r))
        elif f == "search":
            if bad:
                value["where"] = w.bad_where(r)
            elif r.chance(s.filter_share_ppm):
                value["where"] = self.pick_where(r)
        elif f == "get" and r.chance(s.get_attrs_share_ppm):
            f = "get_attrs"
        return f, value

    @staticmethod
    def leaf_where(r: RefRng) -> dict[str, Any]:
        k = r.below(12)
        if k == 0:
            return {"eq": ["tenant", f"t{r.below(TENANTS + 1)}"]}
        if k == 1:
            return {"ne": ["tenant", f"t{r.below(TENANTS)}"]}
        if k == 2:
            return {"in": ["tenant", [f"t{r.below(TENANTS)}" for _ in range(r.between(1, 3))]]}
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
        if k == 10:
            return r.choice(({"eq": ["n", "5"]}, {"eq": ["tenant", 5]}, {"eq": ["flag", 1]}))
        return {"ne": ["label", r.choice(HOSTILE_VALUES)]}

    @classmethod
    def pick_where(cls, r: RefRng) -> Any:
        k = r.below(10)
        if k < 5:
            w: Any = cls.leaf_where(r)
        elif k == 5:
            w = {"not": cls.leaf_where(r)}
        elif k in (6, 7):
            w = {"and": [cls.leaf_where(r), cls.leaf_where(r)]}
        elif k == 8:
            w = {"or": [cls.leaf_where(r), {"not": cls.leaf_where(r)}]}
        else:
            w = r.choice(({"and": []}, {"or": []}, {"not": {"and": []}}))
        return filters.canonical(w)

    @staticmethod
    def row_attrs(r: RefRng) -> dict[str, Any]:
        below = r.below
        tenant = f"t{below(TENANTS)}" if below(10) < 9 else None
        n = below(N_RANGE) if below(20) < 19 else None
        flag = below(2) == 0 if below(5) < 4 else None
        label = r.choice(HOSTILE_VALUES) if below(5) < 2 else None
        big = r.choice(BIG_INTS) if below(10) == 0 else None
        got: dict[str, Any] = {}
        for k, v in (("big", big), ("flag", flag), ("label", label), ("n", n), ("tenant", tenant)):
            if v is not None:
                got[k] = v
        return got


def pool_vectors(rng, dim: int, kinds, size: int):
    """The pool's vectors as Workload._make_pool made them one by one
    (float32, in pool order), from an Rng (or RefRng with .np)."""
    import numpy as np

    from dst.sim.workload import NEAR_DUP_SCALES
    g = rng.np
    centers = g.standard_normal((4, dim))
    base, out = [], []
    for _ in range(size):
        kind = rng.choice(kinds) if base else "gaussian"
        if kind == "gaussian":
            v = g.standard_normal(dim)
        elif kind == "clustered":
            v = centers[rng.below(4)] + 0.1 * g.standard_normal(dim)
        elif kind == "duplicates":
            v = base[rng.below(len(base))] * rng.choice((1.0, 2.0, 0.5))
        else:
            src = base[rng.below(len(base))]
            noise = g.standard_normal(dim)
            scale = rng.choice(NEAR_DUP_SCALES)
            v = src + scale * np.linalg.norm(src) * noise / max(np.linalg.norm(noise), 1e-12)
        v32 = np.asarray(v, dtype=np.float32)
        if not v32.any():
            v32 = np.ones(dim, dtype=np.float32)
        base.append(v32.astype(np.float64))
        out.append(v32)
    return out
