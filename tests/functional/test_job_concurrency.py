"""Concurrency with real threads over the real WSGI app and database (run on PostgreSQL in CI, and SQLite)."""
import threading
from collections import Counter

import webtest
from sqlalchemy import text

from job_helpers import ECHO


NODES = 16


def nodes_of(client, count):
    return [client.as_node(client.post("/v1/nodes/create", {"ip": f"10.1.0.{i}", "index": 0}, status=201)
                           .json["pk"]) for i in range(count)]


def run_threads(count, target):
    errors = []

    def guarded(index):
        try:
            target(index)
        except Exception as error:  # reported below: a thread's failure must fail the test
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]


def create_jobs(client, admin, count):
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json
    return [client.post(f"/v1/job-templates/{template['pk']}/create-job",
                        {"input_values": {"input": {"value": str(i), "type": "str"}}}, status=201).json["pk"]
            for i in range(count)]


def test_each_job_is_acquired_by_exactly_one_of_16_racing_nodes(wsgi_app, admin, alice):
    jobs = create_jobs(alice, admin, 50)
    nodes = nodes_of(alice, NODES)
    wins: Counter = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(NODES)

    def racer(index):
        app = webtest.TestApp(wsgi_app)
        node = nodes[index]
        for pk in jobs:
            barrier.wait()
            response = app.get(f"/v1/jobs/{pk}/acquire", headers=node.headers(), expect_errors=True)
            assert response.status_int in (200, 406), response.text
            if response.status_int == 200:
                with lock:
                    wins[pk] += 1
                    assert response.json["node"] == node.node_id

    run_threads(NODES, racer)
    assert wins == Counter({pk: 1 for pk in jobs})
    holders = {row["pk"]: row["node"] for row in alice.post("/v1/jobs/list").json}
    assert all(holders[pk] is not None for pk in jobs)


def test_16_nodes_drain_200_jobs_with_acquire_next(wsgi_app, admin, alice):
    jobs = create_jobs(alice, admin, 200)
    nodes = nodes_of(alice, NODES)
    completed: list[int] = []
    lock = threading.Lock()

    def drainer(index):
        app = webtest.TestApp(wsgi_app)
        headers = nodes[index].headers()
        while True:
            response = app.post_json("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}, headers=headers)
            if response.status_int == 204:
                return
            pk = response.json["pk"]
            app.post_json(f"/v1/jobs/{pk}/start", {}, headers=headers)
            app.post_json(f"/v1/jobs/{pk}/progress/0.5", {}, headers=headers)
            finished = app.post_json(f"/v1/jobs/{pk}/finish", {}, headers=headers).json
            assert finished["status"] == "COMPLETED"
            with lock:
                completed.append(pk)

    run_threads(NODES, drainer)
    assert sorted(completed) == sorted(jobs)
    assert {row["status"] for row in alice.post("/v1/jobs/list").json} == {"COMPLETED"}


def test_progress_racing_a_cancel_is_never_written_after_it(wsgi_app, engine, admin, alice):
    """Nodes report progress as fast as they can while the jobs' creator cancels them: once a job's cancel is
    committed no progress of it is written (on PostgreSQL the reports go through the express lane)."""
    jobs = create_jobs(alice, admin, 8)
    nodes = nodes_of(alice, 8)
    for pk, node in zip(jobs, nodes):
        node.get(f"/v1/jobs/{pk}/acquire", status=200)
        node.post(f"/v1/jobs/{pk}/start", {}, status=200)
    started = threading.Barrier(len(jobs) + 1)

    def reporter(index):
        app, node, pk = webtest.TestApp(wsgi_app), nodes[index], jobs[index]
        started.wait()
        for step in range(1, 200):
            response = app.post_json(f"/v1/jobs/{pk}/progress/{step / 200}", {"step": step},
                                     headers=node.headers(), expect_errors=True)
            assert response.status_int in (200, 406), response.text
            if response.status_int == 406:
                assert "CANCELED" in response.json["detail"]
                return

    def canceller(index):
        if index < len(jobs):
            reporter(index)
            return
        app = webtest.TestApp(wsgi_app)
        started.wait()
        for pk in jobs:
            app.delete(f"/v1/jobs/{pk}/cancel", headers=alice.headers(), status=200)

    run_threads(len(jobs) + 1, canceller)
    with engine.connect() as connection:
        for pk in jobs:
            events = connection.execute(text("SELECT transition, progress FROM job_events WHERE job_id = :job "
                                             "ORDER BY id"), {"job": pk}).all()
            transitions = [transition for transition, _ in events]
            assert transitions.count("cancel") == 1
            assert "progress" not in transitions[transitions.index("cancel"):]
            progress = connection.execute(text("SELECT progress FROM jobs WHERE id = :job"), {"job": pk}).scalar()
            written = [value for transition, value in events if transition == "progress"]
            assert progress == (written[-1] if written else 0.0)


def events_of(engine, pk) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT transition FROM job_events WHERE job_id = :job ORDER BY id"),
                                       {"job": pk}).scalars())


