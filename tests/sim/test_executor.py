"""dst.sim.executor without Ray: what a worker does around each item, and
how chunks are sized (the Ray side is tests/commands/test_ray.py)."""

import os
from pathlib import Path

from dst import wallclock
from dst.sim.executor import MAX_CHUNK, LocalExecutor, chunk_size, run_chunk


def _messy(item):
    """Writes a relative file, sets a variable and changes folder, as a careless backend might."""
    Path(f"store-{item}").write_text(os.environ.get("DST_TEST_MESS", "clean"))
    os.environ["DST_TEST_MESS"] = f"left by {item}"
    os.chdir("/")
    return item * 10


def test_each_item_runs_in_the_worker_folder_with_a_clean_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DST_TEST_MESS", raising=False)
    work = tmp_path / "tok" / "w1"
    out = run_chunk(_messy, [1, 2, 3], None, str(work))
    assert [(i, v) for i, v, _ in out] == [(1, 10), (2, 20), (3, 30)]
    # Every item saw the environment and folder the chunk began with.
    assert [(work / f"store-{i}").read_text() for i in (1, 2, 3)] == ["clean"] * 3
    assert "DST_TEST_MESS" not in os.environ and Path.cwd() == tmp_path
    assert all(s >= 0 for _, _, s in out)


def test_an_empty_worker_folder_leaves_no_trace(tmp_path):
    work = tmp_path / "tok" / "w1"
    assert [v for _, v, _ in run_chunk(abs, [-1], None, str(work))] == [1]
    assert not (tmp_path / "tok").exists()


def test_a_worker_folder_is_made_even_when_another_worker_empties_the_shared_parent(tmp_path, monkeypatch):
    """Another worker ending with an empty folder removes the shared parent
    if nothing else is in it; here it does so between our making the parent
    and our making our own folder in it (the race seen once under Ray)."""
    work = tmp_path / "tok" / "w1"
    real_mkdir, raced = os.mkdir, []

    def mkdir_with_a_neighbour(path, mode=0o777):
        if Path(path) == work and work.parent.exists() and not raced:
            raced.append(True)
            os.rmdir(work.parent)       # the neighbour's _remove_if_empty
        return real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir_with_a_neighbour)
    assert [v for _, v, _ in run_chunk(abs, [-1], None, str(work))] == [1]
    assert raced


def test_a_chunk_past_its_deadline_runs_nothing_more():
    assert run_chunk(abs, [-1, -2], wallclock.epoch_s() - 1) == []
    assert [v for _, v, _ in run_chunk(abs, [-1, -2], wallclock.epoch_s() + 60)] == [1, 2]


def test_local_executor_stops_at_its_deadline_and_keeps_order():
    assert list(LocalExecutor(1).map(abs, [-3, -1, -2])) == [(-3, 3), (-1, 1), (-2, 2)]
    assert list(LocalExecutor(1).map(abs, [-3], deadline=wallclock.Deadline(0))) == []


def test_chunks_last_seconds_yet_leave_work_for_every_slot():
    assert chunk_size(None, 1000, slots=2) == 1                  # cost unknown: measure first
    assert chunk_size(0.1, 100_000, slots=2, target_s=2.0) == 20
    assert chunk_size(0.1, 40, slots=2, target_s=2.0) == 10      # half a fair share of what is left
    assert chunk_size(0.1, 1, slots=64) == 1
    assert chunk_size(1e-9, 10**9, slots=1) == MAX_CHUNK
    assert chunk_size(30.0, 10**6, slots=8) == 1                 # slow seeds: one per task


def test_a_dead_pool_worker_makes_its_seeds_unknown_never_a_pass(tmp_path):
    # --jobs 2: the backend kills its own process the first time seed 5
    # opens. The pool is then broken: seed 5 and the seeds in flight come
    # back unknown (exit 3), the rest are not run, and result.json is written.
    import json

    from tests.conftest import run_cli
    reports = tmp_path / "reports"
    code = run_cli("run", "--seeds", "12", "--backend", "tests.ray_backends:dies_once_on_seed_5",
                   "--location", str(tmp_path), "--ops", "30", "--jobs", "2", "--quiet",
                   "--report-dir", str(reports))
    assert code == 3
    (run_dir,) = list(reports.iterdir())
    res = json.loads((run_dir / "result.json").read_text())
    lost = [r for r in res["results"] if r["verdict"] != "ok"]
    assert 5 in [r["seed"] for r in lost]
    assert all(r["verdict"] == "unknown" and "local pool died" in r["reason"] for r in lost)
    assert res["stopped_early"] is True


def _dies_on_3(item):
    if item == 3:
        os._exit(1)
    return item


def test_a_pool_that_breaks_while_being_filled_gives_lost_items_not_an_exception(monkeypatch):
    """The pool can be marked broken between two submits (seen once in the
    suite): the next submit raises. That item is not run; every item in
    flight comes back, answered or Lost; nothing escapes."""
    import concurrent.futures as cf

    from dst.sim.executor import Lost
    real_submit = cf.ProcessPoolExecutor.submit

    def submit_then_wait_for_a_death(pool, fn, item):
        fut = real_submit(pool, fn, item)
        if item == 3:
            cf.wait([fut])          # the worker is gone and the pool marked broken
        return fut

    monkeypatch.setattr(cf.ProcessPoolExecutor, "submit", submit_then_wait_for_a_death)
    out = list(LocalExecutor(2).map(_dies_on_3, [1, 2, 3, 4, 5, 6]))
    assert [i for i, _ in out] == [1, 2, 3]
    assert isinstance(out[2][1], Lost)
    assert all(v == i or isinstance(v, Lost) for i, v in out[:2])
