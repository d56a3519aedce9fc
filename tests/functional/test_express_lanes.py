"""The express lanes (PostgreSQL): an acquire, start, progress report or finish in order is one statement and
answers what the full stack answers; every other request falls through to the full stack, whose answers the
lifecycle tests check (on PostgreSQL, through the lanes)."""
import json

import pytest
import webtest
from sqlalchemy import event, select, text

from ufdl_pyramid.models import JobEvent
from ufdl_pyramid.testing import ApiClient, make_test_app, notifications_sent
from job_helpers import ECHO, register


@pytest.fixture
def statements(engine):
    """The SQL statements the app sends through SQLAlchemy (``statements.clear()`` before the call to count).
    The lane sends its one statement to the driver directly, so a report it answered adds none here."""
    sent = []

    def record(connection, cursor, statement, *args):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def running(worker, job) -> dict:
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    return worker.post(f"/v1/jobs/{job['pk']}/start", {}).json


def progress_events(engine, job) -> list:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT progress, node_id, status, transition_data FROM job_events "
            "WHERE job_id = :job AND transition = 'progress' ORDER BY id"), {"job": job["pk"]}).all()


def on(app, client: ApiClient) -> ApiClient:
    return ApiClient(webtest.TestApp(app), client.token, client.refresh_token, client.node_id, client.user_id)


def test_a_report_in_order_is_answered_by_the_lane(on_postgresql, engine, statements, bob, worker, job):
    running(worker, job)
    statements.clear()
    answer = worker.post(f"/v1/jobs/{job['pk']}/progress/0.25", {"epoch": 3}).json
    assert statements == []
    assert answer == bob.get(f"/v1/jobs/{job['pk']}").json
    assert answer["progress"] == 0.25 and answer["status"] == "RUNNING" and answer["node"] == worker.node_id
    assert progress_events(engine, job) == [(0.25, worker.node_id, "RUNNING", {"epoch": 3})]


def test_a_report_with_an_empty_body_is_recorded_with_no_data(engine, worker, job):
    """The lane (PostgreSQL) and the full stack alike: an empty object is stored as no data, not as ``{}``."""
    running(worker, job)
    full = on(make_test_app(engine, **{"ufdl.express_lanes": "false"}), worker)
    worker.post(f"/v1/jobs/{job['pk']}/progress/0.25", {})
    full.post(f"/v1/jobs/{job['pk']}/progress/0.5", {})
    with engine.connect() as connection:  # through the model: SQLite keeps a JSON null as the text 'null'
        written = connection.execute(select(JobEvent.progress, JobEvent.transition_data).where(
            JobEvent.job_id == job["pk"], JobEvent.transition == "progress").order_by(JobEvent.id)).all()
    assert written == [(0.25, None), (0.5, None)]


def test_a_report_answered_by_the_lane_is_announced_on_the_event_channel(on_postgresql, engine, statements,
                                                                         worker, job):
    """The progress channel's listeners wake up on NOTIFY: a report the lane wrote silently would reach them
    only at their next poll."""
    running(worker, job)
    heard = []
    listening = engine.raw_connection()
    try:
        connection = listening.driver_connection
        connection.autocommit = True
        connection.add_notify_handler(lambda notify: heard.append((notify.channel, notify.payload)))
        connection.execute("LISTEN ufdl_job_events")
        statements.clear()
        worker.post(f"/v1/jobs/{job['pk']}/progress/0.25", {})
        assert statements == []
        connection.execute("SELECT 1")  # delivers what arrived meanwhile
        assert heard == [("ufdl_job_events", str(job["pk"]))]
    finally:
        connection.execute("UNLISTEN *")
        connection.autocommit = False
        listening.close()


def test_the_lane_answers_what_the_full_stack_answers(on_postgresql, engine, statements, bob, worker, job):
    running(worker, job)
    worker.request("POST", f"/v1/jobs/{job['pk']}/outputs/model/BLOB", body=b"weights", status=201)
    worker.request("POST", f"/v1/jobs/{job['pk']}/outputs/log/str", body=b"text", status=201)
    worker.request("DELETE", f"/v1/jobs/{job['pk']}/outputs/log/str", status=200)
    worker.request("POST", f"/v1/jobs/{job['pk']}/outputs/metrics/str", body=b"0.9", status=201)
    full = on(make_test_app(engine, **{"ufdl.express_lanes": "false"}), worker)
    statements.clear()
    express = worker.post(f"/v1/jobs/{job['pk']}/progress/0.5", {"step": 1})
    assert statements == []
    statements.clear()
    stacked = full.post(f"/v1/jobs/{job['pk']}/progress/0.5", {"step": 1})
    assert len(statements) > 1
    assert express.json == stacked.json
    assert [output["name"] for output in express.json["outputs"]] == ["model", "metrics"]  # in order added
    assert (express.status, express.content_type, express.charset) == (
        stacked.status, stacked.content_type, stacked.charset)
    assert [row.progress for row in progress_events(engine, job)] == [0.5, 0.5]


