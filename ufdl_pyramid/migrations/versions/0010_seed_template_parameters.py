"""seed template parameters: the templates of Scale job type revisions made before they carried seed_image and
seed_manifest get them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

A revision's template tells the Seed executor what to run by two constant parameters, its image and manifest.
Those made before the parameters existed had none, and create-job refused their jobs. Each template that a
revision links to (seed_job_type_revisions.template_id) and that lacks them is given them, with the reference to
the type ``str`` that import records for them. A template with jobs is changed too (templates are otherwise
immutable once they have jobs): the parameters only state what its revision already fixed, so a failed job of
it, reset, runs what it was made for. Templates no revision links to (imported by hand) are left as they are.

The parameters are built here, not by ``services.seed_job_types.template_specific``: a migration must keep
writing what it wrote when that code (or the models it reads) changes later. The test compares what this writes
with what the code makes today.

The downgrade changes nothing: the schema is the same, the code of 0009 reads these parameters (it wrote them
for every revision after this feature), and a template's own cannot be told from those added here.
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

EXECUTOR = 'ufdl_seed.SeedExecutor'

templates = sa.table('job_templates', sa.column('id', sa.Integer), sa.column('executor_class', sa.String),
                     sa.column('spec', sa.JSON), sa.column('parameters', sa.JSON))
revisions = sa.table('seed_job_type_revisions', sa.column('template_id', sa.Integer),
                     sa.column('docker_image', sa.String), sa.column('manifest', sa.JSON))
job_types = sa.table('job_types', sa.column('id', sa.Integer), sa.column('name', sa.String))
type_refs = sa.table('job_template_type_refs', sa.column('template_id', sa.Integer),
                     sa.column('job_type_id', sa.Integer))


def seed_parameters(docker_image: str, manifest: dict) -> dict:
    """A revision's two parameters as template import stores them (canonical type strings)."""
    return {
        'seed_image': {'types': ['str'], 'help': 'The Seed image that the job runs (docker_image)',
                       'default': docker_image, 'default_type': 'str', 'const': True},
        'seed_manifest': {'types': ['JSON'], 'help': 'The Seed manifest of the image',
                          'default': manifest, 'default_type': 'JSON', 'const': True}}


def upgrade() -> None:
    connection = op.get_bind()
    # None when the type is gone: the parameters are still what the executor needs.
    string_type = connection.scalar(sa.select(job_types.c.id).where(job_types.c.name == 'str'))
    rows = connection.execute(
        sa.select(templates.c.id, templates.c.spec, templates.c.parameters, revisions.c.docker_image,
                  revisions.c.manifest)
        .join_from(revisions, templates, revisions.c.template_id == templates.c.id)
        .where(templates.c.executor_class == EXECUTOR)).all()
    for row in rows:
        if {'seed_image', 'seed_manifest'} <= row.parameters.keys():
            continue
        added = seed_parameters(row.docker_image, row.manifest)
        spec = {**row.spec, 'parameters': {**row.spec.get('parameters', {}), **added}}
        connection.execute(templates.update().where(templates.c.id == row.id)
                           .values(spec=spec, parameters={**row.parameters, **added}))
        referenced = connection.scalar(sa.select(sa.func.count()).select_from(type_refs).where(
            type_refs.c.template_id == row.id, type_refs.c.job_type_id == string_type))
        if string_type is not None and not referenced:
            connection.execute(type_refs.insert().values(template_id=row.id, job_type_id=string_type))


def downgrade() -> None:
    pass
