"""Serving the WSGI app with waitress in one process or several sharing one listening socket.

One waitress process is bound by Python's global lock: its threads take turns on one core, and every database
round trip hands the lock over. On PostgreSQL, several processes (``ufdl serve --workers N``) use the other
cores. The parent binds the socket and forks the workers, each of which builds its own app (so no database
connection crosses a fork) and accepts from the shared socket: an idle worker takes the next connection. The
parent restarts a worker that dies, stops them all on SIGTERM or SIGINT, and gives up when a worker could not
build its app (a configuration or database error that a restart will not fix). A stopped process lets the
requests under way complete (up to 5 s, waitress's limit; their answers may not be sent) and runs its
``on_stop`` before it leaves.
"""
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

import waitress
from waitress.adjustments import Adjustments

log = logging.getLogger(__name__)

NO_APP = 3  # a worker's exit status when its app could not be built
POLL = 0.2  # seconds between checks on the workers


def bind(listen: str) -> socket.socket:
    """A listening socket for ``HOST:PORT`` (``[::1]:PORT`` for IPv6)."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, not {listen!r}")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, int(port)), family=family, backlog=1024)


def serve(load_app: Callable[[], object], sockets: list[socket.socket], *, workers: int = 1,
          on_stop: Callable[[object], None] | None = None, **options) -> int:
    """Serve ``load_app()`` on ``sockets`` with waitress (``options``: its adjustments, e.g. ``threads``) in
    ``workers`` processes; returns the exit status once stopped. Bad options raise ValueError at once.
    ``on_stop(app)`` runs in each serving process as it stops (SIGTERM, SIGINT)."""
    Adjustments(sockets=sockets, **options)  # checked here, not by every worker after it forked
    if workers <= 1:
        _serve_until_stopped(load_app(), sockets, options, on_stop)
        return 0
    if not hasattr(os, "fork"):
        raise RuntimeError("several workers need os.fork (POSIX); serve with one worker here")
    return _Supervisor(load_app, sockets, workers, options, on_stop).run()


def _stop_serving(*_signal) -> None:
    raise SystemExit(0)


def _serve_until_stopped(app, sockets: list[socket.socket], options: dict, on_stop) -> None:
    # SIGTERM as SIGINT: waitress stops its loop, gives the requests under way up to 5 s to finish (their
    # transactions commit or roll back whole either way; the loop no longer sends their answers) and
    # returns, and ``on_stop`` runs.
    signal.signal(signal.SIGTERM, _stop_serving)
    try:
        waitress.serve(app, sockets=sockets, **options)
    finally:
        if on_stop is not None:
            on_stop(app)


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (killed with SIGKILL, say) would keep the port: it leaves too."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


class _Supervisor:
    def __init__(self, load_app, sockets: list[socket.socket], workers: int, options: dict, on_stop):
        self.load_app, self.sockets, self.workers, self.options = load_app, sockets, workers, options
        self.on_stop = on_stop
        self.children: set[int] = set()
        self.stopping = False
        self.status = 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for _ in range(self.workers):
            self._spawn()
        while self.children:
            # Polls its own workers only: os.wait() would also reap other children (the websocket listener).
            for pid in list(self.children):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    self.children.discard(pid)
                    if not self.stopping:
                        self._replace(pid, os.waitstatus_to_exitcode(status))
            time.sleep(POLL)
        return self.status

    def _replace(self, pid: int, code: int) -> None:
        if code == NO_APP:
            log.error("worker %d could not build the app: stopping the server", pid)
            self.status = 1
            self._stop()
        else:
            log.warning("worker %d exited (%d): starting another", pid, code)
            self._spawn()

    def _spawn(self) -> None:
        pid = os.fork()
        if pid:
            self.children.add(pid)
            return
        # The worker: stopped at once while it builds its app, then as a single process is (see serve).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
        code = NO_APP
        try:
            app = self.load_app()
            code = 1
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _serve_until_stopped(app, self.sockets, self.options, self.on_stop)
            code = 0
        except BaseException:  # noqa: B036 - report whatever ended the worker, then leave without cleanup
            log.exception("worker %d failed", os.getpid())
        finally:
            sys.stderr.flush()
            os._exit(code)  # never return into the parent's code (its loop, its atexit handlers)

    def _stop(self, *_signal) -> None:
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
