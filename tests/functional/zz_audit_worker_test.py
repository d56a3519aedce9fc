"""Audit: real `ufdl serve` + real `ufdl worker` processes (temporary; deleted afterwards)."""
import http.client, io, json, os, signal, socket, subprocess, sys, time
from pathlib import Path

import pytest

from ufdl_pyramid.testing import TEST_SETTINGS, UserFactory, create_test_engine
from ufdl_pyramid.worker.api import UfdlApi

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "templates_registry"
BIN = Path(sys.executable).parent
UFDL = str(BIN / "ufdl")
PASSWORD = "worker-password-1"
AUDIT = "/tmp/audit_worker"
DBURL = os.environ.get("AUDIT_DB")  # else sqlite


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(p, n=60):
    p = Path(p)
    return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else ""


def template_yaml(name, cls, params=("flag:str", "size:int")):
    lines = [f"name: {name}", "version: 1", "description: audit", "scope: public", "domain: null",
             "licence: Apache-2.0", "specific:", "  job_type: Process<str, BLOB>",
             f"  executor_class: audit_exec.{cls}", "  required_packages: ''", "  parameters:"]
    for p in params:
        n, t = p.split(":")
        d = "''" if t == "str" else "1"
        lines += [f"    {n}:", "      types:", f"      - {t}", "      help: x", f"      default: {d}", f"      default_type: {t}"]
    return ("\n".join(lines) + "\n").encode()


