"""Where work runs: this process, a pool of local processes, or a Ray cluster.

An executor maps a function over items (seeds, or whatever a command hands
it) and yields ``(item, value)`` in item order, whatever order the workers
finish in. What a caller builds from the stream (a report, ``result.json``,
an exit code) therefore does not depend on where the items ran, only on
which ran: with a deadline, an item that never started is left out, and the
caller reports the items it was given back.

``LocalExecutor`` is ``--jobs N``: this process for one job, a process pool
(one item per task) for more. ``RayExecutor`` is ``--executor ray``: items go
out in chunks, one Ray task per chunk, sized from the measured cost of an
item so a task runs for seconds (``TARGET_TASK_S``), not milliseconds. Its
promises, which the tests hold it to:

- No silent retry (``max_retries=0``). A worker that dies takes its chunk
  with it: each of its items comes back as a ``Lost`` value naming the
  error and the worker's last lines of output.
- Workers are reused, so each item runs as in a fresh process would: the
  environment and the working directory are restored after every item
  (``run_chunk``), and every item opens its own store (a fresh namespace).
- Worker output reaches the driver line by line, never deduplicated (Ray
  merges lines that differ only in a number, such as a seed, by default),
  on stderr (stdout stays the command's own, a JSON document with --json).
- A deadline stops submitting; chunks already out stop before their next
  item (one that starts late returns at once), so the items reported are
  exactly those that ran.

Import Ray only here: ``connect_ray`` turns a missing Ray or an address that
does not answer into one ``UsageError`` sentence.

A command that sweeps seeds opens one executor and hands it to
``dst.sim.runner.run_seeds`` for each sweep (one Ray serves them all)::

    with open_executor(args.executor, jobs=args.jobs, address=args.ray_address, token=token) as ex:
        for result, history in run_seeds(scenario, seeds, backend, executor=ex, deadline=d, ...):
            ...
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from dst import wallclock
from dst.errors import UsageError

TARGET_TASK_S = 2.0      # a Ray task's length: long enough to hide ~10 ms of task overhead,
                         # short enough that --time-budget and --fail-fast act within seconds
MAX_CHUNK = 5000         # items per task at most, whatever the measured cost (a bound on a lost chunk)
OUTPUT_LINES = 40        # lines of a worker's output kept for the report of a lost chunk
LOG_SETTLE_S = 1.0       # how long a lost chunk waits for its last lines (Ray ships them every ~100 ms)
LOCAL_START_ATTEMPTS = 3  # tries at Ray's own fixed start-up window (30 s) for a local Ray
PROBE_S = 3.0            # how long --ray-address may take to accept a TCP connection
WORKER_ENV = {"RAY_DEDUP_LOGS": "0"}
FORWARDED_ENV = ("DST_PG_DSN",)   # a shared PostgreSQL reaches every worker


@dataclass
class Lost:
    """The value of an item whose worker died before returning it."""
    message: str
    output: list[str] = field(default_factory=list)

    def describe(self) -> str:
        tail = " | ".join(self.output[-10:]) or "(no output)"
        return f"worker lost ({self.message}); its last output: {tail}"


def run_chunk(fn: Callable[[Any], Any], items: list, stop_at: float | None,
              workdir: str | None = None) -> list[tuple[Any, Any, float]]:
    """Run ``fn`` on each item in turn, in a worker: ``[(item, value, seconds)]``.

    Stops before an item once ``stop_at`` (epoch seconds) has passed. With
    ``workdir``, the items run in that folder (made if needed), so relative
    store folders (lance's ``.dst/lance``) are this worker's own. The
    environment and working directory are put back after every item: a
    backend that sets a variable or changes folder cannot reach the next seed.
    """
    home = os.getcwd()
    if workdir is not None:
        _make_folder(Path(workdir))
        home_for_items = workdir
    else:
        home_for_items = home
    out = []
    try:
        for item in items:
            if stop_at is not None and wallclock.epoch_s() >= stop_at:
                break
            env = dict(os.environ)
            os.chdir(home_for_items)
            t0 = wallclock.monotonic_s()
            try:
                value = fn(item)
            finally:
                _restore_env(env)
                os.chdir(home_for_items)
            out.append((item, value, wallclock.monotonic_s() - t0))
    finally:
        os.chdir(home)
        if workdir is not None:
            _remove_if_empty(Path(workdir))
    return out


def _make_folder(folder: Path, attempts: int = 100) -> None:
    """``folder`` made with its parents. Workers share the parent, and one
    whose own folder ends empty removes the parent too when nothing else is
    in it (``_remove_if_empty``): that can fall between our making the parent
    and our making ``folder`` in it, so make both again."""
    for attempt in range(attempts):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise


def _remove_if_empty(folder: Path) -> None:
    """A worker folder left with no file in it (sim, a DSN, passing seeds'
    dropped tables) leaves no trace; one holding a failing seed's store stays."""
    for root, _, _ in sorted(os.walk(folder), key=lambda w: -len(w[0])):
        try:
            os.rmdir(root)
        except OSError:   # a file is still in it: keep it
            pass
    try:
        folder.parent.rmdir()
    except OSError:
        pass


def _restore_env(saved: dict[str, str]) -> None:
    for k in [k for k in os.environ if k not in saved]:
        del os.environ[k]
    for k, v in saved.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


class LocalExecutor:
    """``--jobs N``: this process (N = 1) or a pool of N processes, one item per task."""

    def __init__(self, jobs: int = 1):
        self.slots = max(1, jobs)

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        pass

    def map(self, fn: Callable[[Any], Any], items: Iterable, deadline: Any = None) -> Iterator[tuple[Any, Any]]:
        items = list(items)
        if self.slots <= 1:
            for item in items:
                if deadline is not None and deadline.expired():
                    return
                yield item, fn(item)
            return
        import concurrent.futures as cf
        from concurrent.futures.process import BrokenProcessPool

        with cf.ProcessPoolExecutor(max_workers=self.slots) as pool:
            pending: deque = deque()
            it = iter(items)
            broken = False
            try:
                while True:
                    while (not broken and len(pending) < 2 * self.slots
                           and not (deadline is not None and deadline.expired())):
                        item = next(it, _END)
                        if item is _END:
                            break
                        try:
                            pending.append((item, pool.submit(fn, item)))
                        except BrokenProcessPool:
                            # The pool broke while we were filling it: this item
                            # was never sent, like the ones after it (not run, the
                            # run stops early); those in flight answer below.
                            broken = True
                    if not pending:
                        return
                    item, fut = pending.popleft()
                    try:
                        value = fut.result()
                    except BrokenProcessPool as exc:
                        # A worker died (a native crash, the OOM killer): this
                        # item and every one in flight have no answer. They come
                        # back Lost (unknown, never a pass); nothing more is sent
                        # to the broken pool, so the run stops early, as at a
                        # time budget.
                        why = f"a process of the local pool died: {exc}"
                        yield item, Lost(why)
                        while pending:
                            yield pending.popleft()[0], Lost(why)
                        return
                    yield item, value
            finally:
                for _, f in pending:
                    f.cancel()


_END = object()


class RayExecutor:
    """``--executor ray``: chunks of items as Ray tasks (module doc).

    ``address``: a cluster's address (``host:port``, ``ray://host:port``,
    ``auto``); None means ``RAY_ADDRESS``, else a local Ray started for this
    executor with the machine's CPUs and no dashboard. A Ray already
    initialised in this process (a test session's) is used as it is.
    ``token`` names the per-worker folders (``workdirs``) and the tasks.
    """

    def __init__(self, address: str | None = None, *, token: str = "run", workdirs: bool = True,
                 echo: bool = True, target_s: float = TARGET_TASK_S, chunk: int | None = None):
        self._ray, self._owned = connect_ray(address)
        self.target_s = target_s
        self.chunk = chunk      # a fixed chunk size (tests); None sizes chunks by measured cost
        self.token = token
        self.workdirs = workdirs
        self.slots = max(1, int(self._ray.cluster_resources().get("CPU", 1)))
        self.tasks = 0
        self._sink = _OutputSink.installed()
        self._sink.echo = echo
        self._remote = self._ray.remote(run_chunk_remote)
        self._task_options = dict(max_retries=0, retry_exceptions=False, num_cpus=1)

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._sink.settle()     # the last lines are still on their way
            self._ray.shutdown()
            self._owned = False

    def chunk_size(self, per_item_s: float | None, left: int) -> int:
        if self.chunk is not None:
            return max(1, min(self.chunk, left))
        return chunk_size(per_item_s, left, self.slots, self.target_s)

    def map(self, fn: Callable[[Any], Any], items: Iterable, deadline: Any = None) -> Iterator[tuple[Any, Any]]:
        ray = self._ray
        from ray.exceptions import RayError, RayTaskError

        items = list(items)
        fn_ref = ray.put(_InWorkdir(fn, self.token) if self.workdirs else fn)
        stop_at = None if deadline is None else deadline.epoch_end()
        inflight: dict[Any, tuple[int, list, str]] = {}
        done: dict[int, Any] = {}
        pos = idx = emitted = 0
        spent_s, measured = 0.0, 0
        try:
            while True:
                stopping = deadline is not None and deadline.expired()
                while not stopping and pos < len(items) and len(inflight) < 2 * self.slots:
                    n = self.chunk_size(spent_s / measured if measured else None, len(items) - pos)
                    chunk = items[pos:pos + n]
                    pos += n
                    name = f"dst-{self.token}-{idx}"
                    ref = self._remote.options(name=name, **self._task_options).remote(fn_ref, chunk, stop_at)
                    inflight[ref] = (idx, chunk, name)
                    idx += 1
                    self.tasks += 1
                if not inflight:
                    return
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
                for ref in ready:
                    i, chunk, name = inflight.pop(ref)
                    try:
                        out = ray.get(ref)
                    except RayTaskError as exc:
                        # The function raised, as it would have locally: the same exception.
                        cause = getattr(exc, "cause", None)
                        raise (cause if isinstance(cause, Exception) else exc) from None
                    except RayError as exc:
                        done[i] = (chunk, Lost(_first_line(exc), self._sink.last_lines(name, settle=True)))
                        continue
                    self._sink.forget(name)
                    done[i] = out
                    spent_s += sum(s for _, _, s in out)
                    measured += len(out)
                while emitted in done:
                    entry = done.pop(emitted)
                    emitted += 1
                    if isinstance(entry, tuple):
                        for item in entry[0]:
                            yield item, entry[1]
                    else:
                        for item, value, _ in entry:
                            yield item, value
        finally:
            for ref in inflight:
                try:
                    ray.cancel(ref)
                except Exception:   # already finished or gone: nothing left to stop
                    pass


def chunk_size(per_item_s: float | None, left: int, slots: int, target_s: float = TARGET_TASK_S) -> int:
    """Items for the next task: one while the cost of an item is unmeasured,
    then enough for ``target_s``, but never more than half of a fair share
    of what is left (``left / slots``), so no slot idles at the end while
    another works through a long chunk; at most ``MAX_CHUNK``."""
    n = 1 if per_item_s is None else int(target_s / max(per_item_s, 1e-6))
    fair = -(-left // (2 * slots))
    return max(1, min(n, fair, MAX_CHUNK))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class _InWorkdir:
    """``fn`` run in a per-worker folder under the worker machine's temp
    folder (resolved there, one per worker process and run)."""

    def __init__(self, fn: Callable[[Any], Any], tag: str):
        self.fn, self.tag = fn, tag

    def __call__(self, item: Any) -> Any:
        return self.fn(item)

    def folder(self) -> str:
        return str(Path(tempfile.gettempdir()) / "dst-workers" / self.tag /
                   f"{socket.gethostname()}-{os.getpid()}")


def run_chunk_remote(fn: Any, items: list, stop_at: float | None) -> list[tuple[Any, Any, float]]:
    """The Ray task: ``run_chunk`` in the worker's own folder when asked."""
    folder = fn.folder() if isinstance(fn, _InWorkdir) else None
    return run_chunk(fn, items, stop_at, folder)


class _OutputSink:
    """Worker output as Ray ships it to the driver: kept per task (the last
    lines, for a lost chunk's report) and, with ``echo``, written to stderr
    line by line. It replaces Ray's own printer for the life of the process
    (``installed``): Ray's deduplicates lines that differ only in a number,
    and writes workers' stdout to ours, where a late line would land in the
    middle of a --json document."""

    _one: "_OutputSink | None" = None

    def __init__(self) -> None:
        self.echo = True
        self._lines: dict[str, deque] = {}
        self._lock = threading.Lock()
        self._last_s = 0.0

    @classmethod
    def installed(cls) -> "_OutputSink":
        import ray._private.worker as ray_worker
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as d
        if cls._one is None:
            cls._one = cls()
        d.remove_handler("ray_print_logs")
        d.remove_handler("dst_output")
        d.add_handler("dst_output", cls._one._on_batch)
        # The raylet's notices (a worker died...) go through the same printer, to stdout.
        ray_worker.print_to_stdstream = lambda data, ignore_prefix=False: cls._one._on_batch(data)
        return cls._one

    def _on_batch(self, data: dict[str, Any]) -> None:
        name = data.get("task_name") or ""
        lines = list(data.get("lines") or [])
        with self._lock:
            self._last_s = wallclock.monotonic_s()
            if name.startswith("dst-"):
                self._lines.setdefault(name, deque(maxlen=OUTPUT_LINES)).extend(lines)
                if len(self._lines) > 10_000:      # tasks whose fate was never asked: forget the oldest
                    self._lines.pop(next(iter(self._lines)))
        if self.echo and lines and data.get("pid") != "autoscaler":   # its status tables are noise here
            where = f"pid={data.get('pid')}" + (f", ip={data.get('ip')}" if data.get("ip") else "")
            sys.stderr.write("".join(f"({name or 'ray'} {where}) {ln}\n" for ln in lines))
            sys.stderr.flush()

    def settle(self, quiet_s: float = 0.3) -> None:
        """Wait (up to ``LOG_SETTLE_S``) until no line has come for ``quiet_s``."""
        end = wallclock.monotonic_s() + LOG_SETTLE_S
        while wallclock.monotonic_s() < end:
            with self._lock:
                last = self._last_s
            if wallclock.monotonic_s() - last >= quiet_s:
                return
            wallclock.sleep_s(0.05)

    def last_lines(self, name: str, settle: bool = False) -> list[str]:
        if settle:
            wallclock.sleep_s(LOG_SETTLE_S)
        with self._lock:
            return list(self._lines.pop(name, ()))

    def forget(self, name: str) -> None:
        with self._lock:
            self._lines.pop(name, None)


def connect_ray(address: str | None, num_cpus: int | None = None) -> tuple[Any, bool]:
    """``(ray, started_here)``: Ray connected to ``address`` (module doc of
    ``RayExecutor``), or one ``UsageError`` sentence saying what to do.
    ``num_cpus`` sizes a local Ray started here (default: the machine's CPUs)."""
    os.environ.update(WORKER_ENV)   # read by Ray when it is imported, in case it is not yet
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray, which is not installed here: "
                         "pip install -e '.[ray]' (or run with --executor local)") from None
    if ray.is_initialized():
        return ray, False
    import logging
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address is None:
            # Started here, Ray's processes inherit this environment (WORKER_ENV included);
            # a per-task runtime_env would cost a fresh worker process (seconds) instead.
            for attempt in range(LOCAL_START_ATTEMPTS):
                try:
                    ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                             log_to_driver=True, logging_level=logging.ERROR)
                    break
                except Exception:
                    # Ray gives its raylet a fixed 30 s to register; a loaded machine can
                    # miss that once. Clean up what started, and try again.
                    ray.shutdown()
                    if attempt == LOCAL_START_ATTEMPTS - 1:
                        raise
        else:
            _probe(address)
            env = dict(WORKER_ENV)
            env.update({k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)})
            ray.init(address=address, log_to_driver=True, logging_level=logging.ERROR,
                     runtime_env={"env_vars": env})
    except UsageError:
        raise
    except Exception as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise UsageError(f"--executor ray: cannot start or join {where} ({_first_line(exc)}): "
                         f"check `ray status`, or run with --executor local") from None
    return ray, True


def _probe(address: str) -> None:
    """Refuse at once an address where nothing listens (Ray itself retries for minutes)."""
    hostport = address.split("://", 1)[-1]
    if hostport in ("auto", "local") or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S):
            pass
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UsageError(f"--ray-address {address}: nothing answers there ({why}): start the head "
                         f"with `ray start --head` and give the address it prints, or leave "
                         f"--ray-address and RAY_ADDRESS unset for a local Ray") from None


def open_executor(kind: str, *, jobs: int = 1, address: str | None = None, token: str = "run",
                  echo: bool = True) -> LocalExecutor | RayExecutor:
    """The executor ``--executor kind`` names (``local``: ``jobs`` processes)."""
    if kind == "ray":
        return RayExecutor(address, token=token, echo=echo)
    return LocalExecutor(jobs)
