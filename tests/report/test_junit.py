"""JUnit replay commands reproduce the case exactly (issue 10, item 8).

A failing case's commands are taken from the JUnit file and run as they
stand (``shlex.split``, then ``dst.cli.main``): each must give the same
verdict and, on sim, the same history bytes as the run did. The run uses
every flag that shapes a case: a scenario *file* outside ``scenarios/``,
``--opt``, ``--ops``, ``--clients``, ``--location`` and ``--budget-steps``.
"""

import json
import shlex
import xml.etree.ElementTree as ET

from dst.console import EXIT_VIOLATION
from tests.conftest import ROOT, run_cli


def _scenario_file(where):
    # crud under another name, in a folder of its own: found only by its path.
    text = (ROOT / "scenarios" / "crud.toml").read_text()
    path = where / "my-scenarios" / "mine.toml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def _run(in_tmp, *extra):
    scenario = _scenario_file(in_tmp)
    junit = in_tmp / "junit.xml"
    code = run_cli("run", "--backend", "tests.broken_backends:lost_write", "--scenario",
                   str(scenario.relative_to(in_tmp)), "--seeds", "4", "--ops", "40", "--clients", "2",
                   "--opt", "atomic_batches=false", "--location", str(in_tmp / "loc"),
                   "--budget-steps", "2000000", "--junit", str(junit), "--quiet", *extra)
    assert code == EXIT_VIOLATION
    (run_dir,) = (in_tmp / "reports").iterdir()
    cases = ET.parse(junit).getroot().findall("testcase")
    failed = [(c, c.find("failure")) for c in cases if c.find("failure") is not None]
    assert failed, "the broken backend must fail some seed"
    return run_dir, failed


def _commands(failure) -> tuple[str, str]:
    lines = failure.text.strip().splitlines()
    (hist,) = [ln.removeprefix("replay: ") for ln in lines if ln.startswith("replay: ")]
    (seed,) = [ln.removeprefix("or, from the seed: ") for ln in lines if ln.startswith("or, from the seed: ")]
    return hist, seed


def _replay(command: str, in_tmp, capsys) -> tuple[int, dict, bytes]:
    argv = shlex.split(command)
    assert argv[:2] == ["dst", "replay"]
    before = set((in_tmp / "reports").iterdir())
    code = run_cli(*argv[1:], "--quiet")
    capsys.readouterr()
    (new,) = set((in_tmp / "reports").iterdir()) - before
    return code, json.loads((new / "result.json").read_text()), (new / "history.jsonl").read_bytes()


def test_junit_seed_command_reproduces_the_case(in_tmp, capsys):
    run_dir, failed = _run(in_tmp)
    case, failure = failed[0]
    seed = int(case.get("name").split()[-1])
    _, by_seed = _commands(failure)
    for flag in ("--ops 40", "--clients 2", "--opt atomic_batches=false", "--budget-steps 2000000",
                 f"--location {in_tmp / 'loc'}", "--scenario my-scenarios/mine.toml"):
        assert flag in by_seed, (flag, by_seed)
    code, result, history = _replay(by_seed, in_tmp, capsys)
    assert code == EXIT_VIOLATION and result["verdict"] == "violation"
    # Byte for byte the history the run recorded for that seed (sim is deterministic).
    assert history == (run_dir / "histories" / f"seed-{seed}.jsonl").read_bytes()


def test_junit_history_command_reproduces_the_case(in_tmp, capsys):
    run_dir, failed = _run(in_tmp)
    case, failure = failed[-1]
    seed = int(case.get("name").split()[-1])
    hist, _ = _commands(failure)
    assert f"--location {in_tmp / 'loc'}" in hist and "--budget-steps 2000000" in hist
    code, result, history = _replay(hist, in_tmp, capsys)
    assert code == EXIT_VIOLATION and result["match"] == "exact"
    assert history == (run_dir / "histories" / f"seed-{seed}.jsonl").read_bytes()


def test_junit_in_threads_mode_says_it_cannot_be_replayed(in_tmp, capsys):
    _, failed = _run(in_tmp, "--concurrency", "threads")
    text = failed[0][1].text
    assert "not replayable" in text and "dst replay" not in text


def test_unwritable_junit_path_is_exit_2(in_tmp, capsys):
    blocker = in_tmp / "taken"
    blocker.write_text("a file, not a folder\n")
    assert run_cli("run", "--backend", "sim", "--seeds", "1", "--ops", "10", "--quiet",
                   "--junit", str(blocker / "junit.xml")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--junit" in err[0] and "Traceback" not in err[0]
    # Refused before any seed ran: no run was lost to it.
    assert not (in_tmp / "reports").exists()


def test_junit_properties_and_metric_in_the_replay_command(tmp_path):
    """Issue 12: the run's metric is a suite property, and a seed replay of a
    --metric run carries --metric (without it the replay scores by cosine)."""
    import xml.etree.ElementTree as ET

    from dst.report.junit import seed_replay_command, write_junit
    out = tmp_path / "j.xml"
    write_junit(out, "dst.filters.sim", [{"seed": 0, "verdict": "ok"}], properties={"metric": "l2", "filters": "on"})
    props = {p.get("name"): p.get("value") for p in ET.parse(out).getroot().iter("property")}
    assert props == {"metric": "l2", "filters": "on"}
    cmd = seed_replay_command(3, scenario="filters", backend="sim", metric="l2")
    assert "--metric l2" in cmd
    assert "--metric" not in seed_replay_command(3, scenario="filters", backend="sim")


def test_the_seed_replay_command_keeps_the_isolation():
    # A seed that failed under --isolate process replays isolated: in-process,
    # crashes only drop a handle and the kill nemesis never fires.
    from dst.report.junit import seed_replay_command
    cmd = seed_replay_command(7, scenario="kill", backend="lance", isolate="process")
    assert cmd.split()[-2:] == ["--isolate", "process"] or "--isolate process" in cmd
    assert "--isolate" not in seed_replay_command(7, scenario="kill", backend="lance")
