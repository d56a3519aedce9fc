"""End to end: the real server (waitress, in a child process, on a fresh SQLite file) and real ``ufdl worker``
processes running the example executors: a job completed with its output, a failing command, a cancelled job,
a clean stop on SIGTERM (at once, or after a grace period), and a worker killed mid-job whose lease expires so that a second worker finishes it; and a Scale job type's job run by the Seed executor (with a fake docker)."""
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tcp_proxy import TcpProxy

from ufdl_pyramid.testing import UserFactory, create_test_engine
from ufdl_pyramid.worker.api import ApiError, UfdlApi

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "templates_registry"
UFDL = str(Path(sys.executable).with_name("ufdl"))
NODE_TIMEOUT = 2  # seconds: how soon a killed worker's lease expires
PASSWORD = "worker-password-1"

SERVE = """
import logging, sys, waitress
from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import make_test_app
logging.basicConfig(level=logging.WARNING)
url, port, storage, timeout = sys.argv[1:5]
app = make_test_app(get_engine({"sqlalchemy.url": url}), **{"ufdl.node_timeout": timeout,
                                                            "ufdl.storage.path": storage})
waitress.serve(app, listen=f"127.0.0.1:{port}", threads=8, _quiet=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


class Server:
    def __init__(self, url: str, folder: Path, api: UfdlApi):
        self.url, self.folder, self.api = url, folder, api
        self.workers: list[subprocess.Popen] = []
        self.started = 0  # names each worker's log, across tests

    def worker(self, *arguments: str, index: int = 0, env: dict | None = None, url: str | None = None
               ) -> subprocess.Popen:
        self.started += 1
        log = open(self.folder / f"worker-{self.started}.log", "w")
        process = subprocess.Popen(
            [UFDL, "worker", "--url", url or self.url, "--username", "worker", "--ip", "127.0.0.1", "--index", str(index),
             "--poll", "0.2", "--heartbeat", "0.4", "--max-backoff", "1", *arguments],
            env={**os.environ, "UFDL_PASSWORD": PASSWORD, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        process.log_path = Path(log.name)
        self.workers.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {process.log_path.name}\n{tail(process.log_path)}" for process in self.workers)

    def create_job(self, template: str, input_value, input_type: str = "str", **parameters) -> dict:
        pk = self.api.request("POST", "/v1/job-templates/list", {"expressions": [
            {"type": "exact", "field": "name", "value": template}]})[0]["pk"]
        body = {"input_values": {"input": {"value": input_value, "type": input_type}},
                "parameter_values": {name: {"value": value, "type": type(value).__name__}
                                     for name, value in parameters.items()}}
        return self.api.request("POST", f"/v1/job-templates/{pk}/create-job", body)

    def job(self, pk: int) -> dict:
        return self.api.get_job(pk)

    def wait_for(self, pk: int, *statuses: str, seconds: float = 30) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            job = self.job(pk)
            if job["status"] in statuses:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {pk} is {job['status']}, not {statuses}, after {seconds} s\n{self.logs()}")

    def output(self, pk: int, name: str, type_: str) -> bytes:
        content = io.BytesIO()
        self.api.request("GET", f"/v1/jobs/{pk}/outputs/{name}/{type_}", stream_to=content)
        return content.getvalue()


def finished(process: subprocess.Popen, seconds: float = 30) -> int:
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"the worker did not exit:\n{tail(process.log_path)}") from None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("worker-e2e")
    database = f"sqlite:///{folder}/server.sqlite"
    engine = create_test_engine(database)
    UserFactory(engine, None).create("worker", admin=True, password=PASSWORD)
    engine.dispose()
    port = free_port()
    log = open(folder / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-c", SERVE, database, str(port), str(folder / "outputs"),
                                str(NODE_TIMEOUT)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the server did not start:\n{tail(folder / 'server.log')}")
            time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    api = UfdlApi(url, "worker", PASSWORD)
    for name in ("shell", "word-count", "shell-then-count"):
        api.request("POST", "/v1/job-templates/import", body=(REGISTRY / name / "1.yaml").read_bytes(),
                    content_type="application/yaml")
    yield Server(url, folder, api)
    process.terminate()
    process.wait(10)


@pytest.fixture
def e2e(server):
    yield server
    for process in server.workers:  # only the workers this module started, by their own process group
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    server.workers.clear()


def test_a_shell_job_then_a_word_count_of_its_output(e2e):
    job = e2e.create_job("shell", "Hello hello world\n", command="tr a-z A-Z")
    assert finished(e2e.worker("--once")) == 0
    job = e2e.wait_for(job["pk"], "COMPLETED", seconds=5)
    assert job["progress"] == 1.0 and job["error_reason"] is None
    assert [(output["name"], output["type"]) for output in job["outputs"]] == [("output", "BLOB")]
    assert e2e.output(job["pk"], "output", "BLOB") == b"HELLO HELLO WORLD\n"

    count = e2e.create_job("word-count", job["outputs"][0]["pk"], "JobOutput<BLOB>", top=1)
    assert finished(e2e.worker("--once")) == 0
    count = e2e.wait_for(count["pk"], "COMPLETED", seconds=5)
    result = e2e.output(count["pk"], "output", "JSON")
    assert json.loads(result) == {"total": 3, "top": [["hello", 2]]}


def test_once_with_nothing_to_do_exits_0(e2e):
    worker = e2e.worker("--once")
    assert finished(worker) == 0
    assert "no job to run" in worker.log_path.read_text()


def test_the_node_registers_its_memory_in_bytes_and_its_cores(e2e):
    """The API's unit, as the job launcher sends it; the worker sent MiB (a 24 GiB machine: cpu_mem 24105)."""
    total_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:"))
    assert finished(e2e.worker("--once", index=7)) == 0
    [node] = e2e.api.request("POST", "/v1/nodes/list", {"expressions": [
        {"type": "exact", "field": "ip", "value": "127.0.0.1"}, {"type": "exact", "field": "index", "value": 7}]})
    assert node["cpu_mem"] == total_kib * 1024
    assert node["cpus"] == os.cpu_count()


