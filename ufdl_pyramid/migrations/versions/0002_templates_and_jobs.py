"""frameworks, job templates, jobs, job outputs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Also seeds a few common frameworks.
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import ufdl_pyramid.models.meta

FRAMEWORKS = [("tensorflow", "1.14"), ("tensorflow", "2.15"), ("pytorch", "2.1"), ("scikit-learn", "1.3"),
              ("numpy", "1.26")]


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('frameworks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.String(length=50), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('creation_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deletion_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_frameworks_creator_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frameworks')),
    sa.UniqueConstraint('name', 'version', name='uq_frameworks_name_version')
    )
    with op.batch_alter_table('frameworks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frameworks_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_frameworks_deletion_time'), ['deletion_time'], unique=False)

    op.create_table('job_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=True),
    sa.Column('licence_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('contract', sa.String(length=1000), nullable=True),
    sa.Column('contract_name', sa.String(length=200), nullable=True),
    sa.Column('executor_class', sa.String(length=200), nullable=True),
    sa.Column('required_packages', sa.Text(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('outputs', sa.JSON(), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('creation_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deletion_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_job_templates_creator_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_job_templates_domain_id_domains')),
    sa.ForeignKeyConstraint(['licence_id'], ['licences.id'], name=op.f('fk_job_templates_licence_id_licences')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_templates'))
    )
    with op.batch_alter_table('job_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_templates_contract_name'), ['contract_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_templates_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_templates_deletion_time'), ['deletion_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_templates_name'), ['name'], unique=False)
        batch_op.create_index('uq_job_templates_active_name_version', ['name', 'version'], unique=True, sqlite_where=sa.text('deletion_time IS NULL'), postgresql_where=sa.text('deletion_time IS NULL'))

    op.create_table('job_template_children',
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=200), nullable=False),
    sa.Column('child_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['job_templates.id'], name=op.f('fk_job_template_children_child_id_job_templates')),
    sa.ForeignKeyConstraint(['template_id'], ['job_templates.id'], name=op.f('fk_job_template_children_template_id_job_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('template_id', 'node', name=op.f('pk_job_template_children'))
    )
    with op.batch_alter_table('job_template_children', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_template_children_child_id'), ['child_id'], unique=False)

    op.create_table('job_template_type_refs',
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('job_type_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_type_id'], ['job_types.id'], name=op.f('fk_job_template_type_refs_job_type_id_job_types')),
    sa.ForeignKeyConstraint(['template_id'], ['job_templates.id'], name=op.f('fk_job_template_type_refs_template_id_job_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('template_id', 'job_type_id', name=op.f('pk_job_template_type_refs'))
    )
    with op.batch_alter_table('job_template_type_refs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_template_type_refs_job_type_id'), ['job_type_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('graph_node', sa.String(length=200), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('input_values', sa.JSON(), nullable=False),
    sa.Column('parameter_values', sa.JSON(), nullable=True),
    sa.Column('notification_override', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_status_change', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=True),
    sa.Column('start_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error_reason', sa.Text(), nullable=True),
    sa.Column('error_category', sa.String(length=16), nullable=True),
    sa.Column('is_cancelled', sa.Boolean(), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('creation_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deletion_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_jobs_creator_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_jobs_node_id_nodes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['parent_id'], ['jobs.id'], name=op.f('fk_jobs_parent_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['job_templates.id'], name=op.f('fk_jobs_template_id_job_templates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_deletion_time'), ['deletion_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_node_id'), ['node_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index('ix_jobs_status_id', ['status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_template_id'), ['template_id'], unique=False)

    op.create_table('job_outputs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=1000), nullable=False),
    sa.Column('content_type', sa.String(length=200), nullable=False),
    sa.Column('blob_key', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('creation_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deletion_time', ufdl_pyramid.models.meta.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_job_outputs_creator_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_outputs_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_outputs'))
    )
    with op.batch_alter_table('job_outputs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_outputs_blob_key'), ['blob_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_outputs_creator_id'), ['creator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_outputs_deletion_time'), ['deletion_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_outputs_job_id'), ['job_id'], unique=False)
        batch_op.create_index('uq_job_outputs_active_job_name_type', ['job_id', 'name', 'type'], unique=True, sqlite_where=sa.text('deletion_time IS NULL'), postgresql_where=sa.text('deletion_time IS NULL'))

    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_nodes_current_job_id_jobs'), 'jobs', ['current_job_id'], ['id'], ondelete='SET NULL', use_alter=True)

    frameworks = sa.table("frameworks", sa.column("name"), sa.column("version"),
                          sa.column("creation_time", ufdl_pyramid.models.meta.UTCDateTime))
    now = datetime.now(timezone.utc)
    op.bulk_insert(frameworks, [{"name": name, "version": version, "creation_time": now}
                                for name, version in FRAMEWORKS])


def downgrade() -> None:
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_nodes_current_job_id_jobs'), type_='foreignkey')

    with op.batch_alter_table('job_outputs', schema=None) as batch_op:
        batch_op.drop_index('uq_job_outputs_active_job_name_type', sqlite_where=sa.text('deletion_time IS NULL'), postgresql_where=sa.text('deletion_time IS NULL'))
        batch_op.drop_index(batch_op.f('ix_job_outputs_job_id'))
        batch_op.drop_index(batch_op.f('ix_job_outputs_deletion_time'))
        batch_op.drop_index(batch_op.f('ix_job_outputs_creator_id'))
        batch_op.drop_index(batch_op.f('ix_job_outputs_blob_key'))

    op.drop_table('job_outputs')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_template_id'))
        batch_op.drop_index('ix_jobs_status_id')
        batch_op.drop_index(batch_op.f('ix_jobs_parent_id'))
        batch_op.drop_index(batch_op.f('ix_jobs_node_id'))
        batch_op.drop_index(batch_op.f('ix_jobs_deletion_time'))
        batch_op.drop_index(batch_op.f('ix_jobs_creator_id'))

    # The jobs go: a node's current job would name no row, and the upgrade's foreign key refused them all.
    op.execute("UPDATE nodes SET current_job_id = NULL")
    op.drop_table('jobs')
    with op.batch_alter_table('job_template_type_refs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_template_type_refs_job_type_id'))

    op.drop_table('job_template_type_refs')
    with op.batch_alter_table('job_template_children', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_template_children_child_id'))

    op.drop_table('job_template_children')
    with op.batch_alter_table('job_templates', schema=None) as batch_op:
        batch_op.drop_index('uq_job_templates_active_name_version', sqlite_where=sa.text('deletion_time IS NULL'), postgresql_where=sa.text('deletion_time IS NULL'))
        batch_op.drop_index(batch_op.f('ix_job_templates_name'))
        batch_op.drop_index(batch_op.f('ix_job_templates_deletion_time'))
        batch_op.drop_index(batch_op.f('ix_job_templates_creator_id'))
        batch_op.drop_index(batch_op.f('ix_job_templates_contract_name'))

    op.drop_table('job_templates')
    with op.batch_alter_table('frameworks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frameworks_deletion_time'))
        batch_op.drop_index(batch_op.f('ix_frameworks_creator_id'))

    op.drop_table('frameworks')
