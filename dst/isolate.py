"""Process isolation: the backend runs in a child process the harness can SIGKILL.

With ``--isolate process`` (or ``isolate = "process"`` in a scenario) the
factory the run uses is ``isolated_factory(spec)``: every handle it opens is
a ``ChildBackend`` proxy that forwards each call, synchronously, to a child
process running ``python -m dst.isolate_server``. The child opens the real
backend with the same ``BackendConfig`` and answers one request at a time per
connection, so dispatch stays synchronous and in queue order: a run on the
sim backend records the same history with and without isolation.

The wire: a Unix stream socket; each message is one frame (4-byte big-endian
length, then the payload). A payload is a 4-byte header length, a JSON
header, and the raw bytes of the arrays the header refers to (vectors travel
as their own float32 bytes, never pickled). JSON keeps str, int, float, bool,
None, lists and dicts; tuples, dicts with ``$`` keys, arrays and search hits
are tagged (``encode``/``decode``), so a value arrives as it was sent.
Errors come back classified: ``InvalidInput``, ``BackendError`` and its
``dst.errors`` subclasses (with ``applied``), or, for an exception the
backend let escape, a class of the same name, so the history records the
same message as without isolation.

One child per (location, namespace) holds every handle the run opens on it
(threads mode opens one handle per client: each is its own connection and
its own thread in the child). One process, as without isolation, so a
store's in-process sharing between handles is what it always was, and a
kill takes every handle down at once, as a real crash would.

Waits are bounded (``REPLY_TIMEOUT_S``, ``SPAWN_TIMEOUT_S``,
``KILL_WAIT_S``): a child that dies or hangs is an error the run records
(``ChildDied``, ``ReplyTimeout``), never a hang of the harness.

Kills (the ``kill`` nemesis, ``KILL_KINDS``): ``kill_process`` SIGKILLs the
child now (before a request is written; also what a ``crash`` fault does
under isolation). ``arm_kill(kind, at_ppm)`` arms the next request: the
child kills itself while the store executes it (a profile hook counts the
Python calls inside the backend call and dies at a seeded one of them,
``during``; for a store_batch this is ``mid-batch``), or right after it
wrote its reply (``after-reply``: the reply is in the socket and the harness
never reads it as the answer). A store whose writes run in other processes
names them with ``crash_pids()``: they are killed with the child.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import weakref
from typing import Any, Callable

import numpy as np

from dst import errors as dst_errors
from dst.backend import BackendConfig, SearchHit
from dst.errors import BackendError, Crashed, InvalidInput, NotApplied, UsageError

MODES = ("none", "process")

# Bounds on every wait, and why.
REPLY_TIMEOUT_S = 300      # one store call (an index build on a real store) longer than this is a hang
SPAWN_TIMEOUT_S = 120      # a child importing a heavy store (lance, milvus) and opening it
KILL_WAIT_S = 10           # reaping a SIGKILLed process: the kernel does it at once
FRAME_BYTES_MAX = 1 << 31  # one message; a batch of 100k vectors at dim 1536 is 600 MB
LOG_TAIL_CHARS = 2000      # what of a dead child's output goes into the error

KILL = "kill"
KILL_KINDS = ("kill-before", "kill-during", "kill-after-reply", "kill-mid-batch")
# A kill armed for "during" whose call returned before the chosen Python call
# was reached: the child died after the store call, before replying. Counted
# under its own name (applied, ack lost), never as a kill during the call.
KILL_LATE = "kill-late"
ARMED = ("during", "after-reply")   # what arm_kill takes; "before" is kill_process

PPM = 1_000_000


class ChildDied(Crashed):
    """The backend's process died (by itself) with this call in flight."""


class ChildGone(NotApplied):
    """The backend's process is gone: the request was never written."""


class ChildKilled(Crashed):
    """The harness's kill nemesis killed the backend's process during this call."""


class ReplyTimeout(Crashed):
    """No reply within REPLY_TIMEOUT_S: the child was killed, the outcome is unknown."""


# -- the codec ---------------------------------------------------------------

