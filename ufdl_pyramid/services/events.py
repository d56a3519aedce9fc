"""Writing job events: every transition records one in its own transaction (the outbox the progress
channel and the notifications read). Events written by a session are also kept on ``db.info`` so that
after-commit work (notifications) knows what happened without querying again.

On PostgreSQL ``record_event`` also takes the transaction's id (before the event id is drawn, which the
progress channel's tailer relies on: see ``services/event_feed.py``) and sends ``NOTIFY ufdl_job_events``
with the job's id, in the same transaction: only committed events are announced.
"""
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from ..models import Job, JobEvent, mark_written
from ..models.events import JobEventRetention
from ..models.jobs import RUNNING
from ..models.meta import utcnow

NEW_EVENTS = "ufdl.new_events"
NOTIFY_CHANNEL = "ufdl_job_events"


# On PostgreSQL an event is written by one statement that first locks the job's row and takes the transaction's
# id, then sends ``NOTIFY ufdl_job_events`` with the job's id, and only then draws the event's id from the
# sequence (the progress channel's tailer relies on that order). The row lock orders one job's events: a second
# writer draws its id after the first committed (even when its own change of the job was a no-op that issued no
# UPDATE), so a job's ids commit in order. Plain Core statements, not ``db.add``: no unit-of-work flush.
EVENT_COLUMNS = "job_id, transition, status, progress, node_id, error, transition_data, time, txid"
_EVENT_TYPES = (bindparam("data", type_=JobEvent.__table__.c.transition_data.type),
                bindparam("time", type_=JobEvent.__table__.c.time.type))
_LOCKED_EVENT = text(f"""
    WITH locked AS (SELECT id FROM jobs WHERE id = :job FOR UPDATE),
    announced AS (SELECT pg_notify(:channel, CAST(id AS text)) FROM locked)
    INSERT INTO job_events ({EVENT_COLUMNS})
    SELECT id, :transition, :status, :progress, :node, :error, :data, :time, pg_current_xact_id()::text::bigint
    FROM locked CROSS JOIN announced
    RETURNING id, txid""").bindparams(*_EVENT_TYPES)
# Progress, reported many times per job, gets its UPDATE in the same statement: conditional (still RUNNING,
# still this node's, else nothing is written), it locks the row and takes the transaction's id itself.
_PROGRESS_EVENT = text(f"""
    WITH moved AS (
        UPDATE jobs SET progress = :progress WHERE id = :job AND node_id = :node AND status = :status
        RETURNING id, error_reason),
    announced AS (SELECT pg_notify(:channel, CAST(id AS text)) FROM moved)
    INSERT INTO job_events ({EVENT_COLUMNS})
    SELECT id, :transition, :status, :progress, :node, error_reason, :data, :time,
           pg_current_xact_id()::text::bigint
    FROM moved CROSS JOIN announced
    RETURNING id, txid, error""").bindparams(*_EVENT_TYPES)
# Elsewhere (SQLite): the same work in plain statements; its single writer orders the events.
_INSERT_EVENT = insert(JobEvent.__table__)
_JOBS = Job.__table__
_SET_PROGRESS = (update(_JOBS).where(_JOBS.c.id == bindparam("job"), _JOBS.c.node_id == bindparam("node"),
                                     _JOBS.c.status == bindparam("running"))
                 .values(progress=bindparam("value")))


def record_event(db: Session, job: Job, transition: str, *, data: dict | None = None,
                 error: str | None = None) -> JobEvent:
    """Writes the event of ``transition`` with the job's state as it is now (its pending changes included)."""
    values = {"job_id": job.id, "transition": transition, "status": job.status, "progress": job.progress,
              "node_id": job.node_id, "error": error if error is not None else job.error_reason,
              "transition_data": data, "time": utcnow(), "txid": None}
    # The session's connection, in its transaction: plain Core statements need none of the ORM's execution.
    connection = db.connection()
    if connection.dialect.name == "postgresql":
        # The job's own pending changes, if any, are flushed at commit, under the lock taken here.
        values["id"], values["txid"] = connection.execute(_LOCKED_EVENT, {
            "job": job.id, "channel": NOTIFY_CHANNEL, "transition": transition, "status": values["status"],
            "progress": values["progress"], "node": values["node_id"], "error": values["error"], "data": data,
            "time": values["time"]}).one()
    else:
        values["id"] = connection.execute(_INSERT_EVENT, values).inserted_primary_key[0]
    return _written(db, values)


def record_progress(db: Session, job: Job, node_id: int, progress: float, data: dict | None) -> JobEvent | None:
    """Sets the progress of a RUNNING job that ``node_id`` holds, with its event, by Core statements (the row is
    written, not ``job``); None, with nothing written, when the row is no longer so (aborted, say)."""
    connection = db.connection()
    values = {"job_id": job.id, "transition": "progress", "status": RUNNING, "progress": progress,
              "node_id": node_id, "error": job.error_reason, "transition_data": data, "time": utcnow(),
              "txid": None}
    if connection.dialect.name == "postgresql":
        row = connection.execute(_PROGRESS_EVENT, {
            "job": job.id, "channel": NOTIFY_CHANNEL, "transition": "progress", "status": RUNNING,
            "progress": progress, "node": node_id, "data": data, "time": values["time"]}).first()
        if row is None:
            return None
        values["id"], values["txid"], values["error"] = row
    else:
        if not connection.execute(_SET_PROGRESS, {"value": progress, "job": job.id, "node": node_id,
                                                  "running": RUNNING}).rowcount:
            return None
        values["id"] = connection.execute(_INSERT_EVENT, values).inserted_primary_key[0]
    return _written(db, values)


def _written(db: Session, values: dict) -> JobEvent:
    # Core statements alone do not make zope.sqlalchemy commit the session.
    mark_written(db)
    # A detached copy of what was written, for after-commit work (notifications) and callers.
    event = JobEvent(**values)
    db.info.setdefault(NEW_EVENTS, []).append(event)
    return event


def event_json(event: JobEvent) -> dict:
    """The message the progress channel sends for an event."""
    return {"id": event.id, "transition": event.transition, "pk": event.job_id, "status": event.status,
            "progress": event.progress, "node": event.node_id, "error": event.error,
            "transition_data": event.transition_data,
            "time": event.time.isoformat().replace("+00:00", "Z")}


def parse_age(text_value: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s`` (or a bare number of seconds)."""
    value = str(text_value).strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if value and value[-1] in units:
        return timedelta(seconds=float(value[:-1]) * units[value[-1]])
    return timedelta(seconds=float(value))


def pruned_through(db: Session) -> int:
    """The highest event id pruned so far (0: none)."""
    return db.scalar(select(JobEventRetention.pruned_through).where(JobEventRetention.id == 1)) or 0


def prune_events(db: Session, older_than: timedelta, *, now: datetime | None = None) -> int:
    """Deletes the events older than ``older_than``; remembers the highest id deleted. Returns the count."""
    cutoff = (now or utcnow()) - older_than
    highest = db.scalar(select(func.max(JobEvent.id)).where(JobEvent.time < cutoff))
    if highest is None:
        return 0
    count = db.execute(delete(JobEvent).where(JobEvent.time < cutoff)).rowcount
    mark = db.get(JobEventRetention, 1)
    if mark is None:
        db.add(JobEventRetention(id=1, pruned_through=highest))
    else:
        mark.pruned_through = max(mark.pruned_through, highest)
    mark_written(db)
    return count
