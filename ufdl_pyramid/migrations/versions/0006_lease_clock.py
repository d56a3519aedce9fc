"""lease clock: when the server came back from a stop or from losing its database

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

No lease expires until ``ufdl.node_timeout`` after the server came back: while it was away no node could
reach it, so the silence of its nodes meant nothing. Without a row, leases run as before.
"""
from alembic import op
import sqlalchemy as sa
import ufdl_pyramid.models.meta


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lease_clock',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('resumed_at', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lease_clock'))
    )


def downgrade() -> None:
    op.drop_table('lease_clock')
