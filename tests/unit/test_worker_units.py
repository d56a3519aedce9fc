"""The worker's pieces without a server: defaults merged into parameters, back-off, and a worker that waits
for a server that is down and stops cleanly when asked to."""
import contextlib
import logging
import threading
import time

import pytest

from ufdl_pyramid.executors import ExecutionError, Executor, RecordingContext, merged_parameters, output_bytes
from ufdl_pyramid.worker.api import UfdlApi
from ufdl_pyramid.worker.runner import Backoff, Worker, WorkerOptions


def test_parameters_are_the_defaults_overridden_by_the_job():
    every = {"command": {"types": ["str"], "help": ""},
             "timeout": {"types": ["int"], "help": "", "default": {"value": 60, "type": "int"}},
             "top": {"types": ["int"], "default": {"value": 10, "type": "int", "const": False}}}
    job = {"parameter_values": {"command": {"value": "ls", "type": "str"}, "top": {"value": 3, "type": "int"}}}
    assert merged_parameters(job, every) == {"command": "ls", "timeout": 60, "top": 3}
    assert merged_parameters({"parameter_values": None}, every) == {"timeout": 60, "top": 10}


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(cap=3)
    assert [backoff.next() for _ in range(5)] == [0.5, 1, 2, 3, 3]
    backoff.reset()
    assert backoff.next() == 0.5


def test_outputs_are_bytes_text_or_files(tmp_path):
    (tmp_path / "f").write_bytes(b"file")
    assert output_bytes(b"raw") == b"raw" and output_bytes("text") == b"text"
    assert output_bytes(tmp_path / "f") == b"file"


def test_an_outputs_content_type_is_the_one_given_else_its_file_names_else_application_data(tmp_path):
    """Three arguments, as executors written before the content type call it: bytes and text are the UFDL
    client's application/data, a path what its name tells; a given one goes as it is, one the server would not
    keep is refused."""
    for name in ("plot.png", "table.csv", "model.tar.gz", "stdout"):
        (tmp_path / name).write_bytes(b"1")
    recorded = RecordingContext()
    recorded.add_output("bytes", "BLOB", b"1")
    recorded.add_output("text", "BLOB", "1")
    for name in ("plot.png", "table.csv", "model.tar.gz", "stdout"):
        recorded.add_output(name, "BLOB", tmp_path / name)
    recorded.add_output("given", "BLOB", tmp_path / "plot.png", "text/csv; header=present")
    assert recorded.content_types == {
        ("bytes", "BLOB"): "application/data", ("text", "BLOB"): "application/data",
        ("plot.png", "BLOB"): "image/png", ("table.csv", "BLOB"): "text/csv",
        ("model.tar.gz", "BLOB"): "application/gzip", ("stdout", "BLOB"): "application/data",
        ("given", "BLOB"): "text/csv; header=present"}
    for refused in ("text/plain\r\nX-Injected: 1", "", "x" * 201, b"text/plain"):
        with pytest.raises(ValueError, match="^a content type is printable ASCII"):
            recorded.add_output("bad", "BLOB", b"1", refused)


def test_the_base_executor_must_be_implemented():
    class Nothing(Executor):
        pass
    try:
        Nothing().execute(RecordingContext())
    except NotImplementedError as error:
        assert "Nothing" in str(error)
    else:
        raise AssertionError("execute must raise")


def test_a_worker_backs_off_while_the_server_is_down_and_stops_when_asked(caplog):
    import socket
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stop = threading.Event()
    worker = Worker(UfdlApi(f"http://127.0.0.1:{port}", "u", "p"), {"x.Y": Executor},
                    WorkerOptions(max_backoff=0.2), stop)
    threading.Timer(1.0, stop.set).start()
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="ufdl_pyramid.worker"):
        assert worker.run() == 0
    assert time.monotonic() - began < 3
    retries = [record for record in caplog.records if "server unavailable" in record.getMessage()]
    assert len(retries) >= 3  # 0.5 s, then 0.2 s each (the cap)


def test_a_call_that_must_get_through_is_retried_even_while_stopping():
    """A started job's calls (inputs, outputs, finish) wait out the server however the worker is asked to stop
    (the wait once ended in a NameError, which failed the job)."""
    from ufdl_pyramid.worker.api import ServerUnavailable

    stop = threading.Event()
    stop.set()
    worker = Worker(None, {}, WorkerOptions(max_backoff=0.01), stop)
    answers = [ServerUnavailable("502"), ServerUnavailable("503"), "finished"]

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert worker.retrying("finishing", call, give_up_on_stop=False) == "finished" and not answers


