"""a job type's template tells what its input holds: job_templates.inputs' help from the manifest

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

The template of each Scale job type revision takes one JSON input, an object of the manifest's inputs by name;
its help (``get-inputs``) said only "The value to process." Existing revisions' templates get what the server now
writes for a new one; a downgrade puts the contract's text back.
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_CONTRACT_HELP = 'The value to process.'  # Process's input, as ufdl-core-types describes it
_TEMPLATES = sa.table('job_templates', sa.column('id', sa.Integer()), sa.column('inputs', sa.JSON()))
_REVISIONS = sa.table('seed_job_type_revisions', sa.column('template_id', sa.Integer()),
                      sa.column('manifest', sa.JSON()))


def _help(manifest) -> str:
    # As services/seed_job_types.py ``input_help`` writes it, written out here: a migration must not change when
    # that code does.
    job = manifest['job']
    inputs = job.get('interface', {}).get('inputs', {})
    entries = []
    for entry in inputs.get('files', []):
        notes = ['a file' if not entry.get('multiple') else 'files']
        notes += ['optional'] if entry.get('required') is False else []
        notes += entry.get('mediaTypes') or []
        kind = 'a list of job-output pks' if entry.get('multiple') else 'a job-output pk'
        entries.append(f"{entry['name']}: {kind} ({', '.join(notes)})")
    for entry in inputs.get('json', []):
        optional = ' (optional)' if entry.get('required') is False else ''
        entries.append(f"{entry['name']}: a JSON {entry['type']}{optional}")
    title = f"{job['name']} {job['jobVersion']}"
    if not entries:
        return f'{title} takes no inputs: an empty JSON object.'
    return f"The inputs of {title}, a JSON object by name: {'; '.join(entries)}."


def _set_help(help_of) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(_TEMPLATES.c.id, _TEMPLATES.c.inputs, _REVISIONS.c.manifest)
                              .join(_REVISIONS, _REVISIONS.c.template_id == _TEMPLATES.c.id)).all()
    for pk, inputs, manifest in rows:
        if not (isinstance(inputs, dict) and isinstance(inputs.get('input'), dict)):
            continue
        try:
            text = help_of(manifest)
        except (KeyError, TypeError, AttributeError):  # a manifest that validation did not hold to its schema
            continue
        changed = {**inputs, 'input': {**inputs['input'], 'help': text}}
        connection.execute(_TEMPLATES.update().where(_TEMPLATES.c.id == pk).values(inputs=changed))


def upgrade() -> None:
    _set_help(_help)


def downgrade() -> None:
    _set_help(lambda manifest: _CONTRACT_HELP)
