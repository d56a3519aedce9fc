"""The express lane for progress reports (PostgreSQL): one autocommitted statement when all is in order.

A node reports progress many times per job (ten of the fifteen requests of the lifecycle benchmark). Through
the full stack each report loads the job through the ORM, checks the caller, writes the progress with its
event and commits: five round trips and most of 5 ms of CPU. Yet for the common case the whole of it fits in
one statement, atomic without a transaction block of its own (no BEGIN, no COMMIT round trip). It

- marks the node seen, if the token's user is active and owns the node (or is an admin);
- sets the progress of the job, if that node holds it, it is RUNNING, it is not a meta-job's child (whose
  parent's progress follows) and no ``on_progress`` notification is due for it;
- sends ``NOTIFY ufdl_job_events`` and writes the event as ``record_progress`` does;
- answers the job as ``job_json`` writes it.

Each condition is part of the statement, so a change committed meanwhile (an abort, a cancel) is seen. When
any condition fails nothing of the job is written (the node may have been marked seen) and ``report`` answers
None: the full stack then handles the request, checks everything again and answers the precise error. The
server's own ``on_progress`` notifications turn the lane off (see ``progress_express_config.py``).
"""
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import JSON, Integer, String, text
from sqlalchemy.engine import Connection

from ..models import Job
from ..models.jobs import RUNNING
from ..representations import job_json
from .events import EVENT_COLUMNS, EVENT_PARAM_TYPES, NOTIFY_CHANNEL

_JOBS = Job.__table__
_JOB_COLUMNS = ", ".join(f"moved.{column.name}" for column in _JOBS.c)
# The job's own notifications for progress: none when the path is absent or holds null or an empty list.
_ON_PROGRESS = "CAST(jobs.notification_override AS jsonb) #> '{notification_override,actions,on_progress}'"
_REPORT = text(f"""
    WITH seen AS (
        UPDATE nodes SET last_seen = :now
        WHERE id = :node AND EXISTS (
            SELECT 1 FROM users WHERE users.id = :user AND users.is_active
            AND (users.id = nodes.owner_id OR users.is_admin))
        RETURNING id),
    moved AS (
        UPDATE jobs SET progress = :progress
        WHERE id = :job AND node_id = (SELECT id FROM seen) AND status = :status AND parent_id IS NULL
        AND COALESCE({_ON_PROGRESS}, '[]') IN ('[]', 'null')
        RETURNING jobs.*),
    announced AS (SELECT pg_notify(:channel, CAST(id AS text)) FROM moved),
    written AS (
        INSERT INTO job_events ({EVENT_COLUMNS})
        SELECT id, 'progress', :status, :progress, :node, error_reason, :data, :time,
               pg_current_xact_id()::text::bigint
        FROM moved CROSS JOIN announced
        RETURNING id)
    SELECT {_JOB_COLUMNS}, templates.name AS template_name, templates.version AS template_version,
        (SELECT json_agg(json_build_object('pk', outputs.id, 'name', outputs.name, 'type', outputs.type)
                         ORDER BY outputs.id)
         FROM job_outputs AS outputs WHERE outputs.job_id = moved.id AND outputs.deletion_time IS NULL
        ) AS active_outputs
    FROM moved JOIN job_templates AS templates ON templates.id = moved.template_id CROSS JOIN written
    """).bindparams(*EVENT_PARAM_TYPES).columns(
        *_JOBS.c, template_name=String, template_version=Integer, active_outputs=JSON)


def report(connection: Connection, *, user_id: int, node_id: int, job_id: int, progress: float,
           data: dict | None, now: datetime) -> dict | None:
    """The job's JSON after the progress was written (the connection must autocommit); None when the express
    lane does not apply, with nothing of the job written."""
    row = connection.execute(_REPORT, {
        "user": user_id, "node": node_id, "job": job_id, "progress": progress, "status": RUNNING, "now": now,
        "channel": NOTIFY_CHANNEL, "data": data, "time": now}).first()
    if row is None:
        return None
    values = row._mapping
    # job_json reads an ORM job; the row has the same attributes (the template's and outputs' as namespaces).
    job = SimpleNamespace(**{column.key: values[column.name] for column in _JOBS.c})
    job.template = SimpleNamespace(id=job.template_id, name=values["template_name"],
                                   version=values["template_version"])
    job.outputs = [SimpleNamespace(id=output["pk"], name=output["name"], type=output["type"], is_active=True)
                   for output in values["active_outputs"] or ()]
    return job_json(job)
