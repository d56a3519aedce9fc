"""The worker's uploads of file outputs, through its API client to a real waitress server in its own process
(serve_outputs.py): sent from disk as they are read, never whole in the worker's memory, and sent again from
their start when a try is cut off. The memory is the Python allocations' peak (tracemalloc): reading the file
whole allocates it as one bytes object."""
import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from serve_outputs import served
from tcp_proxy import TcpProxy
from ufdl_pyramid.worker.api import ServerUnavailable, UfdlApi
from ufdl_pyramid.worker.context import HttpExecutionContext

SIZE, BLOCK = 64 << 20, 1 << 20
# Fills the file's middle block: every piece of it the proxy reads holds the marker whole.
MARKER = b"<cut the upload off here>"


@pytest.fixture
def port(engine, tmp_path):
    with served(engine, tmp_path) as (port, _):
        yield port


def worker_api(worker, port: int) -> UfdlApi:
    """The worker's client, with the test node's token and id (no login)."""
    api = UfdlApi(f"http://127.0.0.1:{port}", worker.token, "")
    api.access, api.node_id = worker.token, worker.node_id
    return api


def big_file(path: Path) -> str:
    """SIZE bytes, the middle block MARKER over and over; answers their SHA-256."""
    digest, block = hashlib.sha256(), os.urandom(BLOCK)
    markers = (MARKER * (BLOCK // len(MARKER) + 1))[:BLOCK]
    with open(path, "wb") as file:
        for index in range(SIZE // BLOCK):
            data = markers if index == SIZE // BLOCK // 2 else block
            file.write(data)
            digest.update(data)
    return digest.hexdigest()


def stored_digest(api: UfdlApi, job: dict, folder: Path) -> str:
    with open(folder / "downloaded", "w+b") as file:
        api.exchange("GET", f"/v1/jobs/{job['pk']}/outputs/big/BLOB", stream_to=file)
        file.seek(0)
        return hashlib.file_digest(file, "sha256").hexdigest()


def traced_peak(call) -> int:
    """The peak of the Python allocations while ``call()`` runs, bytes."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_file_output_is_sent_from_disk(worker, running, port, tmp_path):
    expected = big_file(tmp_path / "model")
    api = worker_api(worker, port)
    context = HttpExecutionContext(api, running, {}, {}, tmp_path, lambda: False)
    peak = traced_peak(lambda: context.add_output("big", "BLOB", tmp_path / "model"))
    print(f"worker's peak of Python allocations while sending {SIZE >> 20} MiB: {peak / 2**20:.2f} MiB")
    assert peak < SIZE / 16
    assert stored_digest(api, running, tmp_path) == expected
    api.close()


def test_an_outputs_content_type_is_stored_and_served(worker, running, port, tmp_path):
    """Through the worker's client to the server: the content type an executor gives, else what a path's name
    tells, else the UFDL client's application/data; each is the output's content_type and its download's."""
    (tmp_path / "plot.png").write_bytes(b"\x89PNG")
    api = worker_api(worker, port)
    context = HttpExecutionContext(api, running, {}, {}, tmp_path, lambda: False)
    context.add_output("given", "BLOB", b"a,b\n", "text/csv; header=present")
    context.add_output("guessed", "BLOB", tmp_path / "plot.png")
    context.add_output("bytes", "BLOB", b"raw")
    expected = {"given": "text/csv; header=present", "guessed": "image/png", "bytes": "application/data"}
    for name, content_type in expected.items():
        _, headers = api.exchange("GET", f"/v1/jobs/{running['pk']}/outputs/{name}/BLOB")
        assert headers["content-type"] == content_type
    stored = [api.request("GET", f"/v1/job-outputs/{output['pk']}")
              for output in api.request("GET", f"/v1/jobs/{running['pk']}")["outputs"]]
    assert {output["name"]: output["content_type"] for output in stored} == expected
    api.close()


def test_a_file_upload_cut_off_is_sent_again_from_its_start(worker, running, port, tmp_path):
    """The client's own retry (a stale keep-alive connection) is cut off too, then the context's retry (the
    server unavailable) goes through: each try sends the file from its first byte, with its Content-Length."""
    expected = big_file(tmp_path / "model")
    proxy = TcpProxy(("127.0.0.1", port))
    api = worker_api(worker, proxy.port)
    unavailable = []

    def retrying(_what, call):
        for _ in range(3):
            try:
                return call()
            except ServerUnavailable as error:
                unavailable.append(error)
        raise AssertionError(f"never sent: {unavailable}")

    context = HttpExecutionContext(api, running, {}, {}, tmp_path, lambda: False, retrying)
    proxy.sever_at(MARKER, times=2)
    try:
        peak = traced_peak(lambda: context.add_output("big", "BLOB", tmp_path / "model"))
        assert len(unavailable) == 1 and proxy.marker is None
        assert peak < SIZE / 16
        assert stored_digest(api, running, tmp_path) == expected
    finally:
        api.close()
        proxy.close()
