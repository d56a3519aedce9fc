"""The progress channel: a gevent-websocket listener that pushes a job's events to its watchers.

``ws://HOST:PORT/v1/jobs/{pk}[?after=ID][&access_token=TOKEN]`` (or ``Authorization: Bearer``): a ``state``
message with the job's current fields, the events after ``after`` (or a ``gap`` message when they were
pruned), then every new event live; the socket is closed with 1000 after the job's final event.
FAILED is not final here: a node or an admin may reset or abort the job, and its watchers follow it.

One process runs one ``Listener``: one greenlet tails the outbox (``services/event_feed.py``), woken by
PostgreSQL's NOTIFY or, on SQLite, by a timer, and hands each event to the queues of that job's watchers. A
socket holds no database connection between its connect-time reads.

Run it with ``ufdl websocket`` (or ``python -m ufdl_pyramid.websocket -c INI``): both monkey-patch before
anything imports psycopg. Known gevent-websocket 0.10.1 pitfalls handled here: its close frame lacks the
status code (``ChannelSocket.close`` writes it), its handler upgrades any request carrying ``Upgrade:
websocket`` (``ChannelHandler`` only upgrades the channel path, after authenticating), and pywsgi needs
TCP_NODELAY.
"""
import base64
import json
import logging
import os
import re
import signal
import socket
import struct
import sys
import time
from collections import defaultdict
from urllib.parse import parse_qs

import gevent
import gevent.lock
import gevent.queue
import gevent.select
from gevent.pywsgi import WSGIHandler, WSGIServer
from geventwebsocket.exceptions import ProtocolError, WebSocketError
import geventwebsocket.handler
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import Header, WebSocket
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from .cli.websocket import CHILD_OF_SERVE, SCHEMA_NOT_CURRENT_EXIT
from .errors import DATABASE_UNAVAILABLE, NO_CREDENTIALS, RETRY_AFTER_OUTAGE, NotAuthenticated
from .models import Job, JobEvent, User, database_error_line, database_unavailable, get_engine, get_session_factory
from .models.jobs import CANCELED, COMPLETED
from .models.meta import MAX_ID
from .services import schema
from .services.auth import AuthConfig, AuthService
from .services.event_feed import EventFeed
from .services.events import NOTIFY_CHANNEL, event_json, parse_age, prune_events, pruned_through
from .serving import parse_listen

log = logging.getLogger(__name__)

# The statuses a job never leaves: its channel closes after them (FAILED is retried by a reset or an abort).
ENDED = (COMPLETED, CANCELED)
# \A...\Z and [0-9]: "$" also matches before a trailing newline (/v1/jobs/7%0A), and \d is any script's digits.
CHANNEL_PATH = re.compile(r"\A/v1/jobs/([0-9]{1,18})/?\Z")
STATUS_PATH = "/v1/websocket/status"
CLOSED = object()
MAX_CLIENT_MESSAGE = 4096
KNOWN_OPCODES = frozenset((WebSocket.OPCODE_CONTINUATION, WebSocket.OPCODE_TEXT, WebSocket.OPCODE_BINARY,
                           WebSocket.OPCODE_CLOSE, WebSocket.OPCODE_PING, WebSocket.OPCODE_PONG))


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


class SendTimedOut(WebSocketError):
    """A write the peer did not take within the send timeout: it stopped reading."""


