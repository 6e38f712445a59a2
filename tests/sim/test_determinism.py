"""Same seed, same history, byte for byte; and nothing nondeterministic
on the deterministic paths."""

import ast
import re
from pathlib import Path

import pytest

from dst.sim.runner import run_seed
from dst.sim.scenario import load

ROOT = Path(__file__).resolve().parents[2]


def test_twenty_seeds_twice_identical_bytes():
    sc = load("default")
    first = [run_seed(sc, s, "sim")[1].to_bytes() for s in range(20)]
    second = [run_seed(sc, s, "sim")[1].to_bytes() for s in range(20)]
    assert first == second
    # different seeds differ
    assert len(set(first)) == 20


@pytest.mark.parametrize("scenario", ["crud", "crash", "ties", "partial-writes", "hostile-ids",
                                      "search-heavy"])
def test_each_scenario_is_deterministic(scenario):
    sc = load(scenario)
    assert run_seed(sc, 5, "sim")[1].to_bytes() == run_seed(sc, 5, "sim")[1].to_bytes()


# The deterministic paths: everything in dst/ except the one wall-clock
# module and the executor (it names worker folders by host and pid; it hands
# seeds to processes and merges their answers in seed order, and nothing it
# reads enters a history: tests/commands/test_ray.py holds a Ray run to the
# local run's bytes), plus the sim backend.
DETERMINISTIC = sorted(
    [p for p in (ROOT / "dst").rglob("*.py")
     if p.relative_to(ROOT).as_posix() not in ("dst/wallclock.py", "dst/sim/executor.py")]
    + [ROOT / "backends" / "sim.py"])

FORBIDDEN_MODULES = {"random", "time", "uuid", "secrets", "datetime"}
# Wall-clock reads go through dst.wallclock only (imports of time and
# datetime are refused above); these catch the rest.
FORBIDDEN_CALLS = re.compile(r"\b(uuid\d?\(|os\.urandom|os\.getpid|"
                             r"np\.random\.(rand|randn|random|seed|default_rng|shuffle|choice)\()")


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", DETERMINISTIC, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_wall_clock_random_or_uuid(path):
    src = path.read_text()
    tree = ast.parse(src)
    bad = _imports(tree) & FORBIDDEN_MODULES
    if path.name == "rng.py":
        # The one owner of randomness: a private random.Random, never the global.
        bad.discard("random")
        assert "_random_module.Random(" in src
        assert not re.search(r"_random_module\.(random|randint|randrange|choice|seed)\(", src)
    assert not bad, f"{path.name} imports {sorted(bad)}"
    assert not FORBIDDEN_CALLS.search(src), FORBIDDEN_CALLS.search(src).group(0)


def test_no_set_iteration_in_scheduler_and_workload():
    # Iterating a set gives hash order; these modules must iterate sorted or
    # ordered containers only.
    for name in ("scheduler.py", "workload.py", "faults.py"):
        tree = ast.parse((ROOT / "dst" / "sim" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.For, ast.comprehension)):
                it = node.iter
                assert not (isinstance(it, ast.Call) and getattr(it.func, "id", "") == "set"), name
                assert not isinstance(it, (ast.Set, ast.SetComp)), name
