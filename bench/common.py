"""Shared by the benchmarks: a throw-away database, a waitress server in its own process, and a load loop."""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager

from ufdl_pyramid.testing import UserFactory, create_test_engine, make_test_app

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """``UFDL_BENCH_DATABASE_URL`` (PostgreSQL, say), else a SQLite file in a temporary folder."""
    return os.environ.get("UFDL_BENCH_DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite"


def prepare(url: str):
    """A freshly migrated database with an admin; returns (engine, access token)."""
    import webtest

    engine = create_test_engine(url)
    app = webtest.TestApp(make_test_app(engine))
    client = UserFactory(engine, app).login("bench-admin", admin=True)
    return engine, client


@contextmanager
def server(url: str, threads: int = 8, workers: int = 1):
    """Our app (and a bare Pyramid hello view at /hello) on one waitress server of ``workers`` processes."""
    port = free_port()
    # The server's log goes to a file: a pipe nobody reads would fill up and block the server.
    log = tempfile.NamedTemporaryFile("w+", prefix="ufdl-bench-", suffix=".log", delete=False)
    process = subprocess.Popen([sys.executable, os.path.join(HERE, "serve_for_bench.py"), url, str(port),
                                str(threads), str(workers)], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(log.read())
            time.sleep(0.1)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)
        log.seek(0)
        errors = [line for line in log if "ERROR" in line]
        if errors:
            print(f"the server logged {len(errors)} error(s), the first: {errors[0].strip()} (log: {log.name})")


def load(port: int, method: str, path: str, headers: dict, *, clients: int, seconds: float,
         body: bytes | None = None) -> dict:
    """``clients`` keep-alive connections sending the same request for ``seconds``; rate and latencies."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port)
        mine = []
        while time.perf_counter() < stop:
            start = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status >= 400:
                errors[0] += 1
        connection.close()
        with lock:
            latencies.extend(mine)

    elapsed = run_threads([client] * clients)
    return {"requests": len(latencies), "rate": len(latencies) / elapsed, "errors": errors[0],
            **percentiles(latencies)}


def run_threads(targets) -> float:
    """Run each callable in its own thread; the seconds until the last one ended."""
    threads = [threading.Thread(target=target) for target in targets]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def percentiles(latencies: list[float]) -> dict:
    """p50 and p99 in milliseconds of latencies in seconds."""
    ordered = sorted(latencies)
    return {"p50_ms": 1000 * statistics.median(ordered), "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))]}


def as_json(value) -> bytes:
    return json.dumps(value).encode()