def encode(obj: Any, blobs: list[bytes]) -> Any:
    """``obj`` as JSON data; arrays' bytes appended to ``blobs``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if f == f and f not in (float("inf"), float("-inf")) else {"$f": repr(f)}
    if isinstance(obj, np.ndarray):
        blobs.append(np.ascontiguousarray(obj).tobytes())
        return {"$nd": [len(blobs) - 1, obj.dtype.str, list(obj.shape)]}
    if isinstance(obj, list):
        return [encode(x, blobs) for x in obj]
    if isinstance(obj, tuple):
        return {"$t": [encode(x, blobs) for x in obj]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: encode(v, blobs) for k, v in obj.items()}
        return {"$d": [[encode(k, blobs), encode(v, blobs)] for k, v in obj.items()]}
    if isinstance(obj, SearchHit) or (hasattr(obj, "id") and hasattr(obj, "score")):
        return {"$hit": [encode(obj.id, blobs), encode(obj.score, blobs)]}
    return {"$obj": [type(obj).__name__, repr(obj)[:200]]}


class Opaque:
    """A value of a type the wire does not carry, as the backend returned it
    (its type name and repr): it fails the boundary's contract checks, as the
    value itself would."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.text}>"


def decode(obj: Any, blobs: list[memoryview]) -> Any:
    if isinstance(obj, list):
        return [decode(x, blobs) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (tag, v), = obj.items()
        if tag == "$nd":
            i, dtype, shape = v
            return np.frombuffer(blobs[i], dtype=np.dtype(dtype)).reshape(shape).copy()
        if tag == "$t":
            return tuple(decode(x, blobs) for x in v)
        if tag == "$d":
            return {decode(k, blobs): decode(x, blobs) for k, x in v}
        if tag == "$f":
            return float(v)
        if tag == "$hit":
            hid, score = decode(v[0], blobs), decode(v[1], blobs)
            return SearchHit(hid, score)
        if tag == "$obj":
            return Opaque(v[0], v[1])
    return {k: decode(x, blobs) for k, x in obj.items()}


def pack(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    """One message: header length, JSON header (with blob sizes), blobs."""
    header = dict(header, blobs=[len(b) for b in blobs])
    h = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return b"".join([struct.pack(">I", len(h)), h, *blobs])


def unpack(payload: bytes) -> tuple[dict[str, Any], list[memoryview]]:
    (n,) = struct.unpack(">I", payload[:4])
    header = json.loads(payload[4:4 + n].decode("ascii"))
    view = memoryview(payload)
    blobs, at = [], 4 + n
    for size in header.pop("blobs"):
        blobs.append(view[at:at + size])
        at += size
    return header, blobs


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">I", len(payload)) + payload)


class Eof(Exception):
    """The peer closed the connection (or died) before a whole frame came."""


def recv_frame(sock: socket.socket) -> bytes:
    """One frame; the socket's own timeout bounds the wait (socket.timeout)."""
    (n,) = struct.unpack(">I", _recv_exact(sock, 4))
    if n > FRAME_BYTES_MAX:
        raise Eof(f"a frame of {n} bytes is above FRAME_BYTES_MAX")
    return _recv_exact(sock, n)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise Eof("connection closed")
        buf += chunk
    return bytes(buf)


def error_header(exc: BaseException) -> dict[str, Any]:
    """An exception as the wire carries it (the child's side)."""
    if isinstance(exc, InvalidInput):
        return {"type": "InvalidInput", "dst": True, "message": str(exc)}
    if isinstance(exc, UsageError):
        return {"type": "UsageError", "dst": True, "message": str(exc)}
    if isinstance(exc, BackendError):
        cls = next(c for c in type(exc).__mro__ if getattr(dst_errors, c.__name__, None) is c)
        return {"type": cls.__name__, "dst": True, "message": str(exc), "applied": exc.applied}
    return {"type": type(exc).__name__, "dst": False, "message": str(exc)}


_FOREIGN: dict[str, type] = {}


def rebuild_error(h: dict[str, Any]) -> BaseException:
    """The exception an error header stands for (the harness's side)."""
    if h.get("dst"):
        cls = getattr(dst_errors, h["type"], BackendError)
        exc = cls(h["message"])
        if isinstance(exc, BackendError) and "applied" in h and exc.applied != h["applied"]:
            exc.applied = h["applied"]
        return exc
    # A driver exception the backend let escape: the same name and message,
    # so the boundary classifies it as it would in-process.
    name = str(h["type"])
    cls = _FOREIGN.get(name)
    if cls is None:
        cls = _FOREIGN[name] = type(name, (Exception,), {})
    return cls(h["message"])