def test_an_admin_may_report_for_a_node_of_anyone(on_postgresql, statements, admin, worker, job):
    running(worker, job)
    statements.clear()
    assert admin.as_node(worker.node_id).post(f"/v1/jobs/{job['pk']}/progress/0.75", {}).json["progress"] == 0.75
    assert statements == []


@pytest.mark.parametrize("case", ["other node", "other users node", "not running", "bad value", "list body",
                                  "no node header", "inactive user", "extra segment", "not utf-8", "a GET"])
def test_reports_out_of_the_ordinary_get_the_full_stacks_answer(engine, users, alice, bob, worker, other_worker,
                                                                 make_job, case):
    """Run on both databases: what the lane falls back on must answer exactly as without the lane."""
    job = make_job()
    running(worker, job)
    path = f"/v1/jobs/{job['pk']}/progress/0.5"
    if case == "other node":
        response = other_worker.post(path, {}, status=403)
    elif case == "other users node":
        response = bob.as_node(worker.node_id).post(path, {}, status=403)
    elif case == "not running":
        queued = make_job()
        worker.get(f"/v1/jobs/{queued['pk']}/acquire")
        response = worker.post(f"/v1/jobs/{queued['pk']}/progress/0.5", {}, status=406)
        assert "QUEUED" in response.json["detail"]
    elif case == "bad value":
        response = worker.post(f"/v1/jobs/{job['pk']}/progress/1.5", {}, status=400)
    elif case == "list body":
        response = worker.post(path, [1], status=400)
    elif case == "no node header":
        response = alice.post(path, {}, status=403)
    elif case == "inactive user":
        with engine.begin() as connection:
            connection.execute(text("UPDATE users SET is_active = false WHERE id = :id"), {"id": alice.user_id})
        response = worker.post(path, {}, status=401)
    elif case == "extra segment":
        response = worker.post(path + "/again", {}, status=400)
    elif case == "not utf-8":
        response = worker.post(f"/v1/jobs/{job['pk']}/progress/%FF", {}, status=400)
    else:
        response = worker.get(path, status=405)
    assert response.json["detail"]
    assert bob.get(f"/v1/jobs/{job['pk']}").json["progress"] == 0.0
    assert progress_events(engine, job) == []


# Percent-encoded as a client would send them: spaces, a tab, a fullwidth and an Arabic-Indic digit.
NOT_JSON_NUMBERS = ["nan", "NaN", "inf", "-inf", "infinity", "Infinity", "1_0", "0_5", "0.0_1", "%200.5", "0.5%20",
                    "%090.5", "+0.5", ".5", "5.", "00.5", "0x1", "1e", "0.5e", "--0", "%D9%A1", "%EF%BC%90.5", "0.5f"]
OUT_OF_RANGE = ["1.5", "-0.1", "2e0", "1e400", "-1e-1", "1.0000001"]
IN_RANGE = [("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("1.0", 1.0), ("5e-1", 0.5), ("1e-05", 1e-05), ("1E0", 1.0),
            ("-0", 0.0), ("-0.0", 0.0), ("0.25e+0", 0.25), ("1e-400", 0.0), ("0.125", 0.125)]


def test_the_lane_and_the_full_stack_read_progress_values_alike(engine, statements, bob, worker, job):
    """A progress value is a JSON number in [0, 1] on both paths. Python's float() took ' 0.5', '+0.5', '.5',
    '0.0_1' and the digits of any script (an Arabic-Indic one was 1.0) as numbers: the full stack stored them,
    and the lane (whose path is the raw, undecoded one) agreed only by falling back on it. Bad values are 400 on
    both."""
    running(worker, job)
    full = on(make_test_app(engine, **{"ufdl.express_lanes": "false"}), worker)
    lane_on = engine.dialect.name == "postgresql"  # the lane is PostgreSQL's alone: on SQLite both are the stack
    for spelling in NOT_JSON_NUMBERS + OUT_OF_RANGE:
        answers = [client.post(f"/v1/jobs/{job['pk']}/progress/{spelling}", {}, status="*")
                   for client in (worker, full)]
        assert [(answer.status_int, answer.json) for answer in answers] == [(400, answers[0].json)] * 2, spelling
        assert "between 0 and 1" in answers[0].json["detail"], spelling
        if spelling in NOT_JSON_NUMBERS:
            assert "JSON number" in answers[0].json["detail"], spelling
    assert bob.get(f"/v1/jobs/{job['pk']}").json["progress"] == 0.0
    assert progress_events(engine, job) == []
    for spelling, value in IN_RANGE:
        statements.clear()
        express = worker.post(f"/v1/jobs/{job['pk']}/progress/{spelling}", {}, status="*")
        assert (statements == []) == lane_on, spelling  # the lane answered it, where there is one
        stacked = full.post(f"/v1/jobs/{job['pk']}/progress/{spelling}", {}, status="*")
        assert (express.status_int, express.json["progress"]) == (stacked.status_int, stacked.json["progress"]) == (
            200, value), spelling
    assert [row.progress for row in progress_events(engine, job)] == [value for _, value in IN_RANGE for _ in "ab"]


def test_a_node_that_only_reports_progress_keeps_its_lease(engine, admin, worker, other_worker, job):
    """Each report marks the node seen (the lane's too): a node busy with a long job sends nothing else."""
    from datetime import timedelta

    from sqlalchemy import update

    from ufdl_pyramid.models import Job, Node
    from ufdl_pyramid.models.meta import utcnow

    running(worker, job)
    with engine.begin() as connection:
        past = utcnow() - timedelta(hours=1)
        connection.execute(update(Node).where(Node.id == worker.node_id).values(last_seen=past))
        connection.execute(update(Job).where(Job.id == job["pk"]).values(last_status_change=past))
    worker.post(f"/v1/jobs/{job['pk']}/progress/0.5", {})
    other_worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)  # lost leases are noticed here
    state = admin.get(f"/v1/jobs/{job['pk']}").json
    assert (state["status"], state["node"], state["progress"]) == ("RUNNING", worker.node_id, 0.5)


