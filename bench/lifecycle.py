"""Job lifecycles over real HTTP: K concurrent nodes each doing create-job -> acquire -> start -> 10 progress
-> a 1 KiB output -> finish, against the same run's bare-Pyramid hello rate on the same waitress server.

    python bench/lifecycle.py [--nodes 8] [--seconds 5] [--rounds 3] [--workers 1] [--threads 8] [--readers 0]
Set UFDL_BENCH_DATABASE_URL to measure on PostgreSQL (default: a temporary SQLite file).

``--readers R`` adds R users listing the newest jobs while the nodes work (their lists are not counted as
lifecycle requests; their rate is printed apart).

``--progress-only`` measures a ceiling instead: each node starts one job, then only reports progress on it,
so that every request is the cheapest one a node sends (one statement on PostgreSQL).

The two loads alternate, ``--rounds`` times (hello for half of ``--seconds``, then the lifecycles for
``--seconds``), so that a machine whose speed drifts during the run slows both alike; the ratio is that of the
totals, and the spread of the rounds' own ratios is printed beside it.
"""
import argparse
import functools
import http.client
import json
import threading
import time

from common import database_url, load, percentiles, prepare, run_threads, server

TEMPLATE = {"name": "bench-echo", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"job_type": "Process<str, BLOB>", "executor_class": "bench.Echo",
                         "required_packages": "", "parameters": {}}}
PAYLOAD = b"x" * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5, help="lifecycle seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="server processes (ufdl serve --workers)")
    parser.add_argument("--threads", type=int, default=8, help="threads per server process")
    parser.add_argument("--readers", type=int, default=0,
                        help="users listing the newest jobs (a page of 10) beside the nodes, as dashboards do")
    parser.add_argument("--progress-only", action="store_true",
                        help="each node reports progress on one started job, and does nothing else")
    args = parser.parse_args()
    url = database_url()
    engine, admin = prepare(url)
    template = admin.post("/v1/job-templates/import", TEMPLATE).json["pk"]
    nodes = [admin.post("/v1/nodes/create", {"ip": f"10.9.0.{i}", "index": 0}).json["pk"]
             for i in range(args.nodes)]
    token = admin.token
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}  # the request's kind (its path's last word): its latencies
    lifecycles = [0]
    reads = [0]
    failures: list[str] = []
    lock = threading.Lock()

    def node_loop(port: int, node: int, stop: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Authorization": f"Bearer {token}", "Node-Id": str(node), "Accept": "*/*",
                   "Content-Type": "application/json"}
        mine: list[float] = []
        kinds: list[str] = []

        def call(kind, method, path, body=b"{}", content_type="application/json", expect=(200, 201)):
            start = time.perf_counter()
            connection.request(method, path, body=body, headers={**headers, "Content-Type": content_type})
            response = connection.getresponse()
            data = response.read()
            mine.append(time.perf_counter() - start)
            kinds.append(kind)
            if response.status not in expect:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
            return data

        def started_job() -> int:
            job = json.loads(call("create-job", "POST", f"/v1/job-templates/{template}/create-job", json.dumps(
                {"input_values": {"input": {"value": "hello", "type": "str"}}}).encode()))["pk"]
            call("acquire", "GET", f"/v1/jobs/{job}/acquire", body=None)
            call("start", "POST", f"/v1/jobs/{job}/start")
            return job

        done = 0
        try:
            if args.progress_only:
                job = started_job()
                mine.clear()  # only the progress reports are measured
                kinds.clear()
                while time.perf_counter() < stop:
                    call("progress", "POST", f"/v1/jobs/{job}/progress/0.5", b'{"step": 1}')
                call("finish", "POST", f"/v1/jobs/{job}/finish")
                mine.pop()
                kinds.pop()
            else:
                while time.perf_counter() < stop:
                    job = started_job()
                    for step in range(1, 11):
                        call("progress", "POST", f"/v1/jobs/{job}/progress/{step / 10}",
                             json.dumps({"step": step}).encode())
                    call("output", "POST", f"/v1/jobs/{job}/outputs/output/BLOB", PAYLOAD, "application/data")
                    call("finish", "POST", f"/v1/jobs/{job}/finish")
                    done += 1
        except Exception as error:  # reported at the end: the figures of a failing run mean nothing
            with lock:
                failures.append(str(error))
        connection.close()
        with lock:
            latencies.extend(mine)
            for kind, latency in zip(kinds, mine):
                by_kind.setdefault(kind, []).append(latency)
            lifecycles[0] += done

    def reader_loop(port: int, stop: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Authorization": f"Bearer {token}", "Accept": "*/*", "Content-Type": "application/json"}
        body = json.dumps({"page": 1, "page_size": 10, "order_by": [{"field": "pk", "ascending": False}]})
        done = 0
        while time.perf_counter() < stop:
            connection.request("POST", "/v1/jobs/list", body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                with lock:
                    failures.append(f"POST /v1/jobs/list: {response.status} {data[:200]!r}")
                break
            done += 1
        connection.close()
        with lock:
            reads[0] += done

    hello_requests = hello_seconds = lifecycle_seconds = 0.0
    round_ratios = []
    with server(url, args.threads, args.workers) as port:
        load(port, "GET", "/hello", {}, clients=args.nodes, seconds=0.5)  # warm up
        for _ in range(args.rounds):
            hello = load(port, "GET", "/hello", {}, clients=args.nodes, seconds=args.seconds / 2)
            done_before = len(latencies)
            stop = time.perf_counter() + args.seconds
            elapsed = run_threads([functools.partial(node_loop, port, node, stop) for node in nodes]
                                  + [functools.partial(reader_loop, port, stop)] * args.readers)
            hello_requests += hello["requests"]
            hello_seconds += hello["requests"] / hello["rate"]
            lifecycle_seconds += elapsed
            round_ratios.append((len(latencies) - done_before) / elapsed / hello["rate"])
    rate = len(latencies) / lifecycle_seconds
    hello_rate = hello_requests / hello_seconds
    spread = percentiles(latencies)
    p50, p99 = spread["p50_ms"], spread["p99_ms"]
    print(f"database: {engine.dialect.name}; {args.nodes} nodes, {args.rounds} rounds of {args.seconds:g} s; "
          f"server: {args.workers} worker(s) of {args.threads} threads")
    what = "progress reports" if args.progress_only else "lifecycle requests"
    if not args.progress_only:
        print(f"lifecycles: {lifecycles[0]} ({lifecycles[0] / lifecycle_seconds:.1f}/s), ", end="")
    print(f"{what}: {len(latencies)} ({rate:.0f}/s), p50 {p50:.2f} ms, p99 {p99:.2f} ms (p99/p50 {p99 / p50:.1f})")
    print(f"hello (bare Pyramid): {hello_rate:.0f} req/s; {what}/hello: {rate / hello_rate:.2f} "
          f"(rounds: {min(round_ratios):.2f}-{max(round_ratios):.2f})")
    if args.readers:
        print(f"readers: {args.readers}, {reads[0] / lifecycle_seconds:.0f} lists/s")
    # Where a lifecycle's time goes: each kind's mean, and its share of the summed latencies.
    total = sum(latencies)
    print("by request: " + ", ".join(f"{kind} {1000 * sum(times) / len(times):.2f} ms ({sum(times) / total:.0%})"
                                     for kind, times in by_kind.items()))
    if failures:
        print(f"FAILED requests ({len(failures)}): {failures[0]}")


if __name__ == "__main__":
    main()
