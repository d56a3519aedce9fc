"""Alembic environment: run by ``ufdl db upgrade`` (and the tests) with the engine in ``config.attributes``."""
from alembic import context
from sqlalchemy import text

from ufdl_pyramid.errors import Conflict
from ufdl_pyramid.models import Base

# Any number, the same in every process: two servers upgrading at once wait for each other.
ADVISORY_LOCK_ID = 0x75_66_64_6C


def sqlite_foreign_keys(connection, on: bool) -> None:
    """Switch SQLite's foreign keys on the connection's own DB-API connection: the pragma does nothing inside a
    transaction, and a statement through SQLAlchemy would begin one."""
    connection.connection.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def check_sqlite_foreign_keys(connection) -> None:
    """Refuse to commit a migration that left a row pointing at no row (checked while foreign keys were off)."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        found = ", ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in broken[:10])
        more = f" and {len(broken) - 10} more" if len(broken) > 10 else ""
        # A ServiceError: ``ufdl db upgrade`` says it on one line.
        raise Conflict(f"migration rolled back: rows point at no row: {found}{more}")


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table (copy it, DROP the old one, rename the copy): with foreign keys
            # on, the DROP deletes or nulls every row pointing at the old one (a job's events, outputs, steps).
            sqlite_foreign_keys(connection, on=False)
            # BEGIN IMMEDIATE: a second upgrade at once waits for the first (the busy timeout), then finds the
            # schema current. With a deferred BEGIN both read the version, and one failed "database is locked".
            connection.execution_options(sqlite_immediate=True)
        try:
            # One transaction for the whole upgrade on SQLite too (alembic commits each migration on its own
            # there by default): the foreign key check below can still undo all of it.
            context.configure(connection=connection, target_metadata=Base.metadata,
                              render_as_batch=sqlite, compare_type=True, transactional_ddl=True)
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
                context.run_migrations()
                if sqlite:
                    check_sqlite_foreign_keys(connection)
        finally:
            if sqlite:  # the connection goes back to the pool, where every other one has them on
                if connection.in_transaction():  # an autobegun one would swallow the pragma
                    connection.rollback()
                sqlite_foreign_keys(connection, on=True)


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run 'ufdl db upgrade' against a database")
run_migrations_online()
