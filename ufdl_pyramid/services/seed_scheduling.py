"""What holds back the jobs of a Scale job type (design notes §1): while it is paused no node acquires them, at
most ``max_scheduled`` of them (over all its revisions' templates) are QUEUED or RUNNING at once, and a node
acquires none whose revision's manifest asks more memory (``mem``, MiB) than the node registered (``cpu_mem``,
bytes), more cores (``cpus``) or more GPUs (``gpus``) than it registered: a node that did not say is not held
back, but one that registered no GPU memory (``gpu_mem``) nor a count has no GPU."""
from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from ..models import Job, SeedJobType, SeedJobTypeRevision
from ..models.jobs import QUEUED, RUNNING
from ..models.seed_job_types import SCALE_TEMPLATE_PREFIX
from .auth import ActingNode

SCHEDULED = (QUEUED, RUNNING)


def may_be_a_revision(template_name: str) -> bool:
    """Only the templates of job types' revisions take the prefix: the acquiring of any other job asks nothing
    more of the database."""
    return template_name.startswith(SCALE_TEMPLATE_PREFIX)


def _scheduled_count(job_type_id) -> ColumnElement:
    """How many jobs of the job type's templates are QUEUED or RUNNING."""
    scheduled, revision = aliased(Job), aliased(SeedJobTypeRevision)
    return (select(func.count(scheduled.id)).select_from(scheduled)
            .join(revision, revision.template_id == scheduled.template_id)
            .where(revision.job_type_id == job_type_id, scheduled.status.in_(SCHEDULED)).scalar_subquery())


def gpu_count(node: ActingNode) -> int | None:
    """How many GPUs the node has: as it registered them, else none without GPU memory; None: at least one."""
    if node.gpus is not None:
        return node.gpus
    return None if node.gpu_mem else 0


def held_back(node: ActingNode) -> ColumnElement:
    """True for a job (of the enclosing query's ``Job``) whose job type is paused or has its ``max_scheduled``
    jobs scheduled, or that needs more memory or a GPU than ``node`` has: acquire-next passes over it. It reads
    the rows as they are; ``refusal`` decides, locked."""
    reasons = [SeedJobType.is_paused.is_(True),
               and_(SeedJobType.max_scheduled.is_not(None),
                    _scheduled_count(SeedJobType.id) >= SeedJobType.max_scheduled)]
    if node.cpu_mem is not None:
        reasons.append(SeedJobTypeRevision.needed_mem_mib > node.cpu_mem / 2**20)
    if node.cpus is not None:
        reasons.append(SeedJobTypeRevision.needed_cpus > node.cpus)
    if gpu_count(node) is not None:
        reasons.append(SeedJobTypeRevision.needed_gpus > gpu_count(node))
    return exists().where(
        SeedJobTypeRevision.template_id == Job.template_id, SeedJobType.id == SeedJobTypeRevision.job_type_id,
        or_(*reasons))


def refusal(db: Session, template_id: int, node: ActingNode | None) -> str | None:
    """Why a job of the template may not be acquired now (its job type's pause or limit, or more memory, cores or
    GPUs than ``node`` has; None: any node), or None.

    The job type's row is locked (PostgreSQL; SQLite's writers take turns) until the acquiring commits, so that
    nodes acquiring its jobs at the same moment count one after the other: never more than ``max_scheduled``.
    Lock order (see job_lifecycle.py): after the node and the job."""
    # The columns decided on only, not its documents (the manifest, the configuration).
    job_type = db.execute(select(SeedJobType.id, SeedJobType.name, SeedJobType.version, SeedJobType.is_paused,
                                 SeedJobType.max_scheduled, SeedJobTypeRevision.needed_mem_mib,
                                 SeedJobTypeRevision.needed_cpus, SeedJobTypeRevision.needed_gpus)
                          .join(SeedJobTypeRevision, SeedJobTypeRevision.job_type_id == SeedJobType.id)
                          .where(SeedJobTypeRevision.template_id == template_id)
                          .with_for_update(of=SeedJobType)).one_or_none()
    if job_type is None:
        return None
    if job_type.is_paused:
        return f"its job type {job_type.name} {job_type.version} is paused"
    manifest = f"its job type {job_type.name} {job_type.version}'s manifest"
    needed = job_type.needed_mem_mib
    if node is not None and node.cpu_mem is not None and needed is not None and needed > node.cpu_mem / 2**20:
        return (f"it needs {needed:g} MiB of memory ({manifest}), the node has "
                f"{round(node.cpu_mem / 2**20, 1):g} MiB")
    cpus = job_type.needed_cpus
    if node is not None and node.cpus is not None and cpus is not None and cpus > node.cpus:
        return f"it needs {_amount(cpus, 'core')} ({manifest}), the node has {node.cpus or 'none'}"
    gpus = job_type.needed_gpus
    if node is not None and gpu_count(node) is not None and gpus is not None and gpus > gpu_count(node):
        return f"it needs {_amount(gpus, 'GPU')} ({manifest}), the node has {gpu_count(node) or 'none'}"
    if job_type.max_scheduled is not None:
        count = db.scalar(select(_scheduled_count(job_type.id)))
        if count >= job_type.max_scheduled:
            return (f"its job type {job_type.name} {job_type.version} already has {count} jobs queued or running "
                    f"(max_scheduled {job_type.max_scheduled})")
    return None


def _amount(value: float, noun: str) -> str:
    return f"{value:g} {noun}{'' if value == 1 else 's'}"