# -- the child process, as the harness sees it --------------------------------

_IN_CHILD = False


def in_child() -> bool:
    """True inside the isolation child (``dst.isolate_server`` sets it): a
    backend whose durable medium is its own process memory (sim) keeps a
    journal on disk instead, so a kill finds what was acknowledged."""
    return _IN_CHILD


def mark_child() -> None:
    global _IN_CHILD
    _IN_CHILD = True


def _pause(proc: subprocess.Popen, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``proc`` to exit; True if it has."""
    try:
        proc.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purpose: /proc says so on Linux.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True


class Child:
    """One backend process and the handles (connections) opened on it."""

    def __init__(self, spec: str) -> None:
        """Start the process; ``ready`` waits for it (a spare starts early).
        The child imports ``spec``'s module before it is ready, so a spare
        has the store's library loaded when a reopen needs it."""
        self.spec = spec
        self.key: tuple[str, str] | None = None
        self.dir = tempfile.mkdtemp(prefix="dst-iso-")
        self.path = os.path.join(self.dir, "s")
        self.log_path = os.path.join(self.dir, "log")
        self.output: str | None = None
        r, w = os.pipe()
        env = dict(os.environ)
        # The child imports what the harness imports: the same path, so a
        # user's package.module:factory and the test suite's backends resolve.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["DST_ISOLATE_DIR"] = _scratch()
        # What the last child of this spec had imported once its store was
        # open (libraries a backend imports lazily): the spare imports them
        # before it says it is ready, so a reopen does not wait for them.
        env["DST_ISOLATE_PRELOAD"] = ",".join(_PRELOAD.get(spec, ()))
        self.log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dst.isolate_server", self.path, str(w), spec],
                pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                env=env, cwd=os.getcwd())
        finally:
            os.close(w)
        self._ready_fd = r
        self.pid = self.proc.pid
        self.extra_pids: list[int] = []
        self.killed: dict[str, Any] | None = None   # set when the harness killed it
        self.handles = 0

    def ready(self) -> None:
        """Wait (bounded) until the child accepts connections."""
        r, self._ready_fd = self._ready_fd, None
        if r is None:
            return
        try:
            ready, _, _ = select.select([r], [], [], SPAWN_TIMEOUT_S)
            ok = bool(ready) and os.read(r, 1) == b"R"
        finally:
            os.close(r)
        if not ok:
            self.kill()
            raise BackendError(f"setup: the isolation child did not start in {SPAWN_TIMEOUT_S} s "
                               f"({self.tail()})"[:800])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(REPLY_TIMEOUT_S)
        s.connect(self.path)
        return s

    def kill(self) -> dict[str, Any]:
        """SIGKILL the child and every pid its store named; reap the child."""
        pids = ([self.pid] if self.proc.poll() is None else []) + \
            [p for p in self.extra_pids if p != self.pid]
        sent = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                sent.append(pid)
            except ProcessLookupError:
                pass
        reaped = _pause(self.proc, KILL_WAIT_S)
        # Extra pids are not our children: wait (bounded) until they are gone.
        lingering = [p for p in self.extra_pids if p != self.pid]
        for _ in range(int(KILL_WAIT_S / 0.01)):
            lingering = [p for p in lingering if _pid_alive(p)]
            if not lingering:
                break
            select.select([], [], [], 0.01)
        self.close_log()
        if _CHILDREN.get(self.key) is self:
            del _CHILDREN[self.key]
        return {"pid": self.pid, "killed": sent, "reaped": reaped, "exit": self.proc.returncode,
                "lingering": lingering}

    def reap(self, why: str) -> dict[str, Any]:
        """A child found dead (or to be made so): reaped, described."""
        if not _pause(self.proc, KILL_WAIT_S):
            self.kill()
        self.close_log()
        if _CHILDREN.get(self.key) is self:
            del _CHILDREN[self.key]
        return {"pid": self.pid, "exit": self.proc.returncode, "why": why, "output": self.tail()}

    def close_log(self) -> None:
        """The process is gone: keep its output's tail, remove its folder."""
        if not self.log.closed:
            self.log.close()
            self.output = self.tail()
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._ready_fd is not None:
            os.close(self._ready_fd)
            self._ready_fd = None

    def tail(self) -> str:
        if self.output is not None:
            return self.output
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return "no output"
        text = data.decode("utf-8", "replace").strip()
        return ("output: " + text[-LOG_TAIL_CHARS:]) if text else "no output"

    def release(self) -> None:
        """A handle let go of this child; the last one ends it (bounded)."""
        self.handles -= 1
        if self.handles <= 0 and self.alive():
            if not _pause(self.proc, KILL_WAIT_S):
                self.kill()
        if not self.alive():
            self.close_log()
            if _CHILDREN.get(self.key) is self:
                del _CHILDREN[self.key]