def _three_tries(what, call):
    """The worker's ``retrying`` cut short: a call tried up to three times while the server is unavailable."""
    from ufdl_pyramid.worker.api import ServerUnavailable

    for _ in range(3):
        try:
            return call()
        except ServerUnavailable:
            continue


def test_an_upload_is_sent_again_while_the_server_is_unavailable(tmp_path):
    from ufdl_pyramid.worker.api import ServerUnavailable
    from ufdl_pyramid.worker.context import HttpExecutionContext

    sent = []

    class Api:
        def add_output(self, pk, name, type_, data, content_type):
            sent.append((pk, name, type_, data, content_type))
            if len(sent) == 1:
                raise ServerUnavailable("503: the bytes were removed meanwhile")

    context = HttpExecutionContext(Api(), {"pk": 7}, {}, {}, tmp_path, lambda: False, _three_tries)
    context.add_output("model", "BLOB", b"bytes")
    assert sent == [(7, "model", "BLOB", b"bytes", "application/data")] * 2


def test_an_executor_downloads_any_output_and_a_cut_download_is_written_afresh(tmp_path):
    """``download_output``, for the outputs an executor finds named inside a JSON input (the Seed executor's
    file inputs): the worker's client writes it to the path, a try that the server cut is started again; it
    answers the file name the server offered, made one file name (None: none offered)."""
    from ufdl_pyramid.worker.api import ServerUnavailable
    from ufdl_pyramid.worker.context import HttpExecutionContext

    asked = []
    offered = {12: "twelve.txt", 13: "../../etc/x", 14: "..", 15: None}

    class Api:
        def download_output(self, pk, file):
            asked.append(pk)
            file.write(b"part" if len(asked) == 1 else b"whole")
            if len(asked) == 1:
                raise ServerUnavailable("the connection was cut")
            return offered[pk]

    context = HttpExecutionContext(Api(), {"pk": 7}, {}, {}, tmp_path, lambda: False, _three_tries)
    assert context.download_output(12, tmp_path / "twelve") == "twelve.txt"
    assert asked == [12, 12] and (tmp_path / "twelve").read_bytes() == b"whole"
    assert [context.download_output(pk, tmp_path / "other") for pk in (13, 14, 15)] == [".._.._etc_x", None, None]
    recording = RecordingContext(downloads={12: b"twelve", 11: ("a/b.png", b"eleven")})
    assert recording.download_output(12, tmp_path / "recorded") is None
    assert (tmp_path / "recorded").read_bytes() == b"twelve"
    assert recording.download_output(11, tmp_path / "recorded") == "a_b.png"
    assert (tmp_path / "recorded").read_bytes() == b"eleven"
    with pytest.raises(LookupError, match="Job output 13 does not exist"):
        recording.download_output(13, tmp_path / "none")


class FakeApi:
    """Just enough of the server for one job: records what the worker sends."""

    timeout = 30

    def __init__(self, start_answers=None):
        self.sent = []
        self.start_answers = list(start_answers or [])
        self.job = {"pk": 7, "status": "QUEUED", "node": 5, "input_values": {}, "template": {"pk": 1}}

    def template(self, pk):
        return {"executor_class": "x.Boom"}

    def template_parameters(self, pk):
        return {}

    def get_job(self, pk):
        return dict(self.job)

    def job_action(self, pk, action, payload=None):
        self.sent.append((action, payload))
        if action == "start":
            self.job["status"] = "RUNNING"
            if self.start_answers:
                raise self.start_answers.pop(0)
        return dict(self.job)


def test_a_start_whose_answer_was_lost_is_not_taken_for_a_refusal():
    from ufdl_pyramid.worker.api import ApiError

    api = FakeApi(start_answers=[ApiError(406, "Cannot start job 7: it is RUNNING (needs QUEUED)")])
    worker = Worker(api, {}, WorkerOptions(), threading.Event())
    worker.node_id = 5
    assert worker.start(7)["status"] == "RUNNING"  # running on this node: the earlier try started it
    worker.node_id = 6
    api.start_answers = [ApiError(406, "Cannot start job 7: it is RUNNING (needs QUEUED)")]
    try:
        worker.start(7)
        raise AssertionError("another node's running job is a refusal")
    except ApiError as error:
        assert error.status == 406