def race(wsgi_app, calls):
    """Each (client, method, path, body) at the same moment, from threads of their own; the statuses."""
    barrier = threading.Barrier(len(calls))
    statuses = [None] * len(calls)

    def call(index):
        client, method, path, body = calls[index]
        app = webtest.TestApp(wsgi_app)
        barrier.wait()
        kwargs = {"headers": client.headers(), "expect_errors": True}
        response = app.post_json(path, body, **kwargs) if method == "POST" else app.request(
            path, method=method, **kwargs)
        statuses[index] = response.status_int

    run_threads(len(calls), call)
    return statuses


def test_a_finish_racing_an_abort_or_a_cancel_is_decided_by_one_of_them(wsgi_app, engine, admin, alice):
    """Both actors lock the job as they read it: the second decides on the first's outcome (before, both were
    answered 2xx and a job could end COMPLETED after its abort, or CANCELED after its finish)."""
    jobs = create_jobs(alice, admin, 16)
    nodes = nodes_of(alice, 16)
    for pk, node in zip(jobs, nodes):
        node.get(f"/v1/jobs/{pk}/acquire", status=200)
        node.post(f"/v1/jobs/{pk}/start", {}, status=200)
    for index, (pk, node) in enumerate(zip(jobs, nodes)):
        other = "abort" if index % 2 else "cancel"
        race(wsgi_app, [(node, "POST", f"/v1/jobs/{pk}/finish", {}),
                        (admin, "DELETE", f"/v1/jobs/{pk}/{other}", None)])
        events = events_of(engine, pk)
        decided = [transition for transition in events if transition in ("finish", other)]
        assert len(decided) == 1, events  # the loser changed nothing
        status = admin.get(f"/v1/jobs/{pk}").json["status"]
        assert status == {"finish": "COMPLETED", "abort": "PENDING", "cancel": "CANCELED"}[decided[0]]
        assert admin.get(f"/v1/nodes/{node.node_id}").json["current_job"] is None


def test_a_reset_racing_an_abort_never_leaves_a_queued_job_without_its_node(wsgi_app, admin, alice):
    jobs = create_jobs(alice, admin, 8)
    nodes = nodes_of(alice, 8)
    for pk, node in zip(jobs, nodes):
        node.get(f"/v1/jobs/{pk}/acquire", status=200)
        node.post(f"/v1/jobs/{pk}/start", {}, status=200)
        node.post(f"/v1/jobs/{pk}/finish", {"error": "boom"}, status=200)
        race(wsgi_app, [(node, "DELETE", f"/v1/jobs/{pk}/reset", None),
                        (admin, "DELETE", f"/v1/jobs/{pk}/abort", None)])
        # Either order ends with the abort's outcome: back to PENDING, held by no node.
        state = admin.get(f"/v1/jobs/{pk}").json
        assert (state["status"], state["node"]) == ("PENDING", None)


def test_two_nodes_asking_for_the_next_job_at_once_get_one_each(wsgi_app, admin, alice):
    """Each locks one candidate and skips the other's (before, the first locked five: the second found none)."""
    nodes = nodes_of(alice, 2)
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json["pk"]
    for _ in range(8):
        jobs = [alice.post(f"/v1/job-templates/{template}/create-job",
                           {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
                for _ in range(2)]
        calls = [(node, "POST", "/v1/jobs/acquire-next", {"executors": executors})
                 for node, executors in zip(nodes, (["tests.Echo"], ["tests.Echo", "other.Kind"]))]
        assert race(wsgi_app, calls) == [200, 200]
        assert {admin.get(f"/v1/jobs/{pk}").json["node"] for pk in jobs} == {node.node_id for node in nodes}
        for pk in jobs:
            admin.delete(f"/v1/jobs/{pk}/cancel", status=200)  # the next round starts with none pending