def test_the_node_registers_its_largest_gpus_memory_its_gpus_and_the_driver(e2e, tmp_path):
    """From nvidia-smi, as a Scale job asking gpus needs; a machine without one registers none (gpu_mem null)."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\n"
                    "[ \"$*\" = '--query-gpu=memory.total,driver_version --format=csv,noheader,nounits' ] || exit 9\n"
                    "printf '8192, 535.54.03\\n24576, 535.54.03\\n'\n")
    fake.chmod(0o755)
    for index, env in ((8, {"PATH": f"{tmp_path}:{os.environ['PATH']}"}), (9, None)):
        assert finished(e2e.worker("--once", index=index, env=env)) == 0
    nodes = {node["index"]: node for node in e2e.api.request("POST", "/v1/nodes/list", {"expressions": [
        {"type": "exact", "field": "ip", "value": "127.0.0.1"}]})}
    assert (nodes[8]["gpu_mem"], nodes[8]["gpus"], nodes[8]["driver_version"]) == (24576 * 2**20, 2, "535.54.03")
    if shutil.which("nvidia-smi") is None:
        assert (nodes[9]["gpu_mem"], nodes[9]["gpus"], nodes[9]["driver_version"]) == (None, None, None)


def test_a_failing_command_fails_the_job_with_its_error(e2e):
    job = e2e.create_job("shell", "", command="sh -c 'echo it broke >&2; exit 4'")
    assert finished(e2e.worker("--once")) == 0
    job = e2e.wait_for(job["pk"], "FAILED", seconds=5)
    assert job["error_reason"] == "sh exited with status 4: it broke"

    job = e2e.create_job("shell", "", command="false")
    assert finished(e2e.worker("--once")) == 0
    assert e2e.wait_for(job["pk"], "FAILED", seconds=5)["error_reason"] == "false exited with status 1"


def test_an_error_the_server_cannot_store_as_it_is_still_fails_the_job(e2e):
    """A NUL byte in a failing command's standard error: the server refused the finish (400), and the job stayed
    RUNNING on its node."""
    job = e2e.create_job("shell", "", command="sh -c \"printf 'bad\\000byte' >&2; exit 3\"")
    assert finished(e2e.worker("--once")) == 0
    assert e2e.wait_for(job["pk"], "FAILED", seconds=5)["error_reason"] == "sh exited with status 3: bad\ufffdbyte"


def test_a_placeholder_that_names_nothing_fails_the_job_and_a_doubled_one_is_text(e2e):
    """An unknown {name} was left in the command as it stood: the job ran, and completed, with the typo."""
    job = e2e.create_job("shell", "x", command="echo {input} {timeuot}")
    assert finished(e2e.worker("--once")) == 0
    job = e2e.wait_for(job["pk"], "FAILED", seconds=5)
    assert job["error_reason"] == ("the command line's placeholder {timeuot} names no input or parameter (there "
                                   "are command, input, timeout); write {{timeuot}} for the text {timeuot}")

    job = e2e.create_job("shell", "x", command="echo {input} {{timeuot}} {timeout}")
    assert finished(e2e.worker("--once")) == 0
    job = e2e.wait_for(job["pk"], "COMPLETED", seconds=5)
    assert e2e.output(job["pk"], "output", "BLOB") == b"x {timeuot} 60\n"


def test_a_cancelled_job_stops_its_process(e2e):
    job = e2e.create_job("shell", "", command="sleep 30")
    worker = e2e.worker("--once")
    e2e.wait_for(job["pk"], "RUNNING")
    e2e.api.request("DELETE", f"/v1/jobs/{job['pk']}/cancel")
    began = time.monotonic()
    assert finished(worker, 15) == 0
    assert time.monotonic() - began < 10
    job = e2e.job(job["pk"])
    assert job["status"] == "CANCELED" and job["is_cancelled"]
    node = e2e.api.request("GET", f"/v1/nodes/{job['node']}") if job["node"] else None
    assert node is None or node["current_job"] is None  # the worker's finish freed its node


def wait_for_log(worker: subprocess.Popen, text: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while text not in worker.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"the worker never logged {text!r}:\n{tail(worker.log_path)}"
        time.sleep(0.05)


def test_an_output_the_storage_cannot_take_is_sent_again_until_it_can(e2e):
    """The storage's tmp/ turned into a file: the upload is answered 503, which the worker waits out (a 500
    failed the job); once the directory is back, the job completes with its output."""
    temporary = e2e.folder / "outputs" / "tmp"
    aside = temporary.with_name("tmp.aside")
    job = e2e.create_job("shell", "kept\n", command="cat")
    temporary.rename(aside)
    temporary.write_text("not a directory")
    try:
        worker = e2e.worker("--once")
        wait_for_log(worker, "adding output output again")
    finally:
        temporary.unlink()
        aside.rename(temporary)
    assert finished(worker) == 0
    e2e.wait_for(job["pk"], "COMPLETED", seconds=5)
    assert e2e.output(job["pk"], "output", "BLOB") == b"kept\n"
    assert f"storing a blob failed: [Errno 17] File exists: '{temporary}'" in (e2e.folder / "server.log").read_text()


def test_with_a_grace_period_sigterm_lets_the_running_job_finish(e2e, tmp_path):
    go = tmp_path / "go"
    job = e2e.create_job("shell", "", command=f"sh -c 'while [ ! -e {go} ]; do sleep 0.05; done; echo finished'")
    worker = e2e.worker("--grace", "60")
    e2e.wait_for(job["pk"], "RUNNING")
    worker.send_signal(signal.SIGTERM)
    wait_for_log(worker, "a running job has 60 s to finish")
    later = e2e.create_job("shell", "", command="true")
    go.touch()
    assert finished(worker, 30) == 0
    assert e2e.job(job["pk"])["status"] == "COMPLETED", worker.log_path.read_text()
    assert e2e.output(job["pk"], "output", "BLOB") == b"finished\n"
    assert e2e.job(later["pk"])["status"] == "PENDING"  # a stopping worker takes no new job
    e2e.api.request("DELETE", f"/v1/jobs/{later['pk']}/cancel")


@pytest.mark.parametrize("grace", [False, True], ids=["at once", "second signal in the grace period"])
def test_sigterm_stops_the_worker_and_puts_the_job_back(e2e, grace):
    job = e2e.create_job("shell", "", command="sleep 30")
    worker = e2e.worker(*(["--grace", "60"] if grace else []))
    e2e.wait_for(job["pk"], "RUNNING")
    worker.send_signal(signal.SIGTERM)
    if grace:
        wait_for_log(worker, "a running job has 60 s to finish")
        worker.send_signal(signal.SIGINT)
    assert finished(worker, 15) == 0
    job = e2e.job(job["pk"])
    try:
        assert (job["status"], job["node"]) == ("PENDING", None), worker.log_path.read_text()
    finally:
        e2e.api.request("DELETE", f"/v1/jobs/{job['pk']}/cancel")


def test_a_second_signal_ends_a_stopping_worker_that_cannot_reach_the_server(e2e):
    """Stopping, the worker must get its finish through and waits out a server that is down; a second signal
    (Ctrl-C again) gives that up and leaves the job to its lease, instead of a worker only SIGKILL ends."""
    proxy = TcpProxy(("127.0.0.1", int(e2e.url.rsplit(":", 1)[1])))
    job = e2e.create_job("shell", "", command="sleep 30")
    try:
        worker = e2e.worker(url=f"http://127.0.0.1:{proxy.port}", index=3)
        e2e.wait_for(job["pk"], "RUNNING")
        proxy.cut()
        worker.send_signal(signal.SIGINT)
        wait_for_log(worker, " again in ")  # finishing (or, cut sooner, reading the parameters)
        worker.send_signal(signal.SIGINT)
        assert finished(worker, 15) == 1
        assert f"job {job['pk']} left to its lease" in worker.log_path.read_text()
    finally:
        proxy.close()
        e2e.api.request("DELETE", f"/v1/jobs/{job['pk']}/cancel")


def test_a_heartbeat_that_cannot_reach_the_server_is_logged(e2e, tmp_path):
    """The lease hangs on the heartbeats: one that fails is a warning in the worker's log (it was a DEBUG line,
    so the log said nothing while a job's lease ran out), and one that gets through again says so."""
    proxy = TcpProxy(("127.0.0.1", int(e2e.url.rsplit(":", 1)[1])))
    flag = tmp_path / "slow"
    flag.touch()
    job = e2e.create_job("shell", "", command=f"sh -c 'while [ -e {flag} ]; do sleep 0.1; done; echo done'")
    try:
        worker = e2e.worker(url=f"http://127.0.0.1:{proxy.port}", index=4)
        e2e.wait_for(job["pk"], "RUNNING")
        proxy.cut()
        wait_for_log(worker, f"heartbeat for job {job['pk']} failed")
        proxy.restore()
        wait_for_log(worker, f"heartbeat for job {job['pk']} got through again")
        flag.unlink()
        assert e2e.wait_for(job["pk"], "COMPLETED")["error_reason"] is None
    finally:
        proxy.close()
        flag.unlink(missing_ok=True)


