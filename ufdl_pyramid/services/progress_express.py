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

from psycopg.types.json import Json
from sqlalchemy.engine import Connection

from ..models import Job
from ..models.jobs import RUNNING
from ..representations import job_json
from .events import EVENT_COLUMNS, NOTIFY_CHANNEL

_JOB_COLUMNS = [column.name for column in Job.__table__.c]
# The job's own notifications for progress: none when the path is absent or holds null or an empty list.
_ON_PROGRESS = "CAST(jobs.notification_override AS jsonb) #> '{notification_override,actions,on_progress}'"
# psycopg's own placeholders: the statement goes to the driver as it is (see ``report``).
_REPORT = f"""
    WITH seen AS (
        UPDATE nodes SET last_seen = %(now)s
        WHERE id = %(node)s AND EXISTS (
            SELECT 1 FROM users WHERE users.id = %(user)s AND users.is_active
            AND (users.id = nodes.owner_id OR users.is_admin))
        RETURNING id),
    moved AS (
        UPDATE jobs SET progress = %(progress)s
        WHERE id = %(job)s AND node_id = (SELECT id FROM seen) AND status = %(status)s AND parent_id IS NULL
        AND COALESCE({_ON_PROGRESS}, '[]') IN ('[]', 'null')
        RETURNING jobs.*),
    announced AS (SELECT pg_notify(%(channel)s, CAST(id AS text)) FROM moved),
    written AS (
        INSERT INTO job_events ({EVENT_COLUMNS})
        SELECT id, 'progress', %(status)s, %(progress)s, %(node)s, error_reason, %(data)s, %(now)s,
               pg_current_xact_id()::text::bigint
        FROM moved CROSS JOIN announced
        RETURNING id)
    SELECT {", ".join(f"moved.{name}" for name in _JOB_COLUMNS)}, templates.name, templates.version,
        (SELECT json_agg(json_build_object('pk', outputs.id, 'name', outputs.name, 'type', outputs.type)
                         ORDER BY outputs.id)
         FROM job_outputs AS outputs WHERE outputs.job_id = moved.id AND outputs.deletion_time IS NULL)
    FROM moved JOIN job_templates AS templates ON templates.id = moved.template_id CROSS JOIN written
    """


def report(connection: Connection, *, user_id: int, node_id: int, job_id: int, progress: float,
           data: dict | None, now: datetime) -> dict | None:
    """The job's JSON after the progress was written (the connection must autocommit); None when the express
    lane does not apply, with nothing of the job written."""
    # Straight to psycopg: SQLAlchemy's result handling of 25 columns would cost more than the statement.
    # Its types add nothing here: psycopg reads timestamptz as aware datetimes and json as Python values,
    # which is what the ORM hands ``job_json`` on PostgreSQL too.
    with connection.connection.driver_connection.cursor() as cursor:
        cursor.execute(_REPORT, {"user": user_id, "node": node_id, "job": job_id, "progress": progress,
                                 "status": RUNNING, "now": now, "channel": NOTIFY_CHANNEL,
                                 "data": Json(data) if data is not None else None})
        row = cursor.fetchone()
    if row is None:
        return None
    *columns, template_name, template_version, outputs = row
    # job_json reads an ORM job; the row has the same attributes (the template's and outputs' as namespaces).
    job = SimpleNamespace(**dict(zip(_JOB_COLUMNS, columns)))
    job.template = SimpleNamespace(id=job.template_id, name=template_name, version=template_version)
    job.outputs = [SimpleNamespace(id=output["pk"], name=output["name"], type=output["type"], is_active=True)
                   for output in outputs or ()]
    return job_json(job)
