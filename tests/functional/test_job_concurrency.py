"""Concurrency with real threads over the real WSGI app and database (run on PostgreSQL in CI, and SQLite)."""
import dataclasses
import logging
import os
import threading
import time
from collections import Counter

import psycopg.errors
import pytest
import webtest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ufdl_pyramid.services import job_lifecycle
from ufdl_pyramid.testing import make_test_app

from job_helpers import CONSUME, ECHO, PIPELINE, PRODUCE


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


def send(wsgi_app, client, method, path, body=None, before=None):
    """``client``'s request on an app of its own (one per thread; ``before`` is called once it is made): a POST's
    body as JSON (``null`` for None), another method's as JSON if any; any status is answered."""
    app = webtest.TestApp(wsgi_app)
    if before is not None:
        before()
    kwargs = {"headers": client.headers(), "expect_errors": True}
    if body is None and method != "POST":
        return app.request(path, method=method, **kwargs)
    return getattr(app, f"{method.lower()}_json")(path, body, **kwargs)


def race(wsgi_app, calls):
    """Each (client, method, path, body) at the same moment, from threads of their own; the statuses."""
    barrier = threading.Barrier(len(calls))
    statuses = [None] * len(calls)

    def call(index):
        statuses[index] = send(wsgi_app, *calls[index], before=barrier.wait).status_int

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


def test_a_step_racing_its_meta_jobs_cancel_or_deletion_never_deadlocks(wsgi_app, engine, retried, admin, alice,
                                                                         bob):
    """Both lock a meta-job before its steps (PostgreSQL reported deadlocks when the step's calls took the
    step first and the meta-job's cancel and deletion the meta-job first)."""
    for template in (PRODUCE, CONSUME, PIPELINE):
        admin.post("/v1/job-templates/import", template, status=201)
    pipeline = next(t for t in admin.post("/v1/job-templates/list", {}).json if t["name"] == PIPELINE["name"])
    node = nodes_of(alice, 1)[0]
    step_calls = [("POST", "progress/0.5", {}), ("POST", "finish", {"error": "boom"}), ("POST", "finish", {})]
    meta_calls = [("DELETE", "cancel"), ("DELETE", "")]
    for round_ in range(24):
        parent = bob.post(f"/v1/job-templates/{pipeline['pk']}/create-job",
                          {"input_values": {"first:input": {"value": "words", "type": "str"}}}, status=201).json
        step = node.post("/v1/jobs/acquire-next", {"executors": ["tests.Produce"]}, status=200).json["pk"]
        node.post(f"/v1/jobs/{step}/start", {}, status=200)
        method, action, body = step_calls[round_ % len(step_calls)]
        meta_method, meta_action = meta_calls[round_ % len(meta_calls)]
        statuses = race(wsgi_app, [(node, method, f"/v1/jobs/{step}/{action}", body),
                                   (admin, meta_method, f"/v1/jobs/{parent['pk']}/{meta_action}".rstrip("/"), None)])
        # A step's call after the deletion finds it aborted (403, its node no longer holds it), after the
        # cancel finds it CANCELED (406), or frees the node only (a finish: 200).
        assert statuses[1] == 200 and statuses[0] in (200, 403, 406), (action, meta_action, statuses)
        state = admin.get(f"/v1/jobs/{step}").json
        if meta_action == "cancel":
            assert admin.get(f"/v1/jobs/{parent['pk']}").json["status"] == "CANCELED"
            # A step that finished first stays COMPLETED; any other is canceled with its meta-job.
            assert state["status"] == ("COMPLETED" if "finish" in events_of(engine, step) else "CANCELED")
        else:
            assert state["deletion_time"] and state["status"] in ("PENDING", "COMPLETED", "FAILED"), state
        node.post(f"/v1/jobs/{step}/finish", {}, status="*")  # frees the node whatever the outcome
    assert not retried()