def test_a_killed_workers_job_goes_back_to_pending_and_another_worker_finishes_it(e2e, tmp_path):
    flag = tmp_path / "slow"
    flag.touch()
    job = e2e.create_job("shell", "", command=f"sh -c 'while [ -e {flag} ]; do sleep 0.1; done; echo done'")
    first = e2e.worker()
    running = e2e.wait_for(job["pk"], "RUNNING")
    os.kill(first.pid, signal.SIGKILL)  # the worker only: its command runs on in its own session...
    first.wait()
    flag.unlink()  # ...until this, and the next run of the command is quick

    second = e2e.worker(index=1)  # another node: its acquire-next notices the lost lease
    job = e2e.wait_for(job["pk"], "COMPLETED", seconds=NODE_TIMEOUT + 20)
    assert job["node"] != running["node"]
    assert e2e.output(job["pk"], "output", "BLOB") == b"done\n"
    second.send_signal(signal.SIGTERM)
    assert finished(second, 15) == 0


def test_a_restarted_worker_recovers_the_job_it_held(e2e, tmp_path):
    flag = tmp_path / "slow"
    flag.touch()
    job = e2e.create_job("shell", "", command=f"sh -c 'while [ -e {flag} ]; do sleep 0.1; done; echo again'")
    first = e2e.worker(index=2)
    e2e.wait_for(job["pk"], "RUNNING")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    flag.unlink()

    again = e2e.worker("--once", index=2)  # the same node, restarted at once
    assert finished(again) == 0
    job = e2e.wait_for(job["pk"], "COMPLETED", seconds=5)
    assert e2e.output(job["pk"], "output", "BLOB") == b"again\n"


