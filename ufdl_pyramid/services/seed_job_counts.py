"""The counts of Scale's ``/v6/job-types/status|pending|running|system-failures``: the jobs of the job templates
that the job types' revisions are (design notes §1), counted in SQL."""
from datetime import datetime

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from ..models import Job, SeedJobType, SeedJobTypeRevision
from ..models.jobs import FAILED, PENDING, RUNNING, SYSTEM


def _jobs_of_job_types(*columns) -> Select:
    """``columns`` over the jobs (not deleted) of every job type's revisions."""
    return (select(*columns).select_from(Job)
            .join(SeedJobTypeRevision, SeedJobTypeRevision.template_id == Job.template_id)
            .where(Job.active()))


def _job_types(db: Session, ids) -> dict[int, SeedJobType]:
    return {row.id: row for row in db.scalars(select(SeedJobType).where(SeedJobType.id.in_(set(ids))))}


def status_counts(db: Session, job_types: list[SeedJobType], started: datetime, ended: datetime) -> dict[int, list]:
    """Per job type: ``[{status, count, most_recent, category}]`` of its jobs whose status last changed between
    ``started`` and ``ended``, and of all its RUNNING jobs whatever the time; the category is a FAILED one's."""
    category = case((Job.status == FAILED, Job.error_category), else_=None)
    query = (_jobs_of_job_types(SeedJobTypeRevision.job_type_id, Job.status, category, func.count(Job.id),
                                func.max(Job.last_status_change))
             .where(SeedJobTypeRevision.job_type_id.in_([row.id for row in job_types]),
                    or_(Job.status == RUNNING, and_(Job.last_status_change >= started,
                                                    Job.last_status_change <= ended)))
             .group_by(SeedJobTypeRevision.job_type_id, Job.status, category)
             .order_by(SeedJobTypeRevision.job_type_id, Job.status, category))
    counts: dict[int, list] = {row.id: [] for row in job_types}
    for job_type_id, status, error_category, count, most_recent in db.execute(query):
        counts[job_type_id].append({"status": status, "count": count, "most_recent": most_recent,
                                    "category": error_category})
    return counts


def status_oldest(db: Session, status: str) -> list[tuple[SeedJobType, int, datetime]]:
    """The job types with jobs in ``status`` (PENDING or RUNNING): how many, and since when the oldest waits
    (PENDING: since its status last changed) or runs (RUNNING: since it started), oldest first."""
    since = Job.last_status_change if status == PENDING else func.coalesce(Job.start_time, Job.last_status_change)
    oldest = func.min(since)
    query = (_jobs_of_job_types(SeedJobTypeRevision.job_type_id, func.count(Job.id), oldest)
             .where(Job.status == status).group_by(SeedJobTypeRevision.job_type_id)
             .order_by(oldest, SeedJobTypeRevision.job_type_id))
    found = db.execute(query).all()
    rows = _job_types(db, (job_type_id for job_type_id, _, _ in found))
    return [(rows[job_type_id], count, time) for job_type_id, count, time in found]


def system_failures(db: Session) -> list[tuple[SeedJobType, str | None, int, datetime, datetime]]:
    """Per job type and error reason, its jobs FAILED for a SYSTEM error: how many, the first and the last
    (when their status last changed), the latest first."""
    last = func.max(Job.last_status_change)
    query = (_jobs_of_job_types(SeedJobTypeRevision.job_type_id, Job.error_reason, func.count(Job.id),
                                func.min(Job.last_status_change), last)
             .where(Job.status == FAILED, Job.error_category == SYSTEM)
             .group_by(SeedJobTypeRevision.job_type_id, Job.error_reason)
             .order_by(last.desc(), SeedJobTypeRevision.job_type_id, Job.error_reason))
    found = db.execute(query).all()
    rows = _job_types(db, (row[0] for row in found))
    return [(rows[job_type_id], reason, count, first, latest) for job_type_id, reason, count, first, latest in found]
