"""``ufdl serve --workers N``: several waitress processes forked from one app on one socket, a dead worker
replaced, all stopped by SIGTERM (each sending its waiting notifications first), and a server whose app cannot
be built stops before it forks."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ufdl_pyramid.testing import TEST_SETTINGS, storage_path_for_tests
from job_helpers import ECHO, register

UFDL = str(Path(sys.executable).with_name("ufdl"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_ini(path: Path, url: str, server: str) -> str:
    path.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = {url}\n"
                    f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\n{server}")
    return str(path)


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The fields after the command (which may hold spaces) start after its closing parenthesis.
            fields = stat.rpartition(")")[2].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry))
    return found


def wait_for(predicate, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def list_licences(port: int, token: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/v1/licences/list", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        assert "pk" in json.loads(response.read())[0]
        return response.status
    finally:
        connection.close()


def answers(port: int, token: str) -> bool:
    try:
        return list_licences(port, token) == 200
    except OSError:
        return False


@pytest.fixture
def serve(tmp_path):
    started = []

    def run(url: str, *arguments: str, server: str = "") -> tuple[subprocess.Popen, int]:
        """``ufdl serve`` on a free port (given by --listen unless ``server``, the INI's [server:main], does)."""
        port = free_port()
        binds = re.search(r"^(listen|host|port|unix_socket) *=", server, re.MULTILINE) or "--listen" in arguments
        listen = [] if binds else ["--listen", f"127.0.0.1:{port}"]
        ini = write_ini(tmp_path / "serve.ini", url, server.replace("PORT", str(port)))
        with open(tmp_path / "serve.log", "w") as log:
            process = subprocess.Popen([UFDL, "-c", ini, "serve", *listen, "--ws-listen", "none", *arguments],
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        return process, port

    yield run
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_workers_share_the_socket_are_replaced_and_stop_together(serve, engine, admin):
    url = engine.url.render_as_string(hide_password=False)
    process, port = serve(url, "--workers", "2", "--threads", "2")
    workers = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    wait_for(lambda: answers(port, admin.token))
    # Requests on many connections keep being answered while the workers serve them side by side.
    assert all(list_licences(port, admin.token) == 200 for _ in range(20))

    dead = min(workers)
    os.kill(dead, signal.SIGKILL)
    replaced = wait_for(lambda: (now := children(process.pid)) and len(now) == 2 and dead not in now and now)
    assert len(replaced & workers) == 1
    wait_for(lambda: answers(port, admin.token))

    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    # The parent reaped its workers before it exited.
    assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)


def test_workers_dying_one_after_another_are_replaced_with_a_growing_wait(serve, engine, admin, tmp_path):
    process, port = serve(engine.url.render_as_string(hide_password=False), "--workers", "2")
    for _ in range(4):  # each worker killed as soon as it is seen: a row of early deaths
        workers = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
        os.kill(min(workers), signal.SIGKILL)
        wait_for(lambda: min(workers) not in children(process.pid))
    wait_for(lambda: len(children(process.pid)) == 2)
    wait_for(lambda: answers(port, admin.token))
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    log = (tmp_path / "serve.log").read_text()
    waits = [line.rpartition("starting another ")[2] for line in log.splitlines() if "starting another" in line]
    assert waits == ["at once", "in 0.5 s", "in 1 s", "in 2 s"], log


def test_workers_leave_when_the_server_is_killed(serve, engine, admin):
    process, port = serve(engine.url.render_as_string(hide_password=False), "--workers", "2")
    workers = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    process.kill()  # no chance to stop its workers: they notice and leave, freeing the port
    process.wait(10)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), seconds=10)


def test_a_server_whose_app_cannot_be_built_stops_at_once(serve, tmp_path):
    # Nothing listens on port 1: building the app fails (it syncs the plugins' job types), before any fork.
    process, _port = serve("postgresql+psycopg://nobody@127.0.0.1:1/none", "--workers", "2")
    assert process.wait(60) == 1
    log = (tmp_path / "serve.log").read_text()
    assert "ufdl: database error: " in log and "Traceback" not in log, log
    # Not announced as served (it was, before the error), and no worker was started.
    assert "serving on" not in log and "worker" not in log, log


def database_connections(pid: int, engine) -> int:
    """How many connections to the test database process ``pid`` holds open (its SQLite file's descriptors,
    or its TCP sockets to PostgreSQL's port)."""
    targets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.add(os.readlink(fd))
        except OSError:
            continue
    if engine.dialect.name == "sqlite":
        return sum(target == os.path.realpath(engine.url.database) for target in targets)
    port = f":{engine.url.port or 5432:04X}"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(port) and fields[3] == "01":  # remote address, ESTABLISHED
                inodes.add(f"socket:[{fields[9]}]")
    return len(targets & inodes)