def test_a_restarted_worker_frees_itself_of_a_job_cancelled_while_it_was_down(e2e, tmp_path):
    flag = tmp_path / "slow"
    flag.touch()
    job = e2e.create_job("shell", "", command=f"sh -c 'while [ -e {flag} ]; do sleep 0.1; done'")
    first = e2e.worker(index=3)
    node = e2e.wait_for(job["pk"], "RUNNING")["node"]
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    flag.unlink()
    e2e.api.request("DELETE", f"/v1/jobs/{job['pk']}/cancel")

    again = e2e.worker("--once", index=3)  # no job is pending: it recovers, finds nothing to run and exits
    assert finished(again) == 0
    assert e2e.api.request("GET", f"/v1/nodes/{node}")["current_job"] is None, again.log_path.read_text()
    assert e2e.job(job["pk"])["status"] == "CANCELED"


def test_a_meta_job_runs_its_children_on_the_worker(e2e):
    pk = e2e.api.request("POST", "/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": "shell-then-count"}]})[0]["pk"]
    parent = e2e.api.request("POST", f"/v1/job-templates/{pk}/create-job", {
        "input_values": {"shell:input": {"value": "b a b\nc b\n", "type": "str"}},
        "parameter_values": {"shell:command": {"value": "cat", "type": "str"}}})
    worker = e2e.worker()
    parent = e2e.wait_for(parent["pk"], "COMPLETED", seconds=30)
    counted = next(output for output in parent["outputs"] if output["name"].endswith("output")
                   and output["type"] == "JSON")
    content = io.BytesIO()
    e2e.api.download_output(counted["pk"], content)
    assert json.loads(content.getvalue()) == {"total": 5, "top": [["b", 3], ["a", 1], ["c", 1]]}
    worker.send_signal(signal.SIGTERM)
    assert finished(worker, 15) == 0


