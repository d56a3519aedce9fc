"""Jobs and their outputs in the traversal tree.

``/v1/jobs/{pk}`` is a job; ``/v1/jobs/{pk}/outputs/{NAME}/{TYPE}`` one of its outputs (which need not exist
yet: adding it is a POST there). ``/v1/job-outputs/{pk}`` is an output by primary key.
"""
from pyramid.authorization import Allow, Authenticated
from pyramid.traversal import split_path_info
from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import defaultload, selectinload

from ..errors import ConcurrentChange, Conflict, InvalidInput, WrongState
from ..models import Job, JobOutput, JobTemplate
from ..models.jobs import QUEUED, RUNNING
from ..permissions import Permission, user_principal
from ..representations import job_json, job_output_json
from ..services.job_lifecycle import JobLifecycle, lineage, lock_descendants, lock_in_order, lock_nodes_working_on
from ..services.outputs import check_output_name
from ..services.records import RecordService
from .base import Collection, EditableItem, Resource, SoftDeletableItem, parse_pk, require_caller

MAX_SEGMENT = 1000


class JobRecords(RecordService):
    """A deleted job is not worked on: no node acquires, starts or adds outputs to it, and one that a node
    holds is aborted as it is deleted (the node's late finish changes nothing); reinstated, it waits for a
    node again. A meta-job is deleted, reinstated and deleted for good as a whole: its children (the steps
    of its graph, nested ones included) go with it and cannot go alone, as with cancel. A deleted job is
    neither edited nor cancelled."""

    model = Job
    schema = {"type": "object", "additionalProperties": False, "required": ["description"],
              "properties": {"description": {"type": "string", "maxLength": 100000}}}

    def update(self, row: Job, data, *, partial: bool) -> Job:
        if not row.is_active:  # until it is reinstated, a deleted job stays as it was deleted
            raise WrongState(f"Cannot change job {row.id}: it is deleted")
        return super().update(row, data, partial=partial)

    def destroy(self, row: Job) -> Job:
        self._require_top_level(row, "delete")
        row.soft_delete()
        lifecycle = JobLifecycle(self.db)
        for job in [row, *self._descendants(row)]:
            if job.deletion_time is None:
                job.deletion_time = row.deletion_time
            if job.node_id is not None and job.status in (QUEUED, RUNNING):
                lifecycle.abort(job)
        self._flush()
        return row

    def reinstate(self, row: Job) -> Job:
        self._require_top_level(row, "reinstate")
        deleted_at = row.deletion_time
        row.reinstate()
        for child in self._descendants(row):
            if child.deletion_time == deleted_at:  # deleted with it
                child.deletion_time = None
        self._flush()
        return row

    def hard_delete(self, row: Job) -> Job:
        self._require_top_level(row, "delete")
        if self.db.get_bind().dialect.name == "postgresql":
            # The nodes working on the job or its children lose their current job (a foreign key sets it
            # null): their rows are locked first, then the job's (the lock order, see job_lifecycle.py).
            working = lock_nodes_working_on(self.db, row.id)
            relock = _LOCKED_LINEAGE_BY_PK.execution_options(populate_existing=True)
            self.db.scalars(relock, {"pk": row.id}).unique().all()
            if lock_nodes_working_on(self.db, row.id) != working:
                raise ConcurrentChange(f"A node started job {row.id} (or one of its steps) at the same moment")
        return super().hard_delete(row)  # the children go too (their foreign key cascades)

    @staticmethod
    def _require_top_level(row: Job, action: str) -> None:
        if row.parent_id is not None:
            raise WrongState(f"Cannot {action} job {row.id}: it is part of job {row.parent_id}; "
                             f"{action} that one")

    def _descendants(self, row: Job) -> list[Job]:
        return lock_descendants(self.db, row.id)


class JobOutputRecords(RecordService):
    model = JobOutput
    schema = {}

    def reinstate(self, output: JobOutput) -> JobOutput:
        # A new upload may have taken the deleted output's (job, name, type): the 409 names it, as an
        # upload's does.
        holder = self.db.scalar(select(JobOutput.id).where(
            JobOutput.job_id == output.job_id, JobOutput.name == output.name, JobOutput.type == output.type,
            JobOutput.active(), JobOutput.id != output.id))
        if holder is not None:
            raise Conflict(f"Job {output.job_id} already has an output {output.name!r} of type {output.type}: "
                           f"output {holder}; delete that one first")
        return super().reinstate(output)


class OutputSlot(Resource):
    """The output NAME of type TYPE of a job: a leaf, so the next segment (``info``) is a view name."""

    def __init__(self, request, name: str, parent: "OutputsByName", type_text: str):
        super().__init__(request, name, parent)
        self.job = parent.job
        self.output_name = parent.output_name
        self.output_type = type_text


