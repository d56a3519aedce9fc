"""Notifications (issue 4): per transition, server defaults and per-job overrides, sent after the commit by a
thread of their own."""
import json
import threading
import time

import pytest
import transaction
import webtest

from ufdl_pyramid.models import Job, get_session_factory, get_tm_session
from ufdl_pyramid.plugins import hookimpl
from ufdl_pyramid.services import notifications
from ufdl_pyramid.services.events import record_event
from ufdl_pyramid.services.notifications import Notifier, Outbox, PreparedNotification, actions_for, render
from ufdl_pyramid.testing import ApiClient, make_test_app, notifications_sent
from job_helpers import CONSUME, ECHO, PIPELINE, PRODUCE

DEFAULTS = {
    "on_acquire": [{"type": "print", "message": "acquired {pk} by node {node} ({template}) {nope}"}],
    "on_start": [{"type": "print", "message": "started {pk}"}, {"type": "websocket"}],
    "on_finish": [{"type": "print", "message": "finished {pk}: {status} {progress}"}, {"type": "pigeon"}],
    "on_error": [{"type": "email", "message": "job {pk} failed: {error}", "subject": "Job {pk}: {transition}"}],
}


class FakeSMTP:
    """Stands in for smtplib.SMTP: records what would have been sent."""

    sent: list = []
    fail = False

    def __init__(self, host, port, timeout=None):
        self.calls = [("connect", host, port)]
        if FakeSMTP.fail:
            raise ConnectionRefusedError("no SMTP server here")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def starttls(self):
        self.calls.append(("starttls",))

    def login(self, user, password):
        self.calls.append(("login", user, password))

    def send_message(self, message):
        FakeSMTP.sent.append((message, self.calls))


class Pigeons:
    """A plugin adding the notifier kind ``pigeon``."""

    __name__ = "pigeons"

    def __init__(self):
        self.flown = []
        self.broken = False
        self.raises = RuntimeError  # what a broken pigeon raises
        self.cleared = threading.Event()  # a pigeon waits for this before it flies
        self.cleared.set()

    @hookimpl
    def ufdl_register_notifiers(self):
        return {"pigeon": self.fly}

    def fly(self, message, job, notification):
        self.cleared.wait(10)
        if self.broken:
            raise self.raises("the pigeon got lost")
        self.flown.append((message, job["pk"], job["status"], notification))


@pytest.fixture
def smtp(monkeypatch):
    FakeSMTP.sent, FakeSMTP.fail = [], False
    monkeypatch.setattr(notifications.smtplib, "SMTP", FakeSMTP)
    return FakeSMTP


@pytest.fixture
def pigeons():
    return Pigeons()


@pytest.fixture
def app(engine, pigeons, smtp):
    return make_test_app(engine, extra_plugins=[pigeons], **{
        "ufdl.notifications.defaults": json.dumps(DEFAULTS), "ufdl.smtp.host": "mail.example",
        "ufdl.smtp.port": "2525", "ufdl.smtp.from": "jobs@example", "ufdl.smtp.user": "mailer",
        "ufdl.smtp.password": "s3cret", "ufdl.smtp.starttls": "true"})


def on(app, client: ApiClient) -> ApiClient:
    return ApiClient(webtest.TestApp(app), client.token, client.refresh_token, client.node_id, client.user_id)


@pytest.fixture
def clients(app, admin, alice, bob, engine):
    from sqlalchemy import text
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET email = 'bob@example' WHERE id = :id"), {"id": bob.user_id})
    a = on(app, admin)
    template = a.post("/v1/job-templates/import", ECHO, status=201).json
    node = on(app, alice).post("/v1/nodes/create", {"ip": "10.0.0.1", "index": 0}, status=201).json["pk"]
    return {"admin": a, "bob": on(app, bob), "worker": on(app, alice).as_node(node), "template": template,
            "node": node}


def create(clients, **body):
    return clients["bob"].post(f"/v1/job-templates/{clients['template']['pk']}/create-job",
                               {"input_values": {"input": {"value": "x", "type": "str"}}, **body}, status=201).json


@pytest.fixture
def printed(app, capsys):
    """What the notifications printed since the last call, once the notification thread has sent them."""
    def printed() -> list[str]:
        notifications_sent(app)
        return [line for line in capsys.readouterr().out.splitlines() if line]
    return printed