def test_workers_are_forked_from_one_app_built_once(serve, engine, admin, tmp_path):
    # An invalid registry: each sync of it logs an error, so the log counts the syncs.
    (tmp_path / "registry" / "broken").mkdir(parents=True)
    (tmp_path / "registry" / "broken" / "1.yaml").write_text("name: broken\nversion: 1\n")
    process, port = serve(engine.url.render_as_string(hide_password=False), "--workers", "2",
                          server=f"ufdl.templates_registry = {tmp_path / 'registry'}\n")
    workers = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    wait_for(lambda: answers(port, admin.token))
    # The parent built the app, then let go of its connections: none is shared with the workers it forked.
    assert database_connections(process.pid, engine) == 0
    # Workers started again (here: every first one) serve with the same app, on connections of their own.
    for dead in workers:
        os.kill(dead, signal.SIGKILL)
        wait_for(lambda: (now := children(process.pid)) and len(now) == 2 and dead not in now)
    assert not children(process.pid) & workers
    assert all(list_licences(port, admin.token) == 200 for _ in range(10))
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    log = (tmp_path / "serve.log").read_text()
    assert log.count(": not synced") == 1, log


@pytest.mark.parametrize("flag, address", [("--listen", "nowhere"), ("--listen", "127.0.0.1:99999"),
                                           ("--ws-listen", "127.0.0.1:70000")])
def test_a_bad_listen_address_is_refused(serve, engine, tmp_path, flag, address):
    """A port past 65535 was a traceback (bind's OverflowError)."""
    url = engine.url.render_as_string(hide_password=False)
    process, _port = serve(url, "--workers", "2", flag, address)
    assert process.wait(30) == 1
    log = (tmp_path / "serve.log").read_text()
    assert log.startswith(f"ufdl: cannot listen on {address}") and log.count("\n") == 1, log


@pytest.mark.parametrize("address", ["nowhere", "127.0.0.1:70000", "127.0.0.1:"])
def test_ufdl_websocket_refuses_a_bad_listen_address_in_one_line(tmp_path, engine, address):
    """These were tracebacks of the listener (int('nowhere'), bind's OverflowError)."""
    ini = write_ini(tmp_path / "ws.ini", engine.url.render_as_string(hide_password=False), "")
    done = subprocess.run([UFDL, "-c", ini, "websocket", "--listen", address], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"ufdl websocket: cannot listen on {address}: ") and done.stderr.count("\n") == 1


