"""Progress-channel fan-out: W watchers on one job, P progress calls through REST.

    python bench/ws_fanout.py [--watchers 200] [--progress 200] [--rate 0]
    UFDL_BENCH_DATABASE_URL=postgresql+psycopg://... python bench/ws_fanout.py   # PostgreSQL (schema dropped!)

The REST app runs on waitress in one child process, the websocket listener (gevent) in another; the watchers
are websocket-client connections in this process. Prints the deliveries received / expected (must be 100%)
and the p50/p99 delay from each progress call's REST response to each watcher's receipt.
"""
import argparse
import http.client
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import database_url, free_port, prepare, server  # noqa: E402

from ufdl_pyramid.cli.websocket import listener_argv  # noqa: E402
from ufdl_pyramid.client import connect  # noqa: E402
from ufdl_pyramid.testing import TEST_SETTINGS  # noqa: E402

ECHO = {"name": "echo", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"job_type": "Process<str, str>", "executor_class": "bench.Echo", "required_packages": "",
                     "parameters": {}}}


def start_listener(engine) -> tuple[subprocess.Popen, int]:
    port = free_port()
    folder = tempfile.mkdtemp(prefix="ufdl-ws-bench-")
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    ini = os.path.join(folder, "listener.ini")
    with open(ini, "w") as file:
        file.write("[app:main]\nuse = egg:ufdl-pyramid\n" + "".join(
            f"{k} = {v}\n" for k, v in {**TEST_SETTINGS, "sqlalchemy.url": url}.items()))
    log = open(os.path.join(folder, "listener.log"), "w")
    process = subprocess.Popen(listener_argv(ini, f"127.0.0.1:{port}"), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the listener did not start: see {log.name}")
            time.sleep(0.05)


def read_all(sockets, received) -> None:
    selector = selectors.DefaultSelector()
    buffers = {}
    for index, ws in enumerate(sockets):
        ws.sock.setblocking(False)
        selector.register(ws.sock, selectors.EVENT_READ, index)
        buffers[index] = bytearray()
    open_sockets = len(sockets)
    while open_sockets:
        for key, _ in selector.select(timeout=30):
            index = key.data
            try:
                chunk = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            now = time.perf_counter()
            if not chunk:
                selector.unregister(key.fileobj)
                open_sockets -= 1
                continue
            buffer = buffers[index]
            buffer += chunk
            while len(buffer) >= 2:
                opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
                if length == 126:
                    if len(buffer) < 4:
                        break
                    length, offset = struct.unpack("!H", buffer[2:4])[0], 4
                elif length == 127:
                    if len(buffer) < 10:
                        break
                    length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
                if len(buffer) < offset + length:
                    break
                payload = bytes(buffer[offset:offset + length])
                del buffer[:offset + length]
                if opcode == 0x1:
                    message = json.loads(payload)
                    if message["transition"] == "progress":
                        received[index].append((message["transition_data"]["i"], now))
                elif opcode == 0x8:
                    selector.unregister(key.fileobj)
                    open_sockets -= 1
                    break


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--progress", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0,
                        help="progress calls per second (default: one after another, as fast as they answer)")
    args = parser.parse_args()
    url = database_url()
    engine, admin = prepare(url)
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json
    job = admin.post(f"/v1/job-templates/{template['pk']}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json
    node = admin.as_node(admin.post("/v1/nodes/create", {"ip": "10.0.0.1", "index": 0}, status=201).json["pk"])
    node.get(f"/v1/jobs/{job['pk']}/acquire")
    node.post(f"/v1/jobs/{job['pk']}/start", {})

    listener, ws_port = start_listener(engine)
    sent: dict[int, float] = {}
    received: list[list[tuple[int, float]]] = [[] for _ in range(args.watchers)]
    try:
        sockets = [connect(f"http://127.0.0.1:{ws_port}", admin.token, job["pk"]) for _ in range(args.watchers)]
        for ws in sockets:
            assert json.loads(ws.recv())["transition"] == "state"

        # One thread reads every socket (selectors, a minimal frame parser for the server's unmasked
        # frames): 200 websocket-client threads would measure the GIL, not the channel.
        reader = threading.Thread(target=read_all, args=(sockets, received), daemon=True)
        reader.start()
        threads = [reader]
        with server(url) as port:
            connection = http.client.HTTPConnection("127.0.0.1", port)
            headers = {"Authorization": f"Bearer {admin.token}", "Node-Id": str(node.node_id),
                       "Content-Type": "application/json"}
            began = time.perf_counter()
            for i in range(args.progress):
                if args.rate:  # a fixed pace compares runs whose REST sides answer at different speeds
                    time.sleep(max(0.0, began + i / args.rate - time.perf_counter()))
                connection.request("POST", f"/v1/jobs/{job['pk']}/progress/{(i + 1) / (args.progress + 1):.6f}",
                                   body=json.dumps({"i": i}).encode(), headers=headers)
                response = connection.getresponse()
                response.read()
                assert response.status == 200, response.status
                sent[i] = time.perf_counter()
            elapsed = time.perf_counter() - began
            connection.request("POST", f"/v1/jobs/{job['pk']}/finish", body=b"{}", headers=headers)
            connection.getresponse().read()
        for thread in threads:
            thread.join(30)
        for ws in sockets:
            ws.sock.close()
    finally:
        listener.terminate()
        listener.wait(10)

    delays = sorted(max(0.0, at - sent[i]) for rows in received for i, at in rows)
    got, expected = len(delays), args.watchers * args.progress
    in_order = all([i for i, _ in rows] == list(range(args.progress)) for rows in received)
    print(f"database: {engine.dialect.name}; {args.watchers} watchers x {args.progress} progress calls "
          f"({args.progress / elapsed:.0f} calls/s)")
    print(f"deliveries: {got} / {expected} ({100 * got / expected:.1f}%), every watcher in order: {in_order}")
    if delays:
        p50 = delays[len(delays) // 2]
        p99 = delays[int(0.99 * (len(delays) - 1))]
        print(f"delivery latency (REST response -> receipt): p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms, "
              f"max {1000 * delays[-1]:.1f} ms")


if __name__ == "__main__":
    main()