# (location, namespace) -> the child holding it. Only this module writes it.
_CHILDREN: dict[tuple[str, str], Child] = {}
# One child started ahead, so a reopen after a kill does not wait for a
# Python interpreter to start and import numpy (the measured cycle time).
_SPARE: list[Child] = []
_LOCK = threading.Lock()
_SCRATCH: list[str] = []
# spec -> the top-level modules a child had imported with the store open.
_PRELOAD: dict[str, tuple[str, ...]] = {}


def _ensure_spare(spec: str) -> None:
    """Start a spare child for ``spec`` unless one is there."""
    with _LOCK:
        if not any(c.spec == spec and c.alive() for c in _SPARE):
            for c in _SPARE:
                if c.alive():
                    c.kill()
                c.close_log()
            _SPARE.clear()
            _SPARE.append(Child(spec))


def _scratch() -> str:
    """A folder of this harness process for its children's scratch files
    (the sim backend's journal), removed at exit."""
    if not _SCRATCH:
        _SCRATCH.append(tempfile.mkdtemp(prefix="dst-iso-run-"))
    return _SCRATCH[0]


@atexit.register
def _kill_all() -> None:
    for child in list(_CHILDREN.values()) + _SPARE:
        if child.alive():
            child.kill()
        child.close_log()
    for d in _SCRATCH:
        shutil.rmtree(d, ignore_errors=True)


def _child_for(spec: str, config: BackendConfig) -> Child:
    key = (str(config.location), config.namespace)
    with _LOCK:
        child = _CHILDREN.get(key)
        if child is None or not child.alive() or child.killed is not None:
            spare = _SPARE.pop() if _SPARE else None
            if spare is not None and (not spare.alive() or spare.spec != spec):
                if spare.alive():
                    spare.kill()
                spare.close_log()
                spare = None
            child = spare or Child(spec)
            child.key = key
            _CHILDREN[key] = child
        child.handles += 1
    try:
        child.ready()
    except BaseException:
        child.handles -= 1
        raise
    return child


# -- the proxy -------------------------------------------------------------------

# Optional capabilities the proxy offers when the backend has them.
OPTIONAL_METHODS = ("maintenance", "search_exact", "get_attrs", "drop", "kill_mid_batch")
ATTRIBUTES = ("name", "dim", "exact", "atomic_batches", "filters", "metric", "maintenance_kinds",
              "durable_after_s")


def _shutdown(sock: socket.socket, child: Child, side: list[socket.socket]) -> None:
    try:
        for s in [sock, *side]:
            s.close()
    finally:
        child.release()