class ChannelSocket(WebSocket):
    """gevent-websocket's socket with a correct close frame, serialised writes with a time limit and a
    liveness clock."""

    def __init__(self, environ, read, write):
        super().__init__(environ, read, write)
        self.write_lock = gevent.lock.Semaphore()
        self.last_heard = time.monotonic()
        self.message_bytes = 0  # of the data message being read, over its frames
        # Seconds a write (waiting for the lock included) may take; None: no limit. A peer that stops reading
        # fills the socket buffers and the write blocks: without a limit its greenlet stayed pinned for ever.
        self.send_timeout: float | None = None

    def _write(self, write, *args):
        with gevent.Timeout(self.send_timeout, SendTimedOut(f"the peer took no data for {self.send_timeout} s")):
            try:
                with self.write_lock:
                    return write(*args)
            except SendTimedOut:
                # A frame may be half written: the stream is unusable, and a close frame would block too.
                self.cut()
                raise

    def send_frame(self, message, opcode):
        return self._write(super().send_frame, message, opcode)

    def send_prebuilt(self, frame: bytes) -> None:
        """A whole frame built once for every watcher (see ``text_frame``)."""
        if self.closed:
            raise WebSocketError("socket already closed")
        try:
            self._write(self.raw_write, frame)
        except OSError:
            raise WebSocketError("socket dead") from None

    def cut(self) -> None:
        """Drop the connection without a close frame (a peer that stopped reading would never get it)."""
        self.closed = True
        try:
            self.handler.socket.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass

    def handle_pong(self, header, payload):
        self.last_heard = time.monotonic()

    def read_frame(self):
        """gevent-websocket's, with a size limit: it read any frame whole and unmasked it byte by byte in
        Python, so one 64 MB frame froze the listener for 12 s. A client sends only pongs and its close."""
        header = Header.decode_header(self.stream)
        if header.flags:
            raise ProtocolError("reserved bits set")
        if header.opcode not in KNOWN_OPCODES:  # before its payload is read: reserved ones have no size check
            raise ProtocolError(f"unknown opcode {header.opcode}")
        if not header.mask:  # RFC 6455 5.1: a client masks every frame, and a server closes on one that is not
            raise ProtocolError("unmasked client frame")
        if header.opcode <= self.OPCODE_BINARY:  # data (control frames are 125 bytes at most)
            continued = self.message_bytes if header.opcode == self.OPCODE_CONTINUATION else 0
            self.message_bytes = continued + header.length
            if self.message_bytes > MAX_CLIENT_MESSAGE:
                self.close(1009, f"a client message is limited to {MAX_CLIENT_MESSAGE} bytes")
                raise WebSocketError("client message too big")
        payload = self.raw_read(header.length) if header.length else b""
        if len(payload) != header.length:
            raise WebSocketError("Unexpected EOF reading frame payload")
        if header.mask:
            payload = header.unmask_payload(payload)
        self.last_heard = time.monotonic()
        return header, payload

    def close(self, code=1000, message=b""):
        if self.closed:
            return
        try:
            payload = message.encode() if isinstance(message, str) else bytes(message or b"")
            self.send_frame(struct.pack("!H", code) + payload, self.OPCODE_CLOSE)
        except (WebSocketError, OSError):
            pass
        finally:
            self.closed = True


def text_frame(text: str) -> bytes:
    data = text.encode()
    return bytes(Header.encode_header(True, WebSocket.OPCODE_TEXT, b"", len(data), 0)) + data


def _malformed_upgrade(environ) -> tuple[str, str] | None:
    """What RFC 6455 (4.2.1) requires of an upgrade, checked before gevent-websocket sees it: its own
    refusals of these crash (a str body, an uncaught base64 error) instead of answering."""
    if environ.get("REQUEST_METHOD") != "GET":  # gevent-websocket let it through (a 404) once authenticated
        return "405 Method Not Allowed", "A websocket upgrade is a GET request"
    if environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
        return "400 Bad Request", "A websocket upgrade needs HTTP/1.1"
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != "13":
        return "426 Upgrade Required", "Sec-WebSocket-Version must be 13"
    try:
        key = base64.b64decode(environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip(), validate=True)
    except ValueError:  # binascii.Error, and the ValueError of a key that is not ASCII (it was a 500)
        key = b""
    if len(key) != 16:
        return "400 Bad Request", "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


