"""cores and GPU counts: nodes.cpus and nodes.gpus, seed_job_type_revisions.needed_cpus

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

A node may say how many cores and GPUs it has (``ufdl worker`` does), and a revision keeps its manifest's
``cpus`` as a column beside ``mem`` and ``gpus``, so that acquiring passes over the jobs a node has not the
cores or the GPUs for. Existing revisions get it from their manifests; existing nodes said nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_NODE_COLUMNS = ('cpus', 'gpus')
_REVISIONS = sa.table('seed_job_type_revisions', sa.column('id', sa.Integer()), sa.column('manifest', sa.JSON()),
                      sa.column('needed_cpus', sa.Float()))


def _cpus(manifest):
    # As the server reads it when it makes a revision (services/seed_job_types.py ``scalar_resources``), written
    # out here: a migration must not change when that code does.
    job = manifest.get('job') if isinstance(manifest, dict) else None
    resources = job.get('resources') if isinstance(job, dict) else None
    scalars = resources.get('scalar') if isinstance(resources, dict) else None
    for resource in scalars if isinstance(scalars, list) else ():
        if isinstance(resource, dict) and resource.get('name') == 'cpus':
            value = resource.get('value')
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return value
    return None


def upgrade() -> None:
    for column in _NODE_COLUMNS:
        op.add_column('nodes', sa.Column(column, sa.Integer(), nullable=True))
    op.add_column('seed_job_type_revisions', sa.Column('needed_cpus', sa.Float(), nullable=True))
    connection = op.get_bind()
    for pk, manifest in connection.execute(sa.select(_REVISIONS.c.id, _REVISIONS.c.manifest)).all():
        cpus = _cpus(manifest)
        if cpus is not None:
            connection.execute(_REVISIONS.update().where(_REVISIONS.c.id == pk).values(needed_cpus=cpus))


def downgrade() -> None:
    # ALTER TABLE DROP COLUMN on SQLite too (3.35 and later): a batch rebuild would lose the tables' AUTOINCREMENT
    # (and, foreign keys on, null every job's node).
    op.drop_column('seed_job_type_revisions', 'needed_cpus')
    for column in _NODE_COLUMNS:
        op.drop_column('nodes', column)