def test_defaults_are_sent_after_each_transition(clients, printed, pigeons):
    job = create(clients)
    worker, pk = clients["worker"], job["pk"]
    printed()
    worker.get(f"/v1/jobs/{pk}/acquire")
    assert printed() == [f"acquired {pk} by node {clients['node']} (echo v1) {{nope}}"]
    worker.post(f"/v1/jobs/{pk}/start", {})
    assert printed() == [f"started {pk}"]
    worker.post(f"/v1/jobs/{pk}/progress/0.5", {})
    assert printed() == []  # no on_progress
    worker.post(f"/v1/jobs/{pk}/finish", {})
    assert printed() == [f"finished {pk}: COMPLETED 1.0"]
    assert [(pk, "COMPLETED")] == [(flown[1], flown[2]) for flown in pigeons.flown]
    assert pigeons.flown[0][3] == {"type": "pigeon"}


def fail(worker, pk: int, error: str) -> None:
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    worker.post(f"/v1/jobs/{pk}/finish", {"error": error})


def test_an_error_mails_the_creator(app, clients, smtp):
    job = create(clients)
    pk = job["pk"]
    fail(clients["worker"], pk, "out of memory")
    notifications_sent(app)
    [(message, calls)] = smtp.sent
    assert message["To"] == "bob@example" and message["From"] == "jobs@example"
    assert message["Subject"] == f"Job {pk}: error"
    assert message.get_content().strip() == f"job {pk} failed: out of memory"
    assert calls == [("connect", "mail.example", 2525), ("starttls",), ("login", "mailer", "s3cret")]


def test_each_email_goes_to_its_own_address_or_else_to_the_creator(app, clients, smtp):
    """Of two e-mails of one transition, the one naming no 'to' goes to the creator, the other to its 'to';
    without a message or subject of its own, an e-mail takes the default ones."""
    job = create(clients, notification_override={"actions": {
        "on_error": [{"type": "email", "to": "ops@example"}, {"type": "email", "message": "{error}"}]}})
    pk = job["pk"]
    fail(clients["worker"], pk, "out of memory")
    notifications_sent(app)
    assert [message["To"] for message, _ in smtp.sent] == ["ops@example", "bob@example"]
    assert [message["Subject"] for message, _ in smtp.sent] == [f"UFDL job {pk}: error"] * 2
    assert [message.get_content().strip() for message, _ in smtp.sent] == [
        f"Job {pk} (echo v1): error, status FAILED, progress 0.0", "out of memory"]