def test_concurrency_runs_jobs_side_by_side_as_several_nodes(e2e, tmp_path):
    flag = tmp_path / "hold"
    flag.touch()
    command = f"sh -c 'while [ -e {flag} ]; do sleep 0.1; done; echo out'"
    jobs = [e2e.create_job("shell", "", command=command) for _ in range(2)]
    worker = e2e.worker("--concurrency", "2", index=5)
    running = [e2e.wait_for(job["pk"], "RUNNING") for job in jobs]
    assert len({job["node"] for job in running}) == 2
    flag.unlink()
    for job in jobs:
        assert e2e.output(e2e.wait_for(job["pk"], "COMPLETED")["pk"], "output", "BLOB") == b"out\n"
    worker.send_signal(signal.SIGTERM)
    assert finished(worker, 15) == 0


READ_BYTES = """
import json, os, sys
if int(sys.argv[2]) < 0:
    sys.exit("a negative length")  # status 1: the manifest's error data-issue (category data)
text = open(sys.argv[1], "rb").read()[:int(sys.argv[2])]
open(os.path.join(os.environ["OUTPUT_DIR"], "output_text.txt"), "wb").write(text)
json.dump({"TOTAL_INPUT": len(text)}, open(os.path.join(os.environ["OUTPUT_DIR"], "seed.outputs.json"), "w"))
print(os.environ["DB_PASS"], sys.argv[3], open(sys.argv[4]).read())  # a secret setting, another, a mount's file
print("/".join(sys.argv[1].split("/")[-3:]))  # the input: NAME/PK/FILENAME
"""


