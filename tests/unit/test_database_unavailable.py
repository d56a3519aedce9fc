"""Which database errors are the database being unavailable (503, try again) rather than a bug (500)."""
import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ufdl_pyramid.models import database_unavailable


def wrapped(cls, original, invalidated=False):
    return cls("SELECT 1", {}, original, connection_invalidated=invalidated)


@pytest.mark.parametrize("error", [
    wrapped(OperationalError, psycopg.OperationalError("connection failed: Connection refused")),
    wrapped(OperationalError, psycopg.errors.lookup("57P01")("terminating connection due to administrator command")),
    wrapped(OperationalError, psycopg.errors.lookup("53300")("sorry, too many clients already")),
    wrapped(OperationalError, psycopg.errors.lookup("08006")("connection failure")),
    wrapped(OperationalError, psycopg.OperationalError("consuming input failed"), invalidated=True),
    # The server ended the session for a reason of its own (SQLSTATE 25P03); SQLAlchemy saw the connection closed.
    wrapped(OperationalError, psycopg.errors.lookup("25P03")("terminating connection due to idle-in-transaction "
                                                             "timeout"), invalidated=True),
    wrapped(InterfaceError, psycopg.InterfaceError("the connection is closed"), invalidated=True),
    wrapped(OperationalError, sqlite3.OperationalError("database is locked")),
    PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
], ids=["refused", "admin shutdown", "too many clients", "connection failure", "dropped", "idle timeout",
        "closed", "sqlite locked", "pool exhausted", "psycopg's own"])
def test_unavailable(error):
    assert database_unavailable(error)


@pytest.mark.parametrize("error", [
    wrapped(ProgrammingError, psycopg.errors.lookup("42P01")('relation "jobs" does not exist')),
    wrapped(IntegrityError, psycopg.errors.lookup("23505")("duplicate key value")),
    wrapped(OperationalError, psycopg.errors.lookup("22012")("division by zero")),
    wrapped(OperationalError, sqlite3.OperationalError("no such table: jobs")),
    ValueError("not a database error"),
    psycopg.errors.lookup("40P01")("deadlock detected"),
    # psycopg's own complaint about a statement (no SQLSTATE, the server never saw it): a bug, not an outage.
    wrapped(ProgrammingError, psycopg.ProgrammingError("the query has 1 placeholder but 0 parameters were passed")),
], ids=["missing table", "duplicate", "data error", "sqlite missing table", "other", "psycopg deadlock",
        "psycopg misuse"])
def test_not_unavailable(error):
    assert not database_unavailable(error)


def test_a_full_sqlite_database_is_unavailable_not_a_bug():
    """A real SQLITE_FULL (a page limit stands in for the disk): PostgreSQL's full disk (53100) is 503 too."""
    connection = sqlite3.connect(":memory:")
    connection.execute("PRAGMA max_page_count = 8")
    connection.execute("CREATE TABLE t (x)")
    with pytest.raises(sqlite3.OperationalError) as raised:
        connection.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert database_unavailable(wrapped(OperationalError, raised.value))
    assert database_unavailable(wrapped(OperationalError, psycopg.errors.lookup("53100")("could not extend file")))


def test_a_database_host_that_never_answers_fails_a_connection_after_the_timeout():
    """libpq waits for ever by default: every request thread would hang on such a host."""
    import socket
    import threading

    from ufdl_pyramid.models import get_engine

    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes connections (backlog), never answers
        port = silent.getsockname()[1]
        engine = get_engine({"sqlalchemy.url": f"postgresql+psycopg://nobody@127.0.0.1:{port}/none",
                             "ufdl.db.connect_timeout": 2})
        failed = []

        def connect():
            try:
                engine.connect().close()
            except Exception as error:
                failed.append(error)

        attempt = threading.Thread(target=connect, daemon=True)
        attempt.start()
        attempt.join(60)  # for ever without the timeout; 2 s with it
        assert not attempt.is_alive(), "still connecting"
        assert database_unavailable(failed[0])
        engine.dispose()


def test_the_connect_timeout_setting_reaches_the_driver(engine):
    from ufdl_pyramid.models import get_engine

    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL setting")
    timed = get_engine({"sqlalchemy.url": engine.url.render_as_string(hide_password=False),
                        "ufdl.db.connect_timeout": 7})
    try:
        with timed.connect() as connection:
            assert connection.connection.driver_connection.info.get_parameters()["connect_timeout"] == "7"
    finally:
        timed.dispose()
