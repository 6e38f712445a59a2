import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a temporary folder (report folders land there), repo importable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    return tmp_path


def run_cli(*argv: str) -> int:
    from dst.cli import main
    return main(list(argv))


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole session (2 CPUs, no dashboard), started on
    first use: `dst run --executor ray` in the tests joins it instead of
    starting its own. Its workers import the repo (tests.* backends) through
    PYTHONPATH, which they inherit when it starts."""
    import os
    from dst.sim.executor import connect_ray
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved) if p)
    try:
        ray, owned = connect_ray(None, num_cpus=2)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    yield ray
    if owned:
        ray.shutdown()