class OutputsByName(Resource):
    def __init__(self, request, name: str, parent: "JobOutputsOfJob"):
        super().__init__(request, name, parent)
        self.job = parent.job
        self.output_name = name

    def __getitem__(self, type_text: str) -> OutputSlot:
        if not type_text:
            raise KeyError(type_text)
        if len(type_text) > MAX_SEGMENT:
            raise InvalidInput(f"output type: longer than {MAX_SEGMENT} characters")
        return OutputSlot(self.request, type_text, self, type_text)


class JobOutputsOfJob(Resource):
    def __init__(self, request, name: str, parent: "JobItem"):
        super().__init__(request, name, parent)
        self.job = parent.row

    def __getitem__(self, output_name: str) -> OutputsByName:
        if not output_name:
            raise KeyError(output_name)
        if len(output_name) > MAX_SEGMENT:
            check_output_name(output_name)  # refused (400) with the rule names follow
        return OutputsByName(self.request, output_name, self)


class JobItem(EditableItem, SoftDeletableItem):
    @property
    def __acl__(self):
        creator = user_principal(self.row.creator_id) if self.row.creator_id else None
        aces = [(Allow, Authenticated, Permission.VIEW), (Allow, Authenticated, Permission.ACT)]
        if creator:
            aces += [(Allow, creator, Permission.EDIT), (Allow, creator, Permission.CANCEL)]
        return aces

    def __getitem__(self, key: str):
        if key == "outputs":
            return JobOutputsOfJob(self.request, key, self)
        raise KeyError(key)


# Every node request (progress above all) finds its job here: of the template, load only what the job's
# answer and the state machine read, not its documents (JSON columns) nor its domain and licence. Anything
# else is still there, loaded on first use.
_JOB_TEMPLATE = defaultload(Job.template)
JOB_LOAD_OPTIONS = (_JOB_TEMPLATE.load_only(JobTemplate.name, JobTemplate.version, JobTemplate.kind),
                    _JOB_TEMPLATE.lazyload(JobTemplate.domain), _JOB_TEMPLATE.lazyload(JobTemplate.licence))
# Built once: the statement's cache key is then computed once too, not on every lookup as ``db.get`` does.
_JOB_BY_PK = select(Job).options(*JOB_LOAD_OPTIONS).where(Job.id == bindparam("pk"))
# The actions that change a job read it locked (PostgreSQL; SQLite's writers take turns anyway), so that two
# actors on one job (a node's finish and an admin's abort, a cancel, an expiring lease) decide one after the
# other, the second on the first's outcome. Its meta-jobs are locked with it, before it (the lock order, see
# job_lifecycle.py). Reads do not lock, nor do output uploads, which lock the job once the bytes have
# streamed in (``JobOutputService.add``); neither does the express lane for progress, whose one statement
# checks it all, nor the deletion for good, which locks nodes before the job (``JobRecords.hard_delete``).
_LOCKED_LINEAGE_BY_PK = lock_in_order(
    select(Job).options(*JOB_LOAD_OPTIONS).where(Job.id.in_(lineage(bindparam("pk")))))
_CHANGING_ACTIONS = {"acquire", "release", "start", "progress", "finish", "reset", "abort", "cancel", "reinstate"}


def _changes_the_job(request) -> bool:
    """Whether the request is one of the job's state changes: ``/v1/jobs/{pk}/{action}``, or PUT, PATCH,
    DELETE on the job itself (traversal has not reached the view name yet: the path tells)."""
    segments = split_path_info(request.path_info)  # as traversal reads it: "//" and "." are no segments
    action = segments[3] if len(segments) > 3 else ""
    return action in _CHANGING_ACTIONS or (action == "" and request.method in ("PUT", "PATCH", "DELETE"))


class Jobs(Collection):
    __acl__ = [(Allow, Authenticated, Permission.VIEW), (Allow, Authenticated, Permission.ACT)]
    model = Job
    item_class = JobItem
    service_class = JobRecords
    represent = staticmethod(job_json)

    def query(self) -> Select:
        # A list loads each job's template as a single job does: not its documents, whose JSON would be
        # parsed again for every row of a long list. Its outputs come by batch of jobs (a list is read in
        # batches, which a joined collection does not allow).
        return select(Job).options(*JOB_LOAD_OPTIONS, selectinload(Job.outputs))

    def __getitem__(self, key: str) -> JobItem:
        require_caller(self.request)
        db = self.request.db
        pk = parse_pk(key)
        if _changes_the_job(self.request) and db.get_bind().dialect.name == "postgresql":
            row = next((job for job in db.scalars(_LOCKED_LINEAGE_BY_PK, {"pk": pk}).unique() if job.id == pk), None)
        else:
            row = db.execute(_JOB_BY_PK, {"pk": pk}).unique().scalar_one_or_none()
        if row is None:
            raise KeyError(key)
        return self.item_class(self.request, key, self, row)


class JobOutputItem(SoftDeletableItem):
    pass


class JobOutputs(Collection):
    __acl__ = [(Allow, Authenticated, Permission.VIEW)]
    model = JobOutput
    item_class = JobOutputItem
    service_class = JobOutputRecords
    represent = staticmethod(job_output_json)
