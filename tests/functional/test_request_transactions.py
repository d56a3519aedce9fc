"""How a request's database transaction ends: a request that succeeds commits, reader or writer; one that fails
rolls back. On PostgreSQL a ROLLBACK also makes psycopg forget the statements it prepared on the connection."""
import dataclasses

import pytest
import webtest
from sqlalchemy import event, text

from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import make_test_app


@pytest.fixture
def endings(engine):
    """The ends of the transactions on the test engine's connections, in order."""
    ended = []
    listeners = {"commit": lambda connection: ended.append("commit"),
                 "rollback": lambda connection: ended.append("rollback")}
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    yield ended
    for name, listener in listeners.items():
        event.remove(engine, name, listener)


def test_a_read_that_succeeds_commits(bob, job, endings):
    bob.get(f"/v1/jobs/{job['pk']}", status=200)
    bob.post("/v1/jobs/list", {"page": 1, "page_size": 5}, status=200)

    assert endings == ["commit", "commit"]


def test_a_request_that_fails_rolls_back(bob, job, endings):
    bob.get("/v1/jobs/999999", status=404)
    bob.patch(f"/v1/jobs/{job['pk']}", {"description": 7}, status=400)

    assert endings == ["rollback", "rollback"]
    assert bob.get(f"/v1/jobs/{job['pk']}").json["description"] == job["description"]


def test_readers_leave_the_prepared_statements_prepared(engine, on_postgresql, bob, job):
    """psycopg prepares a statement on its fifth run on a connection; readers between runs used to end with a
    ROLLBACK, after which it had forgotten both the prepared statements and its counts."""
    own = get_engine({"sqlalchemy.url": engine.url.render_as_string(hide_password=False)})
    try:
        reader = dataclasses.replace(bob, app=webtest.TestApp(make_test_app(own)))
        for _ in range(6):  # on one connection: nothing runs beside
            reader.get(f"/v1/jobs/{job['pk']}", status=200)
        with own.connect() as connection:
            prepared = connection.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
        assert prepared > 0
    finally:
        own.dispose()