class ChildBackend:
    """A backend in a child process, behind the protocol: each call forwarded.

    Also offers what only an isolated backend can: ``kill_process`` (SIGKILL
    the child now), ``arm_kill`` (the next request kills it at a chosen
    moment), ``take_kill`` (what the armed kill did) and ``child_died``.
    """

    def __init__(self, spec: str, config: BackendConfig, count_events: bool = False):
        self._child = _child_for(spec, config)
        self._armed: dict[str, Any] | None = None
        self._kill: dict[str, Any] | None = None
        self._died: dict[str, Any] | None = None
        self._side_holder: list[socket.socket] = []   # the side channel, once opened
        self._side_lock = threading.Lock()
        try:
            self._sock = self._child.connect()
        except OSError as exc:
            self._child.release()
            raise BackendError(f"setup: cannot connect to the isolation child: {exc} "
                               f"({self._child.tail()})"[:800]) from None
        self._finalizer = weakref.finalize(self, _shutdown, self._sock, self._child, self._side_holder)
        cfg = {"dim": config.dim, "location": config.location, "namespace": config.namespace,
               "fresh": config.fresh, "options": config.options, "metric": config.metric}
        desc = self._request({"op": "open", "spec": spec, "config": cfg, "count_events": count_events})
        self._handle = desc["handle"]
        for k, v in desc["attrs"].items():
            setattr(self, k, tuple(v) if k == "maintenance_kinds" and v is not None else v)
        for m in desc["methods"]:
            setattr(self, m, _forwarder(weakref.ref(self), m))
        self._nemesis_names = list(desc["nemeses"])
        _PRELOAD[spec] = tuple(desc.get("modules") or ())
        _ensure_spare(spec)
        pids = [int(p) for p in desc.get("crash_pids") or []]
        self._child.extra_pids = sorted(set(self._child.extra_pids) | set(pids))

    # -- the protocol --------------------------------------------------------
    def store(self, id, vector, *args, **kw):
        return self._call("store", id, vector, *args, **kw)

    def store_batch(self, items, *args, **kw):
        return self._call("store_batch", [tuple(it) for it in items], *args, **kw)

    def delete(self, id):
        return self._call("delete", id)

    def get(self, id):
        return self._call("get", id)

    def exists(self, id):
        return self._call("exists", id)

    def count(self):
        return self._call("count")

    def search(self, query, limit, *args, **kw):
        return self._call("search", query, limit, *args, **kw)

    def close(self) -> None:
        """Forwarded; the connection stays (a passing seed's ``drop`` follows
        ``close``) until ``drop`` or until the proxy is collected."""
        if self._child.alive() and self._child.killed is None:
            self._call("close")

    def nemeses(self) -> dict[str, Callable[[], Any]]:
        """The backend's own nemeses (fired over a second connection, as they
        run while a call is in flight), and ``kill``."""
        out: dict[str, Callable[[], Any]] = {n: self._nemesis_forwarder(n) for n in self._nemesis_names}
        out[KILL] = self.kill_process
        return out

    def _drop(self) -> None:
        """``drop`` forwarded, then this handle's connection let go."""
        try:
            self._call("drop")
        finally:
            self._finalizer()

    def _nemesis_forwarder(self, name: str) -> Callable[[], Any]:
        def fire():
            with self._side_lock:
                if not self._side_holder:
                    self._side_holder.append(self._child.connect())
                    self._side_request({"op": "attach", "handle": self._handle})
                return self._side_request({"op": "nemesis", "name": name})
        return fire

    def _side_request(self, header: dict[str, Any]) -> Any:
        side = self._side_holder[0]
        send_frame(side, pack(header, []))
        h, blobs = unpack(recv_frame(side))
        if "e" in h:
            raise rebuild_error(h["e"])
        return decode(h["r"], blobs)

    # -- kills ----------------------------------------------------------------
    def kill_process(self) -> dict[str, Any]:
        """SIGKILL the child (and the pids its store named) now, between calls."""
        child = self._child
        if child.killed is None:
            child.killed = child.kill()
        return dict(child.killed)

    def arm_kill(self, at: str, at_ppm: int) -> None:
        """The next request kills the child: ``during`` the store call (at the
        Python call ``at_ppm`` of the way through it), or ``after-reply``."""
        assert at in ARMED and 0 <= at_ppm < PPM
        self._armed = {"at": at, "ppm": int(at_ppm)}

    def take_kill(self) -> dict[str, Any] | None:
        """What the armed kill did (kind, and the child's last words), once."""
        k, self._kill, self._armed = self._kill, None, None
        return k

    def child_died(self) -> dict[str, Any] | None:
        """The child's unexpected death (not a kill of the harness), once."""
        d, self._died = self._died, None
        return d

    def crash_pids(self) -> list[int]:
        return list(self._child.extra_pids)

    @property
    def pid(self) -> int:
        return self._child.pid

    # -- the call -----------------------------------------------------------------
    def _call(self, op: str, *args: Any, **kw: Any) -> Any:
        blobs: list[bytes] = []
        header: dict[str, Any] = {"op": op, "args": encode(list(args), blobs),
                                  "kw": encode(kw, blobs)}
        armed = self._armed
        if armed is not None:
            header["kill"] = armed
        return self._request(header, blobs)

    def _request(self, header: dict[str, Any], blobs: list[bytes] | None = None) -> Any:
        child = self._child
        if child.killed is not None or not child.alive():
            raise ChildGone("the backend's process is gone; the request was not sent")
        armed = header.get("kill")
        try:
            send_frame(self._sock, pack(header, blobs or []))
        except OSError:
            self._note_death("the connection broke while the request was written")
            raise ChildGone("the backend's process died before the request was written") from None
        try:
            h, rblobs = unpack(recv_frame(self._sock))
        except socket.timeout:
            report = child.kill()
            child.killed = report
            self._died = {"why": f"no reply in {REPLY_TIMEOUT_S} s: killed", **report}
            raise ReplyTimeout(f"no reply in {REPLY_TIMEOUT_S} s (REPLY_TIMEOUT_S); the child was killed") \
                from None
        except (Eof, OSError):
            if armed is not None:
                return self._armed_death(armed, None)
            info = self._note_death("the child died during the call")
            raise ChildDied(f"the backend's process died during the call: exit {info['exit']} "
                            f"({info['output']})"[:800]) from None
        if "dying" in h:
            return self._armed_death(armed, h["dying"])
        if armed is not None and armed["at"] == "after-reply":
            return self._armed_death(armed, {"at": "after-reply", "reply": h.get("e", {"ok": True})},
                                     discard=True)
        if "e" in h:
            raise rebuild_error(h["e"])
        return decode(h["r"], rblobs)

    def _note_death(self, why: str) -> dict[str, Any]:
        info = self._child.reap(why)
        self._child.killed = info
        self._died = info
        return info

    def _armed_death(self, armed: dict[str, Any] | None, words: dict[str, Any] | None,
                     discard: bool = False) -> Any:
        """The child died of the kill this request armed: reaped and described.

        ``words``: the child's last words (where it died); ``discard``: it
        wrote its reply and died, and the reply is not the answer.
        """
        child = self._child
        reaped = _pause(child.proc, KILL_WAIT_S)
        report = child.kill()   # also the pids its store named; the child is reaped already
        report["reaped"] = reaped or report["reaped"]
        child.killed = report
        if words is None:
            # It died before it could say where: not this kill's doing.
            info = {"why": "died during an armed call without last words", **report,
                    "output": child.tail()}
            self._died = info
            raise ChildDied(f"the backend's process died during the call: exit {report['exit']}")
        at = words.get("at")
        self._kill = {"at": at, **{k: v for k, v in words.items() if k != "at"}, **report}
        if discard:
            self._kill["reply_discarded"] = True
        if report["exit"] != -signal.SIGKILL:
            self._died = {"why": f"the child did not die of SIGKILL (exit {report['exit']})", **report}
        raise ChildKilled(f"the backend's process was killed ({at})")


