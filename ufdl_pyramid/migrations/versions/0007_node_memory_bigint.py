"""node memory in bytes: gpu_mem and cpu_mem are 64-bit

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

The job launcher registers a node with its memory in bytes (psutil's total), more than a 32-bit column holds
on any machine with 2 GiB or more. SQLite's INTEGER holds 64 bits already, and rebuilding the nodes table to
rename its type would (foreign keys on) set every job's node to null: only PostgreSQL's columns change.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_COLUMNS = ('gpu_mem', 'cpu_mem')


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for column in _COLUMNS:
        op.alter_column('nodes', column, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    # A value past 32 bits cannot go back: it is dropped (null, as for a node that did not say) rather than
    # failing the downgrade.
    for column in _COLUMNS:
        op.execute(f"UPDATE nodes SET {column} = NULL WHERE {column} > 2147483647")
        op.alter_column('nodes', column, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True)
