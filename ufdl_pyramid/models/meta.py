"""The declarative base, with a naming convention so that migrations name constraints the same everywhere."""
from datetime import datetime, timezone

from sqlalchemy import DateTime, MetaData, Table, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# The table option of every model whose id is generated: SQLite hands out max(id) + 1 otherwise, so the id of
# the newest row, deleted for good, went to the next one, and a client holding it acted on another row.
# PostgreSQL's sequences never go back; AUTOINCREMENT makes SQLite's ids do the same (migration 0009).
IDS_NEVER_REUSED = {"sqlite_autoincrement": True}


_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert_into(table: Table, dialect_name: str):
    """An INSERT that takes ``on_conflict_do_update`` (PostgreSQL's and SQLite's have the same form): for rows
    that several processes may write at once."""
    return _INSERTS[dialect_name](table)


class UTCDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite keeps no zone, so values read back naive; this type makes both databases answer alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        # PostgreSQL answers in the session's time zone, which need not be UTC.
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# Primary keys are INTEGER columns (32-bit on PostgreSQL): a larger number names no row, and must not reach SQL.
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
