"""Scale v6 job types: Seed job types by (name, version) and their revisions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa
import ufdl_pyramid.models.meta


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('seed_job_types',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('version', sa.String(length=200), nullable=False),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('icon_code', sa.String(length=200), nullable=True),
    sa.Column('is_published', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('is_paused', sa.Boolean(), nullable=False),
    sa.Column('is_system', sa.Boolean(), nullable=False),
    sa.Column('max_scheduled', sa.Integer(), nullable=True),
    sa.Column('max_tries', sa.Integer(), nullable=False),
    sa.Column('docker_image', sa.String(length=1000), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('configuration', sa.JSON(), nullable=True),
    sa.Column('secrets', sa.Text(), nullable=True),
    sa.Column('revision_num', sa.Integer(), nullable=False),
    sa.Column('created', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deprecated', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paused', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_modified', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seed_job_types')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_seed_job_types_name'))
    )
    with op.batch_alter_table('seed_job_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seed_job_types_name'), ['name'], unique=False)

    op.create_table('seed_job_type_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_type_id', sa.Integer(), nullable=False),
    sa.Column('revision_num', sa.Integer(), nullable=False),
    sa.Column('docker_image', sa.String(length=1000), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('created', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['template_id'], ['job_templates.id'],
                            name=op.f('fk_seed_job_type_revisions_template_id_job_templates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_type_id'], ['seed_job_types.id'],
                            name=op.f('fk_seed_job_type_revisions_job_type_id_seed_job_types'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seed_job_type_revisions')),
    sa.UniqueConstraint('job_type_id', 'revision_num', name=op.f('uq_seed_job_type_revisions_job_type_id'))
    )
    with op.batch_alter_table('seed_job_type_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seed_job_type_revisions_template_id'), ['template_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('seed_job_type_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seed_job_type_revisions_template_id'))
    op.drop_table('seed_job_type_revisions')
    with op.batch_alter_table('seed_job_types', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seed_job_types_name'))
    op.drop_table('seed_job_types')
