"""Scenarios: workload and fault mixes, one TOML file each, by name.

A scenario file is checked strictly at load: an unknown key or a bad value
is rejected with a sentence naming the key. ``Scenario.for_seed`` resolves
the per-seed parameters (dimension, and with ``swarm = true`` a fresh fault
and operation mix, as TigerBeetle's VOPR does).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dst.errors import UsageError
from dst.metrics import METRICS
from dst.rng import PPM, Rng

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"

OP_KINDS = ("store", "store_batch", "delete", "get", "exists", "count", "search", "maintenance")
FAULT_CLASSES = ("latency", "error", "lost-ack", "timeout", "partial-write", "crash")
VECTOR_KINDS = ("gaussian", "clustered", "duplicates", "near-duplicates")
DIM_MAX = 4096  # far above 1536; bounds memory of the vector pool
# A cap seed loads about `cap` rows of `dim` floats: cap * dim stays within
# this (16384 rows up to dim 16, 4096 up to dim 64; at dim 1536 only caps up
# to 170), so a seed stays cheap for the sim backend and the checker.
CAP_ROWS_DIMS_MAX = 1 << 18
# [filters] use: "auto" searches with filters where the backend declares
# them; "on" needs them (a backend without is a setup error); "off" never.
FILTER_USES = ("auto", "on", "off")
ISOLATE_MODES = ("none", "process")   # dst.isolate.MODES


class ScenarioError(UsageError):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    clients: int = 4
    ops: int = 200                      # random-phase ops per seed
    dims: tuple[int, ...] = (8,)        # one drawn per seed
    vector_kinds: tuple[str, ...] = ("gaussian",)
    vector_pool: int = 48               # distinct vectors per seed
    hot_ids: int = 8
    cold_ids: int = 40
    hot_share_ppm: int = 700_000        # share of id draws from the hot range
    hostile_share_ppm: int = 0          # share of ids with hostile characters
    batch_min: int = 2
    batch_max: int = 8
    limit_min: int = 1
    limit_max: int = 10
    limit_caps: tuple[int, ...] = ()    # limits real stores cap; a cap seed probes one
    cap_share_ppm: int = 0              # share of seeds that are cap seeds
    score_eps: float = 1e-4
    recall_floor: float = 0.9
    # ANN reachability (dst.sim.reach): at each quiescent probe, at most
    # reachability_sample live ids, each searched by its own vector with
    # limit reachability_k; the fraction found over the run must reach the
    # floor (0: reported, not gated). Exact backends: implied, not probed.
    # reachability_sample = 0 turns the probe off (then the floor must be 0).
    reachability_k: int = 10
    reachability_floor: float = 0.99
    reachability_sample: int = 64
    invalid_ppm: int = 0                # share of ops given a bad input
    # The backend's own errors tolerated per op kind, in parts per million of
    # that kind's calls (dst.sim.availability). 0: any own error is a finding.
    backend_error_ppm: int = 0
    swarm: bool = False
    load_items: int = 0                 # bulk store_batch before the random phase
    load_batch: int = 100
    maintenance_kinds: tuple[str, ...] = ("compact",)
    op_weights: dict[str, int] = field(default_factory=lambda: {"store": 1})
    fault_ppm: dict[str, int] = field(default_factory=dict)
    nemesis_ppm: dict[str, int] = field(default_factory=dict)   # backend nemeses by name
    dispatch_us_max: int = 200
    complete_us_max: int = 200
    think_us_max: int = 100
    latency_us_max: int = 5_000
    timeout_us: int = 1_000
    crash_delay_us_max: int = 300
    recovery_us: int = 1_000
    metric: str = "cosine"              # cosine, l2 or dot (--metric overrides)
    filters: str = "auto"               # FILTER_USES
    filter_share_ppm: int = 300_000     # share of searches given a filter
    attrs_share_ppm: int = 900_000      # share of written rows given attributes
    get_attrs_share_ppm: int = 300_000  # share of gets that read the attributes instead
    # "process": the backend runs in a child process (dst.isolate) that a
    # crash, and the kill nemesis, SIGKILL for real (--isolate overrides).
    isolate: str = "none"

    def for_seed(self, rng: Rng) -> "SeedParams":
        """The parameters of one seed; swarm draws the mix afresh."""
        dim = rng.choice(self.dims)
        faults = dict(self.fault_ppm)
        weights = dict(self.op_weights)
        kinds = self.vector_kinds
        if self.swarm:
            # Swarm testing: each fault class is on for about 3 seeds in 4,
            # each op kind's weight is scaled by 0, 1, 2 or 4 (store always
            # stays on, or nothing would be written).
            for k in FAULT_CLASSES:
                if faults.get(k, 0) > 0 and rng.below(4) == 0:
                    faults[k] = 0
            for k in OP_KINDS:
                if weights.get(k, 0) > 0:
                    factor = rng.choice((0, 1, 2, 4))
                    if k == "store":
                        factor = max(factor, 1)
                    weights[k] = weights[k] * factor
            picked = tuple(k for k in kinds if rng.below(2) == 0)
            kinds = picked or (rng.choice(kinds),)
        # Drawn last, and only where caps are set, so no other scenario's
        # seeds change.
        cap = None
        if self.limit_caps and rng.chance(self.cap_share_ppm):
            fits = [c for c in self.limit_caps if c * dim <= CAP_ROWS_DIMS_MAX]
            if fits:
                # Caps above 1024 cost a seed O(cap) in every exhaustive
                # search: drawn a quarter as often as the small ones.
                cap = rng.weighted(fits, [4 if c <= 1024 else 1 for c in fits])
        return SeedParams(scenario=self, dim=dim, fault_ppm=faults,
                          op_weights=weights, vector_kinds=kinds, cap=cap)

    def with_overrides(self, clients: int | None = None, ops: int | None = None,
                       metric: str | None = None, isolate: str | None = None) -> "Scenario":
        s = self
        if isolate is not None:
            if isolate not in ISOLATE_MODES:
                raise ScenarioError(f"unknown isolation {isolate!r}: use one of {', '.join(ISOLATE_MODES)}")
            s = replace(s, isolate=isolate)
        if metric is not None:
            if metric not in METRICS:
                raise ScenarioError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
            s = replace(s, metric=metric)
        if clients is not None:
            s = replace(s, clients=clients)
        if ops is not None:
            s = replace(s, ops=ops)
        return s

    def to_dict(self) -> dict[str, Any]:
        # What asdict gives, in field order, without its deep copy (made
        # once per seed, for the history's meta): every field is a scalar,
        # a tuple of scalars or a dict of scalars, so fresh containers are
        # a full copy.
        d: dict[str, Any] = {}
        for k in _SCENARIO_FIELDS:
            v = getattr(self, k)
            if isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, dict):
                v = {kk: v[kk] for kk in sorted(v)}
            d[k] = v
        if d["isolate"] == "none":
            del d["isolate"]     # so histories without isolation stay as they were
        return d


_SCENARIO_FIELDS = tuple(f.name for f in fields(Scenario))


@dataclass(frozen=True)
class SeedParams:
    scenario: Scenario
    dim: int
    fault_ppm: dict[str, int]
    op_weights: dict[str, int]
    vector_kinds: tuple[str, ...]
    # A cap seed: a search limit stores cap (see Scenario.limit_caps). The
    # seed bulk-loads more rows than that and searches with limits around it.
    cap: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "nemesis_ppm": dict(sorted(self.scenario.nemesis_ppm.items())),
            "dim": self.dim,
            "fault_ppm": {k: self.fault_ppm.get(k, 0) for k in FAULT_CLASSES},
            "op_weights": {k: self.op_weights.get(k, 0) for k in OP_KINDS},
            "vector_kinds": list(self.vector_kinds),
            # Only on cap seeds, so other seeds' histories stay as they were.
            **({"cap": self.cap} if self.cap is not None else {}),
        }


# -- loading ---------------------------------------------------------------

def available() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load(name_or_path: str) -> Scenario:
    """Load a scenario by name (``scenarios/NAME.toml``) or by file path."""
    path = Path(name_or_path)
    if not (name_or_path.endswith(".toml") or path.is_file()):
        path = SCENARIO_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            names = ", ".join(available()) or "none found"
            raise ScenarioError(f"unknown scenario {name_or_path!r} (available: {names})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"scenario {str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {str(path)!r} is not valid TOML: {exc}") from None
    return parse(raw, default_name=path.stem, source=str(path))


def parse(raw: dict[str, Any], default_name: str = "scenario", source: str = "<scenario>") -> Scenario:
    p = _Parser(raw, source)
    kw: dict[str, Any] = {"name": p.string("name", default_name)}
    kw["description"] = p.string("description", "")
    kw["clients"] = p.integer("clients", 4, 1, 64)
    kw["ops"] = p.integer("ops_per_seed", 200, 1, 1_000_000)
    kw["dims"] = tuple(p.int_list("dims", [8], 1, DIM_MAX))
    kw["vector_kinds"] = tuple(p.choice_list("vector_kinds", ["gaussian"], VECTOR_KINDS))
    kw["vector_pool"] = p.integer("vector_pool", 48, 2, 100_000)
    kw["score_eps"] = p.number("score_eps", 1e-4, 0.0, 1.0)
    kw["recall_floor"] = p.number("recall_floor", 0.9, 0.0, 1.0)
    kw["reachability_k"] = p.integer("reachability_k", 10, 1, 1000)
    kw["reachability_floor"] = p.number("reachability_floor", 0.99, 0.0, 1.0)
    kw["reachability_sample"] = p.integer("reachability_sample", 64, 0, 100_000)
    if kw["reachability_sample"] == 0 and kw["reachability_floor"] > 0:
        raise ScenarioError(f"{source}: reachability_floor {kw['reachability_floor']} needs "
                            f"reachability_sample of at least 1 (0 turns the reachability probe off; "
                            f"set reachability_floor = 0 with it)")
    kw["invalid_ppm"] = p.ratio("invalid_rate", 0.0)
    kw["backend_error_ppm"] = p.integer("backend_error_ppm", 0, 0, PPM)
    kw["swarm"] = p.boolean("swarm", False)
    kw["maintenance_kinds"] = tuple(p.str_list("maintenance_kinds", ["compact"]))
    kw["metric"] = p.choice("metric", "cosine", METRICS)
    kw["isolate"] = p.choice("isolate", "none", ISOLATE_MODES)

    flt = p.table("filters")
    kw["filters"] = flt.choice("use", "auto", FILTER_USES)
    kw["filter_share_ppm"] = flt.ratio("search_share", 0.3)
    kw["attrs_share_ppm"] = flt.ratio("attrs_share", 0.9)
    kw["get_attrs_share_ppm"] = flt.ratio("get_attrs_share", 0.3)
    flt.done()

    ids = p.table("ids")
    kw["hot_ids"] = ids.integer("hot", 8, 1, 1_000_000)
    kw["cold_ids"] = ids.integer("cold", 40, 0, 1_000_000)
    kw["hot_share_ppm"] = ids.ratio("hot_share", 0.7)
    kw["hostile_share_ppm"] = ids.ratio("hostile_share", 0.0)
    ids.done()

    batch = p.table("batch")
    kw["batch_min"] = batch.integer("min", 2, 0, 100_000)
    kw["batch_max"] = batch.integer("max", 8, 0, 100_000)
    batch.done()
    if kw["batch_min"] > kw["batch_max"]:
        raise ScenarioError(f"{source}: batch.min ({kw['batch_min']}) is above batch.max ({kw['batch_max']})")

    limit = p.table("limit")
    kw["limit_min"] = limit.integer("min", 1, 1, 100_000)
    kw["limit_max"] = limit.integer("max", 10, 1, 100_000)
    kw["limit_caps"] = tuple(limit.int_list("caps", [], 1, 100_000, empty=True))
    kw["cap_share_ppm"] = limit.ratio("cap_share", 0.0)
    limit.done()
    if kw["cap_share_ppm"] and not kw["limit_caps"]:
        raise ScenarioError(f"{source}: limit.cap_share is set but limit.caps is empty")
    if kw["limit_min"] > kw["limit_max"]:
        raise ScenarioError(f"{source}: limit.min is above limit.max")

    load = p.table("load")
    kw["load_items"] = load.integer("items", 0, 0, 10_000_000)
    kw["load_batch"] = load.integer("batch", 100, 1, 1_000_000)
    load.done()

    ops = p.table("ops")
    weights = {k: ops.integer(k, 0, 0, 1_000_000) for k in OP_KINDS}
    ops.done()
    if "ops" not in raw:
        weights = {"store": 1}
    if not weights.get("store"):
        raise ScenarioError(f"{source}: ops.store must be positive (nothing else writes)")
    kw["op_weights"] = weights

    faults = p.table("faults")
    kw["fault_ppm"] = {k: faults.ratio(k, 0.0) for k in FAULT_CLASSES}
    faults.done()

    # Real faults a backend inflicts on itself (its nemeses(), by name, such
    # as kill-connection or crash-server): any name, a rate per op.
    nem = p.table("nemeses")
    kw["nemesis_ppm"] = {k: nem.ratio(k, 0.0) for k in sorted(nem.raw)}
    nem.done()

    timing = p.table("timing")
    kw["dispatch_us_max"] = timing.integer("dispatch_us_max", 200, 0, 10**9)
    kw["complete_us_max"] = timing.integer("complete_us_max", 200, 1, 10**9)
    kw["think_us_max"] = timing.integer("think_us_max", 100, 0, 10**9)
    kw["latency_us_max"] = timing.integer("latency_us_max", 5_000, 1, 10**9)
    kw["timeout_us"] = timing.integer("timeout_us", 1_000, 1, 10**9)
    kw["crash_delay_us_max"] = timing.integer("crash_delay_us_max", 300, 0, 10**9)
    kw["recovery_us"] = timing.integer("recovery_us", 1_000, 0, 10**9)
    timing.done()
    p.done()
    return Scenario(**kw)


class _Parser:
    """Reads keys from one TOML table; ``done()`` rejects any key left over."""

    def __init__(self, raw: Any, source: str, prefix: str = ""):
        if not isinstance(raw, dict):
            raise ScenarioError(f"{source}: {prefix.rstrip('.') or 'scenario'} must be a table")
        self.raw, self.source, self.prefix = raw, source, prefix
        self.used: set[str] = set()

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.raw.get(key, default)

    def _bad(self, key: str, what: str, value: Any) -> ScenarioError:
        return ScenarioError(f"{self.source}: key {self.prefix}{key} must be {what}, got {value!r}")

    def table(self, key: str) -> "_Parser":
        return _Parser(self._get(key, {}), self.source, f"{self.prefix}{key}.")

    def string(self, key: str, default: str) -> str:
        v = self._get(key, default)
        if not isinstance(v, str):
            raise self._bad(key, "a string", v)
        return v

    def boolean(self, key: str, default: bool) -> bool:
        v = self._get(key, default)
        if not isinstance(v, bool):
            raise self._bad(key, "true or false", v)
        return v

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self._bad(key, f"an integer from {lo} to {hi}", v)
        return v

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise self._bad(key, f"a number from {lo} to {hi}", v)
        return float(v)

    def ratio(self, key: str, default: float) -> int:
        """A probability in [0, 1], kept as integer parts per million."""
        return round(self.number(key, default, 0.0, 1.0) * PPM)

    def int_list(self, key: str, default: list[int], lo: int, hi: int,
                 empty: bool = False) -> list[int]:
        v = self._get(key, default)
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if (not isinstance(v, list) or (not v and not empty)
                or any(isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi for x in v)):
            what = "a list" if empty else "a non-empty list"
            raise self._bad(key, f"{what} of integers from {lo} to {hi}", v)
        return v

    def str_list(self, key: str, default: list[str]) -> list[str]:
        v = self._get(key, default)
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise self._bad(key, "a list of non-empty strings", v)
        return v

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        v = self._get(key, default)
        if v not in allowed:
            raise self._bad(key, f"one of {', '.join(allowed)}", v)
        return v

    def choice_list(self, key: str, default: list[str], allowed: tuple[str, ...]) -> list[str]:
        v = self._get(key, default)
        if not isinstance(v, list) or not v or any(x not in allowed for x in v):
            raise self._bad(key, f"a non-empty list from {', '.join(allowed)}", v)
        return v

    def done(self) -> None:
        extra = sorted(set(self.raw) - self.used)
        if extra:
            raise ScenarioError(f"{self.source}: unknown key {self.prefix}{extra[0]}")
