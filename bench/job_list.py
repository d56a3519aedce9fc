"""A long job list: ``POST /v1/jobs/list`` over N jobs, unpaged (as the UFDL clients ask) and paged.

    python bench/job_list.py [--jobs 50000]
Set UFDL_BENCH_DATABASE_URL to measure on PostgreSQL (default: a temporary SQLite file).

In process, through the real WSGI app (no HTTP): the seconds each list takes, and the process's resident memory
(RSS) before and at its highest during the unpaged one, whose answer is read chunk by chunk as a WSGI server
reads it.
"""
import argparse
import resource
import threading
import time
from contextlib import contextmanager

import webtest
from sqlalchemy import insert, select, text
from webob import Request

from common import database_url, prepare
from ufdl_pyramid.models import Job
from ufdl_pyramid.testing import make_test_app

TEMPLATE = {"name": "bench-echo", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"job_type": "Process<str, BLOB>", "executor_class": "bench.Echo",
                         "required_packages": "", "parameters": {}}}


def rss_mib() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


@contextmanager
def highest_rss(samples: list[float], every: float = 0.01):
    """Samples the resident memory while the block runs (the process's own peak, ru_maxrss, may be older)."""
    done = threading.Event()

    def sample():
        while not done.wait(every):
            samples.append(rss_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()


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
        for first in range(1, args.jobs, 1000):
            connection.execute(insert(Job.__table__), [row] * min(1000, args.jobs - first))
    if engine.dialect.name == "postgresql":  # the planner's statistics, as autovacuum would soon gather them
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    wsgi_app = make_test_app(engine)
    app = webtest.TestApp(wsgi_app)
    headers = {"Authorization": f"Bearer {admin.token}"}

    def timed(body) -> float:
        began = time.perf_counter()
        app.post_json("/v1/jobs/list", body, headers=headers)
        return time.perf_counter() - began

    def unpaged() -> tuple[int, int]:
        """The unpaged list's total and length in bytes, its answer read as a WSGI server reads it (chunk by
        chunk, none kept): the memory it adds is the server's own, not a client's copy of the answer."""
        request = Request.blank("/v1/jobs/list", method="POST", headers=headers)
        status, response_headers, chunks = request.call_application(wsgi_app)
        assert status.startswith("200"), status
        size = sum(len(chunk) for chunk in chunks)
        getattr(chunks, "close", lambda: None)()
        return int(dict(response_headers)["X-Total-Count"]), size

    timed({"page": 1, "page_size": 10})  # warm up
    rss_before, samples = rss_mib(), []
    with highest_rss(samples):
        began = time.perf_counter()
        total, size = unpaged()
        seconds = time.perf_counter() - began
    print(f"database: {engine.dialect.name}; {total} jobs")
    print(f"unpaged: {seconds:.2f} s ({size / 1e6:.1f} MB, {1e6 * seconds / total:.0f} us per job); "
          f"RSS {rss_before:.0f} MiB before, at most {max(samples, default=rss_before):.0f} MiB during")
    last = (args.jobs + 99) // 100
    for page in (1, last):
        seconds = timed({"page": page, "page_size": 100})
        print(f"page {page} of {last} (100 jobs): {1000 * seconds:.1f} ms")


if __name__ == "__main__":
    main()
