"""The job state machine: every transition a node or a person can make, each in the caller's transaction
with its event written beside it.

    PENDING --acquire--> QUEUED --start--> RUNNING --finish--> COMPLETED
       ^                  |                   |  \\--finish(error)--> FAILED --reset--> QUEUED
       '-----release------'                   '--progress           FAILED --release--> (node cleared)
    abort (admin, or an expired lease): QUEUED/RUNNING/FAILED -> PENDING;  cancel: -> CANCELED (cascades)

A wrong state answers 406 naming the state; a node acting on a job it does not hold, 403. Acquiring is a
conditional UPDATE, so of any number of nodes racing for a job exactly one wins, on PostgreSQL and SQLite.
Meta-jobs (a parent over child jobs) are worked through their children: see ``MetaJobOrchestrator``.
"""
import re
from datetime import datetime, timedelta

from sqlalchemy import Select, exists, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..errors import Forbidden, InvalidInput, WrongState
from ..models import Job, JobEvent, JobOutput, JobTemplate, Node, User, mark_written
from ..models.jobs import (ALGORITHM, CANCELED, COMPLETED, FAILED, FINAL_STATUSES, NODE_ERROR_CATEGORIES, PENDING,
                           QUEUED, RUNNING, SYSTEM)
from ..models.meta import utcnow
from ..types import InvalidType, is_subtype
from .auth import ActingNode
from .events import record_event, record_progress
from .job_creation import create_child_job, deleted_first_template
from .lease_clock import resumed_since
from .outputs import lock_blob_keys
from .seed_scheduling import held_back, may_be_a_revision, refusal
from .type_registry import type_registry

_JOBS = Job.__table__
_NODES = Node.__table__
_OUTPUTS = JobOutput.__table__


# The lock order on PostgreSQL, which every request keeps so that no two wait for each other:
# 1. nodes: every request of a node marks it seen, locking its row, before it reaches a job. What changes a
#    node's row after a job's lock must take the node's first (``lock_nodes_working_on``).
# 2. jobs, ancestors first, that is by ascending id (a meta-job is created before its steps): a meta-job's
#    cancel and deletion lock it, then its steps; a step's own calls change the meta-job too
#    (``MetaJobOrchestrator._parent``), so they lock it with the step, before it (``lineage``).
# 3. seed_job_types: acquiring a job of a Scale job type locks its job type after the job (``seed_scheduling``).


def lineage(job_id) -> Select:
    """The ids of a job and of its ancestors (its meta-job, that one's, ...)."""
    chain = select(Job.id, Job.parent_id).where(Job.id == job_id).cte("lineage", recursive=True)
    chain = chain.union_all(select(Job.id, Job.parent_id).join(chain, Job.id == chain.c.parent_id))
    return select(chain.c.id)


def family(job_id) -> Select:
    """The ids of a job and of its descendants (a meta-job's steps, theirs, ...)."""
    tree = select(Job.id).where(Job.id == job_id).cte("family", recursive=True)
    tree = tree.union_all(select(Job.id).join(tree, Job.parent_id == tree.c.id))
    return select(tree.c.id)


def lock_nodes_working_on(db: Session, job_id: int) -> list[int]:
    """Lock the nodes whose current job is the job or one of its descendants (before the job: see the lock
    order above); their ids."""
    return db.scalars(select(Node.id).where(Node.current_job_id.in_(family(job_id))).order_by(Node.id)
                      .with_for_update()).all()


def lock_in_order(statement: Select, *, skip_locked: bool = False) -> Select:
    """``statement`` (of jobs) locking its rows in the lock order (see above)."""
    return statement.order_by(Job.id).with_for_update(of=Job, skip_locked=skip_locked)


def lock_descendants(db: Session, job_id: int) -> list[Job]:
    """A meta-job's steps (nested ones too), locked in the lock order and read afresh. What decides on them
    from the meta-job's lock alone (its cancel, its deletion) must: acquire-next locks the one step it takes,
    not its meta-job, and would otherwise take a step read as PENDING just before it is written over."""
    query = lock_in_order(select(Job).where(Job.id.in_(family(job_id)), Job.id != job_id))
    return db.scalars(query.execution_options(populate_existing=True)).unique().all()


