"""lost leases: a job counts the leases it lost, not its starts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

``ufdl.max_tries`` is the number of lost leases after which a job fails. The column counted starts, so a job
lost while QUEUED never counted, and a job reset after an error counted its own retry. Counts restart at 0.
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


# recreate='never': SQLite renames the column in place (ALTER TABLE ... RENAME COLUMN, SQLite 3.25+). Rebuilding
# the table would drop the old one, and with foreign keys on that deletes every row pointing at a job (its
# outputs, its events, a meta-job's steps).
def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        batch_op.alter_column('tries', new_column_name='lost_leases')
    op.execute("UPDATE jobs SET lost_leases = 0")


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None, recreate='never') as batch_op:
        batch_op.alter_column('lost_leases', new_column_name='tries')