def test_a_lost_lease_whose_meta_job_is_locked_is_left_for_the_next_check(on_postgresql, engine, admin, alice, bob):
    """Lease expiry locks a step's meta-job before the step, skipping what another request holds: it neither
    waits nor takes the step first (holding it while waiting for the meta-job could deadlock with a cancel)."""
    for template in (PRODUCE, CONSUME, PIPELINE):
        admin.post("/v1/job-templates/import", template, status=201)
    pipeline = next(t for t in admin.post("/v1/job-templates/list", {}).json if t["name"] == PIPELINE["name"])
    parent = bob.post(f"/v1/job-templates/{pipeline['pk']}/create-job",
                      {"input_values": {"first:input": {"value": "words", "type": "str"}}}, status=201).json
    lost, poller = nodes_of(alice, 2)
    step = lost.post("/v1/jobs/acquire-next", {"executors": ["tests.Produce"]}, status=200).json["pk"]
    lost.post(f"/v1/jobs/{step}/start", {}, status=200)
    with engine.begin() as connection:
        connection.execute(text("UPDATE nodes SET last_seen = now() - interval '1 hour' WHERE id = :node"),
                           {"node": lost.node_id})
        connection.execute(text("UPDATE jobs SET last_status_change = now() - interval '1 hour' WHERE id = :job"),
                           {"job": step})
    answers = []
    with engine.connect() as other:  # another request, holding the meta-job
        other.execute(text("SELECT id FROM jobs WHERE id = :job FOR UPDATE"), {"job": parent["pk"]})
        polling = threading.Thread(target=lambda: answers.append(poller.post(
            "/v1/jobs/acquire-next", {"executors": []}, status="*").status_int))
        polling.start()
        polling.join(60)  # it would wait for the lock until this block ends: a failure, not a timing
        assert answers == [204]
        other.rollback()
    assert admin.get(f"/v1/jobs/{step}").json["status"] == "RUNNING"
    poller.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    state = admin.get(f"/v1/jobs/{step}").json
    assert (state["status"], state["node"]) == ("PENDING", None)