def test_an_executor_that_exits_fails_its_job_and_the_worker_lives_on():
    class Boom(Executor):
        def execute(self, context):
            raise SystemExit(7)

    api = FakeApi()
    worker = Worker(api, {"x.Boom": Boom}, WorkerOptions(heartbeat=60), threading.Event())
    worker.node_id = 5
    worker.run_job(dict(api.job))
    assert api.sent[-1] == ("finish", {"error": "7"})


def test_an_executor_error_is_sent_as_the_server_can_store_it():
    """An error over the server's 100,000 characters, or with half a surrogate pair (a file name's undecodable
    byte), got the finish refused: the job stayed RUNNING."""
    class Wordy(Executor):
        def execute(self, context):
            raise RuntimeError("caf\udce9 " + "x" * 200_000)

    api = FakeApi()
    worker = Worker(api, {"x.Boom": Wordy}, WorkerOptions(heartbeat=60), threading.Event())
    worker.node_id = 5
    worker.run_job(dict(api.job))
    action, body = api.sent[-1]
    assert action == "finish" and len(body["error"]) == 100_000
    assert body["error"].startswith("caf? xxx") and body["error"].endswith("x\u2026")


@pytest.mark.parametrize("raised, sent", [
    (ExecutionError("bad pixels", category="DATA"), {"error": "bad pixels", "error_category": "DATA"}),
    (ExecutionError("crashed", category="ALGORITHM"), {"error": "crashed", "error_category": "ALGORITHM"}),
    (ExecutionError("crashed"), {"error": "crashed"}),
    (RuntimeError("crashed"), {"error": "crashed"})])
def test_an_execution_errors_category_is_sent_with_the_finish(raised, sent):
    class Failing(Executor):
        def execute(self, context):
            raise raised

    api = FakeApi()
    worker = Worker(api, {"x.Boom": Failing}, WorkerOptions(heartbeat=60), threading.Event())
    worker.node_id = 5
    worker.run_job(dict(api.job))
    assert api.sent[-1] == ("finish", sent)


def test_an_execution_error_takes_only_a_category_the_server_takes():
    assert ExecutionError("x").category is None and str(ExecutionError("x", category="DATA")) == "x"
    with pytest.raises(ValueError, match="category is one of ALGORITHM, DATA, not 'SYSTEM'"):
        ExecutionError("x", category="SYSTEM")


def test_a_job_that_cannot_be_started_is_given_back_and_the_worker_pauses():
    """acquire-next hands a node the job it holds but has not started: kept, it came back at once, for ever."""
    from ufdl_pyramid.worker.api import ApiError

    class Unreadable(FakeApi):
        def template(self, pk):
            raise ApiError(404, "Not found.", "GET", f"/v1/job-templates/{pk}")

    api = Unreadable()
    stop = threading.Event()
    worker = Worker(api, {"x.Boom": Executor}, WorkerOptions(poll=0.3), stop)
    worker.node_id = 5
    began = time.monotonic()
    worker.run_job(dict(api.job))
    assert api.sent == [("release", None)] and time.monotonic() - began >= 0.3


def test_workers_that_cannot_run_make_the_process_fail():
    from ufdl_pyramid.worker.api import ApiError
    from ufdl_pyramid.worker.runner import run_workers

    class Refusing:
        node_id = None

        def login(self):
            raise ApiError(401, "No active account found with the given credentials", "POST", "/v1/auth/obtain")

    assert run_workers(Refusing, {"x.Y": Executor}, WorkerOptions(), 2, threading.Event()) == 1


def test_a_stop_while_the_nodes_start_starts_no_more_of_them(monkeypatch):
    """SIGTERM while a mistyped ``--concurrency 100000`` started its threads: each still started, logged in and
    registered a node, and the process took many minutes to stop."""
    from ufdl_pyramid.worker import runner
    from ufdl_pyramid.worker.api import ApiError

    stop, started = threading.Event(), []

    class SignalledThread(threading.Thread):
        def start(self):  # the signal handler runs in the main thread, between two starts
            super().start()
            started.append(self.name)
            stop.set()

    class Refusing:  # the one node started: no server needed
        node_id = None

        def login(self):
            raise ApiError(401, "No active account found with the given credentials", "POST", "/v1/auth/obtain")

    monkeypatch.setattr(runner.threading, "Thread", SignalledThread)
    assert runner.run_workers(Refusing, {"x.Y": Executor}, WorkerOptions(), 500, stop) == 1
    assert started == ["worker-0"]


