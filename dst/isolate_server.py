"""The isolation child: ``python -m dst.isolate_server SOCKET READY_FD [SPEC]``.

Imports the backend ``SPEC`` names (so a spare child started ahead has the
store's library loaded), listens on the Unix socket ``SOCKET``, writes one byte to ``READY_FD`` when
it accepts connections, and serves each connection on its own thread: the
first request opens a backend (``open``: the factory spec and the config)
or attaches to one already open (``attach``, the side channel a backend's
own nemeses are fired over); every later request is one call on it,
answered before the next is read. The process ends when its last
connection closes (the harness let go of every handle), or when killed.

An armed request (``kill`` in its header, see ``dst.isolate``) makes the
process SIGKILL itself: ``during`` at the n-th Python call (profile event)
inside the store call, n drawn by the harness as a fraction of the events
the last call of the same kind made (so it lands inside this one; for a
store_batch, in the second half, where writes follow validation); if the
call returns first, right after it (``late``); ``after-reply`` right after
the reply is written. Before dying it writes its last words (where it
died) as a frame of their own, so the harness can count what happened.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import threading
from typing import Any

from dst import isolate
from dst.backend import BackendConfig, open_backend, resolve_backend

PPM = isolate.PPM
# Without a measured call of the same kind, an armed "during" kill picks
# one of this many first Python calls: a call makes at least this many in
# any backend built on the toolkit (validation alone does).
EVENTS_GUESS = 16
# Bound on the module names a child reports for a spare to preload.
MODULES_MAX = 2000
# How often an idle child checks that the harness that started it lives.
PARENT_CHECK_S = 1.0


class Server:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handles: dict[int, Any] = {}
        self.next_handle = 1
        self.connections = 0
        self.opened = False
        # (op, batch items) of the last counted call of each op kind.
        self.events: dict[str, tuple[int, int]] = {}

    def serve(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except (isolate.Eof, OSError):
            pass
        finally:
            conn.close()
            with self.lock:
                self.connections -= 1
                last = self.connections == 0 and self.opened
            if last:
                # Every handle let go: end without waiting for a store's own
                # threads (a clean close already ran where the harness asked).
                os._exit(0)

    def _serve(self, conn: socket.socket) -> None:
        backend = None
        count_events = False
        while True:
            h, blobs = isolate.unpack(isolate.recv_frame(conn))
            op = h["op"]
            if op == "open":
                reply, backend, count_events = self._open(h)
                isolate.send_frame(conn, reply)
                continue
            if op == "attach":
                backend = self.handles[int(h["handle"])]
                isolate.send_frame(conn, isolate.pack({"r": True}, []))
                continue
            if op == "nemesis":
                self._reply(conn, lambda: backend.nemeses()[h["name"]]())
                continue
            args = isolate.decode(h.get("args", []), blobs)
            kw = isolate.decode(h.get("kw", {}), blobs)
            if op == "store_batch":
                args[0] = [tuple(it) for it in args[0]]
            fn = getattr(backend, op, None) if op != "close" else getattr(backend, "close", lambda: None)
            kill = h.get("kill")
            counted = count_events or (kill is not None and kill["at"] == "during")
            if not counted:
                self._reply(conn, lambda: fn(*args, **kw))
                continue
            n_items = len(args[0]) if op == "store_batch" and args else 1
            target = None
            est = self._estimate(op, n_items)
            if kill is not None and kill["at"] == "during":
                span = est if est is not None else EVENTS_GUESS
                start = 0
                if op == "store_batch":
                    # A batch is killed in the second half of its Python
                    # calls: a store validates first and writes after, so
                    # that is where a kill can land between written rows.
                    start = span // 2
                target = 1 + start + int(kill["ppm"]) * max(span - start - 1, 0) // PPM
            seen = [0]

            def hook(frame, event, arg, target=target):
                if event == "call" or event == "c_call":
                    seen[0] += 1
                    if seen[0] == target:
                        where = getattr(arg, "__qualname__", None) if event == "c_call" else None
                        die(conn, {"at": "during", "event": target, "estimate": est,
                                   "where": where or frame.f_code.co_qualname})

            def call():
                sys.setprofile(hook)
                try:
                    return fn(*args, **kw)
                finally:
                    sys.setprofile(None)

            reply = self._answer(call)
            with self.lock:
                self.events[op] = (seen[0], n_items)
            if target is not None:
                # The call returned (or raised) before the chosen event.
                die(conn, {"at": "late", "event": target, "events": seen[0], "estimate": est})
            isolate.send_frame(conn, reply)
            if kill is not None and kill["at"] == "after-reply":
                signal.raise_signal(signal.SIGKILL)

    def _estimate(self, op: str, n_items: int) -> int | None:
        with self.lock:
            last = self.events.get(op)
        if last is None or last[0] <= 0:
            return None
        events, items = last
        return max(1, events * n_items // max(items, 1))

    def _reply(self, conn: socket.socket, call) -> None:
        isolate.send_frame(conn, self._answer(call))

    def _answer(self, call) -> bytes:
        try:
            out = call()
        except BaseException as exc:  # noqa: BLE001 - classified onto the wire
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return isolate.pack({"e": isolate.error_header(exc)}, [])
        blobs: list[bytes] = []
        return isolate.pack({"r": isolate.encode(out, blobs)}, blobs)

    def _open(self, h: dict[str, Any]) -> tuple[bytes, Any, bool]:
        c = h["config"]
        config = BackendConfig(dim=c["dim"], location=c["location"], namespace=c["namespace"],
                               fresh=c["fresh"], options=c["options"], metric=c["metric"])
        try:
            backend = open_backend(resolve_backend(h["spec"]), config)
        except BaseException as exc:  # noqa: BLE001 - classified onto the wire
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return isolate.pack({"e": isolate.error_header(exc)}, []), None, False
        with self.lock:
            hid = self.next_handle
            self.next_handle += 1
            self.handles[hid] = backend
            self.opened = True
        attrs = {k: getattr(backend, k) for k in isolate.ATTRIBUTES if hasattr(backend, k)}
        if "maintenance_kinds" in attrs and attrs["maintenance_kinds"] is not None:
            attrs["maintenance_kinds"] = list(attrs["maintenance_kinds"])
        methods = [m for m in isolate.OPTIONAL_METHODS if callable(getattr(backend, m, None))]
        get = getattr(backend, "nemeses", None)
        nemeses = sorted(get()) if callable(get) else []
        pids_fn = getattr(backend, "crash_pids", None)
        pids = [int(p) for p in pids_fn()] if callable(pids_fn) else []
        blobs: list[bytes] = []
        modules = sorted({m.split(".")[0] for m in list(sys.modules) if not m.startswith("_")})
        desc = {"handle": hid, "attrs": isolate.encode(attrs, blobs), "methods": methods,
                "nemeses": nemeses, "crash_pids": pids, "modules": modules[:MODULES_MAX]}
        return isolate.pack({"r": desc}, blobs), backend, bool(h.get("count_events"))


def die(conn: socket.socket, words: dict[str, Any]) -> None:
    """Last words (where), then SIGKILL: no cleanup, no flush, as a crash."""
    try:
        isolate.send_frame(conn, isolate.pack({"dying": words}, []))
    finally:
        signal.raise_signal(signal.SIGKILL)


def main(argv: list[str]) -> int:
    path, ready_fd = argv[0], int(argv[1])
    isolate.mark_child()
    if len(argv) > 2:
        try:
            resolve_backend(argv[2])   # import the store's library before saying ready
        except Exception:  # noqa: BLE001 - the open request reports it
            pass
    for name in filter(None, os.environ.get("DST_ISOLATE_PRELOAD", "").split(",")):
        try:
            importlib.import_module(name)   # what the last child had loaded with its store open
        except BaseException:  # noqa: BLE001 - a module that will not import now is imported later, or not
            pass
    server = Server()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    os.write(ready_fd, b"R")
    os.close(ready_fd)
    parent = os.getppid()
    listener.settimeout(PARENT_CHECK_S)
    while True:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            if os.getppid() != parent:
                os._exit(0)      # the harness is gone (a spare nobody will use)
            continue
        conn.settimeout(None)
        with server.lock:
            server.connections += 1
        threading.Thread(target=server.serve, args=(conn,), daemon=True, name="dst-iso-conn").start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
