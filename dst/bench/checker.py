"""Checker benchmarks: how long ``check`` takes, parsing excluded.

``checker_figures()`` times the linearizability checker on

* the four Porcupine kv histories (tests/data/porcupine-kv), partitioned
  by key and whole (Porcupine itself, in Go, takes under 10 ms and 2.75 s
  on c10-ok);
* long generated histories (``synthetic_ops``): concurrent clients whose
  ops take effect at a seeded instant inside their interval, so every
  history is linearizable by construction, with some writes of unknown
  outcome (applied or not).

Wall-clock times come from ``dst.wallclock`` (the only clock reader); the
verdicts and step counts are deterministic, the seconds are not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dst import wallclock
from dst.check.linearizability import DEFAULT_BUDGET_STEPS, INF, UNKNOWN, Operation, check
from dst.check.models.kv import KvModel
from dst.check.models.register import RegisterModel
from dst.rng import Rng

PORCUPINE_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "porcupine-kv"
PORCUPINE = ("c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad")
# Checked whole too (c50 whole is far past any budget, for Porcupine as well).
WHOLE = ("c01-ok", "c01-bad", "c10-ok", "c10-bad")
# Porcupine (Go 1.27.3, its state-hashing version), check time only, best
# of 5, GOMAXPROCS=1, in ms: the range over three rounds run on this machine
# alternated with scripts/checker_cpu.py (docs/checker-vs-porcupine.md;
# Porcupine's code is not in this repo). c50 partitioned by key.
PORCUPINE_GO_MS = {"c50-ok": (123.6, 126.6), "c50-bad": (4.6, 5.6)}
# The same runs on the etcd-shaped suite (ETCD_LIKE, seed 0): the sum over
# its 100 histories of each one's best.
PORCUPINE_ETCD_LIKE_MS = (18.5, 19.0)

# A cas-register suite shaped like Jepsen's etcd test: many short
# histories, 5 to 10 clients, each op a read, a write of 0-4 or a cas of
# two values 0-4 with equal odds (Jepsen's ``gen/mix [r w cas]``); a cas
# whose compare fails is ``fail`` and left out; writes and cas that time
# out are ``info`` (applied or not; a timed-out read is ``fail``), and the
# client's process is replaced.
ETCD_LIKE = {"histories": 100, "ops": (100, 400), "clients": (5, 10), "info_ppm": 30_000}

# Generated histories: (name, model kind, ops, clients, keys, partitioned).
SYNTHETIC = (
    ("kv-20000-10keys", "kv", 20000, 5, 10, True),
    ("kv-1000-4keys-whole", "kv", 1000, 4, 4, False),
    ("cas-register-10000", "cas-register", 10000, 5, 1, False),
    ("register-10000", "register", 10000, 5, 1, False),
    ("register-2000-10clients", "register", 2000, 10, 1, False),
)

INFO_PPM = 20_000          # 2% of writes end with an unknown outcome


def _timed(model: Any, ops: list[Operation], partition: bool,
           budget_steps: int = DEFAULT_BUDGET_STEPS, repeat: int = 1) -> dict[str, Any]:
    s = None
    for _ in range(repeat):                  # best of ``repeat``
        t0 = wallclock.monotonic_s()
        r = check(model, ops, budget_steps=budget_steps, partition=partition)
        t = wallclock.monotonic_s() - t0
        s = t if s is None else min(s, t)
    return {"verdict": r.verdict, "ops": len(ops), "partitions": r.partitions, "steps": r.steps,
            "check_s": round(s, 4), "steps_per_s": round(r.steps / s) if s > 0 else None}


def porcupine_figures(directory: Path = PORCUPINE_DIR) -> list[dict[str, Any]]:
    from dst.check.edn import read_events, to_operations
    out = []
    for name in PORCUPINE:
        path = directory / f"{name}.txt"
        if not path.is_file():
            continue
        model = KvModel()
        ops, _ = to_operations(read_events(path), model, str(path))
        for partition in (True, False) if name in WHOLE else (True,):
            row = {"history": name, "partitioned": partition,
                   "expected": "ok" if name.endswith("-ok") else "violation",
                   **_timed(model, ops, partition, repeat=3)}
            ref = PORCUPINE_GO_MS.get(name)
            if ref is not None and partition:
                row["porcupine_ms"] = list(ref)
                row["ratio_vs_porcupine"] = [round(row["check_s"] * 1000 / ms, 2) for ms in ref]
                row["ratio_vs_porcupine_fastest"] = round(row["check_s"] * 1000 / min(ref), 3)
            out.append(row)
    return out


def etcd_like_figures(seed: int = 0) -> dict[str, Any]:
    """The cas-register suite: every history's verdict (all linearizable by
    construction) and the total check time, best of 3 per history."""
    rng = Rng(seed).fork("etcd-like")
    cfg = ETCD_LIKE
    total_s, steps, wrong, n_ops = 0.0, 0, 0, 0
    model = RegisterModel(cas=True)
    for h in range(cfg["histories"]):
        ops = synthetic_ops("cas-register", rng.between(*cfg["ops"]), clients=rng.between(*cfg["clients"]),
                            keys=1, seed=rng.below(2**31), info_ppm=cfg["info_ppm"], jepsen_mix=True)
        row = _timed(model, ops, False, repeat=3)
        total_s += row["check_s"]
        steps += row["steps"]
        n_ops += len(ops)
        wrong += row["verdict"] != "ok"
    out = {"histories": cfg["histories"], "ops": n_ops, "steps": steps, "check_s": round(total_s, 4),
           "wrong_verdicts": wrong}
    if seed == 0:                        # the suite Porcupine was timed on
        ref = PORCUPINE_ETCD_LIKE_MS
        out["porcupine_ms"] = list(ref)
        out["ratio_vs_porcupine_fastest"] = round(total_s * 1000 / min(ref), 3)
    return out


def synthetic_ops(kind: str, n_ops: int, clients: int = 5, keys: int = 8, seed: int = 0,
                  info_ppm: int = INFO_PPM, jepsen_mix: bool = False) -> list[Operation]:
    """A linearizable history of ``n_ops`` ops for ``kind`` (kv, register, cas-register).

    Closed-loop clients; each op takes effect at a seeded instant inside
    its [call, ret] interval, and outputs come from running the ops
    sequentially in that order. A write whose outcome is made unknown is
    applied or not (half each) and keeps an open interval. cas ops that
    would fail are left out (Jepsen records them as ``fail``).
    ``jepsen_mix`` (register kinds): reads, writes and cas with equal
    odds, and a cas of unknown outcome whose compare would fail stays in
    the history (not applied), as a timed-out cas does in Jepsen's.
    """
    assert kind in ("kv", "register", "cas-register"), kind
    assert n_ops >= 0 and clients >= 1 and keys >= 1
    rng = Rng(seed).fork(f"synthetic-{kind}")
    free = [0] * clients
    drawn = []       # (effect, n, call, ret, process, f, key, value, unknown, applied)
    process = list(range(clients))
    next_process = clients
    for n in range(n_ops):
        c = min(range(clients), key=lambda i: (free[i], i))
        call = free[c] + rng.between(0, 4)
        ret = call + rng.between(1, 40)
        effect = rng.between(call, ret)
        free[c] = ret + 1
        key = f"k{rng.below(keys)}" if kind == "kv" else None
        roll = rng.below(100)
        if kind == "kv":
            f = "get" if roll < 40 else "put" if roll < 50 else "append"
            value = None if f == "get" else f"x{c} {n} y"
        else:
            if jepsen_mix:
                f = ("read", "write", "cas")[rng.below(3 if kind == "cas-register" else 2)]
            else:
                f = "read" if roll < 45 else "cas" if kind == "cas-register" and roll < 75 else "write"
            value = (None if f == "read" else rng.below(5) if f == "write"
                     else (rng.below(5), rng.below(5)))
        unknown = f not in ("get", "read") and rng.chance(info_ppm)
        applied = not unknown or rng.chance(500_000)
        drawn.append((effect, n, call, ret, process[c], f, key, value, unknown, applied))
        if unknown:                      # Jepsen: a crashed process is replaced
            process[c] = next_process
            next_process += 1
    drawn.sort(key=lambda d: (d[0], d[1]))
    model = KvModel() if kind == "kv" else RegisterModel(cas=kind == "cas-register")
    state = model.init()
    made: list[tuple[int, Operation]] = []
    for effect, n, call, ret, proc, f, key, value, unknown, applied in drawn:
        if kind == "kv":
            cur = state.items.get(key, "")
            inp: tuple = ("get", key) if f == "get" else (f, key, value)
            out: Any = cur if f == "get" else None
        else:
            inp = ("read",) if f == "read" else ("write", value) if f == "write" else ("cas", *value)
            out = state if f == "read" else True if f == "cas" else None
            if f == "cas" and state != value[0]:
                if not (unknown and jepsen_mix):
                    continue             # it would fail: not in the history
                applied = False          # timed out, and did not take effect
        if applied:
            ok, state = model.step(state, inp, out)
            assert ok, (inp, out)
        if unknown:
            out, ret = UNKNOWN, INF
        made.append((n, Operation(0, proc, f, inp, out, call, ret, None, n)))
    made.sort(key=lambda m: m[0])
    ops = []
    for i, (_, op) in enumerate(made):
        op.id = i
        ops.append(op)
    return ops


def synthetic_figures(seed: int = 0) -> list[dict[str, Any]]:
    out = []
    for name, kind, n_ops, clients, keys, partition in SYNTHETIC:
        ops = synthetic_ops(kind, n_ops, clients, keys, seed)
        model = KvModel() if kind == "kv" else RegisterModel(cas=kind == "cas-register")
        out.append({"history": name, "model": kind, "clients": clients, "keys": keys,
                    "partitioned": partition, "expected": "ok", **_timed(model, ops, partition)})
    return out


def checker_figures(seed: int = 0) -> dict[str, Any]:
    """Checker timings (parsing excluded) as plain data, for ``dst bench``."""
    t0 = wallclock.monotonic_s()
    figures = {"porcupine": porcupine_figures(), "synthetic": synthetic_figures(seed),
               "etcd_like": etcd_like_figures(seed)}
    figures["wall_s"] = round(wallclock.monotonic_s() - t0, 3)
    figures["wrong_verdicts"] = [f"{f['history']} ({'partitioned' if f['partitioned'] else 'whole'})"
                                 for f in figures["porcupine"] + figures["synthetic"]
                                 if f["verdict"] != f["expected"]]
    if figures["etcd_like"]["wrong_verdicts"]:
        figures["wrong_verdicts"].append(f"etcd-like ({figures['etcd_like']['wrong_verdicts']} histories)")
    return figures


if __name__ == "__main__":
    import json
    print(json.dumps(checker_figures(), indent=2))
