"""Serving the WSGI app with waitress in one process or several sharing one listening socket.

One waitress process is bound by Python's global lock: its threads take turns on one core, and every database
round trip hands the lock over. On PostgreSQL, several processes (``ufdl serve --workers N``) use the other
cores. The parent binds the socket, builds the app once (so the start-up syncs of job types and templates run
once) and forks the workers, which accept from the shared socket: an idle worker takes the next connection. The
parent replaces a worker that dies (a new fork of the same app), backing off while workers keep dying soon after
they start, and stops them all on SIGTERM or SIGINT. A stopped process closes its listening socket, lets the
requests under way complete and sends their answers (up to ``STOP_GRACE`` seconds), closes its idle
connections, and runs its ``on_stop`` before it leaves.
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
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between checks on the workers
STEADY = 10.0  # a worker that dies sooner after it started counts as failing at start
FIRST_DELAY, MAX_DELAY = 0.5, 30.0  # seconds before the second, ... replacement in a row of early deaths
STOP_GRACE = 5.0  # seconds a stopping process gives the requests under way (waitress's own limit)
# Signals that stop a server as Ctrl-C does (SIGHUP: its terminal went away); Windows has no SIGHUP.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def parse_listen(listen: str, default_host: str = "") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); ValueError naming what is wrong."""
    host, _, port = listen.rpartition(":")
    host = host or default_host
    # A port past 65535 reached bind() and its OverflowError came out as a traceback.
    if not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT (a port from 0 to 65535), not {listen!r}")
    return host.strip("[]"), int(port)


def bind(listen: str) -> socket.socket:
    """A listening socket for ``HOST:PORT`` (``[::1]:PORT`` for IPv6, ``*:PORT`` for every interface)."""
    host, port = parse_listen(listen)
    if host == "*":  # waitress's spelling: IPv6 and IPv4 on one socket where the system can
        if socket.has_dualstack_ipv6():
            return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024)
        return socket.create_server(("", port), family=socket.AF_INET, backlog=1024)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def serve(load_app: Callable[[], object], sockets: list[socket.socket], *, workers: int = 1,
          on_stop: Callable[[object], None] | None = None, **options) -> int:
    """Serve ``load_app()`` on ``sockets`` with waitress (``options``: its adjustments, e.g. ``threads``) in
    ``workers`` processes; returns the exit status once stopped. Bad options raise ValueError before the app
    is built; an app that cannot be built raises its error. ``load_app`` runs once, in this process; with
    several workers they are forked from it, so the app it returns must hold no open database connection (a
    connection shared by two processes mixes their conversations). ``on_stop(app)`` runs in each serving
    process as it stops (SIGTERM, SIGINT)."""
    Adjustments(sockets=sockets, **options)
    if workers > 1 and not hasattr(os, "fork"):
        raise RuntimeError("several workers need os.fork (POSIX); serve with one worker here")
    app = load_app()
    if workers <= 1:
        _serve_until_stopped(app, sockets, options, on_stop)
        return 0
    return _Supervisor(app, sockets, workers, options, on_stop).run()


class _StopSignals:
    """The first stop signal (SIGTERM, SIGHUP, SIGINT) ends the serving loop. During the grace period that
    follows only a second SIGINT (Ctrl-C again) cuts it short: a worker gets SIGTERM twice when the service
    manager signals the whole control group (systemd's default) and the parent passes its own on, and the
    second must not cost the requests under way their answers. During the clean-up, none interrupts.

    A signal raises only while ``armed``, and disarms it as it raises: the code that catches the exception arms
    it again for its next phase, and disarms it as the last step inside its ``try``. A signal landing just
    after a phase is over then finds it disarmed, instead of raising where nothing catches it (the process
    died of a Ctrl-C that came as its clean-up began)."""

    def __init__(self):
        self.received = 0
        self.armed = True
        for stop_signal in (*STOP_SIGNALS, signal.SIGINT):
            signal.signal(stop_signal, self._on_signal)

    def _on_signal(self, number, _frame) -> None:
        self.received += 1
        if self.armed and (number == signal.SIGINT or self.received == 1):
            self.armed = False
            raise KeyboardInterrupt if number == signal.SIGINT else SystemExit(0)


def _serve_until_stopped(app, sockets: list[socket.socket], options: dict, on_stop) -> None:
    stops = _StopSignals()
    dispatchers: dict = {}  # waitress's map: the listening sockets, its wake-up pipe and the connections
    server = waitress.create_server(app, map=dispatchers, sockets=sockets, **options)
    server.print_listen("Serving on http://{}:{}")
    try:
        try:
            wasyncore.loop(timeout=server.adj.asyncore_loop_timeout, map=dispatchers,
                           use_poll=server.adj.asyncore_use_poll)
        except (SystemExit, KeyboardInterrupt):
            pass
        _finish_under_way(dispatchers, server.adj, stops)
    finally:
        stops.armed = False  # the clean-up runs to its end (bounded: waitress's threads, 1 s, then on_stop's limits)
        server.task_dispatcher.shutdown(timeout=1)
        wasyncore.close_all(dispatchers)
        if on_stop is not None:
            on_stop(app)


