"""``dst matrix`` (issue 13): the grid of scenarios x backends, its files,
its n/a cells and its exit code."""

import json
from pathlib import Path

import pytest

from dst.commands.matrix import column_options, matrix_exit, parse_column
from dst.console import EXIT_INTERNAL, EXIT_OK, EXIT_UNFIRED, EXIT_UNKNOWN, EXIT_USAGE, EXIT_VIOLATION
from dst.errors import UsageError
from tests.conftest import run_cli
from tests.sim.test_reachability import reach_scenario

BROKEN = "tests.broken_reach:unreachable_subset"


def only_matrix(folder: Path) -> Path:
    found = sorted((folder / "reports").glob("matrix-*"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """sim, a broken ANN backend and lance, on crud and the reach scenario,
    one seed of 120 ops each (lance's probes are what costs)."""
    import os
    tmp = tmp_path_factory.mktemp("matrix")
    old = os.getcwd()
    os.chdir(tmp)
    try:
        reach = reach_scenario(tmp)
        code = run_cli("matrix", "--quiet", "--backends", f"sim,{BROKEN}", "--backends", "lance",
                       "--scenarios", f"crud,{reach}", "--seeds", "1", "--ops", "120",
                       "--report-dir", str(tmp / "reports"))
    finally:
        os.chdir(old)
    mdir = only_matrix(tmp)
    return code, mdir, json.loads((mdir / "matrix.json").read_text())


def cell(doc, backend, scenario):
    (c,) = [c for c in doc["cells"] if c["backend"] == backend and c["scenario"].endswith(scenario)]
    return c


def test_the_grid_runs_every_cell_and_finds_the_broken_one(grid):
    code, mdir, doc = grid
    assert code == EXIT_VIOLATION
    assert doc["exit_code"] == EXIT_VIOLATION and BROKEN in doc["exit_reason"]
    assert len(doc["cells"]) == 6
    for b in ("sim", "lance"):
        for s in ("crud", ".toml"):
            c = cell(doc, b, s)
            assert c["status"] == "pass", (b, s, c["reason"])
            assert c["seeds_run"] == 1 and c["reachability_implied"]      # exact backends
    bad = cell(doc, BROKEN, ".toml")
    assert (bad["status"], bad["kind"]) == ("violation", "reachability")
    assert bad["reachability"] < 0.99 and "unreachable" in bad["reason"]
    assert cell(doc, BROKEN, "crud")["status"] == "pass"
    # Each cell has the folder dst run makes.
    for c in doc["cells"]:
        folder = mdir / c["folder"]
        assert (folder / "result.json").is_file() and (folder / "report.html").is_file()
        assert json.loads((folder / "result.json").read_text())["backend"] == c["backend"]
    assert doc["versions"]["lancedb"]


@pytest.fixture(scope="module")
def na_grid(tmp_path_factory):
    """The broken backend declares no filters: the filters scenario is n/a
    there, and a backend that does not resolve is n/a everywhere."""
    tmp = tmp_path_factory.mktemp("matrix-na")
    code = run_cli("matrix", "--quiet", "--backends", f"{BROKEN},nosuch", "--scenarios", "filters,crud",
                   "--seeds", "1", "--ops", "120", "--report-dir", str(tmp / "reports"))
    mdir = only_matrix(tmp)
    return code, mdir, json.loads((mdir / "matrix.json").read_text())


def test_a_cell_that_cannot_run_says_na_and_why(na_grid):
    code, mdir, doc = na_grid
    na = cell(doc, BROKEN, "filters")
    assert na["status"] == "n/a" and na["report"] is None and na["exit_code"] is None
    assert "filters" in na["reason"]
    assert cell(doc, BROKEN, "crud")["status"] == "pass"
    for s in ("filters", "crud"):
        c = cell(doc, "nosuch", s)
        assert c["status"] == "n/a" and "unknown backend 'nosuch'" in c["reason"]
    # A column none of whose cells could run: exit 2, whatever else passed.
    assert code == EXIT_USAGE and doc["exit_reason"] == "no cell of nosuch could run"
    md = (mdir / "matrix.md").read_text()
    filters_row = next(line for line in md.splitlines() if line.startswith("| filters |"))
    n = filters_row.split("**n/a**")[1].split("[")[1].split("]")[0]
    assert any(line.startswith(f"{n}. the scenario searches with filters") for line in md.splitlines())


def test_matrix_md_is_the_grid(grid):
    _, mdir, doc = grid
    md = (mdir / "matrix.md").read_text()
    lines = md.splitlines()
    assert lines[0] == f"| scenario | sim | {BROKEN} | lance |"
    assert lines[1] == "|---|---|---|---|"
    crud = next(line for line in lines if line.startswith("| crud |"))
    assert crud.count("pass (1 seed") == 3
    reach_row = next(line for line in lines if ".toml |" in line)
    assert "**violation: reachability**" in reach_row
    n = reach_row.split("**violation: reachability**")[1].split("[")[1].split("]")[0]
    assert any(line.startswith(f"{n}. reachability violation: ") for line in lines)


def test_the_index_page_in_a_browser(grid, tmp_path):
    from tests.report.test_browser import Dom, browse
    _, mdir, doc = grid
    page = mdir / "index.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    run = browse(page, tmp_path, "--dump-dom")
    dom = Dom(run.stdout.decode())
    tds = [a for t, a in dom.elements if t == "td" and "data-status" in a]
    assert len(tds) == 6
    by = {(a["data-backend"], a["data-scenario"].rsplit("/", 1)[-1]): a for a in tds}
    assert by[(BROKEN, "reach-0.99.toml")]["data-status"] == "violation"
    assert "cell-violation" in by[(BROKEN, "reach-0.99.toml")]["class"]
    assert by[("sim", "crud")]["class"] == "cell cell-pass"
    assert by[("lance", "crud")]["data-status"] == "pass"
    links = [a["href"] for t, a in dom.elements if t == "a" and "cell-link" in a.get("class", "")]
    assert len(links) == 6                                    # every cell links its report
    bad = cell(doc, BROKEN, ".toml")
    assert bad["report"] in links
    target = (mdir / bad["report"]).resolve()
    assert target.is_file() and "reachability" in target.read_text()


def test_columns_options_and_variants():
    c = parse_column("pgvector@hnsw:index=hnsw:complete=true")
    assert (c["label"], c["name"], c["options"]) == ("pgvector@hnsw", "pgvector", {"index": "hnsw", "complete": True})
    m = parse_column("tests.broken_reach:honest_ann")
    assert (m["label"], m["name"], m["options"]) == ("tests.broken_reach:honest_ann",) * 2 + ({},)
    cols = [c, parse_column("pgvector"), parse_column("sim")]
    opts = [("ef", 10), ("pgvector:ef", 20), ("pgvector@hnsw:ef", 30), ("pgvector@hnsw:index", "ivfflat")]
    assert column_options(cols[0], opts, cols) == {"ef": 30, "index": "hnsw", "complete": True}
    assert column_options(cols[1], opts, cols) == {"ef": 20}
    assert column_options(cols[2], opts, cols) == {"ef": 10}
    for bad in ("@x", "pgvector@:index=hnsw", "pgvector@index=hnsw", "pgvector@v:noequals"):
        with pytest.raises(UsageError):
            parse_column(bad)
    with pytest.raises(UsageError, match="not one of the columns"):
        column_options(cols[0], [("nosuch:ef", 1)], cols)


def _c(backend, status, code):
    return {"backend": backend, "scenario": "s", "status": status, "exit_code": code}


def test_exit_code_priority():
    labels = ["a", "b"]
    assert matrix_exit([_c("a", "pass", 0), _c("b", "pass", 0)], labels)[0] == EXIT_OK
    # n/a in a column where another cell ran: shown, and changes nothing.
    assert matrix_exit([_c("a", "pass", 0), _c("a", "n/a", None), _c("b", "pass", 0)], labels)[0] == EXIT_OK
    # A column none of whose cells ran is a setup problem; so is a grid where nothing ran.
    assert matrix_exit([_c("a", "pass", 0), _c("b", "n/a", None)], labels)[0] == EXIT_USAGE
    assert matrix_exit([_c("a", "n/a", None), _c("b", "n/a", None)], labels)[0] == EXIT_USAGE
    order = [(EXIT_VIOLATION, "violation"), (EXIT_INTERNAL, "error"), (EXIT_UNKNOWN, "unknown"),
             (EXIT_UNFIRED, "not proven"), (EXIT_USAGE, "error")]
    for n, (code, status) in enumerate(order):
        cells = [_c("a", s, c) for c, s in order[n:]] + [_c("b", "pass", 0)]
        got, why = matrix_exit(list(reversed(cells)), labels)
        assert got == code, (order[n:], got)
        assert why == f"{status} in a x s"


def test_a_cell_out_of_time_is_not_proven_and_bad_input_is_exit_2(in_tmp, capsys):
    code = run_cli("matrix", "--quiet", "--backends", "sim", "--scenarios", "crud", "--seeds", "3",
                   "--time-budget-cell", "0.000001")
    doc = json.loads((only_matrix(in_tmp) / "matrix.json").read_text())
    assert code == EXIT_UNFIRED
    (c,) = doc["cells"]
    assert c["status"] == "not proven" and c["seeds_run"] == 0 and "no seed ran" in c["reason"]
    capsys.readouterr()
    assert run_cli("matrix", "--backends", "sim", "--scenarios", "nosuch") == EXIT_USAGE
    assert run_cli("matrix", "--backends", "sim,sim", "--scenarios", "crud") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown scenario 'nosuch'" in err and "given twice" in err and "Traceback" not in err


def test_shrink_puts_the_first_failure_in_seeds_and_links_it(in_tmp):
    code = run_cli("matrix", "--quiet", "--backends", "tests.broken_backends:lost_write",
                   "--scenarios", "crud", "--seeds", "1", "--ops", "40", "--shrink",
                   "--shrink-budget", "3", "--seeds-dir", str(in_tmp / "cases"))
    assert code == EXIT_VIOLATION
    mdir = only_matrix(in_tmp)
    (c,) = json.loads((mdir / "matrix.json").read_text())["cells"]
    assert c["status"] == "violation" and c["shrunk"]
    case = json.loads(Path(c["shrunk"]).read_text())
    assert case["expected"]["verdict"] == "violation" and case["ops"] <= c["shrunk_ops"][0]
    assert (mdir / c["shrunk_href"]).resolve() == Path(c["shrunk"]).resolve()
    assert f'href="{c["shrunk_href"]}"' in (mdir / "index.html").read_text()