def test_without_smtp_settings_an_email_goes_to_localhost_without_tls_or_login(engine, smtp, admin, alice, bob):
    app = make_test_app(engine, **{"ufdl.notifications.defaults": json.dumps(
        {"on_start": [{"type": "email", "to": "ops@example"}]})})
    template = on(app, admin).post("/v1/job-templates/import", ECHO, status=201).json
    node = on(app, alice).post("/v1/nodes/create", {"ip": "10.0.0.1", "index": 0}, status=201).json["pk"]
    worker = on(app, alice).as_node(node)
    pk = on(app, bob).post(f"/v1/job-templates/{template['pk']}/create-job",
                           {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    notifications_sent(app)
    [(message, calls)] = smtp.sent
    assert message["From"] == "ufdl@localhost" and message["To"] == "ops@example"
    assert calls == [("connect", "localhost", 25)]


def test_an_email_with_no_recipient_is_not_sent_but_logged(app, clients, smtp, caplog):
    # The admin who creates this job has no e-mail address, and the default on_error action names no 'to'.
    job = clients["admin"].post(f"/v1/job-templates/{clients['template']['pk']}/create-job",
                                {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json
    fail(clients["worker"], job["pk"], "out of memory")
    notifications_sent(app)
    assert smtp.sent == []
    assert f"email notification for job {job['pk']} has no recipient" in caplog.text


def test_an_override_replaces_the_defaults(clients, printed, smtp):
    job = create(clients, notification_override={"actions": {
        "on_start": [{"type": "print", "message": "mine {pk}"}],
        "on_error": [{"type": "email", "to": "ops@example", "message": "{error}"}]}})
    worker, pk = clients["worker"], job["pk"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    worker.post(f"/v1/jobs/{pk}/finish", {"error": "boom"})
    assert printed() == [f"mine {pk}"]  # the default on_acquire print is gone
    assert [message["To"] for message, _ in smtp.sent] == ["ops@example"]


def test_an_empty_override_is_no_override(clients, printed):
    """Neither actions nor keep_default: the defaults are sent, as with no override at all."""
    pk = create(clients, notification_override={})["pk"]
    printed()
    clients["worker"].get(f"/v1/jobs/{pk}/acquire")
    assert printed() == [f"acquired {pk} by node {clients['node']} (echo v1) {{nope}}"]


def test_keep_default_adds_to_the_defaults(clients, printed):
    job = create(clients, notification_override={"keep_default": True, "actions": {
        "on_start": [{"type": "print", "message": "also {pk} on {node}"}]}})
    worker, pk = clients["worker"], job["pk"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    lines = printed()
    assert lines[-2:] == [f"started {pk}", f"also {pk} on {clients['node']}"]
    assert lines[0].startswith(f"acquired {pk}")


def test_node_names_the_node_a_job_left_on_release_and_abort(clients, printed):
    job = create(clients, notification_override={"actions": {
        "on_release": [{"type": "print", "message": "{pk} released by {node}"}],
        "on_abort": [{"type": "print", "message": "{pk} taken from {node}"}]}})
    worker, admin, pk, node = clients["worker"], clients["admin"], job["pk"], clients["node"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    assert worker.delete(f"/v1/jobs/{pk}/release").json["node"] is None
    assert printed() == [f"{pk} released by {node}"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    assert admin.delete(f"/v1/jobs/{pk}/abort").json["node"] is None
    assert printed() == [f"{pk} taken from {node}"]


def test_progress_reset_and_cancel_send_theirs(clients, printed):
    message = "{transition} {pk}: {status} {progress} ({description})"
    job = create(clients, description="mine", notification_override={"actions": {
        f"on_{transition}": [{"type": "print", "message": message}] for transition in ("progress", "reset", "cancel")}})
    worker, pk = clients["worker"], job["pk"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    worker.post(f"/v1/jobs/{pk}/progress/0.5", {})
    worker.post(f"/v1/jobs/{pk}/finish", {"error": "boom"})
    worker.delete(f"/v1/jobs/{pk}/reset")
    clients["bob"].delete(f"/v1/jobs/{pk}/cancel")
    assert printed() == [f"progress {pk}: RUNNING 0.5 (mine)", f"reset {pk}: QUEUED 0.0 (mine)",
                         f"cancel {pk}: CANCELED 0.0 (mine)"]


def test_a_failing_notification_never_fails_the_request(app, clients, smtp, pigeons, caplog):
    smtp.fail = True
    pigeons.broken = True
    job = create(clients)
    worker, pk = clients["worker"], job["pk"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    assert worker.post(f"/v1/jobs/{pk}/finish", {}).json["status"] == "COMPLETED"
    notifications_sent(app)
    failures = [record.getMessage() for record in caplog.records if record.name == notifications.__name__]
    assert any("pigeon notification" in failure for failure in failures)
    job = create(clients)
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    worker.post(f"/v1/jobs/{job['pk']}/start", {})
    assert worker.post(f"/v1/jobs/{job['pk']}/finish", {"error": "x"}).json["status"] == "FAILED"
    notifications_sent(app)
    assert any("email notification" in record.getMessage() for record in caplog.records)


def test_a_notifier_that_raises_system_exit_stops_no_later_notification(app, clients, pigeons, printed, caplog):
    """A plugin's notifier that calls sys.exit() (or raises any BaseException) is logged like any failure: it
    ended the thread that sends them, and every later notification of the process waited for ever."""
    pigeons.broken, pigeons.raises = True, SystemExit
    job = create(clients)
    worker, pk = clients["worker"], job["pk"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    worker.post(f"/v1/jobs/{pk}/finish", {})
    again = create(clients)["pk"]
    worker.get(f"/v1/jobs/{again}/acquire")
    assert printed() == [f"acquired {pk} by node {clients['node']} (echo v1) {{nope}}", f"started {pk}",
                         f"finished {pk}: COMPLETED 1.0",
                         f"acquired {again} by node {clients['node']} (echo v1) {{nope}}"]
    assert any(record.getMessage() == f"pigeon notification for job {pk} failed" for record in caplog.records)


def test_a_slow_notification_never_holds_the_request(app, clients, pigeons, printed):
    job = create(clients)
    worker, pk = clients["worker"], job["pk"]
    worker.get(f"/v1/jobs/{pk}/acquire")
    worker.post(f"/v1/jobs/{pk}/start", {})
    printed()
    pigeons.cleared.clear()  # the pigeon of on_finish waits until the test clears it
    assert worker.post(f"/v1/jobs/{pk}/finish", {}).json["status"] == "COMPLETED"
    again = create(clients)["pk"]
    worker.get(f"/v1/jobs/{again}/acquire")
    assert pigeons.flown == []  # answered while the pigeon still waits
    pigeons.cleared.set()
    # Sent in the order committed: the finish's print, its pigeon, then the second job's acquire.
    assert printed() == [f"finished {pk}: COMPLETED 1.0",
                         f"acquired {again} by node {clients['node']} (echo v1) {{nope}}"]
    assert [flown[1] for flown in pigeons.flown] == [pk]


def prepared(pk: int) -> PreparedNotification:
    return PreparedNotification({"type": "print"}, f"job {pk}", "", None, {"pk": pk})


def test_the_outbox_drops_what_exceeds_its_capacity(caplog):
    sent, cleared = [], threading.Event()
    outbox = Outbox(lambda notification: cleared.wait(10) and sent.append(notification.job["pk"]), capacity=2)
    outbox.put([prepared(1)])  # taken by the thread, which then waits
    deadline = time.monotonic() + 10
    while outbox._waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    outbox.put([prepared(2), prepared(3), prepared(4)])
    assert not outbox.drain(0.05)
    assert any("print notification for job 4 dropped" in record.getMessage() for record in caplog.records)
    cleared.set()
    assert outbox.drain(10)
    assert sent == [1, 2, 3]


def test_nothing_is_sent_for_a_rolled_back_transaction(engine, clients, capsys):
    pk = create(clients)["pk"]
    notifier = Notifier(defaults={"on_start": [{"type": "print", "message": "started {pk} ({status})"}]})
    factory = get_session_factory(engine)
    notifier.install(factory)
    capsys.readouterr()

    def printed():
        assert notifier.outbox.drain(10)
        return [line for line in capsys.readouterr().out.splitlines() if line]

    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    db = get_tm_session(factory, manager)
    record_event(db, db.get(Job, pk), "start")
    manager.abort()
    assert printed() == []
    with manager:
        db = get_tm_session(factory, manager)
        job = db.get(Job, pk)
        job.status = "RUNNING"
        record_event(db, job, "start")
        assert printed() == []  # not before the commit
    assert printed() == [f"started {pk} (RUNNING)"]


@pytest.mark.parametrize("template, expected", [
    ("job {pk} {status}", "job 7 RUNNING"),
    ("{unknown} {pk}", "{unknown} 7"),
    ("{pk.__class__} {pk[0]}", "{pk.__class__} {pk[0]}"),
    ("{0} {}", "{0} {}"),
    ("{pk:>5}", "    7"),
    ("{pk:%%%}", "{pk:%%%}"),
    # A width that would build a huge string, and conversions, stay as written.
    ("{pk:>200000000}{pk:0>1001}", "{pk:>200000000}{pk:0>1001}"),
    ("{pk:0>1000}", "0" * 999 + "7"),  # the widest allowed
    ("{pk!r} {pk:{status}}", "{pk!r} {pk:{status}}"),
    ("unbalanced {", "unbalanced {"),
    ("{error}", "None"),
])
def test_render_never_raises(template, expected):
    assert render(template, {"pk": 7, "status": "RUNNING", "error": None}) == expected


def test_a_rendered_message_is_bounded():
    assert len(render("{description}" * 800, {"description": "x" * 100_000})) == notifications.MAX_RENDERED


def test_a_width_or_precision_written_in_other_digits_is_bounded_too(clients, printed):
    """format() reads any script's decimal digits as a width or a precision: '{pk:>٩٩٩٩٩٩٩}' (Arabic-Indic
    digits) built a string of 9,999,999 characters in the committing request (nine digits: a gigabyte), past the
    check of ASCII digits. Now it stays as written, as '{pk:>9999999}' does; one within the limit still applies."""
    wide, precise, fine = "{pk:>٩٩٩٩٩٩٩}", "{progress:.１２３４５６７f}", "{pk:٠>٥}"
    job = create(clients, notification_override={"actions": {
        "on_acquire": [{"type": "print", "message": f"{wide}|{precise}|{fine}"}]}})
    printed()
    clients["worker"].get(f"/v1/jobs/{job['pk']}/acquire")
    assert printed() == [f"{wide}|{precise}|" + "٠" * (5 - len(str(job["pk"]))) + str(job["pk"])]


def test_a_width_of_thousands_of_digits_stays_as_written_and_the_other_notifications_go(clients, printed):
    """int() refuses more than 4,300 digits: such a width made the rendering raise, and every notification of
    the transaction, the server's defaults kept beside it included, was dropped (logged only)."""
    huge = "{pk:>" + "9" * 5000 + "}"
    job = create(clients, notification_override={"keep_default": True, "actions": {
        "on_acquire": [{"type": "print", "message": huge}]}})
    printed()
    clients["worker"].get(f"/v1/jobs/{job['pk']}/acquire")
    assert printed() == [f"acquired {job['pk']} by node {clients['node']} (echo v1) {{nope}}", huge]


def test_a_format_that_overflows_for_the_value_stays_as_written(clients, printed, engine):
    """'{pk:c}' is a character for a pk up to 0x10FFFF; past it format() raises OverflowError, which the
    rendering let through: every notification of the transaction was dropped, the defaults kept beside it too."""
    from sqlalchemy import text

    job = create(clients, notification_override={"keep_default": True, "actions": {
        "on_acquire": [{"type": "print", "message": "{pk:c}"}]}})
    pk = 0x110000
    with engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET id = :new WHERE id = :old"), {"new": pk, "old": job["pk"]})
    printed()
    clients["worker"].get(f"/v1/jobs/{pk}/acquire")
    assert printed() == [f"acquired {pk} by node {clients['node']} (echo v1) {{nope}}", "{pk:c}"]


def test_a_multiline_error_in_the_subject_still_mails(app, clients, smtp):
    job = create(clients, notification_override={"actions": {
        "on_error": [{"type": "email", "to": "ops@example", "subject": "Job {pk} failed: {error}"}]}})
    pk = job["pk"]
    fail(clients["worker"], pk, "Traceback:\n  File x\nValueError: y")
    notifications_sent(app)
    [(message, _)] = smtp.sent
    assert message["Subject"] == f"Job {pk} failed: Traceback:   File x ValueError: y"


@pytest.mark.parametrize("action, wanted", [
    ({"type": "email", "to": "a@example.com\r\nBcc: evil@example.com"}, "one e-mail address"),
    ({"type": "email", "to": "a@example.com, b@example.com"}, "one e-mail address"),
    ({"type": "email", "to": "not an address"}, "one e-mail address"),
    ({"type": "email", "to": "a@example.com\n"}, "one e-mail address"),
    ({"type": "email", "subject": "hi\r\nBcc: evil@example.com"}, "one line"),
])
def test_headers_that_would_break_an_email_are_400(clients, action, wanted):
    body = {"input_values": {"input": {"value": "x", "type": "str"}},
            "notification_override": {"actions": {"on_start": [action]}}}
    refused = clients["bob"].post(f"/v1/job-templates/{clients['template']['pk']}/create-job", body, status=400)
    # Said in words: it quoted the regular expression the value failed.
    field, value = next((key, value) for key, value in action.items() if key != "type")
    assert refused.json == {"detail": f"notification_override.actions.on_start[0].{field}: {value!r} must be {wanted}"}


def test_at_most_20_notifications_per_transition(clients):
    for count, status in ((20, 201), (21, 400)):
        body = {"input_values": {"input": {"value": "x", "type": "str"}},
                "notification_override": {"actions": {"on_start": [{"type": "websocket"}] * count}}}
        clients["bob"].post(f"/v1/job-templates/{clients['template']['pk']}/create-job", body, status=status)


def test_child_overrides_must_name_a_child(clients):
    body = {"input_values": {"input": {"value": "x", "type": "str"}},
            "child_notification_overrides": {"first": {"keep_default": True}}}
    refused = clients["bob"].post(f"/v1/job-templates/{clients['template']['pk']}/create-job", body, status=400)
    assert "only a meta-job" in refused.json["detail"]


def test_a_childs_override_by_graph_node_wins_over_one_by_template_name(clients, printed):
    admin, worker = clients["admin"], clients["worker"]
    for template in (PRODUCE, CONSUME):
        admin.post("/v1/job-templates/import", template, status=201)
    pipeline = admin.post("/v1/job-templates/import", PIPELINE, status=201).json

    def acquired(message):
        return {"actions": {"on_acquire": [{"type": "print", "message": message}]}}

    parent = clients["bob"].post(f"/v1/job-templates/{pipeline['pk']}/create-job", {
        "input_values": {"first:input": {"value": "x", "type": "str"}},
        "child_notification_overrides": {"first": acquired("first by its node {pk}"),
                                         "produce": acquired("first by its template {pk}"),
                                         "consume": acquired("second by its template {pk}")}}).json
    body = {"expressions": [{"type": "exact", "field": "parent", "value": parent["pk"]}]}
    [first] = clients["bob"].post("/v1/jobs/list", body).json
    printed()
    worker.get(f"/v1/jobs/{first['pk']}/acquire")
    assert printed() == [f"first by its node {first['pk']}"]
    worker.post(f"/v1/jobs/{first['pk']}/start", {})
    worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/output/BLOB", body=b"x",
                   content_type="application/data", status=201)
    worker.post(f"/v1/jobs/{first['pk']}/finish", {})
    second = next(job for job in clients["bob"].post("/v1/jobs/list", body).json if job["pk"] != first["pk"])
    printed()
    worker.get(f"/v1/jobs/{second['pk']}/acquire")
    assert printed() == [f"second by its template {second['pk']}"]


def test_bad_server_defaults_stop_the_start(engine):
    from ufdl_pyramid.settings import SettingsError

    for defaults in ({"on_finsh": []}, {"on_start": [{"type": "print"}, "oops"]}, {"on_start": {"type": "print"}}):
        with pytest.raises(SettingsError, match="ufdl.notifications.defaults"):
            make_test_app(engine, **{"ufdl.notifications.defaults": json.dumps(defaults)})


def test_actions_for():
    defaults = {"on_start": [{"type": "print"}]}
    own = {"actions": {"on_start": [{"type": "email"}]}}
    assert actions_for(defaults, None, "start") == [{"type": "print"}]
    assert actions_for(defaults, own, "start") == [{"type": "email"}]
    assert actions_for(defaults, {**own, "keep_default": True}, "start") == [{"type": "print"}, {"type": "email"}]
    assert actions_for(defaults, own, "finish") == []


def test_a_jobs_notifications_keep_the_order_of_its_commits_whichever_thread_queues_first(engine, admin, alice,
                                                                                           capsys):
    """A node's failing finish commits, and its thread is held up before it queues the notification; an admin's
    abort of the job commits meanwhile. The finish's notification still goes first: its place in the queue was
    taken before its commit (before, each was queued after its commit, and the abort's went first)."""
    from sqlalchemy import event

    from ufdl_pyramid.services.events import NEW_EVENTS
    from job_helpers import register

    app = make_test_app(engine, **{"ufdl.notifications.defaults": json.dumps({
        "on_error": [{"type": "print", "message": "job {pk}: error"}],
        "on_abort": [{"type": "print", "message": "job {pk}: abort"}]})})
    held, go = threading.Event(), threading.Event()

    def hold_up(session):  # the finish's thread, between its COMMIT and its own after-commit work
        if any(event.transition == "error" for event in session.info.get(NEW_EVENTS) or ()) and not held.is_set():
            held.set()
            assert go.wait(60)

    event.listen(app.registry["db.session_factory"], "after_commit", hold_up, insert=True)
    admin, alice = on(app, admin), on(app, alice)
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json["pk"]
    pk = alice.post(f"/v1/job-templates/{template}/create-job",
                    {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    node = register(alice)
    node.get(f"/v1/jobs/{pk}/acquire")
    node.post(f"/v1/jobs/{pk}/start", {})
    finishing = threading.Thread(target=lambda: node.post(f"/v1/jobs/{pk}/finish", {"error": "boom"}))
    finishing.start()
    try:
        assert held.wait(60)
        admin.delete(f"/v1/jobs/{pk}/abort", status=200)
    finally:
        go.set()
    finishing.join(60)
    notifications_sent(app)
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("job ")] == [
        f"job {pk}: error", f"job {pk}: abort"]


def test_a_transaction_that_does_not_commit_holds_up_no_notification(engine, clients, capsys):
    """Its place in the queue, taken before the commit, is given up however the transaction ends."""
    from sqlalchemy import event

    pk = create(clients)["pk"]
    notifier = Notifier(defaults={"on_start": [{"type": "print", "message": "started {pk}"}]})
    factory = get_session_factory(engine)
    notifier.install(factory)
    capsys.readouterr()

    def failing_flush(session, _context, _instances):
        raise RuntimeError("the flush in the commit fails")

    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    db = get_tm_session(factory, manager)
    record_event(db, db.get(Job, pk), "start")
    db.get(Job, pk).description = "changed"  # a flush to fail, after before_commit took its place
    event.listen(db, "before_flush", failing_flush)
    with pytest.raises(RuntimeError):
        manager.commit()
    manager.abort()
    manager.begin()
    db = get_tm_session(factory, manager)
    record_event(db, db.get(Job, pk), "start")
    manager.commit()
    assert notifier.outbox.drain(10)
    assert [line for line in capsys.readouterr().out.splitlines() if line] == [f"started {pk}"]