def _busy(channel: HTTPChannel) -> bool:
    """A request being received, worked on, or answered: its client is owed an answer."""
    return bool(channel.request is not None or channel.requests or channel.total_outbufs_len)


def _finish_under_way(dispatchers: dict, adjustments, stops: _StopSignals) -> None:
    """Stop accepting, then keep waitress's loop going until each connection's requests are answered (each
    closed once idle, so a keep-alive client does not send another), for at most ``STOP_GRACE`` seconds.
    Waitress's own stop ends the loop first: the answers of the requests under way were never sent."""
    for listener in [d for d in dispatchers.values() if isinstance(d, BaseWSGIServer)]:
        # New connections are refused (with several workers, once every process closed it). Only its socket:
        # waitress's own close() also closes the wake-up pipe, which a request under way writes to when it ends.
        wasyncore.dispatcher.close(listener)
    deadline = time.monotonic() + STOP_GRACE
    try:
        stops.armed = True  # a second Ctrl-C cuts the grace period short
        if not _answer_under_way(dispatchers, adjustments, deadline):
            log.warning("stopping with requests still under way after %g s", STOP_GRACE)
        stops.armed = False
    except (SystemExit, KeyboardInterrupt):
        log.warning("stopping at once: requests under way are not answered")


def _answer_under_way(dispatchers: dict, adjustments, deadline: float) -> bool:
    """Whether every connection's requests were answered (and the connection closed) before ``deadline``."""
    while time.monotonic() < deadline:
        channels = [d for d in list(dispatchers.values()) if isinstance(d, HTTPChannel)]
        for channel in channels:
            if not _busy(channel):
                channel.handle_close()
        if not any(map(_busy, channels)):
            return True
        wasyncore.loop(timeout=0.05, map=dispatchers, use_poll=adjustments.asyncore_use_poll, count=1)
    return False


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (killed with SIGKILL, say) would keep the port: it leaves too."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


class Backoff:
    """How long to wait before replacing a dead worker. One early death (a crash, a kill) is replaced at once;
    each further one in a row doubles the wait, up to ``MAX_DELAY``, so that a worker failing at every start
    (a bad deployment) neither spins the parent nor floods the log. A worker that lived ``STEADY`` seconds ends
    the row."""

    def __init__(self):
        self.early_deaths = 0

    def delay(self, lived: float) -> float:
        """The wait before replacing a worker that died after ``lived`` seconds."""
        if lived >= STEADY:
            self.early_deaths = 0
            return 0.0
        self.early_deaths += 1
        if self.early_deaths == 1:
            return 0.0
        return min(MAX_DELAY, FIRST_DELAY * 2 ** (self.early_deaths - 2))


class _Supervisor:
    def __init__(self, app, sockets: list[socket.socket], workers: int, options: dict, on_stop):
        self.app, self.sockets, self.workers, self.options = app, sockets, workers, options
        self.on_stop = on_stop
        self.children: dict[int, float] = {}  # pid: when it was forked (time.monotonic())
        self.replacements: list[float] = []  # when each replacement waiting for its backoff is due
        self.backoff = Backoff()
        self.stopping = False

    def run(self) -> int:
        for stop_signal in (*STOP_SIGNALS, signal.SIGINT):
            signal.signal(stop_signal, self._stop)
        for _ in range(self.workers):
            self._spawn()
        while self.children or (self.replacements and not self.stopping):
            # Polls its own workers only: os.wait() would also reap other children (the websocket listener).
            for pid in list(self.children):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    lived = time.monotonic() - self.children.pop(pid)
                    if not self.stopping:
                        self._replace(pid, os.waitstatus_to_exitcode(status), lived)
            now = time.monotonic()
            for due in [due for due in self.replacements if due <= now and not self.stopping]:
                self.replacements.remove(due)
                self._spawn()
            time.sleep(POLL)
        return 0

    def _replace(self, pid: int, code: int, lived: float) -> None:
        delay = self.backoff.delay(lived)
        log.warning("worker %d exited (%d) after %.1f s: starting another %s", pid, code, lived,
                    f"in {delay:g} s" if delay else "at once")
        self.replacements.append(time.monotonic() + delay)

    def _spawn(self) -> None:
        pid = os.fork()
        if pid:
            self.children[pid] = time.monotonic()
            return
        # The worker: not the parent's handlers; killed by a stop signal until it serves, then stopped as a
        # single process is (see serve).
        for stop_signal in (*STOP_SIGNALS, signal.SIGINT):
            signal.signal(stop_signal, signal.SIG_DFL)
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
        code = 1
        try:
            _serve_until_stopped(self.app, self.sockets, self.options, self.on_stop)
            code = 0
        except BaseException:  # noqa: B036 - report whatever ended the worker, then leave without cleanup
            log.exception("worker %d failed", os.getpid())
        finally:
            sys.stderr.flush()
            os._exit(code)  # never return into the parent's code (its loop, its atexit handlers)

    def _stop(self, *_signal) -> None:
        self.stopping = True
        for sock in self.sockets:
            sock.close()  # the port refuses connections once the workers (stopping too) have closed theirs
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
