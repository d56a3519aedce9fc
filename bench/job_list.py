"""A long job list: ``POST /v1/jobs/list`` over N jobs, unpaged (as the UFDL clients ask) and paged.

    python bench/job_list.py [--jobs 50000]
Set UFDL_BENCH_DATABASE_URL to measure on PostgreSQL (default: a temporary SQLite file).

In process, through the real WSGI app (no HTTP): the seconds each list takes, and how far the process's peak
memory (RSS) grew during the unpaged one.
"""
import argparse
import resource
import time

import webtest
from sqlalchemy import insert, select

from common import database_url, prepare
from ufdl_pyramid.models import Job
from ufdl_pyramid.testing import make_test_app

TEMPLATE = {"name": "bench-echo", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"job_type": "Process<str, BLOB>", "executor_class": "bench.Echo",
                         "required_packages": "", "parameters": {}}}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50000)
    args = parser.parse_args()
    engine, admin = prepare(database_url())
    template = admin.post("/v1/job-templates/import", TEMPLATE).json["pk"]
    admin.post(f"/v1/job-templates/{template}/create-job",
               {"input_values": {"input": {"value": "hello", "type": "str"}}})
    # The other jobs are copies of that one, inserted in bulk: creating 50,000 through the API takes minutes.
    with engine.begin() as connection:
        row = dict(connection.execute(select(Job.__table__)).mappings().one())
        del row["id"]
        connection.execute(insert(Job.__table__), [row] * (args.jobs - 1))
    app = webtest.TestApp(make_test_app(engine))
    headers = {"Authorization": f"Bearer {admin.token}"}

    def timed(body=None):
        began = time.perf_counter()
        response = app.post_json("/v1/jobs/list", body, headers=headers) if body else \
            app.post("/v1/jobs/list", headers=headers)
        return response, time.perf_counter() - began

    app.post_json("/v1/jobs/list", {"page": 1, "page_size": 10}, headers=headers)  # warm up
    rss_before = peak_rss_mib()
    response, seconds = timed()
    print(f"database: {engine.dialect.name}; {len(response.json)} jobs")
    print(f"unpaged: {seconds:.2f} s ({len(response.body) / 1e6:.1f} MB, "
          f"{1e6 * seconds / len(response.json):.0f} us per job); peak RSS {rss_before:.0f} -> "
          f"{peak_rss_mib():.0f} MiB")
    last = (args.jobs + 99) // 100
    for page in (1, last):
        response, seconds = timed({"page": page, "page_size": 100})
        print(f"page {page} of {last} (100 jobs): {1000 * seconds:.1f} ms")


if __name__ == "__main__":
    main()
