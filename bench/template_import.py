"""Import rate: 1,000 distinct workable templates through POST /v1/job-templates/import on waitress.

    python bench/template_import.py [--count 1000] [--clients 4]
Set UFDL_BENCH_DATABASE_URL to measure on PostgreSQL (default: a temporary SQLite file).
"""
import argparse
import functools
import http.client
import json
import threading

from common import database_url, prepare, run_threads, server


def document(index: int) -> dict:
    return {"name": f"bench-template-{index}", "version": 1, "description": f"Template number {index}",
            "scope": "public", "domain": "ic", "licence": "MIT",
            "specific": {"job_type": "Train<Domain<'ic'>, Framework<'numpy', '1.26'>>",
                         "executor_class": "bench.Executor", "required_packages": "",
                         "parameters": {"epochs": {"types": ["int"], "help": "Epochs", "default": index},
                                        "tag": {"types": ["str"], "help": "A tag"}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    url = database_url()
    engine, admin = prepare(url)
    headers = {"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json", "Accept": "*/*"}
    statuses: list[int] = []
    lock = threading.Lock()

    def client(indexes):
        connection = http.client.HTTPConnection("127.0.0.1", port)
        for index in indexes:
            connection.request("POST", "/v1/job-templates/import", body=json.dumps(document(index)),
                               headers=headers)
            response = connection.getresponse()
            response.read()
            with lock:
                statuses.append(response.status)
        connection.close()

    with server(url) as port:
        elapsed = run_threads([functools.partial(client, range(i, args.count, args.clients))
                               for i in range(args.clients)])
    created = statuses.count(201)
    print(f"database: {engine.dialect.name}; {args.count} templates, {args.clients} clients")
    print(f"imported {created}/{args.count} (other statuses: {sorted(set(statuses) - {201})}) "
          f"in {elapsed:.2f} s: {created / elapsed:.0f} templates/s")


if __name__ == "__main__":
    main()
