"""ids are never reused on SQLite: AUTOINCREMENT on every table with a generated id

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Without AUTOINCREMENT SQLite hands out max(id) + 1: once the newest row was deleted for good, the next one took
its id, and a client holding it (``ufdl jobs watch``, a watcher resuming ``after=``, a script) followed or acted
on the new row. PostgreSQL's sequences never go back, and its tables do not change. Every table whose id is
generated is rebuilt, not only those clients see first: an id that names one row and never another is the rule
everywhere, as on PostgreSQL (job_events has been AUTOINCREMENT since 0004; lease_clock and job_event_retention
hold one row of a fixed id; the template link tables have no id of their own).

env.py runs the migrations with SQLite's foreign keys off, so that dropping each old table deletes nothing that
points at it, and checks them before committing. The downgrade rebuilds the tables without AUTOINCREMENT (ids
may be reused again), keeping every row as well.
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLES = ('users', 'refresh_tokens', 'nodes', 'licences', 'domains', 'frameworks', 'job_types', 'job_templates',
          'jobs', 'job_outputs', 'seed_job_types', 'seed_job_type_revisions')


def rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        # The copy keeps every row with its id; SQLite sets the table's sqlite_sequence to the highest.
        with op.batch_alter_table(table, recreate='always',
                                  table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass


def upgrade() -> None:
    rebuild(autoincrement=True)


def downgrade() -> None:
    rebuild(autoincrement=False)