# JSON's number grammar (RFC 8259 §6), ASCII digits only: float() alone also takes 'nan', 'inf', ' 0.5', '+.5',
# '0_5' and the digits of every script.
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def parse_progress(text: str) -> float:
    """A progress value from the URL: a JSON number in [0, 1], which every str(float) in range is (``1``,
    ``1e-05``). The full stack and the express lane both read it here, so that they take the same values."""
    if JSON_NUMBER.fullmatch(text) is None:
        raise InvalidInput(f"Progress must be a JSON number between 0 and 1 (0, 0.5, 1e-05), not {text!r}")
    value = float(text)  # a huge exponent is inf, out of range below
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(f"Progress must be between 0 and 1, not {text}")
    return value + 0.0  # -0 is 0


class JobLifecycle:
    def __init__(self, db: Session):
        self.db = db
        self.meta = MetaJobOrchestrator(db, self)

    # Helpers

    def _set_status(self, job: Job, status: str) -> None:
        if job.status != status:
            job.status = status
            job.last_status_change = utcnow()

    def _require_node(self, node: ActingNode | None, action: str) -> ActingNode:
        if node is None:
            raise Forbidden(f"Only a node may {action} a job: send the Node-Id header")
        return node

    def _require_holder(self, job: Job, node: ActingNode | None, action: str) -> ActingNode:
        node = self._require_node(node, action)
        if job.node_id != node.id:
            raise Forbidden(f"Node {node.id} does not hold job {job.id}")
        return node

    def _require_status(self, job: Job, action: str, *allowed: str) -> None:
        if job.status not in allowed:
            raise WrongState(f"Cannot {action} job {job.id}: it is {job.status} (needs {' or '.join(allowed)})")

    def _require_workable(self, job: Job, action: str) -> None:
        if job.template.is_meta:
            raise WrongState(f"Cannot {action} job {job.id}: a meta-job is worked through its children")
        if not job.is_active:
            raise WrongState(f"Cannot {action} job {job.id}: it is deleted")

    def _write(self, statement):
        """A Core statement on the session's connection: none of the ORM's bulk-update machinery (or its
        autoflush) for rows the session does not hold."""
        result = self.db.connection().execute(statement)
        mark_written(self.db)
        return result

    def _set_current_job(self, node: ActingNode, job_id: int | None) -> None:
        self._write(update(_NODES).where(_NODES.c.id == node.id).values(current_job_id=job_id))

    def _still_running(self, node: ActingNode) -> bool:
        """Does the node still run its current job? A job aborted away from it or cancelled stays its current
        job until the node's finish (design §9), but a node that restarted never sends that finish: only a
        RUNNING job the node holds keeps it from starting another. The node's requests are serialised on its
        row (every one writes ``last_seen``), so that job cannot start meanwhile."""
        return self.db.scalar(select(exists().where(Job.id == node.current_job_id, Job.node_id == node.id,
                                                    Job.status == RUNNING)))

    def _taken_from(self, job: Job, node: ActingNode) -> bool:
        """Was the job taken away from the node (an admin's abort, or a lost lease that aborted or failed it)?
        Its events say so (design §9: that node's late finish is answered, and changes nothing)."""
        taken = select(JobEvent.transition, JobEvent.transition_data).where(
            JobEvent.job_id == job.id, JobEvent.transition.in_(("abort", "error")))
        return any(isinstance(data, dict) and data.get("node") == node.id
                   and (transition == "abort" or data.get("category") == SYSTEM)
                   for transition, data in self.db.execute(taken))

    def _free_node(self, job: Job) -> None:
        """The node that was working on the job may take another."""
        if job.node_id is not None:
            self._write(update(_NODES).where(_NODES.c.id == job.node_id, _NODES.c.current_job_id == job.id)
                        .values(current_job_id=None))

    def _clear_outputs(self, job: Job) -> None:
        # A statement of its own, not the outputs loaded with the job: an upload that held the job's lock while
        # our locked read waited committed an output that the read (its snapshot taken before the wait) missed.
        now = utcnow()
        self._write(update(_OUTPUTS).where(_OUTPUTS.c.job_id == job.id, _OUTPUTS.c.deletion_time.is_(None))
                    .values(deletion_time=now))
        for output in job.outputs:
            if output.deletion_time is None:
                set_committed_value(output, "deletion_time", now)
        self.db.expire(job, ["outputs"])

    def _back_to_start(self, job: Job) -> None:
        job.start_time = job.end_time = job.error_reason = job.error_category = None
        job.progress = 0.0
        self._clear_outputs(job)

    # Transitions

    def _require_readable(self, job: Job, node: ActingNode, reader) -> None:
        # A worker reads the template it runs (its executor, its parameters) with the same credentials.
        if not job.template.visible_to(reader.user_id, reader.is_admin):
            raise Forbidden(f"Node {node.id} cannot run job {job.id}: its template is private to its creator")

    def acquire(self, job: Job, node: ActingNode | None, reader) -> Job:
        """``reader``: the caller's identity (``user_id``, ``is_admin``), who must be able to read the template."""
        node = self._require_node(node, "acquire")
        self._require_workable(job, "acquire")
        self._require_readable(job, node, reader)
        if job.node_id == node.id and job.status in (QUEUED, RUNNING, FAILED):
            return job  # the holder asking again (a lost answer, a retry): nothing changes
        if job.status == PENDING and job.node_id is None:  # else the UPDATE below fails and says why
            reason = self._held_back(job.template_id, job.template.name, node)
            if reason is not None:
                raise WrongState(f"Cannot acquire job {job.id}: {reason}")
        now = utcnow()
        won = self._write(
            update(_JOBS).where(_JOBS.c.id == job.id, _JOBS.c.status == PENDING, _JOBS.c.node_id.is_(None),
                                _JOBS.c.is_cancelled.is_(False), _JOBS.c.deletion_time.is_(None))
            .values(status=QUEUED, node_id=node.id, last_status_change=now)).rowcount
        if not won:
            self.db.refresh(job)
            # A completed or cancelled job keeps the node that worked it, which holds it no more.
            if job.node_id is not None and job.node_id != node.id and job.status not in (COMPLETED, CANCELED):
                raise WrongState(f"Cannot acquire job {job.id}: node {job.node_id} holds it")
            raise WrongState(f"Cannot acquire job {job.id}: it is {job.status}")
        # The row holds what the UPDATE wrote: the loaded job learns it without reading the row again.
        for name, value in (("status", QUEUED), ("node_id", node.id), ("last_status_change", now)):
            set_committed_value(job, name, value)
        record_event(self.db, job, "acquire")
        return job

    def _held_back(self, template_id: int, template_name: str, node: ActingNode | None) -> str | None:
        """Why a job of the template may not be acquired now: its Scale job type is paused or has its
        ``max_scheduled`` jobs scheduled, or ``node`` (None: any) has not the memory or the GPU its manifest asks.
        For any other template, only its name is read (no statement)."""
        if not may_be_a_revision(template_name):
            return None
        return refusal(self.db, template_id, node)

    def acquire_next(self, node: ActingNode | None, executors: list[str], reader) -> Job | None:
        """The oldest pending job this node can run (of a template ``reader`` may read: see ``acquire``),
        acquired for it; None when there is none.

        A node that holds a job it has not started gets that one again (its answer may have been lost).
        """
        node = self._require_node(node, "acquire")
        # Never a deleted one: it waits for its reinstatement (a job reset while deleted, before reset refused it).
        held = self.db.scalar(select(Job).where(Job.node_id == node.id, Job.status == QUEUED,
                                                Job.deletion_time.is_(None)).order_by(Job.id).limit(1))
        if held is not None:
            return held
        if not executors:
            return None
        # Not the jobs of a paused Scale job type, nor of one with its max_scheduled jobs scheduled.
        candidates = (select(Job.id, Job.template_id, JobTemplate.name)
                      .join(JobTemplate, Job.template_id == JobTemplate.id)
                      .where(Job.status == PENDING, Job.node_id.is_(None), Job.is_cancelled.is_(False),
                             Job.deletion_time.is_(None), JobTemplate.executor_class.in_(executors),
                             JobTemplate.visible_condition(reader.user_id, reader.is_admin), ~held_back(node))
                      .order_by(Job.id).limit(5))
        if self.db.get_bind().dialect.name == "postgresql":
            # Racing nodes skip the row another has locked instead of queueing behind it. One row: a node that
            # locked five would leave the others none of them to find (a 204 with jobs still pending).
            candidates = candidates.limit(1).with_for_update(of=Job, skip_locked=True)
        refused: list[int] = []
        while True:
            refused_before = len(refused)
            found = self.db.execute(candidates.where(Job.id.not_in(refused)) if refused else candidates).all()
            for job_id, template_id, template_name in found:
                # The query read the job types unlocked: a node racing for the last place may have taken it.
                if self._held_back(template_id, template_name, node) is not None:
                    refused.append(job_id)
                    continue
                won = self._write(
                    update(_JOBS).where(_JOBS.c.id == job_id, _JOBS.c.status == PENDING, _JOBS.c.node_id.is_(None))
                    .values(status=QUEUED, node_id=node.id, last_status_change=utcnow())).rowcount
                if won:
                    job = self.db.get(Job, job_id, populate_existing=True)
                    record_event(self.db, job, "acquire")
                    return job
            if len(refused) == refused_before:
                return None  # nothing pending, or nothing won: the node asks again later
            # Some were refused: look again past them (each round refuses new ones, so this ends).

    def release(self, job: Job, node: ActingNode | None) -> Job:
        self._require_holder(job, node, "release")
        self._require_status(job, "release", QUEUED, FAILED)
        if job.status == QUEUED:
            self._set_status(job, PENDING)
        released_by, job.node_id = job.node_id, None
        # The job has no node any more: the event says which node let it go ({node} in notifications).
        record_event(self.db, job, "release", data={"node": released_by})
        return job

    def start(self, job: Job, node: ActingNode | None) -> Job:
        node = self._require_holder(job, node, "start")
        self._require_status(job, "start", QUEUED)
        self._require_workable(job, "start")  # a job reset while deleted, before reset refused it
        if node.current_job_id not in (None, job.id) and self._still_running(node):
            raise WrongState(f"Cannot start job {job.id}: node {node.id} is still working on job "
                             f"{node.current_job_id}")
        self._set_current_job(node, job.id)
        job.start_time = utcnow()
        self._set_status(job, RUNNING)
        record_event(self.db, job, "start")
        self.meta.child_started(job)
        return job

    def progress(self, job: Job, node: ActingNode | None, value: float, data: dict) -> Job:
        node = self._require_holder(job, node, "report progress on")
        self._require_status(job, "report progress on", RUNNING)
        if job.parent_id is None and not self.db.is_modified(job):
            # The hot path (a node reports many times per job): Core statements that re-check holder and state,
            # so that a change committed since the job was read (an abort, a cancel) is not overwritten; then
            # the full path below answers the right error.
            if record_progress(self.db, job, node.id, value, data or None) is not None:
                set_committed_value(job, "progress", value)  # the row already holds it: nothing to flush
                return job
            self.db.refresh(job)
            self._require_holder(job, node, "report progress on")
            self._require_status(job, "report progress on", RUNNING)
        job.progress = value
        record_event(self.db, job, "progress", data=data or None)
        self.meta.child_progressed(job)
        return job

    def finish(self, job: Job, node: ActingNode | None, error: str | None, category: str = ALGORITHM) -> Job:
        """Completes the job, or with ``error`` fails it in the node's ``category`` (ALGORITHM or DATA)."""
        if category not in NODE_ERROR_CATEGORIES:  # SYSTEM is the server's verdict (a lost lease), not a node's
            raise InvalidInput(f"error_category: {category!r} is not one of {', '.join(NODE_ERROR_CATEGORIES)}")
        node = self._require_node(node, "finish")
        if job.node_id != node.id or job.status in (CANCELED, PENDING):
            # Cancelled (the node may still hold it) or aborted while the node had it: the node's finish
            # changes nothing but frees it.
            if node.current_job_id == job.id:
                self._set_current_job(node, None)
                return job
            if job.status == CANCELED and job.node_id == node.id:
                return job
            if self._taken_from(job, node):  # and the node has started another job since
                return job
            raise Forbidden(f"Node {node.id} does not hold job {job.id}")
        self._require_status(job, "finish", RUNNING)
        self._free_node(job)  # first: its statement would flush the job's changes early, a second UPDATE
        job.end_time = utcnow()
        if error is not None:
            job.error_reason, job.error_category = error, category
            self._set_status(job, FAILED)
            record_event(self.db, job, "error", data={"category": category})
            self.meta.child_failed(job)
        else:
            job.progress = 1.0
            self._set_status(job, COMPLETED)
            record_event(self.db, job, "finish")
            self.meta.child_completed(job)
        return job

    def reset(self, job: Job, node: ActingNode | None) -> Job:
        self._require_holder(job, node, "reset")
        self._require_status(job, "reset", FAILED)
        # Its deletion left it FAILED with its node (nothing to abort): it goes back to work only once reinstated,
        # as nothing else puts a deleted job to work. The node may still release it.
        if not job.is_active:
            raise WrongState(f"Cannot reset job {job.id}: it is deleted")
        # Back in QUEUED, the job is scheduled again: held back as an acquire is (a paused job type, or one with
        # its max_scheduled jobs queued or running, which FAILED ones are not). Its node, which keeps it, had the
        # memory and the GPU when it acquired it.
        reason = self._held_back(job.template_id, job.template.name, None)
        if reason is not None:
            raise WrongState(f"Cannot reset job {job.id}: {reason}")
        self._back_to_start(job)
        self._set_status(job, QUEUED)
        record_event(self.db, job, "reset")
        self.meta.child_reset(job, had_failed=True)
        return job

    def abort(self, job: Job, *, error: str | None = None, category: str | None = None) -> Job:
        """Back to PENDING with no node: by an admin, or (with ``error``) by an expired lease."""
        if job.template.is_meta:
            raise WrongState(f"Cannot abort job {job.id}: abort or cancel its children instead")
        if job.status == PENDING and error is None:
            return job  # no node holds it: a no-op, as upstream (an admin tool may race a release)
        self._require_status(job, "abort", QUEUED, RUNNING, FAILED)
        # The node keeps the job as its current one until it calls finish (answered 2xx, changing nothing);
        # it may start another meanwhile (see _still_running).
        had_failed = job.status == FAILED
        if error is None:  # an admin's fresh start: ufdl.max_tries counts the lost leases since
            job.lost_leases = 0
        self._back_to_start(job)
        taken_from, job.node_id = job.node_id, None
        self._set_status(job, PENDING)
        record_event(self.db, job, "abort", error=error,
                     data={"node": taken_from, **({"category": category} if category else {})})
        self.meta.child_reset(job, had_failed=had_failed)
        return job

    def fail(self, job: Job, error: str, category: str) -> Job:
        """Give up on a job for good (e.g. too many lost leases)."""
        taken_from, job.node_id = job.node_id, None
        job.end_time = utcnow()
        job.error_reason, job.error_category = error, category
        self._set_status(job, FAILED)
        record_event(self.db, job, "error", data={"category": category, "node": taken_from})
        self.meta.child_failed(job)
        return job

    def cancel(self, job: Job, user: User) -> Job:
        if job.parent_id is not None:
            raise WrongState(f"Cannot cancel job {job.id}: it is part of job {job.parent_id}; cancel that one")
        self._require_status(job, "cancel", PENDING, QUEUED, RUNNING, FAILED)
        if not job.is_active:  # reinstated, it must wait for a node again (it came back CANCELED)
            raise WrongState(f"Cannot cancel job {job.id}: it is deleted")
        lock_descendants(self.db, job.id)
        self._cancel_tree(job, f"Cancelled by {user.username}")
        return job

    def _cancel_tree(self, job: Job, reason: str) -> None:
        for child in self.db.scalars(select(Job).where(Job.parent_id == job.id)).unique():
            if child.status not in FINAL_STATUSES or child.status == FAILED:
                self._cancel_tree(child, reason)
        if job.status in (COMPLETED, CANCELED):
            return
        # The node keeps running until it finishes; it is freed then (see finish).
        job.is_cancelled = True
        job.end_time = job.end_time or utcnow()
        # A failed job keeps its own reason. Without one, a job cancelled before any node took it still matched
        # the job launcher's poll (no start time, error or node): every launcher took it, was refused, and
        # polled the same job again for ever.
        job.error_reason = job.error_reason or reason
        self._set_status(job, CANCELED)
        record_event(self.db, job, "cancel")

    # Leases

    def expire_leases(self, now: datetime, timeout: float, max_tries: int) -> list[Job]:
        """Abort the jobs whose node has not been seen for ``timeout`` seconds (SYSTEM failure events); the
        ``max_tries``-th lease a job loses (QUEUED or RUNNING) fails it. None until ``timeout`` seconds after
        the server came back from a stop or an outage (``lease_clock``). Safe to run in several processes at
        once."""
        cutoff = now - timedelta(seconds=timeout)
        stale = select(Job).join(Node, Job.node_id == Node.id).where(
            Job.status.in_((QUEUED, RUNNING)), (Node.last_seen.is_(None)) | (Node.last_seen < cutoff),
            Job.last_status_change < cutoff, ~resumed_since(cutoff))
        if self.db.get_bind().dialect.name == "postgresql":
            locked = self._lock_stale(stale)
            if not locked:
                return []
            # Read afresh once locked: each is checked again (another request may have changed it meanwhile).
            stale = stale.where(Job.id.in_(locked)).execution_options(populate_existing=True)
        expired = []
        for job in self.db.scalars(stale).unique().all():
            message = f"Node {job.node_id} was not seen for {timeout:g} s"
            job.lost_leases += 1
            if job.lost_leases >= max_tries:
                self.fail(job, f"{message}; given up after {job.lost_leases} lost leases", SYSTEM)
            else:
                self.abort(job, error=message, category=SYSTEM)
            expired.append(job)
        return expired

    def _lock_stale(self, stale: Select) -> list[int]:
        """Of the stale jobs, those locked with their ancestors in the lock order (see above). A job
        whose lineage another request holds is left for the next check: waiting for it while holding the
        job could deadlock."""
        locked = []
        for job_id in self.db.scalars(stale.with_only_columns(Job.id)).all():
            chain = self.db.scalars(lineage(job_id)).all()
            held = self.db.scalars(lock_in_order(select(Job.id).where(Job.id.in_(chain)), skip_locked=True))
            if len(held.all()) == len(chain):
                locked.append(job_id)
        return locked