def test_a_scale_job_types_job_runs_its_seed_image(e2e, tmp_path):
    """The job type's revision template, a job of it created through v1 with a JSON input that names a job
    output, and a worker whose Seed executor downloads it, fetches the job type's settings (a secret one
    decrypted) and mounts, runs the image (a fake docker client that runs the command here) and keeps the
    manifest's outputs. The input file is named as the server offers its download (the shell job's output
    'output')."""
    text = e2e.create_job("shell", "hello world", command="cat")
    assert finished(e2e.worker("--once")) == 0
    [source] = e2e.wait_for(text["pk"], "COMPLETED", seconds=5)["outputs"]
    script, docker = tmp_path / "read_bytes.py", tmp_path / "docker"
    script.write_text(READ_BYTES)
    docker.write_text(f"#!{sys.executable}\n" + (ROOT / "plugins/ufdl-seed/tests/fake_docker.py").read_text())
    docker.chmod(0o755)
    manifest = json.loads((ROOT / "tests/functional/seed_manifests/spec_add_seed_image.json").read_text())["manifest"]
    manifest["job"]["name"] = "read-bytes-e2e"
    manifest["job"]["interface"]["command"] = (f"{sys.executable} {script} ${{INPUT_TEXT}} ${{READ_LENGTH}} "
                                               f"${{DB_HOST}} /the/container/path/reference.txt")
    (tmp_path / "reference.txt").write_text("mounted")
    configuration = {"settings": {"DB_HOST": "db.example", "DB_PASS": "secret_password"},
                     "mounts": {"MOUNT_PATH": {"type": "host", "host_path": str(tmp_path)}}}
    job_type = e2e.api.request("POST", "/v6/job-types/", {"docker_image": "read-bytes:1", "manifest": manifest,
                                                          "configuration": configuration})
    job = e2e.create_job(f"seed-job-type-{job_type['id']}", {"INPUT_TEXT": source["pk"], "READ_LENGTH": 5}, "JSON")
    assert finished(e2e.worker("--once", env={"UFDL_SEED_DOCKER": str(docker)})) == 0
    job = e2e.wait_for(job["pk"], "COMPLETED", seconds=5)
    assert sorted((output["name"], output["type"]) for output in job["outputs"]) == [
        ("OUTPUT_TEXT", "BLOB"), ("output", "JSON"), ("stdout", "BLOB"), ("total_input", "JSON")]
    assert e2e.output(job["pk"], "OUTPUT_TEXT", "BLOB") == b"hello"
    assert e2e.output(job["pk"], "stdout", "BLOB") == (b"secret_password db.example mounted\n"
                                                       + f"INPUT_TEXT/{source['pk']}/output\n".encode())
    assert json.loads(e2e.output(job["pk"], "output", "JSON")) == {"total_input": 5}

    # An input the executor could never run: the server, which has the Seed plugin too, refuses the job.
    with pytest.raises(ApiError) as refused:
        e2e.create_job(f"seed-job-type-{job_type['id']}", {"INPUT_TEXT": source["pk"]}, "JSON")
    assert (refused.value.status, refused.value.detail) == (
        400, "ufdl_seed.SeedExecutor refuses the job: the required input 'READ_LENGTH' is missing")
    # An exit status that the manifest names as an error of category data: the job's error category is DATA.
    bad_data = e2e.create_job(f"seed-job-type-{job_type['id']}", {"INPUT_TEXT": source["pk"], "READ_LENGTH": -1},
                              "JSON")
    assert finished(e2e.worker("--once", env={"UFDL_SEED_DOCKER": str(docker)})) == 0
    failed = e2e.wait_for(bad_data["pk"], "FAILED", seconds=5)
    assert failed["error_category"] == "DATA" and failed["error_reason"].startswith(
        "read-bytes:1 exited with status 1, the manifest's error data-issue (data)")
