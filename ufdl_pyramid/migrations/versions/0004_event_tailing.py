"""event tailing: the writing transaction's id on each event, AUTOINCREMENT ids on SQLite, the prune mark

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

``txid`` (PostgreSQL: ``pg_current_xact_id()`` of the writer) lets the progress channel tell an id that was
rolled back from one whose transaction has not committed yet. On SQLite the table is rebuilt with
AUTOINCREMENT so that ids are never reused, even after every event was pruned. ``job_event_retention`` keeps
the highest pruned id, so a client resuming ``after=`` an older id is told it missed events.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_events', schema=None, recreate='auto',
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('txid', sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == 'sqlite':
        # add_column alone does not rebuild the table: force it, so that it gets AUTOINCREMENT.
        with op.batch_alter_table('job_events', schema=None, recreate='always',
                                  table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            pass
    op.create_table('job_event_retention',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('pruned_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_event_retention'))
    )


def downgrade() -> None:
    op.drop_table('job_event_retention')
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.drop_column('txid')