class ChannelHandler(WebSocketHandler):
    """Upgrades only ``/v1/jobs/{pk}``, and only once the listener accepted the request (else an HTTP
    answer: 401, 404, ...). Everything else goes to the listener as plain WSGI."""

    def run_application(self):
        upgrade = self.environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        if not upgrade or not CHANNEL_PATH.match(self.environ.get("PATH_INFO", "")):
            return WSGIHandler.run_application(self)
        refusal = self.application.gate(self.environ)
        if refusal is not None:
            self.environ["ufdl.refusal"] = refusal
            return WSGIHandler.run_application(self)
        return super().run_application()

    def format_request(self) -> str:
        # gevent-websocket logs every request but the upgrades it accepts (at INFO) with its query string: one
        # that gives a token (?access_token=, however spelt) is not written to the log.
        line = super().format_request()
        query = (self.environ or {}).get("QUERY_STRING", "")
        return line.replace(f"?{query}", "?<hidden>", 1) if "access_token" in parse_qs(query) else line


# gevent-websocket's handler builds its sockets from this module global: ours instead (the class only adds to
# it; WebSocket's __slots__ rule out swapping the class of an instance).
geventwebsocket.handler.WebSocket = ChannelSocket


class ChannelServer(WSGIServer):
    handler_class = ChannelHandler

    def handle(self, sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return super().handle(sock, address)


# A watcher this far behind (its peer stopped reading: its writes block) is dropped; it reconnects with after=.
MAX_BACKLOG = 10000
# A replay (after=) reads this many events at a time, each page sent before the next is read: it read them all
# at once, holding every one (and its JSON) in memory until the last was sent.
REPLAY_PAGE = 20
# The queued messages one write joins, in bytes (one bigger message goes alone): a slow peer's backlog was
# joined whole (256 messages of any size) into one buffer, and its write had no bounded duration.
MAX_WRITE = 1 << 20


class Watcher:
    def __init__(self, job_id: int, user_id: int | None = None):
        self.job_id = job_id
        self.user_id = user_id
        self.queue = gevent.queue.Queue()
        self.greenlet = gevent.getcurrent()
        self.ended: tuple[int, str] | None = None  # the close code and reason when the listener ends it


class Listener:
    """The WSGI application of the listener process, and its one outbox tailer."""

    def __init__(self, settings: dict, engine=None):
        self.settings = settings
        self.engine = engine or get_engine(settings)
        self.sessions = get_session_factory(self.engine)
        self.auth_config = AuthConfig.from_settings(settings)
        self.ping_interval = float(settings.get("ufdl.ws_ping_interval") or 20)
        self.poll_interval = float(settings.get("ufdl.ws_poll_interval") or 0.05)
        retention = settings.get("ufdl.events.retention")
        self.retention = parse_age(retention) if retention else None
        self.prune_interval = float(settings.get("ufdl.events.prune_interval") or 3600)
        self.feed = EventFeed(self.engine)
        self.watchers: dict[int, set[Watcher]] = defaultdict(set)
        self.wakeups = 0
        self._tailer = None
        self._lost_database_at: float | None = None  # time.monotonic() when the tailer lost the database
        self._next_recheck = time.monotonic() + self.ping_interval

    # The tailer

    def start(self) -> None:
        self.feed.start()
        self._tailer = gevent.spawn(self._tail)

    def stop(self) -> None:
        if self._tailer is not None:
            self._tailer.kill()

    def _tail(self) -> None:
        next_prune = time.monotonic()
        while True:
            try:
                if self.engine.dialect.name == "postgresql":
                    self._tail_notifications()
                else:
                    while True:
                        self._wake()
                        self._back()
                        if self.retention and time.monotonic() >= next_prune:
                            next_prune = time.monotonic() + self.prune_interval
                            self._prune()
                        gevent.sleep(self.poll_interval)
            except gevent.GreenletExit:
                raise
            except Exception as error:
                if not database_unavailable(error):
                    log.exception("the event tailer failed; restarting in 1 s")
                elif self._lost_database_at is None:  # one line for the whole outage, not one a second
                    log.warning("the event tailer lost the database (%s); trying again every second",
                                database_error_line(error))
                    self._lost_database_at = time.monotonic()
                gevent.sleep(1)

    def _back(self) -> None:
        """The tailer reached the database again after losing it: say so, once."""
        if self._lost_database_at is not None:
            log.warning("the event tailer is back after %.0f s without the database",
                        time.monotonic() - self._lost_database_at)
            self._lost_database_at = None

    def _tail_notifications(self) -> None:
        import psycopg

        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        kwargs.setdefault("connect_timeout", int(self.settings.get("ufdl.db.connect_timeout") or 10))
        with psycopg.connect(*args, **kwargs, autocommit=True) as connection:
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            next_prune = time.monotonic()
            self._wake()  # whatever committed while we were not listening
            self._back()
            while True:
                # Open gaps may fill without a notification we can tie to them: look again soon.
                readable, _, _ = gevent.select.select([connection.fileno()], [], [], self.feed.poll_delay())
                if readable:
                    connection.pgconn.consume_input()
                    while connection.pgconn.notifies() is not None:
                        pass
                self._wake()
                if self.retention and time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.prune_interval
                    self._prune()

    def _wake(self) -> None:
        if time.monotonic() >= self._next_recheck:
            self._next_recheck = time.monotonic() + self.ping_interval
            self._recheck()
        messages = self.feed.poll()
        self.wakeups += 1
        for message in messages:
            watchers = tuple(self.watchers.get(message["pk"], ()))
            if watchers:
                item = (message, text_frame(json.dumps(message)))  # encoded once for every watcher
                for watcher in watchers:
                    if watcher.queue.qsize() >= MAX_BACKLOG:
                        log.warning("dropping a watcher of job %s: %d messages behind", watcher.job_id, MAX_BACKLOG)
                        self._forget(watcher)
                        watcher.greenlet.kill(block=False)
                        continue
                    watcher.queue.put(item)

    def _recheck(self) -> None:
        """Once per ping interval, in one query each: a job deleted for good ends its watchers (1011), and a
        user deactivated since connecting is no longer served (1008), as their REST calls are not."""
        watchers = [watcher for group in list(self.watchers.values()) for watcher in group]
        if not watchers:
            return
        with self.sessions() as db:
            jobs = set(db.scalars(select(Job.id).where(Job.id.in_({w.job_id for w in watchers}))))
            users = set(db.scalars(select(User.id).where(
                User.id.in_({w.user_id for w in watchers if w.user_id is not None}), User.is_active.is_(True))))
        for watcher in watchers:
            if watcher.job_id not in jobs:
                watcher.ended = (1011, "job deleted")
            elif watcher.user_id is not None and watcher.user_id not in users:
                watcher.ended = (1008, "user deactivated")
            else:
                continue
            watcher.queue.put(CLOSED)

    def _prune(self) -> None:
        with self.sessions() as db, db.begin():
            count = prune_events(db, self.retention)
        if count:
            log.info("pruned %d job events older than %s", count, self.retention)

    # Connections

    def gate(self, environ) -> tuple[str, str] | None:
        """None when the upgrade may go ahead, else the HTTP status and detail to answer with."""
        malformed = _malformed_upgrade(environ)
        if malformed is not None:
            return malformed
        query = parse_qs(environ.get("QUERY_STRING", ""))
        header = environ.get("HTTP_AUTHORIZATION")
        token = None
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return "401 Unauthorized", "Authorization header must be 'Bearer <access token>'"
            token = value.strip()
        elif query.get("access_token"):
            token = query["access_token"][0]
        if not token:
            return "401 Unauthorized", NO_CREDENTIALS
        after = query.get("after", [None])[0]
        if after is not None and not (after.isascii() and after.isdigit() and len(after) <= 18):
            return "400 Bad Request", f"after must be an event id, not {after!r}"
        pk = int(CHANNEL_PATH.match(environ["PATH_INFO"]).group(1))
        if pk > MAX_ID:  # no such row (and past what the column's type can be compared with)
            return "404 Not Found", f"Job {pk} not found"
        try:
            with self.sessions() as db:
                try:
                    user_id = AuthService(db, self.auth_config).user_for_access_token(token).id
                except NotAuthenticated as error:
                    return "401 Unauthorized", error.detail
                # A soft-deleted job is still retrieved (and may still run): it may still be watched.
                if db.get(Job, pk) is None:
                    return "404 Not Found", f"Job {pk} not found"
                db.rollback()
        except (DBAPIError, PoolTimeout) as error:  # a pool whose connections all stay busy too (it was a 500)
            if not database_unavailable(error):
                raise
            log.warning("database unavailable for a watcher of job %s: %s", pk, database_error_line(error))
            return "503 Service Unavailable", DATABASE_UNAVAILABLE
        environ["ufdl.job_id"] = pk
        environ["ufdl.user_id"] = user_id
        environ["ufdl.after"] = int(after) if after is not None else None
        return None

    def __call__(self, environ, start_response):
        refusal = environ.get("ufdl.refusal")
        ws = environ.get("wsgi.websocket")
        if ws is not None:
            self.channel(ws, environ["ufdl.job_id"], environ["ufdl.after"], environ["ufdl.user_id"])
            return []
        if refusal is None and environ.get("PATH_INFO") == STATUS_PATH:
            body = {"watchers": sum(len(group) for group in self.watchers.values()),
                    "jobs": sum(1 for group in self.watchers.values() if group), "wakeups": self.wakeups,
                    "horizon": self.feed.horizon, "db_connections_in_use": self.engine.pool.checkedout()}
            return self._json(environ, start_response, "200 OK", body)
        if refusal is None:
            refusal = ("404 Not Found", "The progress channel answers websocket upgrades on /v1/jobs/{pk} only")
        status, detail = refusal
        headers = [("WWW-Authenticate", "Bearer")] if status.startswith("401") else []
        if status.startswith("426"):
            headers = [("Sec-WebSocket-Version", "13")]
        if status.startswith("405"):
            headers = [("Allow", "GET")]
        if status.startswith("503"):
            headers = [("Retry-After", str(RETRY_AFTER_OUTAGE))]
        return self._json(environ, start_response, status, {"detail": detail}, headers)

    @staticmethod
    def _json(environ, start_response, status, body, headers=()):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                *headers])
        # A HEAD answer has GET's headers and no body (RFC 9110 9.3.2): pywsgi sent it, and a client on a
        # kept-alive connection (a load balancer's check) read it as the start of its next answer.
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [data]

    def _snapshot(self, pk: int, after: int | None):
        """The job's state and whether events after ``after`` were pruned, from one snapshot."""
        connection_options = {"isolation_level": "REPEATABLE READ"} if self.engine.dialect.name == "postgresql" \
            else {}
        with self.engine.connect().execution_options(**connection_options) as connection:
            with self.sessions(bind=connection) as db:
                job = db.get(Job, pk)
                latest = db.scalar(select(func.max(JobEvent.id)).where(JobEvent.job_id == pk)) or 0
                if job is None:
                    return None, False
                state = {"id": latest, "transition": "state", "pk": pk, "status": job.status,
                         "progress": job.progress, "node": job.node_id, "error": job.error_reason,
                         "transition_data": None, "time": _iso(job.last_status_change)}
                gap = after is not None and after < pruned_through(db)
                db.rollback()
        return state, gap

    def _replay(self, ws: ChannelSocket, pk: int, after: int, through: int) -> bool:
        """Send the job's events after ``after`` up to ``through``, a page at a time (no connection held while
        sending); False when some not sent yet were pruned meanwhile (the caller says so with a gap)."""
        while after < through:
            page = self._replay_page(pk, after, through)
            if page is None:
                return False
            if not page:
                break
            for message in page:
                ws.send(json.dumps(message))
            after = page[-1]["id"]
        return True

    def _replay_page(self, pk: int, after: int, through: int) -> list[dict] | None:
        """The next ``REPLAY_PAGE`` events after ``after`` up to ``through``; None when events after ``after``
        were pruned. The mark is read after the page: a prune committed before the page was read shows there."""
        with self.sessions() as db:
            page = [event_json(event) for event in db.scalars(
                select(JobEvent).where(JobEvent.job_id == pk, JobEvent.id > after, JobEvent.id <= through)
                .order_by(JobEvent.id).limit(REPLAY_PAGE))]
            pruned = after < pruned_through(db)
            db.rollback()
        return None if pruned else page

    def channel(self, ws: ChannelSocket, pk: int, after: int | None, user_id: int | None = None) -> None:
        watcher = Watcher(pk, user_id)
        self.watchers[pk].add(watcher)  # before the snapshot: nothing committed after it is missed
        reader = None
        ws.send_timeout = 2 * self.ping_interval + 1  # as long as a silent peer is given to answer a ping
        try:
            state, gap = self._snapshot(pk, after)
            if state is None:
                ws.close(1011, "job vanished")
                return
            ws.send(json.dumps(state))
            if after is not None and not gap:
                gap = not self._replay(ws, pk, after, state["id"])
            if gap:
                ws.send(json.dumps({**state, "transition": "gap", "transition_data": {
                    "detail": f"events after {after} were pruned: re-read the job"}}))
            last_sent = state["id"]
            if state["status"] in ENDED:
                return self._finish(ws, None)
            reader = gevent.spawn(self._read, ws, watcher)
            next_ping = time.monotonic() + self.ping_interval
            while True:
                now = time.monotonic()
                if now >= next_ping:  # busy or not: a peer that stopped answering is dropped
                    if now - ws.last_heard > 2 * self.ping_interval + 1:
                        log.info("dropping a silent watcher of job %s", pk)
                        return
                    ws.send_frame(b"", ws.OPCODE_PING)
                    next_ping = now + self.ping_interval
                try:
                    message = watcher.queue.get(timeout=max(0.0, next_ping - time.monotonic()))
                except gevent.queue.Empty:
                    continue
                # What is already queued goes out in one write, up to MAX_WRITE bytes.
                items, size = [message], 0 if message is CLOSED else len(message[1])
                while not watcher.queue.empty():
                    following = watcher.queue.peek_nowait()
                    if following is not CLOSED:
                        if size + len(following[1]) > MAX_WRITE:
                            break
                        size += len(following[1])
                    items.append(watcher.queue.get_nowait())
                frames, final, closed = [], False, False
                for item in items:
                    if item is CLOSED:
                        closed = True
                        break
                    message, frame = item
                    if message["id"] <= last_sent:
                        continue
                    frames.append(frame)
                    last_sent = message["id"]
                    if message["status"] in ENDED:
                        final = True
                        break
                if frames and not closed:
                    ws.send_prebuilt(b"".join(frames))
                if closed:
                    if watcher.ended is not None:
                        ws.close(*watcher.ended)
                    return
                if final:
                    return self._finish(ws, reader)
        except SendTimedOut as error:
            log.info("dropping a watcher of job %s that stopped reading: %s", pk, error)
        except (DBAPIError, PoolTimeout) as error:
            # Lost after the upgrade (its connect-time reads): too late for a 503, so 1013, try again later (it
            # escaped as a traceback and a 1001). The client reconnects with after= as after any drop.
            if not database_unavailable(error):
                raise
            log.warning("database unavailable for a watcher of job %s: %s", pk, database_error_line(error))
            ws.close(1013, "database unavailable; try again later")
        except (WebSocketError, OSError) as error:
            log.debug("watcher of job %s gone: %s", pk, error)
        except gevent.GreenletExit:
            # Dropped while (probably) blocked writing to a peer that stopped reading: no close frame.
            ws.cut()
        finally:
            self._forget(watcher)
            if reader is not None:
                reader.kill(block=False)
            if not ws.closed:
                ws.close(1001, "going away")

    def _forget(self, watcher: Watcher) -> None:
        group = self.watchers.get(watcher.job_id)
        if group is not None:
            group.discard(watcher)
            if not group:
                self.watchers.pop(watcher.job_id, None)

    def _finish(self, ws: ChannelSocket, reader) -> None:
        """Close with 1000 and give the client a moment to answer with its close frame."""
        ws.close(1000, "job finished")
        if reader is None:
            reader = gevent.spawn(self._read, ws, None)
        reader.join(timeout=2)
        reader.kill(block=False)

    @staticmethod
    def _read(ws: ChannelSocket, watcher: Watcher | None) -> None:
        """Consume what the client sends (pongs, its close frame); tell the writer when the client is gone."""
        try:
            while True:
                if ws.receive() is None:
                    break
        except (WebSocketError, OSError):
            pass
        if watcher is not None:
            watcher.queue.put(CLOSED)