class Env:
    def __init__(self, folder):
        self.folder = folder
        self.db = DBURL or f"sqlite:///{folder}/server.sqlite"
        engine = create_test_engine(self.db)
        UserFactory(engine, None).create("worker", admin=True, password=PASSWORD)
        engine.dispose()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ini = folder / "serve.ini"
        self.ini.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = {self.db}\n"
                            f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\n"
                            f"ufdl.node_timeout = 3\nufdl.storage.path = {folder}/outputs\n"
                            "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
                            "[logger_root]\nlevel = WARNING\nhandlers = console\n"
                            "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nformatter = generic\n"
                            "[formatter_generic]\nformat = %(asctime)s %(levelname)s %(name)s %(message)s\n")
        self.server = None
        self.servers = 0
        self.workers = []
        self.n = 0
        self.api = None

    def start_server(self, *extra, ws="none"):
        self.servers += 1
        log = open(self.folder / f"server-{self.servers}.log", "w")
        self.server = subprocess.Popen([UFDL, "-c", str(self.ini), "serve", "--listen", f"127.0.0.1:{self.port}",
                                        "--ws-listen", ws, *extra], stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.server.log_path = Path(log.name)
        deadline = time.monotonic() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v1/licences/list"); c.getresponse().read(); c.close()
                break
            except OSError:
                assert self.server.poll() is None and time.monotonic() < deadline, tail(log.name)
                time.sleep(0.1)
        return self.server

    def stop_server(self, sig=signal.SIGTERM, wait=30):
        self.server.send_signal(sig)
        return self.server.wait(wait)

    def worker(self, *args, index=0, password=PASSWORD, url=None, env=None):
        self.n += 1
        log = open(self.folder / f"worker-{self.n}.log", "w")
        p = subprocess.Popen([sys.executable, f"{AUDIT}/worker_main.py", "worker", "--url", url or self.url,
                              "--username", "worker", "--ip", "127.0.0.1", "--index", str(index),
                              "--poll", "0.2", "--heartbeat", "0.4", "--max-backoff", "1", *args],
                             env={**os.environ, "UFDL_PASSWORD": password, **(env or {})},
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        p.log_path = Path(log.name)
        self.workers.append(p)
        return p

    def logs(self):
        out = [f"--- {w.log_path.name}\n{tail(w.log_path)}" for w in self.workers]
        for i in range(1, self.servers + 1):
            out.append(f"--- server-{i}.log\n{tail(self.folder / f'server-{i}.log', 30)}")
        return "\n".join(out)

    def template_pk(self, name):
        return self.api.request("POST", "/v1/job-templates/list", {"expressions": [
            {"type": "exact", "field": "name", "value": name}]})[0]["pk"]

    def create(self, template, value="", **params):
        body = {"input_values": {"input": {"value": value, "type": "str"}},
                "parameter_values": {k: {"value": v, "type": type(v).__name__} for k, v in params.items()}}
        return self.api.request("POST", f"/v1/job-templates/{self.template_pk(template)}/create-job", body)

    def job(self, pk):
        return self.api.get_job(pk)

    def wait_for(self, pk, *statuses, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                j = self.job(pk)
                if j["status"] in statuses:
                    return j
            except Exception:
                pass
            time.sleep(0.1)
        raise AssertionError(f"job {pk} is {self.job(pk)['status']} not {statuses}\n{self.logs()}")

    def events(self, pk):
        # the outbox, via the DB
        import sqlalchemy as sa
        eng = sa.create_engine(self.db)
        with eng.connect() as c:
            rows = c.execute(sa.text("select transition, node_id from job_events where job_id=:p order by id"),
                             {"p": pk}).all()
        eng.dispose()
        return rows


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    e.start_server()
    e.api = UfdlApi(e.url, "worker", PASSWORD)
    for name in ("shell",):
        e.api.request("POST", "/v1/job-templates/import", body=(REGISTRY / name / "1.yaml").read_bytes(),
                      content_type="application/yaml")
    for cls in ("Raiser", "ExitRaiser", "Hanger", "Printer", "Uploader"):
        e.api.request("POST", "/v1/job-templates/import", body=template_yaml(cls.lower(), cls),
                      content_type="application/yaml")
    yield e
    for w in e.workers:
        if w.poll() is None:
            os.killpg(w.pid, signal.SIGKILL); w.wait()
    if e.server and e.server.poll() is None:
        os.killpg(e.server.pid, signal.SIGKILL); e.server.wait()
    print(e.logs())


def wait_file(path, seconds=30):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"no {path}"
        time.sleep(0.05)


def finished(p, seconds=30):
    try:
        return p.wait(seconds)
    except subprocess.TimeoutExpired:
        return "TIMEOUT"


def test_a_server_restart_when_the_output_is_uploaded(env, tmp_path):
    flag = str(tmp_path / "flag")
    job = env.create("uploader", size=1, flag=flag)
    w = env.worker()
    wait_file(flag + ".started")
    assert env.stop_server() == 0
    Path(flag).touch()
    time.sleep(1.5)  # the server is down while the executor uploads
    env.start_server()
    j = env.wait_for(job["pk"], "COMPLETED", "FAILED", seconds=30)
    time.sleep(1)
    print("EVENTS", env.events(job["pk"]))
    assert j["status"] == "COMPLETED", (j["error_reason"], env.logs())
    assert len([o for o in j["outputs"] if o["name"] == "output"]) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_keep_alive_worker_survives_server_restarts(env, workers):
    env.stop_server(); env.start_server("--workers", workers)
    w = env.worker()
    time.sleep(1.5)
    for i in range(3):
        assert env.stop_server() == 0
        time.sleep(0.7)
        env.start_server("--workers", workers)
        job = env.create("shell", f"round {i}\n", command="cat")
        j = env.wait_for(job["pk"], "COMPLETED", "FAILED", seconds=30)
        assert j["status"] == "COMPLETED", j["error_reason"]
    assert w.poll() is None


def test_bad_password(env):
    w = env.worker("--once", password="wrong-password")
    code = finished(w, 20)
    out = w.log_path.read_text()
    print(out)
    assert code == 1 and "Traceback" not in out, out


def test_url_of_something_else(env, tmp_path):
    other = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port := free_port())],
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        w = env.worker("--once", url=f"http://127.0.0.1:{port}")
        code = finished(w, 20)
        out = w.log_path.read_text()
        print(out)
        assert code == 1 and "Traceback" not in out, out
    finally:
        other.kill()


def test_url_with_nothing_listening(env):
    w = env.worker("--once", url=f"http://127.0.0.1:{free_port()}")
    code = finished(w, 8)
    print(w.log_path.read_text()[-1500:])
    assert code != "TIMEOUT"


def test_raising_executor(env):
    job = env.create("raiser")
    assert finished(env.worker("--once")) == 0
    j = env.wait_for(job["pk"], "FAILED", seconds=10)
    assert "boom from executor" in j["error_reason"]


def test_systemexit_executor(env):
    job = env.create("exitraiser")
    w = env.worker("--once")
    code = finished(w, 20)
    j = env.job(job["pk"])
    print(code, j["status"], j["node"], w.log_path.read_text()[-2000:])
    assert j["status"] in ("FAILED", "PENDING"), j["status"]


def test_hanging_executor_sigterm(env, tmp_path):
    flag = str(tmp_path / "hang")
    job = env.create("hanger", flag=flag)
    w = env.worker()
    wait_file(flag + ".started")
    w.send_signal(signal.SIGTERM)
    c1 = finished(w, 5)
    if c1 == "TIMEOUT":
        w.send_signal(signal.SIGTERM)
        c2 = finished(w, 5)
    else:
        c2 = None
    print(c1, c2, env.job(job["pk"])["status"], w.log_path.read_text()[-1500:])
    assert c1 != "TIMEOUT" or c2 != "TIMEOUT"


def test_printing_executor(env):
    job = env.create("printer", size=200)  # 200 MiB to the worker's stdout
    w = env.worker("--once")
    assert finished(w, 60) == 0
    assert env.wait_for(job["pk"], "COMPLETED", "FAILED", seconds=5)["status"] == "COMPLETED"


def test_bad_password_with_concurrency(env):
    w = env.worker("--concurrency", "2", password="wrong-password")
    code = finished(w, 20)
    print("EXIT", code, w.log_path.read_text()[-600:])
    assert code == 1


def test_node_deleted_while_worker_idle(env):
    w = env.worker()
    time.sleep(1.5)
    nodes = env.api.request("POST", "/v1/nodes/list", {})
    for n in nodes:
        env.api.request("DELETE", f"/v1/nodes/{n['pk']}")
    time.sleep(2)
    print("POLL", w.poll(), w.log_path.read_text()[-1500:])
    job = env.create("shell", "x\n", command="cat")
    j = env.wait_for(job["pk"], "COMPLETED", "FAILED", seconds=15)
    assert j["status"] == "COMPLETED"


def test_three_workers_race(env):
    jobs = [env.create("shell", f"{i}\n", command="cat") for i in range(30)]
    ws = [env.worker(index=i) for i in range(3)]
    for job in jobs:
        j = env.wait_for(job["pk"], "COMPLETED", "FAILED", seconds=60)
        assert j["status"] == "COMPLETED", j
        assert j["tries"] == 1 if "tries" in j else True
        ev = [e[0] for e in env.events(job["pk"])]
        assert ev.count("start") == 1 and ev.count("acquire") == 1, ev
        assert len(j["outputs"]) == 1
    for w in ws:
        w.send_signal(signal.SIGTERM)
    assert [finished(w, 15) for w in ws] == [0, 0, 0]


@pytest.mark.parametrize("grace", [None, "30"])
def test_worker_sigterm_while_uploading(env, tmp_path, grace):
    flag = str(tmp_path / "flag")
    job = env.create("uploader", size=300, flag=flag)
    w = env.worker(*(["--grace", grace] if grace else []))
    wait_file(flag + ".started")
    Path(flag).touch()
    time.sleep(0.3)
    w.send_signal(signal.SIGTERM)
    code = finished(w, 60)
    j = env.job(job["pk"])
    print("EXIT", code, j["status"], j["node"], [o["name"] for o in j["outputs"]], env.events(job["pk"]))
    print(w.log_path.read_text()[-2000:])
    assert code == 0
    if grace:
        assert j["status"] == "COMPLETED"
    else:
        assert (j["status"], j["node"]) == ("PENDING", None)


def pids_with_parent(ppid):
    out = set()
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                f = Path(f"/proc/{e}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(f[1]) == ppid and f[0] != "Z":
                out.add(int(e))
    return out


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("sig", ["SIGHUP", "SIGINT", "SIGTERM2", "SIGQUIT"])
def test_server_signals(env, workers, sig):
    env.stop_server()
    wsport = free_port()
    env.start_server("--workers", workers, ws=f"127.0.0.1:{wsport}")
    time.sleep(1.5)
    kids = pids_with_parent(env.server.pid)
    grandkids = set().union(*(pids_with_parent(k) for k in kids))
    assert port_open(wsport)
    if sig == "SIGTERM2":
        env.server.send_signal(signal.SIGTERM); time.sleep(0.05); env.server.send_signal(signal.SIGTERM)
    else:
        env.server.send_signal(getattr(signal, sig))
    try:
        code = env.server.wait(30)
    except subprocess.TimeoutExpired:
        code = "TIMEOUT"
    time.sleep(2)
    alive = [p for p in kids | grandkids if Path(f"/proc/{p}").exists()
             and Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()[0] != "Z"]
    print("CODE", code, "alive", alive, "ws port open", port_open(wsport), "api port open", port_open(env.port))
    print(env.server.log_path.read_text()[-1500:])
    try:
        assert not alive and not port_open(wsport) and not port_open(env.port)
    finally:
        for p in alive:
            os.kill(p, signal.SIGKILL)


import threading


class Proxy:
    """TCP proxy to the server: client->server throttled to `rate` B/s (None: not), and the answer to the first
    request whose line contains `drop` is swallowed (the connection closed after the server answered)."""

    def __init__(self, target_port, rate=None, drop=None):
        self.target, self.rate, self.drop = target_port, rate, drop
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.dropped = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def handle(self, c):
        try:
            s = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            c.close(); return
        state = {"drop": False}

        def up():
            try:
                while data := c.recv(65536):
                    if self.drop and not self.dropped.is_set() and self.drop.encode() in data:
                        state["drop"] = True
                    s.sendall(data)
                    if self.rate:
                        time.sleep(len(data) / self.rate)
            except OSError:
                pass
            finally:
                try: s.shutdown(socket.SHUT_WR)
                except OSError: pass

        def down():
            try:
                while data := s.recv(65536):
                    if state["drop"]:
                        self.dropped.set()
                        break
                    c.sendall(data)
            except OSError:
                pass
            finally:
                for x in (c, s):
                    try: x.shutdown(socket.SHUT_RDWR)
                    except OSError: pass
                    x.close()

        threading.Thread(target=up, daemon=True).start()
        threading.Thread(target=down, daemon=True).start()


def test_server_sigterm_mid_upload_slow_link(env, tmp_path):
    proxy = Proxy(env.port, rate=4 << 20)
    flag = str(tmp_path / "flag")
    job = env.create("uploader", size=40, flag=flag)
    w = env.worker(url=f"http://127.0.0.1:{proxy.port}")
    wait_file(flag + ".started")
    Path(flag).touch()
    time.sleep(2)  # ~8 MB of 40 sent
    t = time.monotonic()
    code = env.stop_server()
    print("server stopped", code, "after", time.monotonic() - t)
    time.sleep(1)
    env.start_server()
    j = env.wait_for(job["pk"], "COMPLETED", "FAILED", seconds=60)
    print("EVENTS", env.events(job["pk"]), j["error_reason"])
    assert j["status"] == "COMPLETED", j["error_reason"]


def test_lost_answer_to_start(env):
    proxy = Proxy(env.port, drop="/start HTTP")
    w = env.worker(url=f"http://127.0.0.1:{proxy.port}")
    job = env.create("shell", "x\n", command="cat")
    assert proxy.dropped.wait(20)
    time.sleep(3)
    job2 = env.create("shell", "y\n", command="cat")
    time.sleep(6)  # > node_timeout
    j, j2 = env.job(job["pk"]), env.job(job2["pk"])
    print("J1", j["status"], j["node"], "J2", j2["status"], j2["node"], env.events(job["pk"]), env.events(job2["pk"]))
    print(w.log_path.read_text()[-2500:])
    assert j["status"] == "COMPLETED" and j2["status"] == "COMPLETED"


@pytest.mark.parametrize("rep", range(3))
def test_stream_of_jobs_through_restarts(env, rep):
    ws = [env.worker("--concurrency", "2", index=0), env.worker(index=5)]
    jobs = []
    for r in range(4):
        jobs += [env.create("shell", f"{r}-{i}\n", command="sh -c 'sleep 0.2; cat'") for i in range(8)]
        time.sleep(0.8 + 0.3 * rep)
        env.stop_server()
        time.sleep(0.5)
        env.start_server()
    bad = []
    for job in jobs:
        j = env.wait_for(job["pk"], "COMPLETED", "FAILED", seconds=90)
        ev = [e[0] for e in env.events(job["pk"])]
        if j["status"] != "COMPLETED" or ev.count("finish") != 1 or len(j["outputs"]) != 1:
            bad.append((job["pk"], j["status"], j["error_reason"], ev))
    print("BAD", bad)
    assert not bad