def test_a_job_with_its_own_progress_notifications_goes_through_the_full_stack(bob, worker, template, capsys):
    job = bob.post(f"/v1/job-templates/{template['pk']}/create-job", {
        "input_values": {"input": {"value": "x", "type": "str"}},
        "notification_override": {"actions": {"on_progress": [{"type": "print", "message": "at {progress}"}]}}},
        status=201).json
    running(worker, job)
    capsys.readouterr()
    worker.post(f"/v1/jobs/{job['pk']}/progress/0.5", {})
    notifications_sent(worker.app.app)
    assert capsys.readouterr().out.splitlines() == ["at 0.5"]


def with_default_notifications(engine, defaults: dict, admin, alice, bob):
    """An app whose server-wide notifications are ``defaults``; alice's node there, and a job of bob's."""
    app = make_test_app(engine, **{"ufdl.notifications.defaults": json.dumps(defaults)})
    admin, bob, worker = on(app, admin), on(app, bob), register(on(app, alice))
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json
    job = bob.post(f"/v1/job-templates/{template['pk']}/create-job",
                   {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json
    return app, worker, job


def test_server_progress_notifications_turn_the_lane_off(engine, statements, admin, alice, bob, capsys):
    app, worker, job = with_default_notifications(
        engine, {"on_progress": [{"type": "print", "message": "job {pk} at {progress}"}]}, admin, alice, bob)
    running(worker, job)
    capsys.readouterr()
    worker.post(f"/v1/jobs/{job['pk']}/progress/0.5", {})
    notifications_sent(app)
    assert capsys.readouterr().out.splitlines() == [f"job {job['pk']} at 0.5"]


def test_a_cancelled_job_is_not_moved_by_a_late_report(engine, bob, worker, job):
    running(worker, job)
    bob.delete(f"/v1/jobs/{job['pk']}/cancel")
    response = worker.post(f"/v1/jobs/{job['pk']}/progress/0.9", {}, status=406)
    assert "CANCELED" in response.json["detail"]
    assert bob.get(f"/v1/jobs/{job['pk']}").json["progress"] == 0.0


def test_connections_go_back_to_the_pool_out_of_autocommit(on_postgresql, engine, statements, worker, job):
    """The lane borrows pool connections in autocommit; the full stack's transactions need them back without."""
    running(worker, job)
    statements.clear()
    for step in range(1, 6):
        worker.post(f"/v1/jobs/{job['pk']}/progress/{step / 10}", {})
    assert statements == []
    borrowed = [engine.raw_connection() for _ in range(engine.pool.checkedin())]
    try:
        assert borrowed and not any(connection.driver_connection.autocommit for connection in borrowed)
    finally:
        for connection in borrowed:
            connection.close()


def test_a_database_error_in_the_lane_hands_the_report_to_the_full_stack(on_postgresql, monkeypatch, engine,
                                                                         statements, worker, job):
    """The lane's statement goes to psycopg itself, whose errors (a deadlock, say) come unwrapped by SQLAlchemy:
    they too leave the report to the full stack (one escaped the app as a bare 500 before)."""
    from psycopg.errors import DeadlockDetected

    from ufdl_pyramid.services import express_lanes

    def deadlocked(*args, **kwargs):
        raise DeadlockDetected("deadlock detected")

    running(worker, job)
    monkeypatch.setattr(express_lanes, "run", deadlocked)
    statements.clear()
    assert worker.post(f"/v1/jobs/{job['pk']}/progress/0.75", {}).json["progress"] == 0.75
    assert statements  # the full stack wrote it
    assert [event[0] for event in progress_events(engine, job)] == [0.75]


# The acquire, start and finish lanes.

def node_state(engine, node_id: int):
    with engine.connect() as connection:
        return connection.execute(text("SELECT current_job_id, last_seen FROM nodes WHERE id = :id"),
                                  {"id": node_id}).one()


def events_of(engine, job) -> list:
    """A job's events as they compare between jobs (no ids, no times)."""
    with engine.connect() as connection:  # through the model: the full stack writes no data as JSON's null
        return connection.execute(select(
            JobEvent.transition, JobEvent.status, JobEvent.progress, JobEvent.node_id, JobEvent.error,
            JobEvent.transition_data).where(JobEvent.job_id == job["pk"]).order_by(JobEvent.id)).all()


def comparable(answer: dict) -> dict:
    """A job's JSON without what differs between two jobs run one after the other."""
    return {key: value for key, value in answer.items()
            if key not in ("pk", "start_time", "end_time", "last_status_change", "creation_time")}


def test_a_plain_lifecycle_is_one_statement_per_request_answering_what_the_full_stack_answers(
        on_postgresql, engine, statements, bob, worker, other_worker, make_job):
    """The same lifecycle through the lanes (``worker``) and through the full stack (``other_worker``): the same
    answers, the same events, the same node's current job after each step."""
    full = on(make_test_app(engine, **{"ufdl.express_lanes": "false"}), other_worker)
    express_job, stacked_job = make_job(), make_job()
    steps = [("acquire", "GET", None), ("start", "POST", {"send_notification": True}), ("progress/0.5", "POST", {}),
             ("finish", "POST", {"success": True, "send_notification": True})]
    for step, method, body in steps:
        seen_before = node_state(engine, worker.node_id).last_seen
        answers = []
        for client, job, lane in ((worker, express_job, True), (full, stacked_job, False)):
            path = f"/v1/jobs/{job['pk']}/{step}"
            statements.clear()
            answers.append(client.get(path) if method == "GET" else client.post(path, body))
            assert (statements == []) == lane, step
            assert answers[-1].json == bob.get(f"/v1/jobs/{job['pk']}").json, step
        express, stacked = answers
        assert comparable(express.json) == {**comparable(stacked.json), "node": worker.node_id}, step
        assert (express.status, express.content_type) == (stacked.status, stacked.content_type), step
        express_node, stacked_node = (node_state(engine, node) for node in (worker.node_id, other_worker.node_id))
        assert express_node.last_seen not in (None, seen_before), step  # marked seen
        assert (express_node.current_job_id, stacked_node.current_job_id) == (
            (express_job["pk"], stacked_job["pk"]) if step in ("start", "progress/0.5") else (None, None)), step
    answer = bob.get(f"/v1/jobs/{express_job['pk']}").json
    assert (answer["status"], answer["progress"], answer["node"]) == ("COMPLETED", 1.0, worker.node_id)
    assert answer["start_time"] and answer["end_time"] and answer["start_time"] <= answer["end_time"]
    express_events = events_of(engine, express_job)
    assert express_events == [
        ("acquire", "QUEUED", 0.0, worker.node_id, None, None),
        ("start", "RUNNING", 0.0, worker.node_id, None, None),
        ("progress", "RUNNING", 0.5, worker.node_id, None, None),
        ("finish", "COMPLETED", 1.0, worker.node_id, None, None)]
    assert events_of(engine, stacked_job) == [(*event[:3], other_worker.node_id, *event[4:])
                                              for event in express_events]


def test_each_lane_announces_its_event_on_the_event_channel(on_postgresql, engine, statements, worker, job):
    heard = []
    listening = engine.raw_connection()
    try:
        connection = listening.driver_connection
        connection.autocommit = True
        connection.add_notify_handler(lambda notify: heard.append(notify.payload))
        connection.execute("LISTEN ufdl_job_events")
        statements.clear()
        worker.get(f"/v1/jobs/{job['pk']}/acquire")
        worker.post(f"/v1/jobs/{job['pk']}/start", {})
        worker.post(f"/v1/jobs/{job['pk']}/finish", {})
        assert statements == []
        connection.execute("SELECT 1")  # delivers what arrived meanwhile
        assert heard == [str(job["pk"])] * 3
    finally:
        connection.execute("UNLISTEN *")
        connection.autocommit = False
        listening.close()


def test_an_admin_may_work_a_job_as_a_node_of_anyone(on_postgresql, statements, admin, worker, job):
    node = admin.as_node(worker.node_id)
    statements.clear()
    assert node.get(f"/v1/jobs/{job['pk']}/acquire").json["status"] == "QUEUED"
    assert node.post(f"/v1/jobs/{job['pk']}/start", {}).json["status"] == "RUNNING"
    assert node.post(f"/v1/jobs/{job['pk']}/finish", {}).json["status"] == "COMPLETED"
    assert statements == []


@pytest.mark.parametrize("case", [
    "acquire: held by another node", "acquire: asked again by its holder", "acquire: deleted",
    "acquire: private template", "acquire: HEAD", "acquire: inactive user", "start: other node",
    "start: not acquired", "start: node still runs another", "start: a list body", "finish: other node",
    "finish: an error", "finish: a category without an error", "finish: not started", "finish: aborted"])
def test_requests_out_of_the_ordinary_get_the_full_stacks_answer(engine, statements, admin, alice, worker,
                                                                  other_worker, make_job, case):
    """Run on both databases: what a lane leaves to the full stack answers exactly as without the lanes."""
    job = make_job()
    path = f"/v1/jobs/{job['pk']}"
    lane_on = engine.dialect.name == "postgresql"
    transition, _ = case.split(":")
    if transition != "acquire":
        worker.get(f"{path}/acquire")
    if transition == "finish" and case != "finish: not started":
        worker.post(f"{path}/start", {})
    statements.clear()
    if case == "acquire: held by another node":
        other_worker.get(f"{path}/acquire")
        assert f"node {other_worker.node_id} holds it" in worker.get(f"{path}/acquire", status=406).json["detail"]
    elif case == "acquire: asked again by its holder":
        worker.get(f"{path}/acquire")
        events = events_of(engine, job)
        assert worker.get(f"{path}/acquire").json["status"] == "QUEUED"
        assert events_of(engine, job) == events  # nothing changed
    elif case == "acquire: deleted":
        admin.delete(path)
        assert "deleted" in worker.get(f"{path}/acquire", status=406).json["detail"]
    elif case == "acquire: private template":
        private = admin.post("/v1/job-templates/import", {**ECHO, "name": "private", "scope": "user"}).json
        job = admin.post(f"/v1/job-templates/{private['pk']}/create-job",
                         {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json
        assert "private" in worker.get(f"/v1/jobs/{job['pk']}/acquire", status=403).json["detail"]
    elif case == "acquire: HEAD":
        worker.app.head(f"{path}/acquire", headers=worker.headers(), status=405)
    elif case == "acquire: inactive user":
        with engine.begin() as connection:
            connection.execute(text("UPDATE users SET is_active = false WHERE id = :id"), {"id": alice.user_id})
        worker.get(f"{path}/acquire", status=401)
    elif case == "start: other node":
        other_worker.post(f"{path}/start", {}, status=403)
    elif case == "start: not acquired":
        job = make_job()
        worker.post(f"/v1/jobs/{job['pk']}/start", {}, status=403)
    elif case == "start: node still runs another":
        first = make_job()
        worker.get(f"/v1/jobs/{first['pk']}/acquire")
        worker.post(f"/v1/jobs/{first['pk']}/start", {})
        statements.clear()
        detail = worker.post(f"{path}/start", {}, status=406).json["detail"]
        assert f"still working on job {first['pk']}" in detail
    elif case == "start: a list body":
        worker.post(f"{path}/start", [1], status=400)
    elif case == "finish: other node":
        other_worker.post(f"{path}/finish", {}, status=403)
    elif case == "finish: an error":
        answer = worker.post(f"{path}/finish", {"error": "out of memory", "error_category": "DATA"}).json
        assert (answer["status"], answer["error_reason"], answer["error_category"]) == (
            "FAILED", "out of memory", "DATA")
        assert node_state(engine, worker.node_id).current_job_id is None
    elif case == "finish: a category without an error":
        worker.post(f"{path}/finish", {"error_category": "DATA"}, status=400)
    elif case == "finish: not started":
        assert "QUEUED" in worker.post(f"{path}/finish", {}, status=406).json["detail"]
    else:
        admin.delete(f"{path}/abort")
        statements.clear()
        assert worker.post(f"{path}/finish", {}).json["status"] == "PENDING"  # changes nothing but frees the node
        assert node_state(engine, worker.node_id).current_job_id is None
    assert statements or not lane_on  # the full stack answered


@pytest.mark.parametrize("transition", ["acquire", "start", "finish"])
def test_a_job_with_its_own_notifications_for_a_transition_goes_through_the_full_stack(
        bob, worker, template, capsys, transition):
    job = bob.post(f"/v1/job-templates/{template['pk']}/create-job", {
        "input_values": {"input": {"value": "x", "type": "str"}},
        "notification_override": {"actions": {f"on_{transition}": [
            {"type": "print", "message": "{transition}: {status}"}]}}}, status=201).json
    capsys.readouterr()
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    worker.post(f"/v1/jobs/{job['pk']}/start", {})
    worker.post(f"/v1/jobs/{job['pk']}/finish", {})
    notifications_sent(worker.app.app)
    status = {"acquire": "QUEUED", "start": "RUNNING", "finish": "COMPLETED"}[transition]
    assert capsys.readouterr().out.splitlines() == [f"{transition}: {status}"]


def test_server_notifications_turn_off_the_lane_of_their_transition_alone(on_postgresql, engine, statements,
                                                                          admin, alice, bob, capsys):
    app, worker, job = with_default_notifications(
        engine, {"on_start": [{"type": "print", "message": "job {pk} started"}]}, admin, alice, bob)
    capsys.readouterr()
    statements.clear()
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    assert statements == []
    worker.post(f"/v1/jobs/{job['pk']}/start", {})
    assert statements
    statements.clear()
    worker.post(f"/v1/jobs/{job['pk']}/finish", {})
    assert statements == []
    notifications_sent(app)
    assert capsys.readouterr().out.splitlines() == [f"job {job['pk']} started"]


# The upload lane.

@pytest.fixture
def storage(wsgi_app):
    return wsgi_app.registry["ufdl.storage"]


def upload(client, job, data=b"model bytes", name="model", type_text="BLOB", status=201, headers=None):
    return client.request("POST", f"/v1/jobs/{job['pk']}/outputs/{name}/{type_text}", body=data,
                          content_type="text/plain", status=status, headers=headers)


def test_an_upload_in_order_is_answered_by_the_lane_as_the_full_stack_answers_it(
        on_postgresql, engine, statements, bob, worker, other_worker, make_job):
    full = on(make_test_app(engine, **{"ufdl.express_lanes": "false"}), other_worker)
    answers, jobs = [], []
    for client, lane in ((worker, True), (full, False)):
        job = make_job()
        client.get(f"/v1/jobs/{job['pk']}/acquire")
        client.post(f"/v1/jobs/{job['pk']}/start", {})
        statements.clear()
        answers.append(upload(client, job, type_text="Array%3Cint%3E"))  # Array<int>, as clients send it
        assert (statements == []) == lane
        jobs.append(job)
    express, stacked = answers
    assert express.status_int == stacked.status_int == 201
    assert express.content_type == stacked.content_type
    assert express.headers["Location"] == stacked.headers["Location"].replace(
        f"/jobs/{jobs[1]['pk']}/", f"/jobs/{jobs[0]['pk']}/")
    differ = ("pk", "job", "creation_time")
    assert {key: value for key, value in express.json.items() if key not in differ} == {
        key: value for key, value in stacked.json.items() if key not in differ}
    assert express.json["type"] == "Array<int>" and express.json["size"] == len(b"model bytes")
    assert bob.get(express.headers["Location"]).json == express.json
    assert bob.get(f"/v1/jobs/{jobs[0]['pk']}/outputs/model/Array%3Cint%3E").body == b"model bytes"
    assert [(output["name"], output["type"]) for output in bob.get(f"/v1/jobs/{jobs[0]['pk']}").json["outputs"]] == [
        ("model", "Array<int>")]
    express_events, stacked_events = (events_of(engine, job)[-1] for job in jobs)
    assert express_events[:3] == stacked_events[:3] == ("add_output", "RUNNING", 0.0)
    assert express_events[5] == {"name": "model", "type": "Array<int>", "pk": express.json["pk"]}
    assert stacked_events[5] == {"name": "model", "type": "Array<int>", "pk": stacked.json["pk"]}
    assert node_state(engine, worker.node_id).last_seen is not None


@pytest.mark.parametrize("case", ["other node", "not started", "duplicate", "bad name", "bad type", "no node header",
                                  "over the limit", "larger than the lane takes", "short body", "deleted job"])
def test_uploads_out_of_the_ordinary_get_the_full_stacks_answer(engine, statements, admin, alice, bob, worker,
                                                                other_worker, make_job, case):
    """Run on both databases: what the lane leaves to the full stack answers as without the lanes."""
    from ufdl_pyramid.services.express_lanes import OUTPUT_BODY_LIMIT

    job = make_job()
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    if case != "not started":
        worker.post(f"/v1/jobs/{job['pk']}/start", {})
    if case == "duplicate":
        upload(worker, job)
    statements.clear()
    if case == "other node":
        upload(other_worker, job, status=403)
    elif case == "not started":
        assert "not started" in upload(worker, job, status=417).json["detail"]
    elif case == "duplicate":
        assert "already has an output 'model'" in upload(worker, job, status=409).json["detail"]
    elif case == "bad name":
        upload(worker, job, name="a;b", status=400)
    elif case == "bad type":
        upload(worker, job, type_text="NoSuchType", status=400)
    elif case == "no node header":
        upload(alice, job, status=403)
    elif case == "over the limit":
        app = make_test_app(engine, **{"ufdl.max_output_size": "5"})
        assert "5 bytes" in upload(on(app, worker), job, status=413).json["detail"]
    elif case == "larger than the lane takes":
        assert upload(worker, job, data=b"x" * (OUTPUT_BODY_LIMIT + 1)).json["size"] == OUTPUT_BODY_LIMIT + 1
    elif case == "short body":
        refused = upload(worker, job, headers={"Content-Length": "20"}, data=b"x" * 10, status=400).json
        assert "10 more bytes were expected" in refused["detail"]
    else:  # deleting it took it from the node
        admin.delete(f"/v1/jobs/{job['pk']}")
        statements.clear()
        assert "does not hold" in upload(worker, job, status=403).json["detail"]
    assert statements or engine.dialect.name != "postgresql"  # the full stack answered
    outputs = bob.get(f"/v1/jobs/{job['pk']}").json["outputs"]
    assert len(outputs) == (1 if case in ("duplicate", "larger than the lane takes") else 0)


@pytest.mark.parametrize("pause", ["staged", "locked"])
def test_a_hard_delete_racing_a_lane_upload_of_the_same_bytes_leaves_its_blob(on_postgresql, wsgi_app, statements,
                                                                               admin, alice, make_job, storage,
                                                                               monkeypatch, pause):
    """Output a of job A holds bytes X; job B's upload of X, through the lane, pauses with its bytes staged (the
    clean-up of a's hard deletion then runs first: X's blob goes, B's staged copy stays) or with the key's lock
    held (the clean-up waits for B's commit and sees its row). Either way B's output keeps its bytes."""
    import threading

    nodes = [register(alice, f"10.0.5.{i}") for i in range(2)]
    jobs = [make_job() for _ in nodes]
    for node, job in zip(nodes, jobs):
        node.get(f"/v1/jobs/{job['pk']}/acquire")
        node.post(f"/v1/jobs/{job['pk']}/start", {})
    first = upload(nodes[0], jobs[0], data=b"X" * 1000, name="a").json
    paused, resume = threading.Event(), threading.Event()
    real = getattr(storage, "stage" if pause == "staged" else "publish")

    def held(*args, **kwargs):
        answer = real(*args, **kwargs) if pause == "staged" else None
        if threading.current_thread().name == "uploader":
            paused.set()
            assert resume.wait(10)
        return answer if pause == "staged" else real(*args, **kwargs)

    monkeypatch.setattr(storage, "stage" if pause == "staged" else "publish", held)
    answers = {}
    uploader = threading.Thread(name="uploader", target=lambda: answers.setdefault("upload", webtest.TestApp(
        wsgi_app).post(f"/v1/jobs/{jobs[1]['pk']}/outputs/b/BLOB", b"X" * 1000,
                       headers=nodes[1].headers({"Content-Type": "text/plain"}), expect_errors=True)))
    uploader.start()
    assert paused.wait(10)
    deleter = threading.Thread(target=lambda: answers.setdefault("delete", webtest.TestApp(wsgi_app).delete(
        f"/v1/job-outputs/{first['pk']}/hard", headers=admin.headers(), expect_errors=True)))
    deleter.start()
    deleter.join(1 if pause == "locked" else 10)  # with the lock held, its clean-up waits for the upload
    assert deleter.is_alive() == (pause == "locked")
    statements.clear()
    resume.set()
    uploader.join(10)
    deleter.join(10)
    assert answers["delete"].status_int == 200
    assert answers["upload"].status_int == 201, answers["upload"].text
    assert not any("job_outputs" in statement for statement in statements if "INSERT" in statement)  # the lane's
    assert nodes[1].get(f"/v1/jobs/{jobs[1]['pk']}/outputs/b/BLOB").body == b"X" * 1000


# The create-job lane.

def created_by_the_lane(statements) -> bool:
    """The lane writes the job with INSERT ... SELECT from its template (the full stack through the ORM)."""
    return any(statement.startswith("INSERT INTO jobs") and "FROM job_templates" in statement
               for statement in statements)


@pytest.mark.parametrize("as_node", [False, True])
def test_a_job_created_by_the_lane_is_the_full_stacks(on_postgresql, engine, statements, admin, bob, as_node):
    template = admin.post("/v1/job-templates/import", {**ECHO, "specific": {
        **ECHO["specific"], "parameters": {"tag": {"types": ["str"], "help": "", "default": "x"}}}}).json
    full = on(make_test_app(engine, **{"ufdl.express_lanes": "false"}), bob)
    creator = register(bob) if as_node else bob
    if as_node:
        full = full.as_node(creator.node_id)
    body = {"input_values": {"input": {"value": "hello", "type": "str"}}, "description": "a run",
            "parameter_values": {"tag": {"value": "y", "type": "str"}},
            "notification_override": {"actions": {"on_finish": [{"type": "print"}]}, "keep_default": True}}
    answers = []
    for client, lane in ((creator, True), (full, False)):
        statements.clear()
        answers.append(client.post(f"/v1/job-templates/{template['pk']}/create-job", body, status=201))
        assert created_by_the_lane(statements) == lane
    express, stacked = answers
    assert comparable(express.json) == comparable(stacked.json)
    assert express.json == bob.get(f"/v1/jobs/{express.json['pk']}").json
    assert express.headers["Location"].endswith(f"/v1/jobs/{express.json['pk']}")
    assert (express.content_type, express.json["status"], express.json["creator"]) == (
        stacked.content_type, "PENDING", bob.user_id)
    if as_node:
        assert node_state(engine, creator.node_id).last_seen is not None


@pytest.mark.parametrize("case", ["meta-template", "deleted template", "private template", "bad input",
                                  "child overrides", "malformed node header", "other users node", "list body",
                                  "inactive user", "no such template"])
def test_creations_out_of_the_ordinary_get_the_full_stacks_answer(engine, statements, admin, alice, bob, case):
    """Run on both databases: what the lane leaves to the full stack answers as without the lanes."""
    from job_helpers import CONSUME, PIPELINE, PRODUCE

    template = admin.post("/v1/job-templates/import", ECHO, status=201).json
    path = f"/v1/job-templates/{template['pk']}/create-job"
    body = {"input_values": {"input": {"value": "x", "type": "str"}}}
    statements.clear()
    if case == "meta-template":
        admin.post("/v1/job-templates/import", PRODUCE)
        admin.post("/v1/job-templates/import", CONSUME)
        meta = admin.post("/v1/job-templates/import", PIPELINE).json
        statements.clear()
        parent = bob.post(f"/v1/job-templates/{meta['pk']}/create-job", {"input_values": {
            "first:input": {"value": "x", "type": "str"}}}, status=201).json
        children = bob.post("/v1/jobs/list", {"expressions": [
            {"type": "exact", "field": "parent", "value": parent["pk"]}]}).json
        assert [child["template"]["name"] for child in children] == ["produce"]
    elif case == "deleted template":
        admin.delete(f"/v1/job-templates/{template['pk']}")
        statements.clear()
        assert "is deleted" in bob.post(path, body, status=400).json["detail"]
    elif case == "private template":
        private = admin.post("/v1/job-templates/import", {**ECHO, "name": "private", "scope": "user"}).json
        statements.clear()
        bob.post(f"/v1/job-templates/{private['pk']}/create-job", body, status=404)
    elif case == "bad input":
        refused = bob.post(path, {"input_values": {"input": {"value": 5, "type": "str"}}}, status=400).json
        assert "input_values.input" in refused["detail"]
    elif case == "child overrides":
        refused = bob.post(path, {**body, "child_notification_overrides": {"a": {}}}, status=400).json
        assert "only a meta-job" in refused["detail"]
    elif case == "malformed node header":
        bob.app.post_json(path, body, headers=bob.headers({"Node-Id": "one"}), status=400)
    elif case == "other users node":
        node = register(alice)
        bob.as_node(node.node_id).post(path, body, status=403)
    elif case == "list body":
        bob.post(path, [body], status=400)
    elif case == "inactive user":
        with engine.begin() as connection:
            connection.execute(text("UPDATE users SET is_active = false WHERE id = :id"), {"id": bob.user_id})
        bob.post(path, body, status=401)
    else:
        bob.post("/v1/job-templates/9999/create-job", body, status=404)
    assert not created_by_the_lane(statements)
    if case != "meta-template":
        assert admin.post("/v1/jobs/list").json == []


def test_a_virtual_root_applies_to_the_lanes_paths_as_to_traversal(engine, bob, worker, job):
    """Pyramid's traversal honours ``X-Vhm-Root`` (a virtual root, which a proxy may set): under the root ``/v1``
    the path ``/v1/jobs/{pk}/...`` names no job, and the full stack answers 404. The lanes matched the path
    alone: they acquired, started, finished the job and took its output."""
    path, vroot = f"/v1/jobs/{job['pk']}", {"X-Vhm-Root": "/v1"}
    worker.get(f"{path}/acquire", headers=vroot, status=404)
    assert bob.get(path).json["status"] == "PENDING"
    worker.get(f"/jobs/{job['pk']}/acquire", headers=vroot)  # the job's path under that root
    worker.post(f"{path}/start", {}, headers=vroot, status=404)
    worker.post(f"{path}/start", {})
    upload(worker, job, headers=vroot, status=404)
    worker.post(f"{path}/progress/0.5", {}, headers=vroot, status=404)
    worker.post(f"{path}/finish", {}, headers=vroot, status=404)
    answer = bob.get(path).json
    assert (answer["status"], answer["progress"], answer["outputs"]) == ("RUNNING", 0.0, [])
    assert [event.transition for event in events_of(engine, job)] == ["acquire", "start"]


def test_a_failed_publish_keeps_no_blob_and_leaves_the_node_seen(engine, bob, worker, job, storage, monkeypatch):
    """The bytes went under their key, then syncing the blob's directory failed (a dying disk): a 503 and no
    row. The full stack then deletes the blob that no row refers to (``BlobCleanup``) and keeps the node's being
    seen (committed before the bytes came in); the lane left the blob behind and the node unseen."""
    import errno
    import hashlib

    from ufdl_pyramid import storage as storage_module

    def failing(path):
        raise OSError(errno.EIO, "Input/output error")

    running(worker, job)
    data = b"bytes whose directory cannot be synced"
    seen_before = node_state(engine, worker.node_id).last_seen
    monkeypatch.setattr(storage_module, "_fsync_directory", failing)
    assert upload(worker, job, data=data, status=503).headers["Retry-After"] == "5"
    monkeypatch.undo()
    assert not storage.exists(hashlib.sha256(data).hexdigest())
    assert bob.get(f"/v1/jobs/{job['pk']}").json["outputs"] == []
    assert [event.transition for event in events_of(engine, job)] == ["acquire", "start"]
    assert node_state(engine, worker.node_id).last_seen > seen_before


def test_a_process_whose_first_requests_are_a_lanes_starts_its_lease_checks(on_postgresql, engine, admin, worker,
                                                                              other_worker, make_job):
    """Pyramid sends NewRequest (where a process starts its lease checks, and marks a return from an outage)
    below the tweens: the lanes answered without it, and a process serving only nodes at work checked no lease."""
    import time

    from job_helpers import silence

    lost, busy = make_job(), make_job()
    for node, job in ((other_worker, lost), (worker, busy)):
        node.get(f"/v1/jobs/{job['pk']}/acquire")
        node.post(f"/v1/jobs/{job['pk']}/start", {})
    silence(engine, other_worker.node_id, lost["pk"])
    app = make_test_app(engine, **{"ufdl.leases.check_interval": "0.1"})
    try:
        on(app, worker).post(f"/v1/jobs/{busy['pk']}/progress/0.5", {})  # the process's first request
        deadline = time.monotonic() + 30
        while admin.get(f"/v1/jobs/{lost['pk']}").json["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        app.registry["ufdl.lease_watch"].stop()
    assert admin.get(f"/v1/jobs/{lost['pk']}").json["status"] == "PENDING"
