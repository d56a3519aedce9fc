"""Alembic environment: run by ``ufdl db upgrade`` (and the tests) with the engine in ``config.attributes``."""
from alembic import context
from sqlalchemy import text

from ufdl_pyramid.models import Base

# Any number, the same in every process: two servers upgrading at once wait for each other.
ADVISORY_LOCK_ID = 0x75_66_64_6C


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run 'ufdl db upgrade' against a database")
run_migrations_online()
