"""Which database errors are the database being unavailable (503, try again) rather than a bug (500)."""
import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
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
    wrapped(OperationalError, sqlite3.OperationalError("database is locked")),
    PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
], ids=["refused", "admin shutdown", "too many clients", "connection failure", "dropped", "sqlite locked",
        "pool exhausted", "psycopg's own"])
def test_unavailable(error):
    assert database_unavailable(error)


@pytest.mark.parametrize("error", [
    wrapped(ProgrammingError, psycopg.errors.lookup("42P01")('relation "jobs" does not exist')),
    wrapped(IntegrityError, psycopg.errors.lookup("23505")("duplicate key value")),
    wrapped(OperationalError, psycopg.errors.lookup("22012")("division by zero")),
    wrapped(OperationalError, sqlite3.OperationalError("no such table: jobs")),
    ValueError("not a database error"),
    psycopg.errors.lookup("40P01")("deadlock detected"),
], ids=["missing table", "duplicate", "data error", "sqlite missing table", "other", "psycopg deadlock"])
def test_not_unavailable(error):
    assert not database_unavailable(error)
