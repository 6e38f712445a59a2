"""Docs that claim to work: the example CI workflow is valid YAML and uses
the README's commands; every dst flag it uses exists."""

import shlex
from pathlib import Path

import yaml

from dst.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def test_ci_example_is_valid_yaml_and_uses_the_readme_setup():
    wf = yaml.safe_load((ROOT / "docs" / "ci-example.yml").read_text())
    steps = wf["jobs"]["dst"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    readme = (ROOT / "README.md").read_text()
    assert runs[0] in readme                      # the install line is the README's
    run_line = " ".join(runs[1].split()).replace("${{ matrix.shard }}", "1")
    argv = shlex.split(run_line)
    assert argv[0] == ".venv/bin/dst"
    args = build_parser().parse_args(argv[1:])    # every flag exists
    assert args.shard == (1, 4) and args.jobs == 2
    assert "dst shrink" in runs[2]
