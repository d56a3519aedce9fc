"""The database going away and coming back (PostgreSQL): the server answers 503 while it cannot reach it, and
carries on without a restart once it can. A TCP proxy between the app and PostgreSQL plays the outage."""
import dataclasses
import logging
from datetime import timedelta

import pytest
import webtest

from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import make_test_app


@pytest.fixture
def through_proxy_once(engine, proxy):
    """As ``through_proxy``, with an app that makes one attempt per request (``retry.attempts = 1``)."""
    url = engine.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxied = get_engine({"sqlalchemy.url": url, "ufdl.db.pool_size": 2})
    app = webtest.TestApp(make_test_app(proxied, **{"retry.attempts": "1"}))
    yield lambda client: dataclasses.replace(client, app=app)
    proxied.dispose()


@pytest.fixture
def outage_log(caplog):
    caplog.set_level(logging.INFO, logger="ufdl_pyramid.views.errors")
    return lambda: [record.getMessage() for record in caplog.records if record.name == "ufdl_pyramid.views.errors"]


def silent_node_then_outage(job, worker, other_worker, engine, proxy, through_proxy):
    """The job runs on ``worker``, silent for an hour; ``other_worker`` polls through the proxy during an
    outage (503), which then ends. The poller's client, through the proxy."""
    from job_helpers import silence

    worker.get(f"/v1/jobs/{job['pk']}/acquire", status=200)
    worker.post(f"/v1/jobs/{job['pk']}/start", {}, status=200)
    silence(engine, worker.node_id, job["pk"])
    poller = through_proxy(other_worker)
    proxy.cut()
    poller.post("/v1/jobs/acquire-next", {"executors": []}, status=503)
    proxy.restore()
    return poller


def test_while_the_database_is_unreachable_requests_answer_503_and_work_again_once_it_is_back(
        bob, job, proxy, through_proxy):
    bob = through_proxy(bob)
    assert bob.get(f"/v1/jobs/{job['pk']}", status=200).json["status"] == "PENDING"

    proxy.cut()
    down = bob.get(f"/v1/jobs/{job['pk']}", status=503)
    assert down.json == {"detail": "The database is unavailable; try again shortly."}
    assert down.headers["Retry-After"] == "5"
    # Logging in, and an anonymous request, meet the same answer (never a 500).
    assert bob.app.post_json("/v1/auth/obtain", {"username": "bob", "password": "password123"},
                             status=503).json["detail"].startswith("The database is unavailable")

    proxy.restore()
    assert bob.get(f"/v1/jobs/{job['pk']}", status=200).json["pk"] == job["pk"]


def test_a_connection_the_database_dropped_is_replaced_without_the_client_seeing_it(
        bob, job, proxy, through_proxy, outage_log):
    bob = through_proxy(bob)
    bob.get(f"/v1/jobs/{job['pk']}", status=200)  # the pool now holds a connection
    proxy.sever()  # the database restarted: that connection is dead, new ones are welcome

    # Nothing had been committed on it: the request runs again on a fresh connection.
    assert bob.patch(f"/v1/jobs/{job['pk']}", {"description": "after the restart"},
                     status=200).json["description"] == "after the restart"
    assert any(message.startswith("retrying PATCH") and "connection" in message for message in outage_log())


def test_a_node_reporting_progress_while_the_database_is_unreachable_is_told_to_try_again(
        job, worker, proxy, through_proxy, caplog):
    node = through_proxy(worker)
    node.get(f"/v1/jobs/{job['pk']}/acquire", status=200)
    node.post(f"/v1/jobs/{job['pk']}/start", {}, status=200)
    node.post(f"/v1/jobs/{job['pk']}/progress/0.25", {}, status=200)  # the express lane's connection is pooled

    proxy.cut()
    assert node.post(f"/v1/jobs/{job['pk']}/progress/0.5", {}, status=503).headers["Retry-After"] == "5"
    proxy.restore()
    assert node.post(f"/v1/jobs/{job['pk']}/progress/0.75", {}, status=200).json["progress"] == 0.75
    proxy.sever()
    assert node.post(f"/v1/jobs/{job['pk']}/progress/1", {}, status=200).json["progress"] == 1.0
    # The express lane let its dead connection go: the pool did not meet it again (an error and a traceback).
    assert not [record for record in caplog.records if record.name.startswith("sqlalchemy.pool")
                and record.levelno >= logging.ERROR]


def test_leases_wait_a_full_timeout_after_the_database_comes_back(admin, job, worker, other_worker, engine, proxy,
                                                                   through_proxy):
    """No node could reach the server while its database was away: the first request after the outage marks
    the return, and no lease expires until the timeout has passed since. Before, the first poll took the job of
    every node that had not called again yet."""
    from job_helpers import server_came_back

    poller = silent_node_then_outage(job, worker, other_worker, engine, proxy, through_proxy)
    poller.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    state = admin.get(f"/v1/jobs/{job['pk']}").json
    assert (state["status"], state["node"]) == ("RUNNING", worker.node_id)

    server_came_back(engine, ago=timedelta(seconds=125))
    poller.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    assert admin.get(f"/v1/jobs/{job['pk']}").json["status"] == "PENDING"


