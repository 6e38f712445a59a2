"""Checkers: linearizability over pure models, and the composed verdict.

Verdicts are three-way and compose by priority: violation > unknown > ok
(Jepsen's order); unknown is never folded into a pass.
"""

from dst.check.linearizability import (UNKNOWN, CheckResult, Failure, Operation, check)

VERDICT_RANK = {"ok": 0, "unknown": 1, "violation": 2}


def worst(*verdicts: str) -> str:
    return max(verdicts, key=VERDICT_RANK.__getitem__) if verdicts else "ok"


__all__ = ["UNKNOWN", "CheckResult", "Failure", "Operation", "check", "worst", "VERDICT_RANK"]