def test_a_login_refused_to_several_nodes_is_one_line_each_without_a_traceback(caplog):
    """With --concurrency 2 a refused login was logged with a traceback per node."""
    from ufdl_pyramid.worker.api import ApiError
    from ufdl_pyramid.worker.runner import run_workers

    class Refusing:
        node_id = None

        def login(self):
            raise ApiError(401, "No active account found with the given credentials", "POST", "/v1/auth/obtain")

    with caplog.at_level(logging.INFO, logger="ufdl_pyramid.worker"):
        assert run_workers(Refusing, {"x.Y": Executor}, WorkerOptions(index=3), 2, threading.Event()) == 1
    refusals = sorted(record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR)
    assert refusals == [
        "worker 0 (index 3) stopped: POST /v1/auth/obtain: 401 No active account found with the given credentials",
        "worker 1 (index 4) stopped: POST /v1/auth/obtain: 401 No active account found with the given credentials"]
    assert not any(record.exc_info for record in caplog.records)


def test_a_refused_login_is_one_line_and_exit_1(capsys):
    """Bad credentials (here: a server that refuses every login) end the worker with one line, no traceback."""
    import http.server
    import json

    from ufdl_pyramid.cli import main

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.dumps({"detail": "No active account found with the given credentials"}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = main(["worker", "--url", f"http://127.0.0.1:{server.server_port}", "--username", "u",
                     "--password", "wrong", "--once"])
    finally:
        server.shutdown()
    assert code == 1
    printed = capsys.readouterr().err
    assert printed.strip().splitlines()[-1] == \
        "ufdl: POST /v1/auth/obtain: 401 No active account found with the given credentials"
    assert "Traceback" not in printed


def failing_resolver(monkeypatch, host: str, errno: int, message: str) -> None:
    """``host`` fails to resolve with the resolver's ``errno``; every other name resolves as usual."""
    import socket

    resolve = socket.getaddrinfo

    def getaddrinfo(name, *args, **kwargs):
        if name == host:
            raise socket.gaierror(errno, message)
        return resolve(name, *args, **kwargs)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_url_whose_host_does_not_resolve_is_one_line_and_exit_1(capsys, monkeypatch):
    """A typo in --url was retried for ever, logged as 'server unavailable' every time like a server that is
    down; it is refused before the first contact."""
    import os
    import signal
    import socket

    from ufdl_pyramid.cli import main

    failing_resolver(monkeypatch, "ufdl-sever.example", socket.EAI_NONAME, "Name or service not known")
    # Should the worker retry (as it did), a Ctrl-C stops it (exit 0) rather than the test hanging.
    stopper = threading.Timer(5, os.kill, (os.getpid(), signal.SIGINT))
    stopper.start()
    try:
        code = main(["worker", "--url", "http://ufdl-sever.example:6543", "--username", "u", "--password", "p",
                     "--once", "--max-backoff", "0.5"])
    finally:
        stopper.cancel()
    assert code == 1
    assert capsys.readouterr().err == \
        "ufdl: cannot resolve the host 'ufdl-sever.example' of the URL: Name or service not known\n"


def test_a_resolver_that_cannot_answer_yet_and_a_name_lost_later_are_waited_out(monkeypatch, caplog):
    """Only a name that does not exist at start-up ends the worker: a resolver that has no answer for now
    (EAI_AGAIN) may be a network still coming up, and a worker that has started waits out whatever fails."""
    import socket

    failing_resolver(monkeypatch, "ufdl-server.example", socket.EAI_AGAIN, "Temporary failure in name resolution")
    api = UfdlApi("http://ufdl-server.example", "u", "p")
    api.check_host()
    failing_resolver(monkeypatch, "ufdl-server.example", socket.EAI_NONAME, "Name or service not known")
    stop = threading.Event()
    worker = Worker(api, {"x.Y": Executor}, WorkerOptions(max_backoff=0.2), stop)
    threading.Timer(1.0, stop.set).start()
    with caplog.at_level("WARNING", logger="ufdl_pyramid.worker"):
        assert worker.run() == 0
    retries = [record for record in caplog.records if "Name or service not known" in record.getMessage()]
    assert len(retries) >= 3


@pytest.mark.parametrize("option, value, message", [
    ("--poll", "0", "--poll must be a number of seconds above 0"),
    ("--poll", "-1", "--poll must be a number of seconds above 0"),
    ("--heartbeat", "0", "--heartbeat must be a number of seconds above 0"),
    ("--max-backoff", "nan", "--max-backoff must be a number of seconds above 0"),
    ("--poll", "inf", "--poll must be a number of seconds above 0"),
    ("--grace", "inf", "--grace must be a number of seconds, 0 or more"),
    ("--concurrency", "0", "--concurrency must be at least 1 and --index 0 or more"),
    ("--index", "-1", "--concurrency must be at least 1 and --index 0 or more"),
    # Each node past the server's highest index was refused at start-up, a line each.
    ("--concurrency", "2000", "--index 0 with --concurrency 2000 needs node indexes up to 1999; a server takes 0 "
                              "to 1024"),
    ("--index", "1025", "--index 1025 with --concurrency 1 needs node indexes up to 1025; a server takes 0 to 1024"),
])
def test_worker_options_that_cannot_work_are_refused_before_connecting(capsys, option, value, message):
    """A --poll or --heartbeat of 0 or less sent requests in a busy loop; --concurrency 0 ran one node."""
    from ufdl_pyramid.cli import main
    # Nothing listens on port 1: the worker would retry its login for ever, had it not refused first.
    assert main(["worker", "--url", "http://127.0.0.1:1", "--username", "u", "--password", "p", "--once",
                 option, value]) == 2  # a usage error, as the other commands' option values
    assert capsys.readouterr().err == f"ufdl: {message}\n"


def test_an_idle_worker_waits_out_server_errors_instead_of_dying(caplog):
    """A 500 while logging in or polling for work (a server's bug or hiccup: its database restarting, before
    the server answered 503 for that) is retried with back-off; it used to end the worker's thread."""
    from ufdl_pyramid.worker.api import ApiError

    class Failing:
        node_id = None

        def __init__(self):
            self.logins = self.polls = 0

        def login(self):
            self.logins += 1
            if self.logins == 1:
                raise ApiError(500, "Internal server error.", "POST", "/v1/auth/obtain")

        def request(self, method, path, body=None):
            return {"pk": 5, "current_job": None}  # the node registered, then read back

        def acquire_next(self, executors):
            self.polls += 1
            if self.polls < 3:
                raise ApiError(500, "Internal server error.", "POST", "/v1/jobs/acquire-next")
            return None

    api = Failing()
    worker = Worker(api, {"x.Y": Executor}, WorkerOptions(ip="10.0.0.1", once=True, max_backoff=0.01),
                    threading.Event())
    with caplog.at_level("WARNING", logger="ufdl_pyramid.worker"):
        assert worker.run() == 0
    assert (api.logins, api.polls) == (2, 3)
    assert sum("500 Internal server error." in record.getMessage() for record in caplog.records) == 3


def test_a_progress_report_the_server_fails_is_skipped_not_the_job(tmp_path):
    from ufdl_pyramid.worker.api import ApiError
    from ufdl_pyramid.worker.context import HttpExecutionContext

    answers = [ApiError(500, "Internal server error."), ApiError(403, "Node 5 does not hold job 7")]

    class Api:
        def progress(self, pk, fraction, data):
            raise answers.pop(0)

    context = HttpExecutionContext(Api(), {"pk": 7}, {}, {}, tmp_path, lambda: False)
    context.progress(0.5)
    assert not context.is_cancelled()
    context.progress(0.6)
    assert context.is_cancelled()  # a refusal still stops the job


def test_only_an_idle_worker_waits_out_a_500_and_no_worker_a_refusal():
    """A call of a job under way (a finish, say) is not retried through a 500, and no call through another
    error: the server is not unavailable, and would answer the same again."""
    from ufdl_pyramid.worker.api import ApiError

    worker = Worker(None, {}, WorkerOptions(max_backoff=0.01), threading.Event())
    for error, idle in ((ApiError(500, "Internal server error."), None), (ApiError(400, "Bad request"), True)):
        answers = [error, "done"]

        def call():
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        with pytest.raises(ApiError):
            if idle is None:
                worker.retrying("finishing", call)
            else:
                worker.retrying("acquiring", call, through_server_errors=idle)
        assert answers == ["done"]


@contextlib.contextmanager
def _logged_in_api(handler):
    """A client with an access token, against a local HTTP server answering with ``handler``."""
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = UfdlApi(f"http://127.0.0.1:{server.server_port}", "u", "p")
    api.access = "token"
    try:
        yield api
    finally:
        api.close()
        server.shutdown()
        server.server_close()


def test_a_download_cut_short_of_its_content_length_is_no_download(tmp_path):
    """The server closes the connection when a blob fails mid-stream (its status already sent), and http.client
    answers such a cut as a plain end of the body: the job ran on a truncated input as if it were whole."""
    import http.server

    from ufdl_pyramid.worker.api import ServerUnavailable

    class Cutting(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/data")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 40)
            self.close_connection = True

        def log_message(self, *args):
            pass

    with _logged_in_api(Cutting) as api, open(tmp_path / "input", "wb") as file:
        with pytest.raises(ServerUnavailable, match="the body ended 60 bytes short of its Content-Length"):
            api.download_output(1, file)


def test_a_file_output_goes_with_its_content_length_from_its_first_byte(tmp_path):
    """A file body has no length http.client knows: it was sent chunked (a proxy may refuse that, and the server's
    size limit could not refuse it up front). Its size is the Content-Length, sent from its first byte wherever the
    file stands."""
    import http.server

    seen = []

    class Storing(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"] or 0))
            seen.append((self.headers["Content-Length"], self.headers["Transfer-Encoding"], body == content))
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    content = bytes(range(256)) * 1000
    (tmp_path / "model").write_bytes(content)
    with _logged_in_api(Storing) as api, open(tmp_path / "model", "rb") as file:
        file.seek(1000)  # a try cut off after 1000 bytes
        assert api.add_output(1, "model", "BLOB", file) == {}
    assert seen == [(str(len(content)), None, True)]


def test_a_download_answers_the_file_name_its_content_disposition_offers(tmp_path):
    """The server offers an output's name (``attachment; filename="NAME"``); the client answers it as given
    (quoted or not, RFC 2231's ``filename*`` too), None when there is none."""
    import http.server

    answers = iter(['attachment; filename="a b:c.png"', "attachment; filename=plain.txt",
                    "attachment; filename*=UTF-8''%C3%A9t%C3%A9.csv", "attachment", None])

    class Offering(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            disposition = next(answers)
            self.send_response(200)
            self.send_header("Content-Type", "application/data")
            self.send_header("Content-Length", "4")
            if disposition is not None:
                self.send_header("Content-Disposition", disposition)
            self.end_headers()
            self.wfile.write(b"data")

        def log_message(self, *args):
            pass

    names = []
    with _logged_in_api(Offering) as api:
        for _ in range(5):
            with open(tmp_path / "input", "wb") as file:
                names.append(api.download_output(1, file))
            assert (tmp_path / "input").read_bytes() == b"data"
    assert names == ["a b:c.png", "plain.txt", "été.csv", None, None]


def test_a_job_output_input_keeps_the_file_name_its_download_offers(tmp_path):
    """``inputs/NAME/FILENAME``: tools that open a file by its type read its extension (it was ``inputs/NAME``)."""
    from ufdl_pyramid.worker.context import resolved_inputs

    offered = {4: "photo.png", 5: None, 6: "../escape"}

    class Api:
        def download_output(self, pk, file):
            file.write(f"output {pk}".encode())
            return offered[pk]

    job = {"input_values": {"image": {"value": 4, "type": "JobOutput<BLOB>"},
                            "unnamed": {"value": 5, "type": "JobOutput<BLOB>"},
                            "odd": {"value": 6, "type": "JobOutput<BLOB>"},
                            "text": {"value": "as is", "type": "str"}}}
    inputs = resolved_inputs(Api(), job, tmp_path)
    assert inputs == {"image": str(tmp_path / "inputs" / "image" / "photo.png"),
                      "unnamed": str(tmp_path / "inputs" / "unnamed" / "unnamed"),
                      "odd": str(tmp_path / "inputs" / "odd" / ".._escape"),
                      "text": "as is"}
    assert (tmp_path / "inputs" / "image" / "photo.png").read_bytes() == b"output 4"
    assert sorted(path.name for path in (tmp_path / "inputs").iterdir()) == ["image", "odd", "unnamed"]
