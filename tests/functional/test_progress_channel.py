"""The progress channel: a real gevent listener in a child process, real websocket clients, the REST app in
this process (so every test here is also a two-process test); on PostgreSQL, NOTIFY carries the wake-ups."""
import json
import re
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
import transaction
import websocket
from sqlalchemy import create_engine, select, text

from ufdl_pyramid.cli.websocket import listener_argv
from ufdl_pyramid.client import ChannelRefused, channel_url, connect, watch_job
from ufdl_pyramid.models import Job, JobEvent, get_session_factory, get_tm_session
from ufdl_pyramid.models.meta import utcnow
from ufdl_pyramid.services.event_feed import EventFeed
from ufdl_pyramid.services.events import prune_events, record_event
from ufdl_pyramid.testing import TEST_SETTINGS

PING_INTERVAL = 0.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Logging at INFO to stderr (development.ini's root level), where gevent-websocket's access log writes.
ACCESS_LOG_INI = """
[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = INFO
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = generic
[formatter_generic]
format = %(levelname)s [%(name)s] %(message)s
"""


class ListenerProcess:
    def __init__(self, engine, tmp_path, launch=None, access_log=False, **extra_settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
        settings = {**TEST_SETTINGS, "sqlalchemy.url": url, "ufdl.ws_ping_interval": str(PING_INTERVAL),
                    "ufdl.ws_poll_interval": "0.02", **extra_settings}
        ini = tmp_path / "listener.ini"
        ini.write_text("[app:main]\nuse = egg:ufdl-pyramid\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
                       + (ACCESS_LOG_INI if access_log else ""))
        self.log = open(tmp_path / "listener.log", "w+")
        argv = listener_argv(str(ini), f"127.0.0.1:{self.port}")
        if launch:
            argv[2] = launch
        self.process = subprocess.Popen(argv,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    self.log.seek(0)
                    raise RuntimeError(f"the listener did not start:\n{self.log.read()}")
                time.sleep(0.05)

    def status(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/v1/websocket/status", timeout=5) as response:
            return json.load(response)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.log.seek(0)
        self.text = text = self.log.read()
        self.log.close()
        assert "Traceback" not in text, text


@pytest.fixture
def listener(engine, tmp_path):
    process = ListenerProcess(engine, tmp_path)
    yield process
    process.stop()


def path(job, action):
    return f"/v1/jobs/{job['pk']}/{action}"


class Watch:
    """``watch_job`` in a thread: the messages land in a queue."""

    def __init__(self, listener, token, pk, **kwargs):
        self.messages = queue.Queue()
        self.error = None
        self.done = threading.Event()

        def run():
            try:
                for message in watch_job(listener.url, token, pk, **kwargs):
                    self.messages.put(message)
            except Exception as error:  # pragma: no cover - reported by the test
                self.error = error
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def next(self, timeout=10) -> dict:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout}s (error: {self.error})") from None


def events_of(engine, pk):
    with engine.connect() as connection:
        return connection.execute(select(JobEvent.id, JobEvent.transition).where(JobEvent.job_id == pk)
                                  .order_by(JobEvent.id)).all()


def test_a_whole_lifecycle_arrives_in_order_then_the_channel_closes(listener, engine, bob, worker, job):
    watch = Watch(listener, bob.token, job["pk"])
    state = watch.next()
    assert state["transition"] == "state" and state["pk"] == job["pk"] and state["status"] == "PENDING"
    assert state["progress"] == 0 and state["node"] is None

    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    worker.post(path(job, "progress/0.5"), {"epoch": 1, "loss": 0.25})
    worker.post(path(job, "progress/0.75"), {"epoch": 2})
    worker.post(path(job, "finish"), {})

    received = [watch.next() for _ in range(5)]
    assert [m["transition"] for m in received] == ["acquire", "start", "progress", "progress", "finish"]
    assert [m["status"] for m in received] == ["QUEUED", "RUNNING", "RUNNING", "RUNNING", "COMPLETED"]
    assert [m["progress"] for m in received] == [0, 0, 0.5, 0.75, 1.0]
    assert received[2]["transition_data"] == {"epoch": 1, "loss": 0.25}
    assert all(m["pk"] == job["pk"] and m["node"] == worker.node_id for m in received)
    ids = [m["id"] for m in received]
    assert ids == sorted(ids) and ids[0] > state["id"]
    assert [row.id for row in events_of(engine, job["pk"]) if row.id > state["id"]] == ids
    assert set(received[0]) == {"id", "transition", "pk", "status", "progress", "node", "error",
                                "transition_data", "time"}
    assert received[0]["time"].endswith("Z")
    # The final event closes the channel with 1000: watch_job returns.
    assert watch.done.wait(5) and watch.error is None
    assert watch.messages.empty()


def test_a_failed_job_is_followed_through_its_retry_and_a_finished_one_gets_a_normal_close(listener, bob, worker,
                                                                                          job):
    """FAILED closed the channel, though a reset runs the job again (the worker resets a job it stops)."""
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    worker.post(path(job, "finish"), {"error": "out of memory"})
    ws = connect(listener.url, bob.token, job["pk"])
    state = json.loads(ws.recv())
    assert state["transition"] == "state" and state["status"] == "FAILED" and state["error"] == "out of memory"
    worker.delete(path(job, "reset"))
    worker.post(path(job, "start"), {})
    worker.post(path(job, "finish"), {})
    assert [json.loads(ws.recv())["transition"] for _ in range(3)] == ["reset", "start", "finish"]
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1000
    ws.close()
    ws = connect(listener.url, bob.token, job["pk"])
    assert json.loads(ws.recv())["status"] == "COMPLETED"
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1000
    ws.close()


def test_a_cancel_ends_the_channel_with_a_normal_close(listener, bob, job):
    """CANCELED is a state a job never leaves, as COMPLETED: its watchers are closed with 1000."""
    ws = connect(listener.url, bob.token, job["pk"])
    assert json.loads(ws.recv())["status"] == "PENDING"
    bob.delete(path(job, "cancel"))
    cancelled = json.loads(ws.recv())
    assert (cancelled["transition"], cancelled["status"]) == ("cancel", "CANCELED")
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1000
    ws.close()


@pytest.mark.parametrize("follow", [False, True])
def test_the_watch_command_stops_at_a_failure_unless_told_to_follow_retries(listener, bob, worker, job, capsys,
                                                                            follow):
    from ufdl_pyramid.cli import main as ufdl
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    worker.post(path(job, "finish"), {"error": "boom"})
    if follow:
        threading.Timer(0.5, lambda: (worker.delete(path(job, "reset")), worker.post(path(job, "start"), {}),
                                      worker.post(path(job, "finish"), {}))).start()
    argv = ["jobs", "watch", str(job["pk"]), "--url", listener.url, "--token", bob.token]
    assert ufdl(argv + (["--follow-retries"] if follow else [])) == (0 if follow else 1)
    lines = capsys.readouterr().out.splitlines()
    assert "FAILED" in lines[0] and "(boom)" in lines[0]
    assert len(lines) == (4 if follow else 1) and ("COMPLETED" in lines[-1]) == follow


@pytest.mark.parametrize("ending, code", [("hard delete", 1011), ("deactivation", 1008)])
def test_a_job_deleted_for_good_or_a_deactivated_user_ends_the_channel(listener, engine, admin, bob, job, ending,
                                                                       code):
    from sqlalchemy import update

    from ufdl_pyramid.models import User

    ws = connect(listener.url, bob.token, job["pk"])
    assert json.loads(ws.recv())["transition"] == "state"
    if ending == "hard delete":
        admin.delete(path(job, "hard"))
    else:
        with engine.begin() as connection:
            connection.execute(update(User).where(User.id == bob.user_id).values(is_active=False))
    ws.settimeout(10 * PING_INTERVAL)
    opcode, data = ws.recv_data(control_frame=True)
    while opcode == websocket.ABNF.OPCODE_PING:  # the listener's pings until its next check
        opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == code
    ws.close()
    if ending == "deactivation":  # nor does its token open another
        with pytest.raises(ChannelRefused) as refused:
            connect(listener.url, bob.token, job["pk"])
        assert refused.value.status == 401 and refused.value.detail == "User is inactive or no longer exists"


def test_reconnecting_with_after_loses_nothing(listener, bob, worker, job):
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    ws = connect(listener.url, bob.token, job["pk"])
    state = json.loads(ws.recv())
    worker.post(path(job, "progress/0.1"), {"step": 1})
    first = json.loads(ws.recv())
    assert first["transition_data"] == {"step": 1}
    ws.sock.close()  # the connection drops: no close frame

    for step in (2, 3):
        worker.post(path(job, f"progress/0.{step}"), {"step": step})
    ws = connect(listener.url, bob.token, job["pk"], after=first["id"])
    again = json.loads(ws.recv())
    assert again["transition"] == "state" and again["progress"] == 0.3
    replayed = [json.loads(ws.recv()) for _ in range(2)]
    assert [m["transition_data"] for m in replayed] == [{"step": 2}, {"step": 3}]
    assert again["id"] == replayed[-1]["id"] > first["id"] > state["id"]
    worker.post(path(job, "progress/0.4"), {"step": 4})
    assert json.loads(ws.recv())["transition_data"] == {"step": 4}
    ws.close()


def test_watch_job_reconnects_by_itself(listener, bob, worker, job):
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    watch = Watch(listener, bob.token, job["pk"], reconnect_delay=0.2)
    assert watch.next()["transition"] == "state"
    worker.post(path(job, "progress/0.1"), {"step": 1})
    assert watch.next()["transition_data"] == {"step": 1}
    # Kill the listener; events keep being written; a new listener comes up on the same port.
    listener.process.kill()
    listener.process.wait(5)
    for step in (2, 3):
        worker.post(path(job, f"progress/0.{step}"), {"step": step})
    port = listener.port
    listener.process = subprocess.Popen(listener.process.args, stdout=listener.log, stderr=subprocess.STDOUT)
    assert listener.port == port
    worker.post(path(job, "progress/0.4"), {"step": 4})
    messages = [watch.next(15) for _ in range(4)]
    assert messages[0]["transition"] == "state"
    assert [m["transition_data"] for m in messages[1:]] == [{"step": 2}, {"step": 3}, {"step": 4}]
    worker.post(path(job, "finish"), {})
    assert watch.next()["transition"] == "finish"
    assert watch.done.wait(5) and watch.error is None


class ScriptedChannel:
    """A channel for ``watch_job`` without a listener: its state and one new event (``transition``), then it
    drops, or closes normally if it is the ``last``."""

    def __init__(self, after: int, transition: str, *, last: bool = False):
        self.frames = [{"id": after, "transition": "state"}, {"id": after + 1, "transition": transition}]
        self.last = last

    def recv_data(self, control_frame=False):
        if self.frames:
            return websocket.ABNF.OPCODE_TEXT, json.dumps(self.frames.pop(0)).encode()
        if self.last:
            return websocket.ABNF.OPCODE_CLOSE, (1000).to_bytes(2, "big")
        raise ConnectionResetError("dropped")

    def close(self):
        pass


def test_watch_job_counts_only_the_drops_in_a_row_toward_giving_up(monkeypatch):
    """A long watch whose connection drops now and then, each time after new events came, gave up once it had
    reconnected max_reconnects times over its whole life, as if the listener had been gone all along."""
    connections = []

    def connect(url, token, pk, after=None, timeout=30):  # the sixth ends normally
        connections.append(after)
        return ScriptedChannel(after, "progress", last=len(connections) == 6)
    monkeypatch.setattr("ufdl_pyramid.client.connect", connect)
    events = [m["id"] for m in watch_job("http://x", "t", 1, after=0, reconnect_delay=0, max_reconnects=2)
              if m["transition"] == "progress"]
    assert events == [1, 2, 3, 4, 5, 6] and connections == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("query, headers, status", [
    ("", [], 401),
    ("", ["Authorization: Bearer not-a-token"], 401),
    ("", ["Authorization: Basic eDp5"], 401),
    ("?access_token=not-a-token", [], 401),
    ("?after=x", ["TOKEN"], 400),
    ("?after=%C2%B2", ["TOKEN"], 400),  # '²' is a digit to str.isdigit, not to int()
    ("?after=" + "9" * 19, ["TOKEN"], 400),  # past any event id (and what the id column can be compared with)
])
def test_refused_upgrades_are_http_answers(listener, bob, job, query, headers, status):
    headers = [f"Authorization: Bearer {bob.token}" if h == "TOKEN" else h for h in headers]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(channel_url(listener.url, job["pk"]) + query, header=headers, timeout=5)
    assert refused.value.status_code == status
    assert json.loads(refused.value.resp_body)["detail"]
    if status == 401:
        assert refused.value.resp_headers["www-authenticate"] == "Bearer"


def test_a_token_in_the_query_is_not_written_to_the_access_log(engine, tmp_path, bob, job):
    listener = ListenerProcess(engine, tmp_path, access_log=True)
    try:
        for query in (f"?access_token={bob.token}", f"?after=x&access%5Ftoken={bob.token}"):  # refused: logged
            with pytest.raises(websocket.WebSocketBadStatusException):
                websocket.create_connection(channel_url(listener.url, 999999) + query, timeout=5)
        urllib.request.urlopen(f"{listener.url}/v1/websocket/status?access_token={bob.token}", timeout=5).close()
    finally:
        listener.stop()
    assert "GET /v1/jobs/999999?<hidden> HTTP/1.1\" 404" in listener.text
    assert "GET /v1/jobs/999999?<hidden> HTTP/1.1\" 400" in listener.text
    assert "GET /v1/websocket/status?<hidden> HTTP/1.1\" 200" in listener.text
    assert bob.token not in listener.text and bob.token[-20:] not in listener.text


@pytest.mark.parametrize("method, protocol, lines, status", [
    ("GET", "HTTP/1.1", ["Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: abc"], 400),  # not 16 bytes of base64
    ("GET", "HTTP/1.1", ["Sec-WebSocket-Version: 13"], 400),
    # A key that is not ASCII was a 500.
    ("GET", "HTTP/1.1", ["Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==é"], 400),
    ("GET", "HTTP/1.1", ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="], 426),
    ("GET", "HTTP/1.1", ["Sec-WebSocket-Version: 99", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="], 426),
    ("GET", "HTTP/1.0", ["Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="], 400),
    # Answered 404 "upgrades on /v1/jobs/{pk} only" after the token was checked.
    ("POST", "HTTP/1.1", ["Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="], 405),
])
def test_malformed_upgrades_get_whole_json_answers(listener, bob, job, method, protocol, lines, status):
    request = "\r\n".join([f"{method} /v1/jobs/{job['pk']} {protocol}", f"Host: 127.0.0.1:{listener.port}",
                            "Upgrade: websocket", "Connection: Upgrade", f"Authorization: Bearer {bob.token}",
                            *lines, "", ""])
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        sock.sendall(request.encode())
        answer = sock.makefile("rb")
        head = b"".join(iter(answer.readline, b"\r\n"))
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        body = answer.read(length)  # all of it: gevent-websocket's own refusals announced a body never sent
    assert head.split()[1] == str(status).encode()
    assert json.loads(body)["detail"]
    if status == 426:
        assert b"Sec-WebSocket-Version: 13" in head
    if status == 405:
        assert b"Allow: GET" in head


def test_unknown_job_is_404_and_a_query_token_works(listener, admin, bob, job, monkeypatch):
    for pk in (999999, 2**31, 10**17):  # past the id column's type: a 500 on PostgreSQL before
        with pytest.raises(ChannelRefused) as refused:
            connect(listener.url, bob.token, pk)
        assert refused.value.status == 404 and refused.value.detail == f"Job {pk} not found"
    import ufdl_pyramid.client
    waits = []
    monkeypatch.setattr(ufdl_pyramid.client.time, "sleep", waits.append)
    with pytest.raises(ChannelRefused):  # final: watch_job does not try again (it does after a 503)
        next(watch_job(listener.url, bob.token, 999999))
    assert waits == []
    admin.delete(f"/v1/jobs/{job['pk']}")  # soft-deleted, still retrieved over REST: still watched
    deleted = websocket.create_connection(channel_url(listener.url, job["pk"]), timeout=5,
                                          header=[f"Authorization: Bearer {bob.token}"])
    assert json.loads(deleted.recv())["transition"] == "state"
    deleted.close()
    ws = websocket.create_connection(channel_url(listener.url, job["pk"]) + f"?access_token={bob.token}",
                                     timeout=5)
    assert json.loads(ws.recv())["transition"] == "state"
    ws.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_listener_quietly(engine, tmp_path, stop_signal):
    # A test run started in the background ignores SIGINT, and so would its listener (as `nohup` asks).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        listener = ListenerProcess(engine, tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    listener.process.send_signal(stop_signal)
    try:
        assert listener.process.wait(10) == 0
    finally:
        if listener.process.poll() is None:  # it did not stop: it must not outlive the test
            listener.process.kill()
            listener.process.wait(10)
    listener.log.seek(0)
    text = listener.log.read()
    listener.log.close()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text


def test_only_the_channel_path_upgrades(listener, bob):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{listener.port}/v1/jobs/list",
                                    header=[f"Authorization: Bearer {bob.token}"], timeout=5)
    assert refused.value.status_code == 404
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(f"{listener.url}/v1/jobs/1", timeout=5)
    assert plain.value.code == 404


def test_a_head_answer_has_no_body_so_the_next_answer_on_the_connection_reads_whole(listener):
    # A load balancer's HEAD check on a kept-alive connection read the body sent after it as its next answer.
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        answers = sock.makefile("rb")
        for path, status in (("/v1/websocket/status", b"200"), ("/v1/nothing", b"404")):
            for method in ("HEAD", "GET"):
                sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                head = b"".join(iter(answers.readline, b"\r\n"))
                assert head.startswith(b"HTTP/1.1 " + status), head
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                if method == "GET":
                    assert json.loads(answers.read(length))


def test_a_channel_path_with_a_trailing_newline_or_other_digits_is_404(listener, bob, job):
    """'$' matched before a final newline: /v1/jobs/7%0A opened job 7's channel."""
    for path in (f"/v1/jobs/{job['pk']}%0A", f"/v1/jobs/{job['pk']}/%0A", "/v1/jobs/%D9%A7"):  # '٧': seven
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://127.0.0.1:{listener.port}{path}",
                                        header=[f"Authorization: Bearer {bob.token}"], timeout=5)
        assert refused.value.status_code == 404, path


def test_a_rolled_back_event_is_never_published(listener, engine, bob, worker, job):
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    ws = connect(listener.url, bob.token, job["pk"])
    json.loads(ws.recv())
    manager = transaction.TransactionManager(explicit=True)
    with pytest.raises(RuntimeError):
        with manager:
            db = get_tm_session(get_session_factory(engine), manager)
            row = db.get(Job, job["pk"])
            row.progress = 0.66
            record_event(db, row, "progress", data={"doomed": True})
            db.flush()
            raise RuntimeError("the view failed after writing its event")
    worker.post(path(job, "progress/0.7"), {"kept": True})
    message = json.loads(ws.recv())
    assert message["transition_data"] == {"kept": True} and message["progress"] == 0.7
    assert [row.transition for row in events_of(engine, job["pk"])].count("progress") == 1
    ws.close()


def test_a_client_message_past_the_limit_closes_that_channel_alone(listener, bob, worker, job):
    """The listener read any frame whole and unmasked it in Python: one 64 MB frame froze every channel."""
    victim = connect(listener.url, bob.token, job["pk"])
    assert json.loads(victim.recv())["transition"] == "state"
    for frames in ([b"x" * 5000], [b"x" * 3000, b"x" * 3000]):  # one frame, or a message in two
        sender = connect(listener.url, bob.token, job["pk"])
        json.loads(sender.recv())
        for i, part in enumerate(frames):
            opcode = websocket.ABNF.OPCODE_BINARY if i == 0 else websocket.ABNF.OPCODE_CONT
            sender.send_frame(websocket.ABNF.create_frame(part, opcode, fin=i == len(frames) - 1))
        opcode, data = sender.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1009
        sender.close()
    # A reserved opcode is refused (1002) before its payload is read: it had no size check.
    sender = connect(listener.url, bob.token, job["pk"])
    json.loads(sender.recv())
    # Written by hand (the client library refuses it): FIN + opcode 3, masked, a 64 MiB length, a zero mask, and
    # no payload: the answer must not wait for it.
    sender.sock.sendall(bytes([0x80 | 3, 0x80 | 127]) + (64 << 20).to_bytes(8, "big") + bytes(4))
    sender.settimeout(5)
    opcode, data = sender.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1002
    sender.close()
    small = connect(listener.url, bob.token, job["pk"])
    json.loads(small.recv())
    small.send("a few words are fine")
    worker.get(path(job, "acquire"))
    assert json.loads(victim.recv())["transition"] == "acquire"
    assert json.loads(small.recv())["transition"] == "acquire"
    victim.close()
    small.close()


def test_an_unmasked_client_frame_closes_the_channel_with_1002(listener, bob, job):
    # RFC 6455 5.1: a server must close on a frame a client did not mask (it was read like any other).
    sender = connect(listener.url, bob.token, job["pk"])
    json.loads(sender.recv())
    sender.sock.sendall(bytes([0x80 | websocket.ABNF.OPCODE_TEXT, 1]) + b"a")  # FIN, text, no mask bit, "a"
    sender.settimeout(5)
    opcode, data = sender.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1002
    sender.close()


def test_dead_and_silent_peers_are_dropped(listener, bob, job):
    vanishing = connect(listener.url, bob.token, job["pk"])
    json.loads(vanishing.recv())
    silent = connect(listener.url, bob.token, job["pk"])  # never reads: never answers a ping
    polite = connect(listener.url, bob.token, job["pk"])
    json.loads(polite.recv())
    assert listener.status()["watchers"] == 3
    vanishing.sock.close()
    deadline = time.time() + 10 * PING_INTERVAL
    while time.time() < deadline and listener.status()["watchers"] > 1:
        time.sleep(0.1)
        polite.ping()
    assert listener.status()["watchers"] <= 1
    polite.close()
    deadline = time.time() + 5
    while time.time() < deadline and listener.status()["watchers"]:
        time.sleep(0.05)
    status = listener.status()  # one reading: its counters (wakeups) move between two
    assert status == {**status, "watchers": 0, "jobs": 0, "db_connections_in_use": 0}
    silent.sock.close()


def test_a_resume_after_pruned_events_gets_a_gap_marker(listener, engine, bob, worker, job):
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    first_id = events_of(engine, job["pk"])[0].id
    from sqlalchemy.orm import Session
    with Session(engine) as db, db.begin():
        assert prune_events(db, timedelta(days=30), now=utcnow() + timedelta(days=31)) >= 2
    ws = connect(listener.url, bob.token, job["pk"], after=first_id - 1)
    state = json.loads(ws.recv())
    gap = json.loads(ws.recv())
    assert state["transition"] == "state" and state["status"] == "RUNNING"
    assert gap["transition"] == "gap" and gap["pk"] == job["pk"] and "pruned" in gap["transition_data"]["detail"]
    worker.post(path(job, "progress/0.5"), {})
    assert json.loads(ws.recv())["progress"] == 0.5
    ws.close()


def paging_listener(engine, tmp_path, prune_after_first_page: bool = False) -> ListenerProcess:
    """A listener that logs the size of each replay page it reads (``PAGE n``, ``PAGE gap``), and prunes every
    event after the first page if asked."""
    from ufdl_pyramid.cli.websocket import LAUNCH
    return ListenerProcess(engine, tmp_path, LAUNCH.replace(
        "from ufdl_pyramid.websocket import main\n",
        "from ufdl_pyramid.websocket import main\n"
        "from datetime import timedelta\n"
        "import ufdl_pyramid.websocket as w\n"
        "from ufdl_pyramid.models.meta import utcnow\n"
        "from ufdl_pyramid.services.events import prune_events\n"
        "_read_page = w.Listener._replay_page\n"
        "pages = []\n"
        "def read_page(self, pk, after, through):\n"
        "    page = _read_page(self, pk, after, through)\n"
        "    pages.append(page)\n"
        "    print('PAGE', 'gap' if page is None else len(page), flush=True)\n"
        f"    if {prune_after_first_page} and len(pages) == 1:\n"
        "        with self.sessions() as db, db.begin():\n"
        "            prune_events(db, timedelta(days=30), now=utcnow() + timedelta(days=31))\n"
        "    return page\n"
        "w.Listener._replay_page = read_page\n"))


def replay_pages(tmp_path) -> list[str]:
    return [line.split()[1] for line in (tmp_path / "listener.log").read_text().splitlines()
            if line.startswith("PAGE ")]


def record_progress_events(engine, job: dict, count: int) -> list[int]:
    """``count`` progress events of ``job`` (0.01, 0.02, ...); their ids."""
    manager = transaction.TransactionManager(explicit=True)
    with manager:
        db = get_tm_session(get_session_factory(engine), manager)
        row = db.get(Job, job["pk"])
        for step in range(1, count + 1):
            record_event(db, row, "progress", data={"step": step})
    return [event.id for event in events_of(engine, job["pk"])][-count:]


def test_a_long_replay_is_read_a_page_at_a_time_and_arrives_whole_and_in_order(engine, tmp_path, bob, job):
    """It was read whole into memory before the first was sent; now 20 events at a time."""
    listener = paging_listener(engine, tmp_path)
    try:
        ids = record_progress_events(engine, job, 45)
        ws = connect(listener.url, bob.token, job["pk"], after=ids[0] - 1)
        assert json.loads(ws.recv())["transition"] == "state"
        replayed = [json.loads(ws.recv()) for _ in ids]
        assert [message["id"] for message in replayed] == ids
        assert [message["transition_data"]["step"] for message in replayed] == list(range(1, 46))
        ws.close()
    finally:
        listener.stop()
    assert replay_pages(tmp_path) == ["20", "20", "5"]


def test_events_pruned_between_replay_pages_give_the_gap_message(engine, tmp_path, bob, worker, job):
    """The page after the prune finds the events it was to send gone: the rest of the replay is the gap message
    a resume after pruned events gets (re-read the job), and the channel goes live."""
    listener = paging_listener(engine, tmp_path, prune_after_first_page=True)
    try:
        ids = record_progress_events(engine, job, 30)
        ws = connect(listener.url, bob.token, job["pk"], after=ids[0] - 1)
        state = json.loads(ws.recv())
        assert state["transition"] == "state"
        assert [json.loads(ws.recv())["id"] for _ in range(20)] == ids[:20]
        gap = json.loads(ws.recv())
        assert gap["transition"] == "gap" and gap["id"] == state["id"] and "pruned" in gap["transition_data"]["detail"]
        worker.get(path(job, "acquire"))
        assert json.loads(ws.recv())["transition"] == "acquire"
        ws.close()
    finally:
        listener.stop()
    assert replay_pages(tmp_path) == ["20", "gap"]


def test_the_listener_prunes_events_past_the_retention(engine, tmp_path, worker, job):
    from sqlalchemy import update

    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    ids = [event.id for event in events_of(engine, job["pk"])]
    with engine.begin() as connection:
        connection.execute(update(JobEvent).where(JobEvent.id == ids[0]).values(time=utcnow() - timedelta(hours=2)))
    listener = ListenerProcess(engine, tmp_path, **{"ufdl.events.retention": "1h"})
    try:
        deadline = time.time() + 30
        while time.time() < deadline and [event.id for event in events_of(engine, job["pk"])] != ids[1:]:
            time.sleep(0.1)
        assert [event.id for event in events_of(engine, job["pk"])] == ids[1:]
    finally:
        listener.stop()


def test_the_prune_command(engine, tmp_path, job, capsys):
    from ufdl_pyramid.cli import main as ufdl
    ini = tmp_path / "cli.ini"
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    ini.write_text("[app:main]\nuse = egg:ufdl-pyramid\n" + "".join(
        f"{k} = {v}\n" for k, v in {**TEST_SETTINGS, "sqlalchemy.url": url}.items()))
    assert ufdl(["-c", str(ini), "events", "prune", "--older-than", "30d"]) == 0
    capsys.readouterr()
    assert ufdl(["-c", str(ini), "events", "prune", "--older-than", "soon"]) == 2
    assert capsys.readouterr() == ("", "ufdl: --older-than must be an age above 0 such as 30d, 12h, 15m or 90s, "
                                       "not 'soon'\n")


@pytest.mark.parametrize("age", ["-1d", "-3600", "0s", "0", "inf", "1e300d", "nan"])
def test_the_prune_command_refuses_an_age_that_is_not_above_0(engine, tmp_path, worker, job, capsys, age):
    """A negative age put the cutoff in the future and deleted every event, exit 0 (and "inf" was a
    traceback); 0 too deleted them all, where the retention setting refuses it."""
    from ufdl_pyramid.cli import main as ufdl
    worker.get(path(job, "acquire"))
    before = [event.id for event in events_of(engine, job["pk"])]
    assert before
    ini = tmp_path / "cli.ini"
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    ini.write_text("[app:main]\nuse = egg:ufdl-pyramid\n" + "".join(
        f"{k} = {v}\n" for k, v in {**TEST_SETTINGS, "sqlalchemy.url": url}.items()))
    assert ufdl(["-c", str(ini), "events", "prune", f"--older-than={age}"]) == 2
    assert capsys.readouterr() == ("", "ufdl: --older-than must be an age above 0 such as 30d, 12h, 15m or 90s, "
                                       f"not {age!r}\n")
    assert [event.id for event in events_of(engine, job["pk"])] == before


def test_the_prune_command_deletes_the_events_older_than_the_age_and_keeps_the_others(engine, tmp_path, capsys,
                                                                                      worker, job):
    from sqlalchemy import update

    from ufdl_pyramid.cli import main as ufdl
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    worker.post(path(job, "progress/0.5"), {})
    ids = [event.id for event in events_of(engine, job["pk"])]
    with engine.begin() as connection:  # the first event 20 minutes old, the second 10: both kept by "30m"
        for event_id, minutes in zip(ids, (20, 10)):
            connection.execute(update(JobEvent).where(JobEvent.id == event_id)
                               .values(time=utcnow() - timedelta(minutes=minutes)))
    ini = tmp_path / "cli.ini"
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    ini.write_text("[app:main]\nuse = egg:ufdl-pyramid\n" + "".join(
        f"{k} = {v}\n" for k, v in {**TEST_SETTINGS, "sqlalchemy.url": url}.items()))
    assert ufdl(["-c", str(ini), "events", "prune", "--older-than", "30m"]) == 0
    assert capsys.readouterr().out == "pruned 0 event(s) older than 30m\n"
    assert ufdl(["-c", str(ini), "events", "prune", "--older-than", "15m"]) == 0
    assert capsys.readouterr().out == "pruned 1 event(s) older than 15m\n"
    assert [event.id for event in events_of(engine, job["pk"])] == ids[1:]


def test_watch_job_renews_an_expired_token_once_per_refusal(monkeypatch):
    """An open channel outlives its token; a reconnect after the token expired is refused (401). With ``renew``
    it connects again with a new token; a new token refused too is final (no loop)."""
    tokens = []

    def connect(url, token, pk, after=None, timeout=30):
        tokens.append(token)
        if len(tokens) > 1 and token != "renewed":  # the first token expires after the first connection
            raise ChannelRefused(401, "Token has expired")
        return ScriptedChannel(after or 0, "x", last=token == "renewed")

    monkeypatch.setattr("ufdl_pyramid.client.connect", connect)
    events = [m["id"] for m in watch_job("http://x", "first", 1, reconnect_delay=0, renew=lambda: "renewed")
              if m["transition"] == "x"]
    assert events == [1, 2] and tokens == ["first", "first", "renewed"]
    tokens.clear()
    renewals = iter(["expired", "expired"])

    def refused_from_the_second(url, token, pk, after=None, timeout=30):
        tokens.append(token)
        if len(tokens) > 1:
            raise ChannelRefused(401, "Token has expired")
        return ScriptedChannel(after or 0, "x")

    monkeypatch.setattr("ufdl_pyramid.client.connect", refused_from_the_second)
    with pytest.raises(ChannelRefused):
        list(watch_job("http://x", "first", 1, reconnect_delay=0, renew=lambda: next(renewals)))
    assert tokens == ["first", "first", "expired"]  # refused, renewed once, refused again: final
    with pytest.raises(ChannelRefused):  # without renew, the first refusal is final
        tokens.clear()
        list(watch_job("http://x", "first", 1, reconnect_delay=0))
    assert tokens == ["first", "first"]


def test_the_watch_command_logs_in_and_renews_its_token_when_it_expires(engine, tmp_path, users, bob, worker, job,
                                                                         capsys):
    """With ``--username`` it logs in through the API; its token (1 s here) expires while the listener is away,
    and the reconnect renews it. With ``--token`` that reconnect was refused (exit 1) after access_ttl."""
    from webtest.http import StopableWSGIServer

    from ufdl_pyramid.cli import main as ufdl
    from ufdl_pyramid.testing import make_test_app

    api = StopableWSGIServer.create(make_test_app(engine, **{"ufdl.auth.access_ttl": "1"}))
    listener = ListenerProcess(engine, tmp_path)
    try:
        worker.get(path(job, "acquire"))
        worker.post(path(job, "start"), {})
        answer = {}
        watching = threading.Thread(target=lambda: answer.setdefault("code", ufdl(
            ["jobs", "watch", str(job["pk"]), "--url", listener.url, "--username", "bob", "--password",
             "password123", "--api-url", api.application_url])))
        watching.start()
        deadline = time.time() + 30
        while listener.status()["watchers"] < 1:
            assert time.time() < deadline, "the watch did not connect"
            time.sleep(0.05)
        listener.process.kill()
        listener.process.wait(5)
        time.sleep(1.5)  # its access token expires meanwhile
        listener.process = subprocess.Popen(listener.process.args, stdout=listener.log, stderr=subprocess.STDOUT)
        worker.post(path(job, "progress/0.5"), {})
        worker.post(path(job, "finish"), {})
        watching.join(60)
    finally:
        listener.stop()
        api.shutdown()
    out, err = capsys.readouterr()
    assert answer == {"code": 0}, err
    assert "COMPLETED" in out.splitlines()[-1]


def test_the_watch_command_prints_a_progress_bar(listener, bob, worker, job, capsys):
    from ufdl_pyramid.cli import main as ufdl
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    worker.post(path(job, "progress/0.5"), {})
    worker.post(path(job, "finish"), {})
    assert ufdl(["jobs", "watch", str(job["pk"]), "--url", listener.url, "--token", bob.token, "--after", "0"]) == 0
    out = capsys.readouterr().out
    assert "[###############...............]  50.0%" in out and "COMPLETED" in out


def test_the_watch_command_refused_by_the_channel_is_one_line_and_exit_1(listener, bob, job, capsys):
    from ufdl_pyramid.cli import main as ufdl
    for pk, token, detail in ((999999, bob.token, "404: Job 999999 not found"), (job["pk"], "not-a-token", "401: ")):
        assert ufdl(["jobs", "watch", str(pk), "--url", listener.url, "--token", token]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"ufdl: {detail}") and err.count("\n") == 1, err


def test_the_watch_command_with_no_listener_or_a_bad_url_is_one_line_and_exit_1(bob, job, capsys, monkeypatch):
    """It printed a traceback: at once for a URL websocket-client cannot parse, and after its reconnects (50 s)
    for a port nothing listens on."""
    from ufdl_pyramid.cli import main as ufdl
    monkeypatch.setattr("ufdl_pyramid.client.time.sleep", lambda seconds: None)  # the reconnects, at once
    for url, reason in ((f"http://127.0.0.1:{free_port()}", "Connection refused"), ("nonsense", "url is invalid")):
        assert ufdl(["jobs", "watch", str(job["pk"]), "--url", url, "--token", bob.token]) == 1
        out, err = capsys.readouterr()
        *retrying, last = err.splitlines()
        assert out == "" and last.startswith(f"ufdl: cannot watch job {job['pk']} at {url}: ") and reason in last
        # While it tries again (50 s), it says so once instead of nothing.
        if url == "nonsense":
            assert retrying == []
        else:
            [line] = retrying
            assert line.startswith(f"ufdl: cannot reach the progress channel at {url} (") and reason in line
            assert line.endswith("; trying again")


@pytest.mark.parametrize("arguments, wrong", [
    (["-5"], "argument pk"), (["0"], "argument pk"), (["1" * 19], "argument pk"), (["x"], "argument pk"),
    (["5", "--after", "-1"], "argument --after"), (["5", "--after", "²"], "argument --after"),
])
def test_the_watch_command_takes_only_ids_the_channel_does(arguments, wrong, capsys):
    """A usage error (exit 2): ``-5`` went to the channel, whose "no such job" hid the typo."""
    from ufdl_pyramid.cli import main as ufdl
    with pytest.raises(SystemExit) as exited:
        ufdl(["jobs", "watch", *arguments, "--url", "http://127.0.0.1:1", "--token", "t"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"{wrong}: must be an integer of" in err and "Traceback" not in err


def test_ctrl_c_while_the_watch_command_logs_in_exits_130_quietly(job, capsys):
    """A Ctrl-C while the login waited on the API came out as a KeyboardInterrupt traceback (it is 130, quietly,
    while watching). The API here takes the connection and never answers; SIGINT arrives meanwhile."""
    from ufdl_pyramid.cli import main as ufdl

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C
    main_thread = threading.get_ident()
    with socket.create_server(("127.0.0.1", 0)) as silent:
        def interrupt():
            connection, _ = silent.accept()  # the login's request is on its way
            with connection:
                time.sleep(0.2)
                signal.pthread_kill(main_thread, signal.SIGINT)
                time.sleep(1)

        threading.Thread(target=interrupt, daemon=True).start()
        try:
            code = ufdl(["jobs", "watch", str(job["pk"]), "--url", f"http://127.0.0.1:{free_port()}",
                         "--username", "bob", "--password", "password123",
                         "--api-url", f"http://127.0.0.1:{silent.getsockname()[1]}"])
        except KeyboardInterrupt:
            pytest.fail("the Ctrl-C came out of the command (a traceback)")
        finally:
            signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert capsys.readouterr() == ("", "")


def write_event(sessions, job: dict, data: dict | None = None, *, commit: bool = True):
    """A progress event of ``job`` in a session of its own, committed (and closed) or left open; (session, event)."""
    session = sessions()
    event = record_event(session, session.get(Job, job["pk"]), "progress", data=data)
    session.flush()
    if commit:
        session.commit()
        session.close()
    return session, event


@pytest.mark.postgresql
def test_a_late_commit_is_not_skipped(on_postgresql, engine, make_job):
    """Ids are drawn at insert, transactions commit in any order: the feed must not skip the lower id."""
    first, second = make_job("a"), make_job("b")
    feed = EventFeed(engine)
    feed.start()
    sessions = get_session_factory(engine)
    late, early = sessions(), sessions()
    late_event = record_event(late, late.get(Job, first["pk"]), "progress", data={"n": "late"})
    late.flush()
    early_event = record_event(early, early.get(Job, second["pk"]), "progress", data={"n": "early"})
    early.commit()
    assert late_event.id < early_event.id
    assert [m["transition_data"] for m in feed.poll()] == [{"n": "early"}]
    assert feed.has_open_gaps and feed.horizon < late_event.id
    assert feed.poll() == []
    late.commit()
    assert [m["transition_data"] for m in feed.poll()] == [{"n": "late"}]
    # A rolled-back id is settled once its transaction has ended: the horizon moves past it.
    doomed = sessions()
    doomed_event = record_event(doomed, doomed.get(Job, first["pk"]), "progress")
    doomed.flush()
    after = sessions()
    record_event(after, after.get(Job, second["pk"]), "progress")
    after.commit()
    assert len(feed.poll()) == 1
    doomed.rollback()
    assert feed.poll() == [] and not feed.has_open_gaps and feed.horizon > doomed_event.id
    for session in (late, early, doomed, after):
        session.close()


@pytest.mark.postgresql
def test_a_transaction_open_in_another_database_does_not_hold_our_gaps_open(on_postgresql, engine, make_job):
    """Gaps were settled by the oldest transaction of the whole server: one left open in another database
    (another application's, a migration) kept every gap of ours open as long as it ran."""
    first, second = make_job("a"), make_job("b")
    feed = EventFeed(engine)
    feed.start()
    other_database = create_engine(engine.url.set(
        database="template1" if engine.url.database == "postgres" else "postgres"))
    sessions = get_session_factory(engine)
    try:
        with other_database.connect() as elsewhere:
            elsewhere.execute(text("SELECT pg_current_xact_id()"))  # a write transaction's id: it holds one
            doomed, _ = write_event(sessions, first, commit=False)
            write_event(sessions, second)
            assert len(feed.poll()) == 1 and feed.has_open_gaps
            doomed.rollback()
            doomed.close()
            assert feed.poll() == [] and not feed.has_open_gaps
            # Ours still count: a transaction of our database holding an id keeps its gap open.
            held, held_event = write_event(sessions, first, {"n": "held"}, commit=False)
            write_event(sessions, second)
            assert len(feed.poll()) == 1 and feed.poll() == [] and feed.horizon < held_event.id
            held.commit()
            held.close()
            assert [m["transition_data"] for m in feed.poll()] == [{"n": "held"}]
            assert not feed.has_open_gaps
            elsewhere.rollback()
    finally:
        other_database.dispose()


@pytest.mark.postgresql
def test_a_gap_left_open_neither_stalls_the_feed_nor_expires(on_postgresql, engine, make_job):
    """A transaction left open below newer events: the feed re-read the same first batch above its gap (once a
    batch had piled up there, no event went out), and gave the gap up after 300 s (its event never went out)."""
    first, second = make_job("a"), make_job("b")
    feed = EventFeed(engine, batch=10)
    feed.start()
    sessions = get_session_factory(engine)
    late = sessions()
    record_event(late, late.get(Job, first["pk"]), "progress", data={"n": "late"})
    late.flush()
    for round_ in range(3):  # 24 events above the gap, 10 at the most per read
        busy = sessions()
        for n in range(8 * round_, 8 * round_ + 8):
            record_event(busy, busy.get(Job, second["pk"]), "progress", data={"n": n})
        busy.commit()
        busy.close()
        assert [m["transition_data"]["n"] for m in feed.poll()] == list(range(8 * round_, 8 * round_ + 8))
    assert feed.has_open_gaps and feed.poll_delay() == 0.02  # a young gap: its transaction may be committing
    for batch in feed._gaps:  # an hour later: looked at once a second, still open
        batch.since -= 3600
    assert feed.poll() == [] and feed.has_open_gaps and feed.poll_delay() == 1.0
    late.commit()
    late.close()
    assert [m["transition_data"] for m in feed.poll()] == [{"n": "late"}]
    assert not feed.has_open_gaps


@pytest.mark.postgresql
def test_the_feed_starts_within_seconds_beside_an_open_transaction_and_gets_its_event(on_postgresql, engine,
                                                                                      make_job, caplog):
    """Starting waited for every transaction open at the time (up to 300 s, refusing every connection)."""
    from ufdl_pyramid.services.event_feed import START_WAIT

    job = make_job()
    sessions = get_session_factory(engine)
    late = sessions()
    record_event(late, late.get(Job, job["pk"]), "progress", data={"n": "late"})
    late.flush()
    feed = EventFeed(engine)
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="ufdl_pyramid.services.event_feed"):
        feed.start()
    assert time.monotonic() - began < START_WAIT + 30  # not the 300 s it waited before
    assert "a transaction open since before this start is still running" in caplog.text
    assert feed.poll() == [] and feed.has_open_gaps
    late.commit()
    late.close()
    assert [m["transition_data"] for m in feed.poll()] == [{"n": "late"}]
    assert feed.poll() == [] and not feed.has_open_gaps


@pytest.mark.postgresql
def test_gap_ids_a_read_cut_short_did_not_reach_are_looked_for_again(on_postgresql, engine, make_job):
    """A transaction's 15 events committed at once, read 10 at a time: the 5 past the first read were
    dropped with the settled gap, and never delivered."""
    first, second = make_job("a"), make_job("b")
    feed = EventFeed(engine, batch=10)
    feed.start()
    sessions = get_session_factory(engine)
    held = sessions()
    for n in range(15):
        record_event(held, held.get(Job, first["pk"]), "progress", data={"n": n})
    held.flush()
    after = sessions()
    record_event(after, after.get(Job, second["pk"]), "progress", data={"n": "after"})
    after.commit()
    after.close()
    assert [m["transition_data"]["n"] for m in feed.poll()] == ["after"]
    held.commit()
    held.close()
    assert [m["transition_data"]["n"] for m in feed.poll()] == list(range(10))
    assert [m["transition_data"]["n"] for m in feed.poll()] == list(range(10, 15))
    assert feed.poll() == [] and not feed.has_open_gaps


@pytest.mark.postgresql
def test_a_poll_that_fails_midway_loses_nothing(on_postgresql, engine, make_job, monkeypatch):
    """A read that filled a gap and found a new one failed while recording the new one, after it had counted
    the filled ids as seen: they were never returned."""
    first, second, third = make_job("a"), make_job("b"), make_job("c")
    feed = EventFeed(engine)
    feed.start()
    sessions = get_session_factory(engine)

    held, _ = write_event(sessions, first, {"n": "held"}, commit=False)
    write_event(sessions, second, {"n": "after"})
    assert [m["transition_data"]["n"] for m in feed.poll()] == ["after"]  # the held id is a gap
    later, _ = write_event(sessions, third, {"n": "later"}, commit=False)  # the next gap
    held.commit()
    held.close()
    write_event(sessions, second, {"n": "last"})
    taken = feed._new_xid

    def fails_once():
        monkeypatch.setattr(feed, "_new_xid", taken)
        raise RuntimeError("the connection dropped")

    monkeypatch.setattr(feed, "_new_xid", fails_once)
    with pytest.raises(RuntimeError):
        feed.poll()  # filled the first gap, then failed recording the second
    assert [m["transition_data"]["n"] for m in feed.poll()] == ["held", "last"]
    later.commit()
    later.close()
    assert [m["transition_data"]["n"] for m in feed.poll()] == ["later"]
    assert not feed.has_open_gaps


@pytest.mark.postgresql
@pytest.mark.parametrize("held_ids", [3, 4])
def test_only_past_its_limit_does_the_feed_give_gaps_up(on_postgresql, engine, make_job, caplog, held_ids):
    """A transaction holding ``held_ids`` ids below a committed event, with a limit of 3 pending gaps: at the
    limit every gap stays open (the late commit arrives), past it they are given up, with a warning."""
    first, second = make_job("a"), make_job("b")
    feed = EventFeed(engine, max_pending=3)
    feed.start()
    sessions = get_session_factory(engine)
    held = sessions()
    try:
        for _ in range(held_ids):
            record_event(held, held.get(Job, first["pk"]), "progress")
        held.flush()
        after = sessions()
        record_event(after, after.get(Job, second["pk"]), "progress")
        after.commit()
        after.close()
        with caplog.at_level("WARNING", logger="ufdl_pyramid.services.event_feed"):
            assert len(feed.poll()) == 1
        given_up = held_ids > 3
        assert feed.has_open_gaps != given_up and ("giving up on event ids" in caplog.text) == given_up
        held.commit()
    finally:
        held.close()  # rolled back if still open: its lock would hold up the next test's clean-up
    # Within the limit the late commit arrives; past it, ids given up are not read again.
    assert [message["pk"] for message in feed.poll()] == ([] if given_up else [first["pk"]] * 3)
    assert not feed.has_open_gaps


@pytest.mark.postgresql
def test_notify_wakes_the_listener_of_another_process(on_postgresql, listener, bob, worker, job):
    """The REST app (this process) and the listener (a child process) share nothing but PostgreSQL; the
    listener's fallback poll is 1 s, so fast deliveries prove NOTIFY woke it."""
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    ws = connect(listener.url, bob.token, job["pk"])
    json.loads(ws.recv())
    delays = []
    for step in range(1, 6):
        sent = time.perf_counter()
        worker.post(path(job, f"progress/0.{step}"), {"step": step})
        assert json.loads(ws.recv())["transition_data"] == {"step": step}
        delays.append(time.perf_counter() - sent)
    assert max(delays) < 0.5, delays
    ws.close()


def test_concurrent_writers_committing_out_of_order_lose_nothing(listener, engine, bob, make_job):
    """Writers on several jobs whose transactions overlap and commit in scrambled order (on PostgreSQL the ids
    then commit out of order): every watcher still gets every event of its job, in order."""
    import random

    jobs = [make_job(f"job {n}")["pk"] for n in range(4)]
    per_job = 25
    got: dict[int, list] = {}
    ready = threading.Semaphore(0)

    def watch(pk):
        # Read all along, as a client does: one that reads nothing (answers no ping) for 2 x ping interval + 1 s
        # is dropped as silent, which a loaded machine reached while the writers ran.
        ws = connect(listener.url, bob.token, pk)
        ws.settimeout(60)
        assert json.loads(ws.recv())["transition"] == "state"
        ready.release()
        got[pk] = [json.loads(ws.recv())["transition_data"]["n"] for _ in range(per_job)]
        ws.close()

    watchers = [threading.Thread(target=watch, args=(pk,)) for pk in jobs]
    for watcher in watchers:
        watcher.start()
    for _ in jobs:  # each watcher has its job's state: it is subscribed
        assert ready.acquire(timeout=60)
    sessions = get_session_factory(engine)

    def write(pk, seed):
        rng = random.Random(seed)
        for n in range(per_job):
            manager = transaction.TransactionManager(explicit=True)
            with manager:
                db = get_tm_session(sessions, manager)
                row = db.get(Job, pk)
                row.progress = (n + 1) / (per_job + 1)
                record_event(db, row, "progress", data={"n": n})
                db.flush()
                time.sleep(rng.random() * 0.01)

    writers = [threading.Thread(target=write, args=(pk, pk)) for pk in jobs]
    for writer in writers:
        writer.start()
    for thread in writers + watchers:
        thread.join(60)
    assert got == {pk: list(range(per_job)) for pk in jobs}


@pytest.mark.postgresql
def test_one_jobs_events_commit_in_id_order(on_postgresql, engine, job):
    """record_event locks the job's row: a second writer of the same job waits, so it cannot commit a lower id
    after a higher one (even when its change of the job issued no UPDATE)."""
    sessions = get_session_factory(engine)
    first = sessions()
    record_event(first, first.get(Job, job["pk"]), "progress", data={"n": 1})
    first.flush()
    done = threading.Event()

    def second_writer():
        second = sessions()
        record_event(second, second.get(Job, job["pk"]), "progress", data={"n": 2})
        second.commit()
        second.close()
        done.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    assert not done.wait(0.5), "the second writer did not wait for the job's lock"
    first.commit()
    first.close()
    thread.join(10)
    rows = [(row.id, row.transition) for row in events_of(engine, job["pk"])]
    with engine.connect() as connection:
        data = [row[0] for row in connection.execute(select(JobEvent.transition_data)
                                                      .where(JobEvent.job_id == job["pk"]).order_by(JobEvent.id))]
    assert data[-2:] == [{"n": 1}, {"n": 2}] and len(rows) >= 2


def test_a_silent_peer_is_dropped_even_while_events_flow(listener, bob, worker, job):
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    silent = connect(listener.url, bob.token, job["pk"])  # never reads, so never answers a ping
    assert listener.status()["watchers"] == 1
    deadline = time.time() + 10 * PING_INTERVAL
    step = 0
    while time.time() < deadline and listener.status()["watchers"]:
        step += 1
        worker.post(path(job, f"progress/{min(step, 99) / 100}"), {})
        time.sleep(PING_INTERVAL / 5)
    assert listener.status()["watchers"] == 0
    silent.sock.close()


def test_a_peer_that_stops_reading_is_dropped_when_too_far_behind(engine, tmp_path, bob, job):
    """Its writes block once the socket buffers are full; past the backlog limit the listener drops it (and
    its greenlet) instead of queueing forever."""
    from ufdl_pyramid.cli.websocket import LAUNCH
    listener = ListenerProcess(engine, tmp_path, LAUNCH.replace(
        "from ufdl_pyramid.websocket import main\n",
        "from ufdl_pyramid.websocket import main\nimport ufdl_pyramid.websocket as w; w.MAX_BACKLOG = 20\n"))
    try:
        stuck = connect(listener.url, bob.token, job["pk"])
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert listener.status()["watchers"] == 1
        big = {"blob": "x" * 65536}
        sessions = get_session_factory(engine)
        deadline = time.time() + 30
        while time.time() < deadline and listener.status()["watchers"]:
            manager = transaction.TransactionManager(explicit=True)
            with manager:
                db = get_tm_session(sessions, manager)
                row = db.get(Job, job["pk"])
                for _ in range(20):
                    record_event(db, row, "progress", data=big)
            time.sleep(0.05)
        assert listener.status()["watchers"] == 0
        stuck.sock.close()
    finally:
        listener.stop()
    assert "messages behind" in open(tmp_path / "listener.log").read()


def record_big_events(engine, job: dict, count: int, size: int) -> None:
    """``count`` progress events of ``size`` bytes of data each, committed together."""
    manager = transaction.TransactionManager(explicit=True)
    with manager:
        db = get_tm_session(get_session_factory(engine), manager)
        row = db.get(Job, job["pk"])
        for _ in range(count):
            record_event(db, row, "progress", data={"blob": "x" * size})


def test_a_peer_that_stops_reading_is_cut_when_a_write_times_out(listener, engine, bob, job):
    """Far fewer messages than the backlog limit, but more bytes than the socket buffers hold: the write
    blocked for ever (no pings go out meanwhile), pinning the watcher's greenlet. Now a write that takes
    longer than 2 x ws_ping_interval + 1 s cuts the connection."""
    stuck = websocket.create_connection(channel_url(listener.url, job["pk"]), timeout=10,
                                        header=[f"Authorization: Bearer {bob.token}"],
                                        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    try:
        assert listener.status()["watchers"] == 1
        record_big_events(engine, job, 40, 512 * 1024)  # 20 MB, never read
        deadline = time.time() + 60
        while time.time() < deadline and listener.status()["watchers"]:
            time.sleep(0.2)
        assert listener.status()["watchers"] == 0
        # Cut, not left open: what the buffers held, then the end of the stream.
        stuck.sock.settimeout(10)
        try:
            while stuck.sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass
    finally:
        stuck.sock.close()


def test_one_write_joins_at_most_a_megabyte_of_queued_messages(engine, tmp_path, bob, job):
    """A burst of queued messages went out joined into one write whatever their size (here 2.4 MB)."""
    from ufdl_pyramid.cli.websocket import LAUNCH
    listener = ListenerProcess(engine, tmp_path, LAUNCH.replace(
        "from ufdl_pyramid.websocket import main\n",
        "from ufdl_pyramid.websocket import main\n"
        "import ufdl_pyramid.websocket as w\n"
        "_send = w.ChannelSocket.send_prebuilt\n"
        "def send_prebuilt(self, frame):\n"
        "    print('WRITE', len(frame), flush=True)\n"
        "    return _send(self, frame)\n"
        "w.ChannelSocket.send_prebuilt = send_prebuilt\n"))
    try:
        ws = connect(listener.url, bob.token, job["pk"])
        assert json.loads(ws.recv())["transition"] == "state"
        record_big_events(engine, job, 12, 200 * 1000)  # one transaction: queued together
        blobs = [len(json.loads(ws.recv())["transition_data"]["blob"]) for _ in range(12)]
        assert blobs == [200 * 1000] * 12
        ws.close()
    finally:
        listener.stop()
    writes = [int(line.split()[1]) for line in (tmp_path / "listener.log").read_text().splitlines()
              if line.startswith("WRITE ")]
    assert sum(writes) > 12 * 200 * 1000 and max(writes) <= 1 << 20, writes


def test_the_listener_carries_on_after_losing_the_database(engine, proxy, bob, worker, job, tmp_path):
    """Its LISTEN connection dropped and PostgreSQL unreachable for a while: the tailer says so once, tries
    again every second, and once back sends what was committed meanwhile, on the watcher's same connection
    (it logged a traceback a second)."""
    from types import SimpleNamespace

    proxied = SimpleNamespace(url=engine.url.set(host="127.0.0.1", port=proxy.port))
    listener = ListenerProcess(proxied, tmp_path)
    try:
        ws = connect(listener.url, bob.token, job["pk"], timeout=15)  # one connection: no reconnecting
        received = queue.Queue()
        # Reading all along, so that the listener's pings are answered (websocket-client does it in recv).
        reader = threading.Thread(target=lambda: [received.put(json.loads(ws.recv())) for _ in range(3)],
                                  daemon=True)
        reader.start()
        assert received.get(timeout=10)["transition"] == "state"
        proxy.cut()
        time.sleep(2.5)  # long enough for the tailer to notice, and fail to reconnect twice
        worker.get(path(job, "acquire"))  # committed while the listener cannot see the database
        proxy.restore()
        assert received.get(timeout=15)["transition"] == "acquire"
        worker.post(path(job, "start"), {})
        assert received.get(timeout=10)["transition"] == "start"
        reader.join(5)
        ws.close()
    finally:
        listener.stop()
    log = (tmp_path / "listener.log").read_text()
    assert log.count("the event tailer lost the database") == 1, log
    assert "the event tailer is back after" in log, log


def test_a_watcher_connecting_while_the_database_is_away_is_told_to_try_again(engine, proxy, bob, job, tmp_path):
    """503 with Retry-After (it was a 500 and a traceback), which ``watch_job`` waits out like a drop."""
    from types import SimpleNamespace

    proxied = SimpleNamespace(url=engine.url.set(host="127.0.0.1", port=proxy.port))
    listener = ListenerProcess(proxied, tmp_path)
    try:
        listener.status()  # started: its event feed has read the database (a listener that cannot, stops)
        proxy.cut()
        with pytest.raises(ChannelRefused) as refused:
            connect(listener.url, bob.token, job["pk"])
        assert (refused.value.status, refused.value.detail) == (503, "The database is unavailable; try again shortly.")
        with pytest.raises(websocket.WebSocketBadStatusException) as answered:
            websocket.create_connection(channel_url(listener.url, job["pk"]),
                                        header=[f"Authorization: Bearer {bob.token}"])
        assert (answered.value.status_code, answered.value.resp_headers.get("retry-after")) == (503, "5")
        watch = Watch(listener, bob.token, job["pk"])
        time.sleep(1.5)  # refused a few times meanwhile
        proxy.restore()
        assert watch.next(timeout=15)["transition"] == "state"
    finally:
        listener.stop()


def lock_table(engine, table: str):
    """A connection holding ``table`` locked (ACCESS EXCLUSIVE): the listener's reads of it wait."""
    locker = engine.connect()
    locker.execute(text("SET lock_timeout = '10s'"))
    locker.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
    return locker


def wait_for_lock_waiters(engine, table: str, count: int = 1) -> None:
    """Until ``count`` connections wait for a lock on ``table``."""
    deadline = time.time() + 15
    with engine.connect() as connection:
        while connection.scalar(text(f"SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass"
                                     " AND NOT granted")) < count:
            assert time.time() < deadline, f"fewer than {count} waiting on {table}"
            time.sleep(0.05)


@pytest.mark.postgresql
def test_a_watcher_connecting_while_every_pooled_connection_is_busy_is_told_to_try_again(
        on_postgresql, engine, bob, job, tmp_path):
    """The pool's wait for a connection timed out (a busy pool): a 500 with a traceback; now 503 with
    Retry-After, as while the database is away. Two pooled connections here (the event feed's start takes
    both), each held by a connect whose read of its user waits on a lock."""
    from ufdl_pyramid.cli.websocket import LAUNCH
    listener = ListenerProcess(engine, tmp_path, LAUNCH.replace(
        "from ufdl_pyramid.websocket import main\n",
        "from ufdl_pyramid.websocket import main\n"
        "import ufdl_pyramid.websocket as w\n"
        "from sqlalchemy import create_engine\n"
        "_get_engine = w.get_engine\n"
        "w.get_engine = lambda settings: create_engine(\n"
        "    _get_engine(settings).url, pool_size=2, max_overflow=0, pool_timeout=1)\n"))
    try:
        listener.status()
        locker = lock_table(engine, "users")
        first = queue.Queue()
        waiting = [threading.Thread(target=lambda: first.put(connect(listener.url, bob.token, job["pk"])))
                   for _ in range(2)]
        try:
            for thread in waiting:
                thread.start()
            wait_for_lock_waiters(engine, "users", count=2)
            with pytest.raises(websocket.WebSocketBadStatusException) as answered:
                websocket.create_connection(channel_url(listener.url, job["pk"]),
                                            header=[f"Authorization: Bearer {bob.token}"])
            assert (answered.value.status_code, answered.value.resp_headers.get("retry-after")) == (503, "5")
            assert json.loads(answered.value.resp_body) == {"detail": "The database is unavailable; try again shortly."}
        finally:
            locker.rollback()
            locker.close()
            for thread in waiting:
                thread.join(15)
        for _ in waiting:  # the first ones, served once unlocked
            ws = first.get(timeout=1)
            assert json.loads(ws.recv())["transition"] == "state"
            ws.close()
    finally:
        listener.stop()


def test_a_watcher_losing_the_database_after_the_upgrade_is_closed_with_1013_and_watch_job_reconnects(
        engine, proxy, bob, job, tmp_path):
    """Its connect-time reads lost the database after the upgrade (too late for a 503): it escaped as a
    traceback and a close with 1001; now 1013 (try again later), after which ``watch_job`` connects again."""
    from types import SimpleNamespace

    proxied = SimpleNamespace(url=engine.url.set(host="127.0.0.1", port=proxy.port))
    listener = ListenerProcess(proxied, tmp_path)
    try:
        listener.status()
        # The snapshot of a connect with after= reads it (the gate and the event feed do not).
        locker = lock_table(engine, "job_event_retention")
        try:
            ws = connect(listener.url, bob.token, job["pk"], after=0, timeout=15)  # upgraded
            watch = Watch(listener, bob.token, job["pk"], after=0)
            wait_for_lock_waiters(engine, "job_event_retention", count=2)
            proxy.cut()
            opcode, data = ws.recv_data(control_frame=True)
            assert (opcode, int.from_bytes(data[:2], "big")) == (websocket.ABNF.OPCODE_CLOSE, 1013)
            assert b"try again later" in data
            ws.close()
        finally:
            locker.rollback()
            locker.close()
        proxy.restore()
        assert watch.next(timeout=20)["transition"] == "state"
        assert watch.error is None
    finally:
        listener.stop()
    assert "database unavailable for a watcher of job" in (tmp_path / "listener.log").read_text()


def test_the_listener_says_so_at_each_outage(engine, proxy, tmp_path):
    """Once per outage, the first and the next: that it lost the database, and that it is back."""
    from types import SimpleNamespace

    def said(text: str, times: int) -> None:
        deadline = time.monotonic() + 15
        while (tmp_path / "listener.log").read_text().count(text) < times and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "listener.log").read_text().count(text) == times, text

    proxied = SimpleNamespace(url=engine.url.set(host="127.0.0.1", port=proxy.port))
    listener = ListenerProcess(proxied, tmp_path)
    try:
        listener.status()
        for outage in (1, 2):
            proxy.cut()
            said("the event tailer lost the database", outage)
            proxy.restore()
            said("the event tailer is back after", outage)
    finally:
        listener.stop()


def test_the_listener_gives_up_on_a_database_host_that_never_answers():
    """``ufdl.db.connect_timeout`` for its LISTEN connection too: libpq would wait for ever, and the tailer with
    it (then to notice nothing when the database answers again)."""
    from ufdl_pyramid.models import database_unavailable
    from ufdl_pyramid.settings import load_settings
    from ufdl_pyramid.websocket import Listener

    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes connections (backlog), never answers
        port = silent.getsockname()[1]
        listener = Listener(load_settings({**TEST_SETTINGS, "ufdl.db.connect_timeout": "1",
                                           "sqlalchemy.url": f"postgresql+psycopg://nobody@127.0.0.1:{port}/none"}))
        failed = []

        def tail():
            try:
                listener._tail_notifications()
            except Exception as error:
                failed.append(error)

        attempt = threading.Thread(target=tail, daemon=True)
        attempt.start()
        attempt.join(60)  # for ever without the timeout; 1 s with it
        assert not attempt.is_alive(), "still connecting"
        assert database_unavailable(failed[0])
        listener.engine.dispose()


def test_a_refusal_is_final_at_once(listener, bob, monkeypatch):
    """Not after ``max_reconnects`` tries: watch_job does not wait to connect again (it does after a 503)."""
    from types import SimpleNamespace

    import ufdl_pyramid.client

    def wait(_seconds):
        raise AssertionError("watch_job waited to try again")

    monkeypatch.setattr(ufdl_pyramid.client, "time", SimpleNamespace(sleep=wait))
    with pytest.raises(ChannelRefused) as refused:
        next(watch_job(listener.url, bob.token, 999999))
    assert refused.value.status == 404


def test_an_after_beyond_the_newest_event_still_gets_the_live_ones(listener, bob, worker, job):
    """``--after`` past any event there is (mistyped, or from another server): the events to come were skipped
    as already seen, up to that id."""
    worker.get(path(job, "acquire"))
    worker.post(path(job, "start"), {})
    watch = Watch(listener, bob.token, job["pk"], after=10 ** 12)
    assert watch.next()["transition"] == "state"
    worker.post(path(job, "progress/0.5"), {"step": 1})
    assert watch.next()["transition_data"] == {"step": 1}
    worker.post(path(job, "finish"), {})
    assert watch.next()["transition"] == "finish"
    assert watch.done.wait(5) and watch.error is None