class MetaJobOrchestrator:
    """Runs a meta-job through its children: the parent starts with its first child, its progress is the mean
    of its graph's nodes, a finished child creates the children whose predecessors have all finished (with
    the wired outputs as inputs), the parent finishes with its last child and fails with any of them."""

    def __init__(self, db: Session, lifecycle: JobLifecycle):
        self.db = db
        self.lifecycle = lifecycle

    def _parent(self, child: Job) -> Job | None:
        """The child's parent, locked (PostgreSQL) and read afresh: siblings finishing at the same moment
        then decide one after the other, each seeing what the other committed (else both would see the other
        still running, and the next step of the graph would never be created)."""
        if child.parent_id is None:
            return None
        query = select(Job).where(Job.id == child.parent_id).execution_options(populate_existing=True)
        if self.db.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=Job)
        return self.db.scalars(query).unique().one()

    def _children(self, parent: Job) -> dict[str, Job]:
        # Deleted children too: a child is deleted only with its parent (``JobRecords``), and is still its step.
        query = select(Job).where(Job.parent_id == parent.id).execution_options(populate_existing=True)
        return {child.graph_node: child for child in self.db.scalars(query).unique()}

    def _update_progress(self, parent: Job, children: dict[str, Job]) -> None:
        nodes = parent.template.spec["nodes"]
        parent.progress = sum(children[node].progress if node in children else 0.0 for node in nodes) / len(nodes)

    def child_started(self, child: Job) -> None:
        parent = self._parent(child)
        if parent is None:
            return
        # Also while it has failed (a queued step lost its last lease first): its work has begun, so the abort
        # of that step sends it back to RUNNING (it went back to PENDING while this step ran).
        parent.start_time = parent.start_time or utcnow()
        if parent.status == PENDING:
            self.lifecycle._set_status(parent, RUNNING)
            record_event(self.db, parent, "start", data={"child": child.id})
        self.child_started(parent)

    def child_progressed(self, child: Job) -> None:
        parent = self._parent(child)
        if parent is None:
            return
        self._update_progress(parent, self._children(parent))
        record_event(self.db, parent, "progress", data={"child": child.id})
        self.child_progressed(parent)

    def child_failed(self, child: Job) -> None:
        parent = self._parent(child)
        if parent is None or parent.status in FINAL_STATUSES:
            return
        parent.error_reason = f"child job {child.id} ({child.graph_node}) failed: {child.error_reason}"
        parent.error_category = child.error_category
        parent.end_time = utcnow()
        self.lifecycle._set_status(parent, FAILED)
        record_event(self.db, parent, "error", data={"child": child.id})
        self.child_failed(parent)

    def child_reset(self, child: Job, *, had_failed: bool) -> None:
        """A child back at its start (reset, or aborted): the parent's progress follows it, and a failed
        parent goes back to work if this child had failed and no other child still has."""
        parent = self._parent(child)
        if parent is None or parent.status in (COMPLETED, CANCELED):
            return
        children = self._children(parent)
        self._update_progress(parent, children)
        if (had_failed and parent.status == FAILED
                and not any(sibling.status == FAILED for sibling in children.values())):
            parent.error_reason = parent.error_category = parent.end_time = None
            # Back where it was: a step that lost its last lease while queued failed it before any step started.
            self.lifecycle._set_status(parent, RUNNING if parent.start_time is not None else PENDING)
            record_event(self.db, parent, "reset", data={"child": child.id})
            # The steps whose predecessors completed while it had failed were not created then: they can run
            # now, beside this child (else they waited for its finish, though it is no predecessor of theirs).
            if self._create_ready_steps(parent, children):
                self.child_reset(parent, had_failed=True)
        else:
            record_event(self.db, parent, "progress", data={"child": child.id})
            self.child_progressed(parent)

    def child_completed(self, child: Job) -> None:
        parent = self._parent(child)
        if parent is None or parent.status in (COMPLETED, CANCELED):
            return
        if parent.status == FAILED:
            # No further step until its failed child is retried (which sees this one done), but its progress
            # is still the mean of its steps', as when they report.
            self._update_progress(parent, self._children(parent))
            record_event(self.db, parent, "progress", data={"child": child.id})
            self.child_progressed(parent)
            return
        children = self._children(parent)
        done = sum(job.status == COMPLETED for job in children.values())
        # First: should the next steps fail it (a missing output), its progress still counts this step's.
        self._update_progress(parent, children)
        if not self._create_ready_steps(parent, children):
            return
        if done == len(parent.template.spec["nodes"]):
            self._complete(parent, children)
        else:
            record_event(self.db, parent, "progress", data={"child": child.id})

    def _create_ready_steps(self, parent: Job, children: dict[str, Job]) -> bool:
        """Create the steps (added to ``children``) whose predecessors have all completed, with the wired
        outputs as inputs; False if the parent failed instead (a missing output, a deleted template)."""
        spec = parent.template.spec
        done = {node for node, job in children.items() if job.status == COMPLETED}
        # Every ready node's wiring first: a missing output fails the parent before any child is created.
        ready = {}
        for node, node_spec in spec["nodes"].items():
            if node in children:
                continue
            incoming = [d for d in spec["dependencies"] if d["to_node"] == node]
            if not all(d["from_node"] in done for d in incoming):
                continue
            wired = {}
            for dependency in incoming:
                source = children[dependency["from_node"]]
                output = self._output(source, dependency["from_output"])
                if output is None:
                    declared = source.template.outputs.get(dependency["from_output"])
                    self.lifecycle.fail(parent, f"child job {source.id} ({dependency['from_node']}) finished "
                                                f"without its output '{dependency['from_output']}' of type "
                                                f"{declared}", ALGORITHM)
                    return False
                wired[dependency["to_input"]] = {"value": output.id, "type": f"JobOutput<{output.type}>"}
            deleted = deleted_first_template(self.db, node_spec)
            if deleted is not None:
                # Deleted while the graph ran (the node's, or for an inner graph one of its first steps'): the
                # step cannot be taken, and the child's finish must not fail.
                self.lifecycle.fail(parent, f"child template '{deleted['name']}' version {deleted['version']} "
                                            f"of graph node {node} was deleted", SYSTEM)
                return False
            ready[node] = node_spec, wired
        for node, (node_spec, wired) in ready.items():
            children[node] = create_child_job(self.db, parent, node, node_spec, parent.input_values,
                                              parent.parameter_values or {}, parent.notification_override or {},
                                              wired)
            record_event(self.db, children[node], "create", data={"parent": parent.id})
        return True

    def _output(self, job: Job, name: str) -> JobOutput | None:
        """The child's active output ``name`` of the type its template declares (or a subtype), the first
        added if several qualify; None if it added none."""
        registry = type_registry(self.db)
        outputs = self.db.scalars(select(JobOutput).where(
            JobOutput.job_id == job.id, JobOutput.name == name, JobOutput.deletion_time.is_(None))
            .order_by(JobOutput.id)).all()
        try:
            declared = registry.resolve(job.template.outputs[name])
        except InvalidType:  # its plugin is gone since the template was imported: the name must do
            return outputs[0] if outputs else None
        for output in outputs:
            try:
                if is_subtype(registry.resolve(output.type), declared):
                    return output
            except InvalidType:
                continue
        return None

    def _complete(self, parent: Job, children: dict[str, Job]) -> None:
        """The parent finishes with its last child, taking the children's outputs as ``child:name``."""
        # The copies share the children's blobs: their locks are held from the read to our commit, as an upload
        # holds its blob's, so that the clean-up after a child's output deleted for good meanwhile sees the
        # copy (else it deletes the blob from under it). Read again once locked, until no new blob shows up.
        locked: set[str] = set()
        while True:
            copied = [(node, output) for node, child in sorted(children.items())
                      for output in self.db.scalars(select(JobOutput).where(
                          JobOutput.job_id == child.id, JobOutput.deletion_time.is_(None))
                          .order_by(JobOutput.id).execution_options(populate_existing=True))]
            keys = {output.blob_key for _, output in copied} - locked
            if not keys:
                break
            lock_blob_keys(self.db.connection(), keys)
            locked |= keys
        for node, output in copied:
            self.db.add(JobOutput(job_id=parent.id, name=f"{node}:{output.name}", type=output.type,
                                  content_type=output.content_type, blob_key=output.blob_key,
                                  size=output.size, creator_id=output.creator_id))
        parent.progress = 1.0
        parent.end_time = utcnow()
        self.lifecycle._set_status(parent, COMPLETED)
        self.db.flush()
        self.db.expire(parent, ["outputs"])
        record_event(self.db, parent, "finish")
        self.child_completed(parent)
