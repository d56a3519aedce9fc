"""``GET /v1/health``: what a load balancer or a service manager asks before it sends traffic."""
import webtest

from ufdl_pyramid.models import get_engine
from ufdl_pyramid.services import schema
from ufdl_pyramid.testing import make_test_app


def test_a_server_that_can_serve_answers_200_to_anyone(testapp, alice):
    assert testapp.get("/v1/health", status=200).json == {"status": "ok"}  # no token needed
    assert alice.get("/v1/health", status=200).json == {"status": "ok"}
    testapp.head("/v1/health", status=200)
    assert testapp.post("/v1/health", status=405).headers["Allow"] == "GET, HEAD"


def test_a_database_that_cannot_be_reached_is_503(bob, proxy, through_proxy):
    app = through_proxy(bob).app
    app.get("/v1/health", status=200)
    proxy.cut()
    down = app.get("/v1/health", status=503)
    assert down.json == {"detail": "The database is unavailable; try again shortly."}
    assert down.headers["Retry-After"] == "5"
    proxy.restore()
    app.get("/v1/health", status=200)


def test_a_schema_behind_the_code_is_503(tmp_path):
    """Without Retry-After: an operator's upgrade ends it, not a wait (unlike an unreachable database or output
    storage, whose 503 says when to try again)."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/behind.sqlite"})
    try:
        schema.upgrade(engine, "0005")
        app = webtest.TestApp(make_test_app(engine))
        refused = app.get("/v1/health", status=503)
        assert refused.json == {
            "detail": "The database schema is not current: run 'ufdl db upgrade', then restart the server."}
        assert "Retry-After" not in refused.headers
    finally:
        engine.dispose()


def test_a_request_on_a_database_without_the_schema_is_503_not_500(tmp_path, caplog):
    """A server started before 'ufdl db upgrade' answered every request 500 with a traceback in its log."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/empty.sqlite"})
    try:
        app = webtest.TestApp(make_test_app(engine))
        refused = app.post_json("/v1/auth/obtain", {"username": "admin", "password": "password123"}, status=503)
        assert refused.json == {
            "detail": "The database schema is not current: run 'ufdl db upgrade', then restart the server."}
        assert "Retry-After" not in refused.headers
        assert "Traceback" not in caplog.text and "database schema not current on POST" in caplog.text
    finally:
        engine.dispose()


def test_a_node_id_header_changes_nothing_about_the_health_check(engine, testapp, alice, bob, worker):
    """A liveness probe, not a node's call: a client that sends its Node-Id on every request (the UFDL client
    does once it has a node) was refused 403 for another user's node and 400 for a malformed header, and marked
    its node seen, which could keep the lease of a node whose worker had died while a probe still ran."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from ufdl_pyramid.models import Node
    from ufdl_pyramid.models.meta import utcnow

    def last_seen():
        with engine.connect() as connection:
            return connection.scalar(select(Node.last_seen).where(Node.id == worker.node_id))

    with engine.begin() as connection:
        connection.execute(update(Node).where(Node.id == worker.node_id).values(
            last_seen=utcnow() - timedelta(hours=1)))
    before = last_seen()
    for header in (str(worker.node_id), "2147483647", "not a node"):
        for client in (worker, bob, alice, testapp):  # its owner, another user, a user without it, no token
            answer = client.get("/v1/health", headers={"Node-Id": header}, status=200)
            assert answer.json == {"status": "ok"}
    assert bob.as_node(worker.node_id).get("/v1/health", status=200).json == {"status": "ok"}
    assert last_seen() == before
    worker.get("/v1/nodes/ping")  # where any other call marks it seen
    assert last_seen() > before