def test_ufdl_websocket_listens_on_an_ipv6_address_in_brackets(tmp_path, engine):
    """``[::1]:PORT`` works for ``ufdl serve``; the listener kept the brackets and could not resolve the host."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback here")
    ini = write_ini(tmp_path / "ws.ini", engine.url.render_as_string(hide_password=False), "")
    process = subprocess.Popen([UFDL, "-c", ini, "websocket", "--listen", f"[::1]:{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout.readline() == f"progress channel on ws://[::1]:{port}/v1/jobs/{{pk}}\n"
        connection = http.client.HTTPConnection("::1", port, timeout=10)
        connection.request("GET", "/v1/websocket/status")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        process.terminate()
        process.wait(10)


def test_waitress_options_come_from_the_ini(serve, engine, admin, tmp_path):
    process, port = serve(engine.url.render_as_string(hide_password=False), "--workers", "2",
                          server="[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:PORT\nthreads = 3\n")
    wait_for(lambda: answers(port, admin.token))
    assert "2 worker(s) of 3 threads" in (tmp_path / "serve.log").read_text()


def test_host_and_port_of_the_ini_are_where_it_listens(serve, engine, admin, tmp_path):
    """They were dropped: the server listened on 127.0.0.1:6543 whatever [server:main] said (pserve honours
    them)."""
    process, port = serve(engine.url.render_as_string(hide_password=False),
                          server="[server:main]\nuse = egg:waitress#main\nhost = 127.0.0.1\nport = PORT\n")
    wait_for(lambda: answers(port, admin.token) or process.poll() is not None)
    assert f"serving on http://127.0.0.1:{port} " in (tmp_path / "serve.log").read_text()


def test_listen_on_every_interface_with_a_star(serve, engine, admin, tmp_path):
    """``*:PORT`` (waitress's own spelling for every interface) was "Name or service not known"."""
    port = free_port()
    process, _port = serve(engine.url.render_as_string(hide_password=False), "--listen", f"*:{port}")
    wait_for(lambda: answers(port, admin.token) or process.poll() is not None)
    assert answers(port, admin.token), (tmp_path / "serve.log").read_text()


def test_a_unix_socket_in_the_ini_is_refused_in_one_line(serve, engine, tmp_path):
    """It was dropped: the server listened on TCP 127.0.0.1:6543 instead, silently."""
    process, _port = serve(engine.url.render_as_string(hide_password=False),
                           server=f"[server:main]\nunix_socket = {tmp_path / 'ufdl.sock'}\n")
    assert process.wait(30) == 1
    assert (tmp_path / "serve.log").read_text() == (
        "ufdl: [server:main] unix_socket: ufdl serve listens on TCP only (give listen = HOST:PORT, or serve the "
        "socket with pserve)\n")


def test_an_unknown_waitress_option_is_refused_before_serving(serve, engine, tmp_path):
    process, _port = serve(engine.url.render_as_string(hide_password=False), "--workers", "2",
                           server="[server:main]\nthreds = 3\n")
    assert process.wait(30) == 1
    assert "Unknown adjustment 'threds'" in (tmp_path / "serve.log").read_text()


def serving_with_an_email_waiting(serve, engine, admin, *arguments):
    """A server whose e-mail for an acquire waits on a mail server that accepts the connection and never
    answers (until the SMTP timeout, 2 s): the process, its port, the job acquired and the mail server's
    socket (to close once the process has left)."""
    silent = socket.create_server(("127.0.0.1", 0))
    notify = json.dumps({"on_acquire": [{"type": "email", "to": "ops@example", "message": "job {pk} taken"}]})
    settings = (f"ufdl.notifications.defaults = {notify}\nufdl.smtp.host = 127.0.0.1\n"
                f"ufdl.smtp.port = {silent.getsockname()[1]}\nufdl.smtp.timeout = 2\n")
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json["pk"]
    job = admin.post(f"/v1/job-templates/{template}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    node = register(admin).node_id
    process, port = serve(engine.url.render_as_string(hide_password=False), *arguments, server=settings)
    wait_for(lambda: answers(port, admin.token))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", f"/v1/jobs/{job}/acquire",
                       headers={"Authorization": f"Bearer {admin.token}", "Node-Id": str(node)})
    assert connection.getresponse().status == 200
    connection.close()
    return process, port, job, silent


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stopped_server_sends_its_waiting_notifications_first(serve, engine, admin, tmp_path, workers):
    process, _port, job, silent = serving_with_an_email_waiting(serve, engine, admin, "--workers", workers)
    process.send_signal(signal.SIGTERM)  # while the e-mail still waits for the silent server
    assert process.wait(30) == 0
    silent.close()
    # The e-mail was tried to the end (and failed, logged) before the server process left.
    assert f"email notification for job {job} failed" in (tmp_path / "serve.log").read_text()



def test_a_ctrl_c_during_the_clean_up_does_not_cut_it_short(serve, engine, admin, tmp_path):
    """Once the serving loop has ended, the waiting notifications are sent to the end (each within its own
    limits): no signal interrupts that."""
    process, port, job, silent = serving_with_an_email_waiting(serve, engine, admin)
    process.send_signal(signal.SIGTERM)
    wait_for(lambda: refuses_connections(port), seconds=10)  # the loop has ended: the clean-up is under way
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, while the e-mail still waits for the silent server
    assert process.wait(30) == 0
    silent.close()
    assert f"email notification for job {job} failed" in (tmp_path / "serve.log").read_text()


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:  # taken into a closing socket's backlog, and reset: not refused yet
        return False


def running_job(admin):
    """A job started by a node of admin's (who may then upload its outputs): its pk, and the node's client."""
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json["pk"]
    job = admin.post(f"/v1/job-templates/{template}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    node = register(admin)
    node.get(f"/v1/jobs/{job}/acquire")
    node.post(f"/v1/jobs/{job}/start", {})
    return job, node


@pytest.mark.parametrize("stop", ["server", "control group"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stopped_server_answers_the_requests_under_way(serve, engine, admin, workers, stop, tmp_path):
    """Stopped by a SIGTERM to the server, or to its whole control group, as systemd does by default: each
    worker then gets two, the service manager's and its parent's, and the second one cut the grace short."""
    job, node = running_job(admin)
    # The server stores outputs where this test's app reads them.
    process, port = serve(engine.url.render_as_string(hide_password=False), "--workers", workers,
                          server=f"ufdl.storage.path = {storage_path_for_tests()}\n")
    wait_for(lambda: answers(port, admin.token))
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert list_licences_on(idle, admin.token) == 200  # kept alive, and idle when the server stops

    # A node is half way through uploading an output when the server is told to stop.
    body = os.urandom(1 << 20)
    upload = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    upload.putrequest("POST", f"/v1/jobs/{job}/outputs/result/BLOB")
    for name, value in (("Authorization", f"Bearer {admin.token}"), ("Node-Id", str(node.node_id)),
                        ("Content-Type", "application/data"), ("Content-Length", str(len(body)))):
        upload.putheader(name, value)
    upload.endheaders()
    upload.send(body[:len(body) // 2])
    time.sleep(0.5)  # received by the server
    if stop == "server":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGTERM)
    wait_for(lambda: refuses_connections(port), seconds=10)  # no new connection meanwhile
    upload.send(body[len(body) // 2:])
    response = upload.getresponse()
    assert response.status == 201, response.read()
    assert json.loads(response.read())["name"] == "result"
    assert process.wait(30) == 0
    assert admin.get(f"/v1/jobs/{job}/outputs/result/BLOB").body == body
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        list_licences_on(idle, admin.token)  # the idle connection was closed
    # Quietly: the request that ended after the socket closed found waitress's wake-up pipe still open.
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log, log


def test_a_second_ctrl_c_cuts_the_grace_short_and_a_second_sigterm_does_not(serve, engine, admin, tmp_path):
    job, node = running_job(admin)
    process, port = serve(engine.url.render_as_string(hide_password=False),
                          server=f"ufdl.storage.path = {storage_path_for_tests()}\n")
    wait_for(lambda: answers(port, admin.token))
    upload = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    upload.putrequest("POST", f"/v1/jobs/{job}/outputs/result/BLOB")
    for name, value in (("Authorization", f"Bearer {admin.token}"), ("Node-Id", str(node.node_id)),
                        ("Content-Type", "application/data"), ("Content-Length", "1000")):
        upload.putheader(name, value)
    upload.endheaders()
    upload.send(b"x" * 500)
    time.sleep(0.5)  # received by the server, which now waits for the rest
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # two signals at once would merge into one
    process.send_signal(signal.SIGTERM)  # the service manager's and the parent's: still the same stop
    time.sleep(1)
    assert process.poll() is None  # the upload still has its grace
    process.send_signal(signal.SIGINT)  # Ctrl-C: now
    assert process.wait(10) == 0
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        upload.send(b"x" * 500)
        upload.getresponse()
    assert "stopping at once: requests under way are not answered" in (tmp_path / "serve.log").read_text()


def list_licences_on(connection: http.client.HTTPConnection, token: str) -> int:
    connection.request("POST", "/v1/licences/list", headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    response.read()
    return response.status


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_stops_the_server_and_its_listener_like_sigterm(serve, engine, admin, workers):
    ws_port = free_port()
    process, port = serve(engine.url.render_as_string(hide_password=False), "--workers", workers,
                          "--ws-listen", f"127.0.0.1:{ws_port}")
    wait_for(lambda: answers(port, admin.token) and not refuses_connections(ws_port))
    process.send_signal(signal.SIGHUP)  # its terminal went away
    assert process.wait(30) == 0
    wait_for(lambda: refuses_connections(port) and refuses_connections(ws_port), seconds=10)


def listener_pids(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        try:
            if b"ufdl_pyramid.websocket" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:  # gone meanwhile
            continue
    return found


def test_the_progress_channel_is_started_again_when_it_dies(serve, engine, admin, tmp_path):
    """It stayed dead (a zombie) while the REST server went on serving."""
    ws_port = free_port()
    process, port = serve(engine.url.render_as_string(hide_password=False), "--ws-listen", f"127.0.0.1:{ws_port}")
    wait_for(lambda: answers(port, admin.token) and not refuses_connections(ws_port))
    first = wait_for(lambda: listener_pids(process.pid))
    os.kill(first[0], signal.SIGKILL)
    wait_for(lambda: "the progress channel stopped (exit -9); starting it again" in (tmp_path / "serve.log")
             .read_text())
    wait_for(lambda: set(listener_pids(process.pid)) - set(first))
    wait_for(lambda: not refuses_connections(ws_port))
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    wait_for(lambda: refuses_connections(ws_port), seconds=10)


def test_a_taken_progress_channel_port_is_refused_before_serving(serve, engine):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ws_port = taken.getsockname()[1]
        process, _ = serve(engine.url.render_as_string(hide_password=False), "--ws-listen", f"127.0.0.1:{ws_port}")
        assert process.wait(30) == 1


def test_ctrl_c_stops_the_server_and_its_progress_channel_quietly(serve, engine, admin, tmp_path):
    """Ctrl-C reaches the whole process group: the listener printed a KeyboardInterrupt and a traceback."""
    ws_port = free_port()
    process, port = serve(engine.url.render_as_string(hide_password=False), "--ws-listen", f"127.0.0.1:{ws_port}")
    wait_for(lambda: answers(port, admin.token) and not refuses_connections(ws_port))
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(30) == 0
    wait_for(lambda: refuses_connections(port) and refuses_connections(ws_port), seconds=10)
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log and "starting it again" not in log, log
