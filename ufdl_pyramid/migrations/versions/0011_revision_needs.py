"""a revision's memory and GPU needs: seed_job_type_revisions.needed_mem_mib and needed_gpus

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

The manifest's ``mem`` (MiB) and ``gpus`` resources as columns, so that acquiring passes over the jobs a node
has not the memory or the GPU for. Existing revisions get them from their manifests.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_COLUMNS = {'mem': 'needed_mem_mib', 'gpus': 'needed_gpus'}
_REVISIONS = sa.table('seed_job_type_revisions', sa.column('id', sa.Integer()), sa.column('manifest', sa.JSON()),
                      *(sa.column(column, sa.Float()) for column in _COLUMNS.values()))


def _needs(manifest) -> dict:
    # As the server reads them when it makes a revision (services/seed_job_types.py ``scalar_resources``),
    # written out here: a migration must not change when that code does.
    job = manifest.get('job') if isinstance(manifest, dict) else None
    resources = job.get('resources') if isinstance(job, dict) else None
    scalars = resources.get('scalar') if isinstance(resources, dict) else None
    found = {}
    for resource in scalars if isinstance(scalars, list) else ():
        if isinstance(resource, dict) and resource.get('name') in _COLUMNS:
            value = resource.get('value')
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                found[_COLUMNS[resource['name']]] = value
    return found


def upgrade() -> None:
    for column in _COLUMNS.values():
        op.add_column('seed_job_type_revisions', sa.Column(column, sa.Float(), nullable=True))
    connection = op.get_bind()
    for pk, manifest in connection.execute(sa.select(_REVISIONS.c.id, _REVISIONS.c.manifest)).all():
        needs = _needs(manifest)
        if needs:
            connection.execute(_REVISIONS.update().where(_REVISIONS.c.id == pk).values(**needs))


def downgrade() -> None:
    # ALTER TABLE DROP COLUMN on SQLite too (3.35 and later): a batch rebuild would lose the table's AUTOINCREMENT.
    for column in _COLUMNS.values():
        op.drop_column('seed_job_type_revisions', column)
