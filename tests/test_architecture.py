"""The layout's rules, read from the code's own imports (docs/architecture.md).

Every module of dst/ and backends/ is parsed (never imported) and each
import, at module level or inside a function, becomes an edge. Imports under
``if TYPE_CHECKING:`` and ``if __name__ == "__main__":`` are left out: the
first never runs, the second runs with the module as ``__main__``.
"""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The layers, lowest first. A module may import its own layer and the ones
# before it; "ground" is every dst/*.py that is not named below.
LAYERS = ["ground", "check", "sim", "report", "bench", "console", "commands", "cli"]
ALLOWED = {
    "ground": {"ground"},
    "check": {"ground", "check"},
    "sim": {"ground", "check", "sim"},
    "report": {"ground", "check", "report"},
    "bench": {"ground", "check", "sim", "report", "bench"},
    "console": {"ground", "console"},
    "commands": {"ground", "check", "sim", "report", "bench", "console", "commands"},
    "cli": set(LAYERS),
    "backends": {"ground", "backends"},
    # the pytest plugin is an entry point, as the cli is, but prints nothing of the console's
    "plugin": {"ground", "check", "sim"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules(roots=("dst", "backends")) -> dict[str, Path]:
    return {module_name(p): p for r in roots for p in sorted((ROOT / r).rglob("*.py"))
            if "__pycache__" not in p.parts}


MODULES = all_modules()


def layer(mod: str) -> str:
    parts = mod.split(".")
    if parts[0] == "backends":
        return "backends"
    if len(parts) == 1:
        return "ground"                    # dst/__init__.py
    if parts[1] in ("check", "sim", "report", "bench", "commands"):
        return parts[1]
    return {"console": "console", "cli": "cli", "pytest_plugin": "plugin"}.get(parts[1], "ground")


def _skipped(node: ast.If) -> bool:
    t = node.test
    if isinstance(t, ast.Name) and t.id == "TYPE_CHECKING":
        return True
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in t.comparators))


def imports(tree: ast.AST):
    """(imported module, names taken from it, line) for every import that can run."""
    todo = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _skipped(child):
                todo.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield a.name, [], child.lineno
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module, [a.name for a in child.names], child.lineno
            todo.append(child)


def edges() -> dict[str, list[tuple[str, list[str], int]]]:
    """Project-internal edges: module -> [(target module, names, line)]."""
    out = {}
    for mod, path in MODULES.items():
        found = []
        for target, names, line in imports(ast.parse(path.read_text(), str(path))):
            if target.split(".")[0] not in ("dst", "backends"):
                continue
            if names and all(f"{target}.{n}" in MODULES for n in names):
                for n in names:                       # from dst import wallclock: the module
                    found.append((f"{target}.{n}", [], line))
            else:
                found.append((target, names, line))
        out[mod] = found
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def graph_of(e) -> dict[str, set[str]]:
    return {m: {t for t, _, _ in targets if t in MODULES and t != m} for m, targets in e.items()}


def test_the_parser_sees_the_imports():
    # A check that finds nothing proves nothing: the known edges are there.
    e = graph_of(edges())
    assert "dst.commands.run" in e["dst.cli"]
    assert "dst.console" in e["dst.commands.run"]
    assert "dst.check.linearizability" in e["dst.sim.runner"]
    assert "dst.sim.threads" in e["dst.sim.runner"]          # a function-level import
    assert "dst.check.edn" in e["dst.report.html"]           # a function-level import too
    assert len(MODULES) > 40


def test_no_import_cycle():
    cycle = find_cycle(graph_of(edges()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_private_name_imported_from_another_module():
    bad = [f"{m}:{line}: from {t} import {n}" for m, targets in edges().items()
           for t, names, line in targets for n in names if n.startswith("_") and t != m]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_imports_only_go_down_the_layers():
    bad = []
    for m, targets in edges().items():
        for t, _, line in targets:
            if t not in MODULES and t.rsplit(".", 1)[0] in MODULES:
                t = t.rsplit(".", 1)[0]
            if layer(t) not in ALLOWED[layer(m)]:
                bad.append(f"{m}:{line} ({layer(m)}) imports {t} ({layer(t)})")
    assert not bad, "\n".join(bad)


def test_commands_never_import_each_other():
    commands = {m for m in MODULES if m.startswith("dst.commands.")}
    bad = [f"{m}:{line} imports {t}" for m, targets in edges().items() if m in commands
           for t, _, line in targets if t in commands and t != m]
    assert not bad, "\n".join(bad)


def test_every_command_has_add_parser_and_main():
    from dst import cli
    for name, module in cli.COMMANDS.items():
        assert callable(module.add_parser) and callable(module.main), name
    commands = sorted(m.rsplit(".", 1)[1] for m in MODULES if m.startswith("dst.commands."))
    assert commands == sorted(cli.COMMANDS)


@pytest.mark.parametrize("case", ["cycle", "private", "upward"])
def test_the_rules_catch_a_planted_breach(case, tmp_path, monkeypatch):
    # The same checks over a copy of the tree with one bad import added.
    import shutil
    for r in ("dst", "backends"):
        shutil.copytree(ROOT / r, tmp_path / r, ignore=shutil.ignore_patterns("__pycache__"))
    line = {"cycle": "from dst.commands.run import main\n",         # run imports console
            "private": "from dst.commands.run import _seed_list\n",
            "upward": "from dst.sim.runner import run_seed\n"}[case]
    target = tmp_path / "dst" / ("console.py" if case != "upward" else "check/edn.py")
    target.write_text(target.read_text() + "\n" + line)
    import sys
    me = sys.modules[__name__]
    monkeypatch.setattr(me, "ROOT", tmp_path)
    monkeypatch.setattr(me, "MODULES", all_modules())
    with pytest.raises(AssertionError):
        if case == "cycle":
            test_no_import_cycle()
        elif case == "private":
            test_no_private_name_imported_from_another_module()
        else:
            test_imports_only_go_down_the_layers()


def test_every_package_and_the_report_assets_are_packaged():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {module_name(p.parent) for r in ("dst", "backends") for p in (ROOT / r).rglob("__init__.py")}
    assert packages <= set(cfg["packages"]), sorted(packages - set(cfg["packages"]))
    globs = cfg["package-data"]["dst.report"]
    assets = sorted((ROOT / "dst" / "report" / "assets").iterdir())
    assert [a.name for a in assets] == ["report.css", "report.js"]
    for a in assets:
        assert any(a.match(g) for g in globs), a.name
    from dst.report.html import asset
    assert asset("report.css").lstrip().startswith(":root{")
    assert "(function ()" in asset("report.js")


def test_the_report_python_holds_no_css_or_js():
    import re
    css_rule = re.compile(r"[\w.#:-]+\{[\w-]+:[^}]*\}")
    js = re.compile(r"\bfunction\s*\(|\bvar\s+\w+\s*=|addEventListener|document\.")
    for path in sorted((ROOT / "dst" / "report").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not css_rule.search(node.value), f"{path.name}:{node.lineno}: CSS in a string"
                assert not js.search(node.value), f"{path.name}:{node.lineno}: JS in a string"