class SchemaNotCurrent(Exception):
    """The database is not at the schema this code expects (started before 'ufdl db upgrade')."""


def serve(settings: dict, listen: str, *, ready=None) -> None:
    host, port = parse_listen(listen, default_host="127.0.0.1")  # brackets around an IPv6 host stripped
    listener = Listener(settings)
    if not schema.is_current(listener.engine):  # it failed on "no such table: job_events", saying no more
        raise SchemaNotCurrent()
    server = ChannelServer((host, port), listener, log=None,
                           error_log=logging.getLogger("ufdl_pyramid.websocket.server"))
    # Ctrl-C and SIGTERM stop it quietly: in a greenlet, a KeyboardInterrupt came with the hub's traceback.
    # (Beside `ufdl serve`, SIGINT is ignored: the server stops its listener itself.) Set before the port
    # opens: whoever sees it open may signal at once, and the feed's start may then wait a few seconds.
    stopping = []

    def stop_serving():
        stopping.append(True)
        server.stop()

    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(stop_signal) is not signal.SIG_IGN:
            gevent.signal_handler(stop_signal, stop_serving)
    server.init_socket()  # binds: a port already taken fails here, before anything is announced
    listener.start()
    print(f"progress channel on ws://{f'[{host}]' if ':' in host else host}:{port}/v1/jobs/{{pk}}", flush=True)
    if ready:
        ready()
    try:
        if not stopping:
            server.serve_forever()
    finally:
        listener.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m ufdl_pyramid.websocket -c INI [--listen HOST:PORT]``."""
    import argparse

    from pyramid.paster import get_appsettings, setup_logging

    from .settings import SettingsError, load_settings

    parser = argparse.ArgumentParser(prog="ufdl websocket")
    parser.add_argument("-c", "--config", default="development.ini")
    parser.add_argument("--listen", default="127.0.0.1:6544", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    if os.environ.get(CHILD_OF_SERVE):
        # Ctrl-C in a terminal reaches every process of the group: `ufdl serve` stops this one itself.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(args.config)
    try:
        serve(load_settings(get_appsettings(args.config)), args.listen)
    except SettingsError as error:
        return _fail(str(error))
    except SchemaNotCurrent:
        _fail("the database is not at the newest schema: run 'ufdl db upgrade', then "
              + ("restart the server" if os.environ.get(CHILD_OF_SERVE) else "start the progress channel again"))
        return SCHEMA_NOT_CURRENT_EXIT
    except (OSError, ValueError) as error:
        return _fail(f"cannot listen on {args.listen}: {error}")
    except DBAPIError as error:
        return _fail(f"database error: {database_error_line(error)}")
    except KeyboardInterrupt:  # Ctrl-C (make run): a normal stop
        pass
    return 0


def _fail(message: str) -> int:
    print(f"ufdl websocket: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    from gevent import monkey

    monkey.patch_all()
    sys.exit(main())
