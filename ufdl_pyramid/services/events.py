"""Writing job events: every transition records one in its own transaction (the outbox the progress
channel and the notifications read). Events written by a session are also kept on ``db.info`` so that
after-commit work (notifications) knows what happened without querying again.

On PostgreSQL ``record_event`` also takes the transaction's id (before the event id is drawn, which the
progress channel's tailer relies on: see ``services/event_feed.py``) and sends ``NOTIFY ufdl_job_events``
with the job's id, in the same transaction: only committed events are announced.
"""
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session
import zope.sqlalchemy
from zope.sqlalchemy.datamanager import _SESSION_STATE

from ..models import Job, JobEvent
from ..models.events import JobEventRetention
from ..models.meta import utcnow

NEW_EVENTS = "ufdl.new_events"
NOTIFY_CHANNEL = "ufdl_job_events"


def _mark_changed(db: Session) -> None:
    """Tell zope.sqlalchemy that raw SQL wrote (else it would skip the commit); a session not joined to a
    transaction manager (a test's plain session) commits by itself."""
    if db in _SESSION_STATE:
        zope.sqlalchemy.mark_changed(db)


# The job's row lock orders one job's events: a second writer draws its event id after the first committed
# (even when its own change of the job was a no-op that issued no UPDATE), so a job's ids commit in order.
_XID_AND_NOTIFY = text("SELECT pg_current_xact_id()::text::bigint, pg_notify(:channel, :payload) "
                       "FROM jobs WHERE id = :job FOR UPDATE")


# A Core INSERT, not ``db.add``: the event is written at once (its id drawn right after the row lock and the
# transaction id, as before) without a unit-of-work flush at commit, the costliest step of a progress report.
_INSERT_EVENT = insert(JobEvent.__table__)


def record_event(db: Session, job: Job, transition: str, *, data: dict | None = None,
                 error: str | None = None) -> JobEvent:
    values = {"job_id": job.id, "transition": transition, "status": job.status, "progress": job.progress,
              "node_id": job.node_id, "error": error if error is not None else job.error_reason,
              "transition_data": data, "time": utcnow(), "txid": None}
    # The session's connection, in its transaction: plain Core statements need none of the ORM's execution.
    connection = db.connection()
    if connection.dialect.name == "postgresql":
        # Locks the job's row and assigns the transaction id before the event's id is drawn from the sequence
        # (the progress channel's tailer relies on both). The job's own pending changes, if any, are flushed
        # at commit, under the lock taken here.
        values["txid"] = connection.execute(_XID_AND_NOTIFY, {"channel": NOTIFY_CHANNEL, "payload": str(job.id),
                                                              "job": job.id}).scalar()
    values["id"] = connection.execute(_INSERT_EVENT, values).inserted_primary_key[0]
    # Raw SQL alone does not make zope.sqlalchemy commit the session.
    _mark_changed(db)
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
    _mark_changed(db)
    return count
