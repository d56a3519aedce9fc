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
