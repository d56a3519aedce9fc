"""Writing job events: every transition records one in its own transaction (the outbox the progress
channel and the notifications read). Events written by a session are also kept on ``db.info`` so that
after-commit work (notifications) knows what happened without querying again."""
from sqlalchemy.orm import Session

from ..models import Job, JobEvent
from ..models.meta import utcnow

NEW_EVENTS = "ufdl.new_events"


def record_event(db: Session, job: Job, transition: str, *, data: dict | None = None,
                 error: str | None = None) -> JobEvent:
    event = JobEvent(job_id=job.id, transition=transition, status=job.status, progress=job.progress,
                     node_id=job.node_id, error=error if error is not None else job.error_reason,
                     transition_data=data, time=utcnow())
    db.add(event)
    db.info.setdefault(NEW_EVENTS, []).append(event)
    return event


def event_json(event: JobEvent) -> dict:
    """The message the progress channel sends for an event."""
    return {"id": event.id, "transition": event.transition, "pk": event.job_id, "status": event.status,
            "progress": event.progress, "node": event.node_id, "error": event.error,
            "transition_data": event.transition_data,
            "time": event.time.isoformat().replace("+00:00", "Z")}
