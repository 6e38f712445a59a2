"""The pytest integration, as a user would use it."""

pytest_plugins = ["pytester"]


def test_dst_run_fixture_passes_and_fails_with_the_replay(pytester, monkeypatch):
    from tests.conftest import ROOT
    monkeypatch.setenv("PYTHONPATH", str(ROOT))   # the user's tests import their backend
    pytester.makepyfile(test_user="""
        def test_sim(dst_run):
            summary = dst_run(backend="sim", scenario="crud", seeds=5)
            assert summary["ops"] > 0

        def test_broken(dst_run):
            dst_run(backend="tests.broken_backends:count_drift", scenario="default", seeds=50)
    """)
    result = pytester.runpytest_subprocess("-o", "addopts=", "-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*vector-dst: seed * of default on tests.broken_backends:count_drift: violation*",
                                 "*replay: dst replay *"])


def test_a_bad_backend_name_is_a_clear_failure(pytester):
    pytester.makepyfile(test_user="""
        def test_bad(dst_run):
            dst_run(backend="nope_pkg.mod:open", seeds=1)
    """)
    result = pytester.runpytest_subprocess("-o", "addopts=", "-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*vector-dst: backend 'nope_pkg.mod:open': cannot import 'nope_pkg'*"])
