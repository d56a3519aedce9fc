"""GET /v1/job-types/{pk} against a bare Pyramid hello view, on the same waitress server in the same run.

    python bench/job_type_vs_hello.py [--clients 8] [--seconds 5]
Set UFDL_BENCH_DATABASE_URL to measure on PostgreSQL (default: a temporary SQLite file).
"""
import argparse

from common import database_url, load, prepare, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()

    url = database_url()
    engine, admin = prepare(url)
    # The plugins' types are synced into the table at start-up: measure the row of `str`.
    pk = next(row["pk"] for row in admin.post("/v1/job-types/list").json if row["name"] == "str")
    headers = {"Authorization": f"Bearer {admin.token}", "Accept": "*/*"}
    print(f"database: {engine.dialect.name}; {args.clients} keep-alive clients, {args.seconds:g} s per endpoint")
    with server(url) as port:
        load(port, "GET", "/hello", {}, clients=args.clients, seconds=0.5)  # warm up both apps
        load(port, "GET", f"/v1/job-types/{pk}", headers, clients=args.clients, seconds=0.5)
        hello = load(port, "GET", "/hello", {}, clients=args.clients, seconds=args.seconds)
        ours = load(port, "GET", f"/v1/job-types/{pk}", headers, clients=args.clients, seconds=args.seconds)
    for name, result in (("hello (bare Pyramid)", hello), (f"GET /v1/job-types/{pk}", ours)):
        print(f"{name:24} {result['rate']:8.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
              f"p99 {result['p99_ms']:6.2f} ms  errors {result['errors']}")
    print(f"ratio job-type/hello: {ours['rate'] / hello['rate']:.2f}")


if __name__ == "__main__":
    main()