def deadlocking(monkeypatch, times: int):
    """Cancels that meet a deadlock (as PostgreSQL reports one) on their first ``times`` tries."""
    tries = []
    cancel = job_lifecycle.JobLifecycle.cancel

    def deadlocked(self, job, user):
        tries.append(job.id)
        if len(tries) <= times:
            raise OperationalError("UPDATE jobs ...", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
        return cancel(self, job, user)

    monkeypatch.setattr(job_lifecycle.JobLifecycle, "cancel", deadlocked)
    return tries


def test_a_deadlocked_request_runs_again_without_an_error_logged(monkeypatch, caplog, retried, admin, alice):
    job = create_jobs(alice, admin, 1)[0]
    tries = deadlocking(monkeypatch, times=1)
    assert alice.delete(f"/v1/jobs/{job}/cancel", status=200).json["status"] == "CANCELED"
    assert tries == [job, job] and len(retried()) == 1
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_request_deadlocked_on_every_try_is_answered_409(monkeypatch, caplog, admin, alice):
    job = create_jobs(alice, admin, 1)[0]
    tries = deadlocking(monkeypatch, times=99)
    answer = alice.delete(f"/v1/jobs/{job}/cancel", status=409).json
    assert answer == {"detail": "Another request changed the same data at the same moment; try again."}
    assert len(tries) == 3  # retry.attempts
    assert [record.levelname for record in caplog.records if record.levelno >= logging.WARNING] == ["WARNING"]
    assert admin.get(f"/v1/jobs/{job}").json["status"] == "PENDING"


def test_a_running_jobs_hard_deletion_racing_its_node_never_deadlocks(wsgi_app, retried, admin, alice):
    """A node's request marks its node seen, then reaches the job; the job's deletion for good must clear
    the node's current job (a foreign key): it too locks the node before the job."""
    jobs = create_jobs(alice, admin, 24)
    node = nodes_of(alice, 1)[0]
    calls = [("POST", "progress/0.5", {}), ("POST", "outputs/out/BLOB", None), ("POST", "finish", {})]
    for index, pk in enumerate(jobs):
        node.get(f"/v1/jobs/{pk}/acquire", status=200)
        node.post(f"/v1/jobs/{pk}/start", {}, status=200)
        method, action, body = calls[index % len(calls)]
        statuses = race(wsgi_app, [(node, method, f"/v1/jobs/{pk}/{action}", body),
                                   (admin, "DELETE", f"/v1/jobs/{pk}/hard", None)])
        # The node's call came first (200, 201), or found the job gone (404).
        assert statuses[1] == 200 and statuses[0] in (200, 201, 404), statuses
        admin.get(f"/v1/jobs/{pk}", status=404)
        assert admin.get(f"/v1/nodes/{node.node_id}").json["current_job"] is None
    assert not retried()


def test_a_nodes_deletion_racing_its_acquire_never_leaves_a_job_held_by_no_node(wsgi_app, admin, alice):
    """The deletion refuses a node that holds a job; it locks the node before it checks, so an acquire that
    got in first is seen (else the foreign key would clear the job's node, leaving it QUEUED with none)."""
    jobs = create_jobs(alice, admin, 16)
    node = nodes_of(alice, 1)[0]
    for index, pk in enumerate(jobs):
        statuses = race(wsgi_app, [(node, "GET", f"/v1/jobs/{pk}/acquire", None),
                                   (alice, "DELETE", f"/v1/nodes/{node.node_id}", None)])
        state = admin.get(f"/v1/jobs/{pk}").json
        if statuses == [200, 409]:  # the acquire first: the node stays, holding the job
            assert (state["status"], state["node"]) == ("QUEUED", node.node_id)
            node.delete(f"/v1/jobs/{pk}/release", status=200)
        else:  # the deletion first: the node's request is refused
            assert statuses == [403, 200] and (state["status"], state["node"]) == ("PENDING", None), statuses
            node = alice.as_node(alice.post("/v1/nodes/create", {"ip": "10.1.1.1", "index": index},
                                            status=201).json["pk"])


def test_an_upload_racing_an_abort_leaves_no_output_on_the_pending_job(wsgi_app, admin, alice):
    """The abort clears the job's outputs; an upload that decided before it must not add one after it (the
    next node's run would find it, and its own upload of that name be refused)."""
    jobs = create_jobs(alice, admin, 24)
    node = nodes_of(alice, 1)[0]
    for pk in jobs:
        node.get(f"/v1/jobs/{pk}/acquire", status=200)
        node.post(f"/v1/jobs/{pk}/start", {}, status=200)
        statuses = race(wsgi_app, [(node, "POST", f"/v1/jobs/{pk}/outputs/out/BLOB", None),
                                   (admin, "DELETE", f"/v1/jobs/{pk}/abort", None)])
        state = admin.get(f"/v1/jobs/{pk}").json
        assert statuses[1] == 200 and state["status"] == "PENDING"
        assert statuses[0] in (201, 403) and state["outputs"] == [], statuses
        node.post(f"/v1/jobs/{pk}/finish", {}, status=200)  # frees the node (it still had the job as current)


@pytest.mark.parametrize("path", ["full stack", "express lane"])
def test_an_abort_waiting_for_an_uploads_lock_clears_the_output_it_commits(on_postgresql, monkeypatch, engine,
                                                                           admin, alice, path):
    """The abort reads the job locked: waiting for the upload's lock, its read (and the outputs loaded with
    it) dated from before the upload's commit, and the new output stayed active on the PENDING job."""
    from ufdl_pyramid.services import outputs

    wsgi_app = make_test_app(engine, **{"ufdl.express_lanes": str(path == "express lane").lower()})
    pk = create_jobs(alice, admin, 1)[0]
    node = nodes_of(alice, 1)[0]
    node.get(f"/v1/jobs/{pk}/acquire", status=200)
    node.post(f"/v1/jobs/{pk}/start", {}, status=200)
    holding, go = threading.Event(), threading.Event()
    # The upload holds the job's lock from there to its commit: the full stack's as it takes the blob's key,
    # the lane's as it publishes the bytes under it.
    owner, name = ((outputs, "lock_blob_keys") if path == "full stack"
                   else (wsgi_app.registry["ufdl.storage"], "publish"))
    real = getattr(owner, name)

    def held(*args):
        holding.set()
        assert go.wait(60)
        return real(*args)

    monkeypatch.setattr(owner, name, held)
    statuses = {}

    def call(name, client, method, path):
        response = webtest.TestApp(wsgi_app).request(path, method=method, headers=client.headers(),
                                                     body=b"bytes", expect_errors=True)
        statuses[name] = response.status_int

    upload = threading.Thread(target=call, args=("upload", node, "POST", f"/v1/jobs/{pk}/outputs/out/BLOB"))
    upload.start()
    assert holding.wait(60)
    abort = threading.Thread(target=call, args=("abort", admin, "DELETE", f"/v1/jobs/{pk}/abort"))
    abort.start()
    try:
        with engine.connect() as watcher:  # until the abort waits for the job's lock
            waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            for _ in range(600):
                if watcher.execute(waiting).scalar():
                    break
                watcher.rollback()
                time.sleep(0.05)
            else:
                raise AssertionError("the abort never waited for the upload's lock")
    finally:
        go.set()
    upload.join(60)
    abort.join(60)
    assert statuses == {"upload": 201, "abort": 200}
    state = admin.get(f"/v1/jobs/{pk}").json
    assert state["status"] == "PENDING" and state["outputs"] == []


def test_a_job_created_while_its_template_is_deleted_for_good_is_refused_cleanly(wsgi_app, admin, bob):
    """Either the job came first (the deletion is refused: the template is in use) or the deletion did (the
    job's template is gone: 404, where the job's insert used to fail its foreign key with a 500)."""
    for version in range(1, 25):
        pk = admin.post("/v1/job-templates/import", {**ECHO, "version": version}, status=201).json["pk"]
        statuses = race(wsgi_app, [(bob, "POST", f"/v1/job-templates/{pk}/create-job",
                                    {"input_values": {"input": {"value": "x", "type": "str"}}}),
                                   (admin, "DELETE", f"/v1/job-templates/{pk}/hard", None)])
        assert tuple(statuses) in ((201, 409), (404, 200)), statuses


def test_a_graph_imported_while_its_child_is_deleted_for_good_is_refused_cleanly(on_postgresql, monkeypatch,
                                                                                   wsgi_app, engine, admin):
    """The import found the child, then the child's deletion (which found it in no graph yet) committed: the
    import's row naming the child failed its foreign key, a 500. The import now holds the child it found until it
    commits: the deletion waits, then finds the child in the graph (409)."""
    from ufdl_pyramid.services.templates import TemplateService

    for template in (PRODUCE, CONSUME):
        admin.post("/v1/job-templates/import", template, status=201)
    consume = next(row["pk"] for row in admin.post("/v1/job-templates/list").json if row["name"] == "consume")
    found, go = threading.Event(), threading.Event()
    measure = TemplateService._measure

    def held(self, children):  # the graph's children were found; nothing of the import is written yet
        found.set()
        assert go.wait(60)
        return measure(self, children)

    monkeypatch.setattr(TemplateService, "_measure", held)
    statuses = {}

    def call(name, *request):
        statuses[name] = send(wsgi_app, admin, *request).status_int

    held_then(engine, lambda: call("import", "POST", "/v1/job-templates/import", PIPELINE), found, go,
              lambda: call("delete", "DELETE", f"/v1/job-templates/{consume}/hard"))
    assert statuses == {"import": 201, "delete": 409}


@pytest.mark.parametrize("change", [("DELETE", None), ("PATCH", {"name": "Any", "pkg": "ufdl_pyramid.types",
                                                                  "cls": "AnyType"})], ids=["deleted", "renamed"])
def test_a_template_imported_while_a_job_type_it_names_is_deleted_or_renamed_is_refused_cleanly(
        on_postgresql, monkeypatch, wsgi_app, engine, admin, change):
    """The deletion (or rename) of BLOB found no template naming it and holds its row. The import of a template
    naming it then read the row: once the deletion committed, its reference to it failed the foreign key (a
    500); after the rename, the template named a type that no longer existed. The import now waits for the row,
    finds BLOB gone and runs again: BLOB is an unknown type (400)."""
    from ufdl_pyramid.services.job_types import JobTypeService

    blob = admin.post("/v1/job-types/list", {"expressions": [{"type": "exact", "field": "name", "value": "BLOB"}]}
                      ).json[0]["pk"]
    statuses = change_held_after_its_check(monkeypatch, JobTypeService, "check_unreferenced", wsgi_app, engine,
                                           admin, (*change, f"/v1/job-types/{blob}"), PRODUCE)
    assert statuses["change"] == (200, None)
    assert statuses["import"][0] == 400 and "unknown type 'BLOB'" in statuses["import"][1]
    assert admin.post("/v1/job-templates/list", {"include_inactive": True}).json == []


@pytest.mark.parametrize("change", [("DELETE", None), ("PATCH", {"name": "MIT-2"})], ids=["deleted", "renamed"])
def test_a_template_imported_while_its_licence_is_deleted_or_renamed_is_refused_cleanly(
        on_postgresql, monkeypatch, wsgi_app, engine, admin, change):
    """The licence's rename (or deletion) found no template naming it and holds its row. An import naming it
    waits for the row, then finds no licence of that name (400): it no longer makes a template whose licence
    is then another name (or deleted)."""
    from ufdl_pyramid.services.catalogue import NamedByTemplates

    mit = admin.post("/v1/licences/list", {"expressions": [{"type": "exact", "field": "name", "value": "MIT"}]}
                     ).json[0]["pk"]
    statuses = change_held_after_its_check(monkeypatch, NamedByTemplates, "_refuse_if_named", wsgi_app, engine,
                                           admin, (*change, f"/v1/licences/{mit}"), ECHO)
    assert statuses == {"change": (200, None), "import": (400, "licence: unknown licence 'MIT'")}
    assert admin.post("/v1/job-templates/list", {"include_inactive": True}).json == []


def test_of_two_deletions_for_good_at_once_the_second_finds_nothing(wsgi_app, admin, alice):
    """The row is locked before it is deleted: the second deletion waits, then answers 404 (both answered 200
    before, the second having deleted nothing)."""
    for version in range(1, 9):
        template = admin.post("/v1/job-templates/import", {**ECHO, "version": version}, status=201).json["pk"]
        job = alice.post(f"/v1/job-templates/{template}/create-job",
                         {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
        for path in (f"/v1/jobs/{job}/hard", f"/v1/job-templates/{template}/hard"):
            assert sorted(race(wsgi_app, [(admin, "DELETE", path, None)] * 2)) == [200, 404], path


def change_held_after_its_check(monkeypatch, service, check_name: str, wsgi_app, engine, admin, change: tuple,
                                document: dict) -> dict:
    """``change`` (method, body, path) held once ``service.check_name`` has locked the row and found it unused,
    and not changed it yet, while a template ``document`` is imported; both answers, (status, detail) by name."""
    checked, go = threading.Event(), threading.Event()
    check = getattr(service, check_name)

    def held(self, row, *args, **kwargs):
        check(self, row, *args, **kwargs)
        checked.set()
        assert go.wait(60)

    monkeypatch.setattr(service, check_name, held)
    statuses = {}

    def call(name, *request):
        response = send(wsgi_app, admin, *request)
        statuses[name] = response.status_int, response.json["detail"] if response.status_int >= 400 else None

    method, body, path = change
    held_then(engine, lambda: call("change", method, path, body), checked, go,
              lambda: call("import", "POST", "/v1/job-templates/import", document))
    return statuses


def held_then(engine, first, held: threading.Event, go: threading.Event, second) -> None:
    """Runs ``first`` in a thread until it is ``held`` (its code, patched, sets the event then waits for ``go``),
    then ``second`` in another until that ends or waits for a lock; lets ``first`` go and waits for both."""
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert held.wait(60)
    threads[1].start()
    try:
        wait_until_done_or_blocked(engine, threads[1])
    finally:
        go.set()
    for thread in threads:
        thread.join(60)


def wait_until_done_or_blocked(engine, thread: threading.Thread) -> None:
    """Until ``thread`` has ended or one of our database sessions waits for a lock (PostgreSQL)."""
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock'")
    with engine.connect() as watcher:
        for _ in range(1200):
            thread.join(0.05)
            if not thread.is_alive() or watcher.execute(waiting).scalar():
                return
            watcher.rollback()
    raise AssertionError("the thread neither ended nor waited for a lock")


def test_a_step_acquired_while_its_meta_job_is_cancelled_or_deleted_is_not_left_held(on_postgresql, monkeypatch,
                                                                                     wsgi_app, engine, admin,
                                                                                     alice, bob):
    """The cancel and the deletion of a meta-job lock its steps as they read them: acquire-next (which locks
    the one step it takes, not the meta-job) skips them meanwhile. Before, it took a step they had read as
    PENDING, and they wrote it over: CANCELED with the event naming no node while the row kept the node,
    or deleted yet QUEUED on that node, never aborted."""
    from ufdl_pyramid.resources.jobs import JobRecords

    for template in (PRODUCE, CONSUME, PIPELINE):
        admin.post("/v1/job-templates/import", template, status=201)
    pipeline = next(t for t in admin.post("/v1/job-templates/list", {}).json if t["name"] == PIPELINE["name"])
    node = nodes_of(alice, 1)[0]
    record_event, flush = job_lifecycle.record_event, JobRecords._flush
    paused, go = threading.Event(), threading.Event()

    def pause():
        if not paused.is_set():
            paused.set()
            assert go.wait(60)

    def pausing_event(db, job, transition, **kwargs):  # the cancel, its steps read, before it writes them
        if transition == "cancel":
            pause()
        return record_event(db, job, transition, **kwargs)

    def pausing_flush(self, *args):  # the deletion, likewise
        pause()
        return flush(self, *args)

    monkeypatch.setattr(job_lifecycle, "record_event", pausing_event)
    monkeypatch.setattr(JobRecords, "_flush", pausing_flush)
    for path in ("cancel", ""):
        paused.clear()
        go.clear()
        parent = bob.post(f"/v1/job-templates/{pipeline['pk']}/create-job",
                          {"input_values": {"first:input": {"value": "words", "type": "str"}}}, status=201).json
        step = children_of(bob, parent)[0]
        answers = {}
        meta = threading.Thread(target=lambda: answers.setdefault("meta", admin.delete(
            f"/v1/jobs/{parent['pk']}/{path}".rstrip("/"), status="*").status_int))
        meta.start()
        try:
            assert paused.wait(60)
            acquiring = threading.Thread(target=lambda: answers.setdefault("acquire", node.post(
                "/v1/jobs/acquire-next", {"executors": ["tests.Produce"]}, status="*").status_int))
            acquiring.start()
            wait_until_done_or_blocked(engine, acquiring)
        finally:
            go.set()
        meta.join(60)
        acquiring.join(60)
        assert answers["meta"] == 200, answers
        state = admin.get(f"/v1/jobs/{step}").json
        with engine.connect() as connection:
            last = connection.execute(text("SELECT status, node_id FROM job_events WHERE job_id = :job "
                                           "ORDER BY id DESC LIMIT 1"), {"job": step}).first()
        # A step's first state is written by no event (PENDING, no node); each event records the state after it.
        assert tuple(last or ("PENDING", None)) == (state["status"], state["node"]), (path, answers, state)
        if path == "cancel":
            assert state["status"] == "CANCELED", state
        else:
            assert state["deletion_time"] and (state["status"], state["node"]) == ("PENDING", None), state
        node.post(f"/v1/jobs/{step}/finish", {}, status="*")


def children_of(client, parent) -> list[int]:
    body = {"expressions": [{"type": "exact", "field": "parent", "value": parent["pk"]}]}
    return [child["pk"] for child in client.post("/v1/jobs/list", body).json]


def storing_held_up(monkeypatch, storage):
    """Uploads wait inside the stage (reading their bytes) until ``go`` is set; ``storing`` is set once one does."""
    stage = storage.stage
    storing, go = threading.Event(), threading.Event()

    def held_up(*args, **kwargs):
        storing.set()
        assert go.wait(60)
        return stage(*args, **kwargs)

    monkeypatch.setattr(storage, "stage", held_up)
    return storing, go


def test_an_upload_being_stored_holds_up_neither_its_nodes_heartbeats_nor_its_lease(on_postgresql, monkeypatch,
                                                                                    wsgi_app, engine, admin, alice):
    """An upload marks its node seen in a statement committed at once, and locks the node's row only once its
    bytes are stored. Before, it held the row from its start: the node's heartbeats waited behind it, and a
    store longer than ``ufdl.node_timeout`` lost the job, aborted under a node that was calling all along."""
    from datetime import timedelta

    from ufdl_pyramid.models import get_session_factory
    from ufdl_pyramid.models.meta import utcnow
    from ufdl_pyramid.services import auth

    pk = create_jobs(alice, admin, 1)[0]
    node = nodes_of(alice, 1)[0]
    node.get(f"/v1/jobs/{pk}/acquire", status=200)
    node.post(f"/v1/jobs/{pk}/start", {}, status=200)
    clock = [timedelta(0)]  # how far the server's clock has moved on, as the nodes are seen
    monkeypatch.setattr(auth, "utcnow", lambda: utcnow() + clock[0])
    storing, go = storing_held_up(monkeypatch, wsgi_app.registry["ufdl.storage"])
    answers = {}
    uploading = threading.Thread(target=lambda: answers.setdefault("upload", node.request(
        "POST", f"/v1/jobs/{pk}/outputs/out/BLOB", body=b"many bytes", status="*").status_int))
    uploading.start()
    try:
        assert storing.wait(60)
        clock[0] = timedelta(hours=1)  # the store takes an hour, the node's heartbeats go on
        beating = threading.Thread(target=lambda: answers.setdefault("heartbeat", node.get(
            f"/v1/jobs/{pk}", status="*").status_int))
        beating.start()
        wait_until_done_or_blocked(engine, beating)
        assert not beating.is_alive(), "the heartbeat waits for the upload"
        db = get_session_factory(engine)()
        try:  # the lease check, at that hour
            lost = job_lifecycle.JobLifecycle(db).expire_leases(utcnow() + timedelta(hours=1, seconds=1), 120, 3)
            db.commit()
        finally:
            db.close()
        assert lost == []
    finally:
        go.set()
    uploading.join(60)
    beating.join(60)
    assert answers == {"heartbeat": 200, "upload": 201}
    assert admin.get(f"/v1/jobs/{pk}").json["status"] == "RUNNING"


@pytest.mark.parametrize("path", ["full stack", "express lane"])
def test_a_job_deleted_for_good_while_an_upload_is_stored_answers_404_and_keeps_no_blob(on_postgresql, monkeypatch,
                                                                                      engine, admin, alice, path):
    """The deletion no longer waits for the upload's node (see above): the upload finds the job gone (the
    full stack says so; the lane hands the request to it, whose traversal finds no job)."""
    import hashlib

    wsgi_app = make_test_app(engine, **{"ufdl.express_lanes": str(path == "express lane").lower()})
    pk = create_jobs(alice, admin, 1)[0]
    node = dataclasses.replace(nodes_of(alice, 1)[0], app=webtest.TestApp(wsgi_app))
    node.get(f"/v1/jobs/{pk}/acquire", status=200)
    node.post(f"/v1/jobs/{pk}/start", {}, status=200)
    storage = wsgi_app.registry["ufdl.storage"]
    storing, go = storing_held_up(monkeypatch, storage)
    answers = {}
    uploading = threading.Thread(target=lambda: answers.setdefault("upload", node.request(
        "POST", f"/v1/jobs/{pk}/outputs/out/BLOB", body=b"bytes of a deleted job", status="*")))
    uploading.start()
    try:
        assert storing.wait(60)
        deleting = threading.Thread(target=lambda: answers.setdefault("delete", admin.delete(
            f"/v1/jobs/{pk}/hard", status="*")))
        deleting.start()
        wait_until_done_or_blocked(engine, deleting)
        assert not deleting.is_alive(), "the deletion waits for the upload"
    finally:
        go.set()
    uploading.join(60)
    deleting.join(60)
    assert answers["delete"].status_int == 200
    assert answers["upload"].status_int == 404
    assert ("deleted" if path == "full stack" else "Not found") in answers["upload"].json["detail"]
    assert not storage.exists(hashlib.sha256(b"bytes of a deleted job").hexdigest())
    assert os.listdir(storage.temporary_directory) == []
    assert admin.get(f"/v1/nodes/{node.node_id}").json["current_job"] is None


def test_a_path_spelt_with_empty_segments_still_reads_the_job_locked(on_postgresql, engine, make_job, worker):
    """Traversal skips an empty segment ('/v1//jobs/1/start' is '/v1/jobs/1/start'), but the check of which
    requests change the job counted segments: so spelt, a start or a finish read the job unlocked and raced
    a concurrent abort or cancel as if no lock were taken."""
    from sqlalchemy import event
    job = make_job()["pk"]
    worker.get(f"/v1/jobs/{job}/acquire")
    sent = []

    def record(connection, cursor, statement, *args):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        worker.post(f"/v1//jobs/{job}//start", {}, status=200)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # The job and its meta-jobs, read locked as for '/v1/jobs/{pk}/start' (the event's own lock comes later).
    assert any("lineage" in statement and "FOR UPDATE" in statement for statement in sent), sent
