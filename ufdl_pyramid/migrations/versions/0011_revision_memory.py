"""a revision's memory need: seed_job_type_revisions.needed_mem_mib

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

The manifest's ``mem`` resource (MiB) as a column, so that acquiring passes over the jobs a node has not the
memory for. Existing revisions get it from their manifests.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_REVISIONS = sa.table('seed_job_type_revisions', sa.column('id', sa.Integer()), sa.column('manifest', sa.JSON()),
                      sa.column('needed_mem_mib', sa.Float()))


def _memory(manifest) -> float | None:
    # As the server reads it when it makes a revision (services/seed_job_types.py ``scalar_resources``), written
    # out here: a migration must not change when that code does.
    job = manifest.get('job') if isinstance(manifest, dict) else None
    resources = job.get('resources') if isinstance(job, dict) else None
    scalars = resources.get('scalar') if isinstance(resources, dict) else None
    found = None
    for resource in scalars if isinstance(scalars, list) else ():
        if isinstance(resource, dict) and resource.get('name') == 'mem':
            value = resource.get('value')
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                found = value
    return found


def upgrade() -> None:
    op.add_column('seed_job_type_revisions', sa.Column('needed_mem_mib', sa.Float(), nullable=True))
    connection = op.get_bind()
    for pk, manifest in connection.execute(sa.select(_REVISIONS.c.id, _REVISIONS.c.manifest)).all():
        memory = _memory(manifest)
        if memory is not None:
            connection.execute(_REVISIONS.update().where(_REVISIONS.c.id == pk).values(needed_mem_mib=memory))


def downgrade() -> None:
    # ALTER TABLE DROP COLUMN on SQLite too (3.35 and later): a batch rebuild would lose the table's AUTOINCREMENT.
    op.drop_column('seed_job_type_revisions', 'needed_mem_mib')
