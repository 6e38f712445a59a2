"""docs/cluster.md claims to work: its KubeRay manifest is valid YAML and
every `dst run` it shows (shell examples and the RayJob entrypoint) uses
flags that exist, with --executor ray."""

import re
import shlex
from pathlib import Path

import yaml

from dst.cli import build_parser

DOC = (Path(__file__).resolve().parent.parent / "docs" / "cluster.md").read_text()


def _commands():
    blocks = re.findall(r"```(sh|yaml)\n(.*?)```", DOC, re.S)
    cmds = []
    for kind, body in blocks:
        if kind == "yaml":
            cmds.append(" ".join(yaml.safe_load(body)["spec"]["entrypoint"].split()))
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if "dst run" in line:
                cmds.append(line[line.index("dst run"):].split("#")[0].split("&&")[0])
    return cmds


def test_every_dst_run_in_the_cluster_doc_parses_and_runs_on_ray():
    cmds = _commands()
    assert len(cmds) >= 4
    for cmd in cmds:
        args = build_parser().parse_args(shlex.split(cmd)[1:])
        assert args.command == "run" and args.executor == "ray", cmd
