"""The checker on c50-ok, c50-bad and the etcd-shaped suite in process CPU
time (the machine is shared, so wall time is noisy): best of --repeat per
history, parsing excluded, as ``python -m dst.bench.checker`` times them.

    PYTHONPATH=$PWD python scripts/checker_cpu.py --repeat 5

Prints one JSON line: per history [verdict, steps, ms]; for the etcd-shaped
suite [histories, ops, steps, ms summed over its histories, wrong verdicts].
"""
from __future__ import annotations

import argparse
import json
import time

from dst.bench import checker as bc
from dst.check.edn import read_events, to_operations
from dst.check.linearizability import check
from dst.check.models.kv import KvModel
from dst.check.models.register import RegisterModel
from dst.rng import Rng


def best_ms(model, ops, repeat: int):
    best = None
    for _ in range(repeat):
        t = time.process_time()
        r = check(model, ops)
        cpu = time.process_time() - t
        best = cpu if best is None or cpu < best else best
    return r, round(best * 1000, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    out = {}
    for name in ("c50-ok", "c50-bad"):
        path = bc.PORCUPINE_DIR / f"{name}.txt"
        model = KvModel()
        ops, _ = to_operations(read_events(path), model, str(path))
        r, ms = best_ms(model, ops, a.repeat)
        out[name] = [r.verdict, r.steps, ms]
    cfg = bc.ETCD_LIKE                   # built as etcd_like_figures builds it
    rng = Rng(0).fork("etcd-like")
    model = RegisterModel(cas=True)
    n_ops = steps = wrong = 0
    total = 0.0
    for _ in range(cfg["histories"]):
        ops = bc.synthetic_ops("cas-register", rng.between(*cfg["ops"]),
                               clients=rng.between(*cfg["clients"]), keys=1, seed=rng.below(2**31),
                               info_ppm=cfg["info_ppm"], jepsen_mix=True)
        r, ms = best_ms(model, ops, a.repeat)
        n_ops, steps, total, wrong = n_ops + len(ops), steps + r.steps, total + ms, wrong + (r.verdict != "ok")
    out["etcd-like"] = [cfg["histories"], n_ops, steps, round(total, 1), wrong]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