def test_a_connection_lost_at_the_commit_is_answered_503_not_run_again(bob, job, proxy, through_proxy, outage_log):
    """Whether that COMMIT was carried out cannot be known: running the request again could do it twice
    (another job created, say). The client is told to try again, and decides."""
    bob = through_proxy(bob)
    bob.get(f"/v1/jobs/{job['pk']}", status=200)
    proxy.sever_at(b"COMMIT")  # here it never reaches the database: nothing changed
    assert bob.patch(f"/v1/jobs/{job['pk']}", {"description": "lost"}, status=503).headers["Retry-After"] == "5"
    assert not any(message.startswith("retrying") for message in outage_log())
    assert bob.get(f"/v1/jobs/{job['pk']}", status=200).json["description"] == job["description"]


def test_a_process_lease_check_waits_out_an_outage_and_marks_the_return(engine, proxy, caplog):
    """One warning for the whole outage (not one per check), then the return is marked on the lease clock,
    as a request that met the outage would have marked it."""
    import time

    from sqlalchemy import select

    from ufdl_pyramid.models import LeaseClock

    url = engine.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxied = get_engine({"sqlalchemy.url": url, "ufdl.db.pool_size": 2})
    app = make_test_app(proxied, **{"ufdl.leases.check_interval": "0.1"})
    caplog.set_level(logging.INFO, logger="ufdl_pyramid.services.lease_watch")

    def marked():
        with engine.connect() as connection:
            return connection.scalar(select(LeaseClock.resumed_at))
    try:
        webtest.TestApp(app).get("/v1/health", status=200)  # starts the process's checks
        proxy.cut()
        time.sleep(1)  # several checks fail meanwhile
        assert marked() is None
        proxy.restore()
        deadline = time.monotonic() + 30
        while marked() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        app.registry["ufdl.lease_watch"].stop()
        proxied.dispose()
    assert marked() is not None
    warnings = [record.getMessage() for record in caplog.records if record.name.endswith("lease_watch")]
    assert len(warnings) == 1 and warnings[0].startswith("the lease check cannot reach the database"), warnings


def test_a_database_refusing_connections_is_answered_503_without_running_the_request_again(
        bob, job, proxy, through_proxy, outage_log):
    """Running a request again is for a pooled connection found dead: a database that refused a new one
    would refuse the next too."""
    bob = through_proxy(bob)
    proxy.cut()
    bob.get(f"/v1/jobs/{job['pk']}", status=503)  # the pool's dead connection: run again, and refused
    seen = len(outage_log())
    bob.get(f"/v1/jobs/{job['pk']}", status=503)  # refused at once
    assert [message.split(" on ")[0] for message in outage_log()[seen:]] == ["database unavailable"]


def test_a_connection_lost_on_the_last_attempt_is_not_said_to_be_retried(bob, job, proxy, through_proxy_once,
                                                                           outage_log):
    bob = through_proxy_once(bob)
    bob.get(f"/v1/jobs/{job['pk']}", status=200)
    proxy.sever()
    assert bob.patch(f"/v1/jobs/{job['pk']}", {"description": "lost"}, status=503).headers["Retry-After"] == "5"
    assert [message.split(" on ")[0] for message in outage_log()] == ["database unavailable"]


def test_each_return_from_an_outage_holds_leases_back(admin, job, worker, other_worker, engine, proxy,
                                                      through_proxy):
    """Not the first outage only: each return moves the lease clock's mark on."""
    from job_helpers import server_came_back

    poller = silent_node_then_outage(job, worker, other_worker, engine, proxy, through_proxy)
    poller.post("/v1/jobs/acquire-next", {"executors": []}, status=204)  # the first return, marked
    server_came_back(engine, ago=timedelta(seconds=125))  # and long ago

    proxy.cut()
    poller.post("/v1/jobs/acquire-next", {"executors": []}, status=503)
    proxy.restore()
    poller.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    state = admin.get(f"/v1/jobs/{job['pk']}").json
    assert (state["status"], state["node"]) == ("RUNNING", worker.node_id)


def test_the_express_lane_logs_an_unreachable_database_in_one_line(job, worker, proxy, through_proxy, caplog):
    """A traceback is for a failure to look into; the database being away is said in one line."""
    caplog.set_level(logging.WARNING, logger="ufdl_pyramid.express_lanes_config")
    node = through_proxy(worker)
    node.get(f"/v1/jobs/{job['pk']}/acquire", status=200)
    node.post(f"/v1/jobs/{job['pk']}/start", {}, status=200)
    node.post(f"/v1/jobs/{job['pk']}/progress/0.25", {}, status=200)
    proxy.cut()
    node.post(f"/v1/jobs/{job['pk']}/progress/0.5", {}, status=503)
    [record] = [record for record in caplog.records if record.name == "ufdl_pyramid.express_lanes_config"]
    assert record.getMessage().startswith("express lane for progress failed; the full stack answers instead: ")
    assert not record.exc_info