def _forwarder(ref: "weakref.ref[ChildBackend]", name: str) -> Callable[..., Any]:
    """An optional method, forwarded (a weak reference: no cycle keeps a
    dropped proxy, and its child, alive)."""
    def call(*args, **kw):
        proxy = ref()
        if proxy is None:
            raise ChildGone("the handle is gone")
        if name == "drop":
            return proxy._drop()
        return proxy._call(name, *args, **kw)
    call.__name__ = name
    return call


def isolated_factory(spec: str, count_events: bool = False) -> Callable[[BackendConfig], ChildBackend]:
    """A factory opening ``spec`` (``sim``, ``lance``, ``package.module:factory``)
    in a child process. ``count_events``: the child counts the Python calls of
    each store call, so an armed ``during`` kill lands inside the next one."""
    def factory(config: BackendConfig) -> ChildBackend:
        return ChildBackend(spec, config, count_events=count_events)
    factory.__name__ = f"isolated({spec})"
    return factory


def factory_spec(backend: str, factory: Any) -> str:
    """The spec a child resolves: the backend's name, or the factory's
    ``module:qualname`` when the run was handed a factory of its own."""
    if factory is None:
        return backend
    mod, name = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    if mod and name and "<" not in name and "." not in name:
        return f"{mod}:{name}"
    return backend
