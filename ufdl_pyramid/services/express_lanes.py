"""The express lanes (PostgreSQL): a node's acquire, start, progress report and finish, each answered by one
autocommitted statement when all is in order; a small upload by one short transaction, a create-job by four
statements (see ``add_output`` and ``create_job``).

A node sends the first four 13 times per job (ten of them progress reports), and the full stack costs each
several round trips and most of 3 ms of CPU: BEGIN, the node marked seen, the job and its meta-jobs loaded
through the ORM under their row locks, the checks, the writes, the event, COMMIT. Yet for the common case the
whole of a transition fits in one statement, atomic without a transaction block of its own. Each lane's statement

- locks the node, if the token's user is active and owns it (or is an admin), and marks it seen, as the full
  stack does first on every node request (the lock order: the node, then the job; see ``job_lifecycle.py``);
- moves the job, if the conditions the full stack would check all hold (the lane's ``conditions``), and no
  notification of the server's or of the job's own is due for the transition (those are sent by the full stack
  after its commit);
- writes the node's current job where the transition changes it (start sets it, finish clears it);
- sends ``NOTIFY ufdl_job_events`` and writes the event as ``record_event`` does;
- answers the job as ``job_json`` writes it.

Each condition is part of the statement, so a change committed meanwhile (an abort, a cancel) is seen. When any
fails nothing of the job is written (the node may have been marked seen) and the lane answers None: the full
stack then handles the request, checks everything again and answers as it always does, the precise error or
the cases the lanes leave to it (meta-jobs and their steps, Scale job types, a failing finish, a node asking
again for a job it holds, a large upload, a meta-template). So the lanes hold only the plain case of each
operation; the state machine stays ``JobLifecycle``'s (and ``JobOutputService``'s, ``JobCreator``'s), and
``tests/functional/test_express_lanes.py`` runs each lane against it.
"""
import io
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from types import SimpleNamespace

import psycopg
from psycopg.types.json import Json
from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from ..errors import ServiceError
from ..models import Job, JobOutput, JobTemplate
from ..models.jobs import COMPLETED, PENDING, QUEUED, RUNNING
from ..models.seed_job_types import SCALE_TEMPLATE_PREFIX
from ..models.templates import META
from ..representations import job_json, job_output_json
from ..storage import OutputStorage
from .events import EVENT_COLUMNS, NOTIFY_CHANNEL
from .executor_checks import ExecutorChecks
from .job_creation import CREATE_JOB, JobCreator
from .outputs import (blob_lock_key, canonical_output_type, check_output_name, clean_content_type,
                      delete_unreferenced_blobs)
from .templates import TemplateService
from .type_registry import registry_of, type_registry
from .validation import validate

log = logging.getLogger(__name__)

_JOB_COLUMNS = [column.name for column in Job.__table__.c]
_OUTPUT_COLUMNS = [column.name for column in JobOutput.__table__.c]
_CALLER = "(SELECT id FROM caller)"
# The node, locked, if the token's user is active and owns it (or is an admin): every lane's first step.
_CALLER_CTE = """caller AS (
    SELECT nodes.id, nodes.current_job_id FROM nodes
    WHERE nodes.id = %(node)s AND EXISTS (
        SELECT 1 FROM users WHERE users.id = %(user)s AND users.is_active
        AND (users.id = nodes.owner_id OR users.is_admin))
    FOR NO KEY UPDATE OF nodes)"""


def _no_notification(transition: str) -> str:
    """The job's own notifications for the transition: none when the path is absent or holds null or []."""
    path = f"'{{notification_override,actions,on_{transition}}}'"
    return f"COALESCE(CAST(jobs.notification_override AS jsonb) #> {path}, '[]') IN ('[]', 'null')"


@dataclass(frozen=True)
class Lane:
    """One transition's plain case: ``sets`` and ``conditions`` are SQL on ``jobs`` (``caller``: the node's id
    and current job, locked); ``current_job``, if given, is the node's new current job (SQL, ``moved`` holding
    the job's row if it moved)."""
    transition: str
    sets: str
    conditions: str
    current_job: str | None = None

    @cached_property
    def statement(self) -> str:
        # psycopg's own placeholders: the statement goes to the driver as it is (see ``run``).
        current_job = f", current_job_id = {self.current_job}" if self.current_job else ""
        return f"""
            WITH {_CALLER_CTE},
            moved AS (
                UPDATE jobs SET {self.sets}
                WHERE jobs.id = %(job)s AND EXISTS (SELECT 1 FROM caller) AND {self.conditions}
                AND {_no_notification(self.transition)}
                RETURNING jobs.*),
            seen AS (
                UPDATE nodes SET last_seen = %(now)s{current_job} WHERE nodes.id = {_CALLER}),
            announced AS (SELECT pg_notify(%(channel)s, CAST(id AS text)) FROM moved),
            written AS (
                INSERT INTO job_events ({EVENT_COLUMNS})
                SELECT id, '{self.transition}', status, progress, node_id, error_reason, %(data)s, %(now)s,
                       pg_current_xact_id()::text::bigint
                FROM moved CROSS JOIN announced
                RETURNING id)
            SELECT {", ".join(f"moved.{name}" for name in _JOB_COLUMNS)}, templates.name, templates.version,
                (SELECT json_agg(json_build_object('pk', outputs.id, 'name', outputs.name, 'type', outputs.type)
                                 ORDER BY outputs.id)
                 FROM job_outputs AS outputs WHERE outputs.job_id = moved.id AND outputs.deletion_time IS NULL)
            FROM moved JOIN job_templates AS templates ON templates.id = moved.template_id CROSS JOIN written
            """


# Each lane's conditions are those of the JobLifecycle method of the same name that its plain case passes.
ACQUIRE = Lane(
    "acquire", f"status = '{QUEUED}', node_id = {_CALLER}, last_status_change = %(now)s",
    # Pending and free; a workable template (not a meta-job's) that the caller may read (a worker reads the
    # template it runs), and no Scale job type's (whose pause and max_scheduled the full stack checks).
    f"""jobs.status = '{PENDING}' AND jobs.node_id IS NULL AND NOT jobs.is_cancelled
        AND jobs.deletion_time IS NULL AND EXISTS (
            SELECT 1 FROM job_templates AS templates JOIN users ON users.id = %(user)s
            WHERE templates.id = jobs.template_id AND templates.kind <> '{META}'
            AND NOT starts_with(templates.name, '{SCALE_TEMPLATE_PREFIX}')
            AND (users.is_admin OR templates.scope <> 'user' OR templates.creator_id = users.id))""")
START = Lane(
    "start", f"status = '{RUNNING}', start_time = %(now)s, last_status_change = %(now)s",
    # Held by the node, which works on no other job; no meta-job's step (its meta-job starts with it).
    f"""jobs.node_id = {_CALLER} AND jobs.status = '{QUEUED}' AND jobs.parent_id IS NULL
        AND jobs.deletion_time IS NULL
        AND EXISTS (SELECT 1 FROM caller WHERE current_job_id IS NULL OR current_job_id = jobs.id)
        AND jobs.template_id IN (SELECT id FROM job_templates WHERE kind <> '{META}')""",
    current_job="CASE WHEN EXISTS (SELECT 1 FROM moved) THEN %(job)s ELSE nodes.current_job_id END")
PROGRESS = Lane(
    "progress", "progress = %(progress)s",
    # No meta-job's step: its meta-job's progress follows.
    f"jobs.node_id = {_CALLER} AND jobs.status = '{RUNNING}' AND jobs.parent_id IS NULL")
FINISH = Lane(
    # A success only: a failure may retry, fail a meta-job or run its reset; the full stack has those.
    "finish", f"status = '{COMPLETED}', progress = 1.0, end_time = %(now)s, last_status_change = %(now)s",
    f"jobs.node_id = {_CALLER} AND jobs.status = '{RUNNING}' AND jobs.parent_id IS NULL",
    current_job="CASE WHEN nodes.current_job_id = %(job)s AND EXISTS (SELECT 1 FROM moved) THEN NULL "
                "ELSE nodes.current_job_id END")
LANES = {lane.transition: lane for lane in (ACQUIRE, START, PROGRESS, FINISH)}


@contextmanager
def dropped_if_broken(connection: Connection):
    """The lanes send their statements to psycopg itself: a connection the database dropped (a restart, say) is
    taken out of the pool here, as SQLAlchemy does for the statements it runs."""
    try:
        yield
    except psycopg.Error:
        if connection.connection.driver_connection.broken:
            connection.invalidate()
        raise


@contextmanager
def autocommitted(engine: Engine):
    """A pooled connection's psycopg connection, in autocommit for one lane's statement. Set and reset by hand:
    SQLAlchemy's switch of isolation level, made on every checkout and return, cost more than the rest of the
    connection's round trip through the pool."""
    pooled = engine.raw_connection()
    driver = pooled.driver_connection
    try:
        driver.autocommit = True
        yield driver
    except psycopg.Error:
        if driver.broken:  # the database dropped it (a restart, say): not back into the pool
            pooled.invalidate()
        raise
    finally:
        if not driver.closed and not driver.broken:
            driver.autocommit = False
        pooled.close()


def run(connection: psycopg.Connection, lane: Lane, *, user_id: int, node_id: int, job_id: int, now: datetime,
        data: dict | None = None, **values) -> dict | None:
    """The job's JSON after the lane moved it (the connection must autocommit: see ``autocommitted``); None when
    the lane does not apply, with nothing of the job written. ``values``: the lane's own placeholders
    (``progress``)."""
    # Straight to psycopg: SQLAlchemy's result handling of 25 columns would cost more than the statement.
    # Its types add nothing here: psycopg reads timestamptz as aware datetimes and json as Python values,
    # which is what the ORM hands ``job_json`` on PostgreSQL too.
    with connection.cursor() as cursor:
        cursor.execute(lane.statement, {"user": user_id, "node": node_id, "job": job_id, "now": now,
                                        "channel": NOTIFY_CHANNEL, "data": Json(data) if data is not None else None,
                                        **values})
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


# Adding an output: the plain case of ``JobOutputService.add``, for a small body (see ``add_output``).
OUTPUT_BODY_LIMIT = 1 << 20
# The node marked seen; the job, locked, if the node holds it RUNNING (not cancelled, not deleted, no meta-job's
# step, whose output names are checked against its graph's); its active outputs and the job-types table.
_OPEN_FOR_OUTPUT = f"""
    WITH {_CALLER_CTE},
    seen AS (UPDATE nodes SET last_seen = %(now)s WHERE nodes.id = {_CALLER}),
    job AS (
        SELECT jobs.id FROM jobs
        WHERE jobs.id = %(job)s AND jobs.node_id = {_CALLER} AND jobs.status = '{RUNNING}'
        AND NOT jobs.is_cancelled AND jobs.deletion_time IS NULL AND jobs.parent_id IS NULL
        FOR UPDATE OF jobs)
    SELECT (SELECT json_agg(json_build_array(outputs.name, outputs.type)) FROM job_outputs AS outputs
            WHERE outputs.job_id = job.id AND outputs.deletion_time IS NULL),
           (SELECT json_agg(json_build_array(types.name, types.pkg, types.cls) ORDER BY types.name)
            FROM job_types AS types)
    FROM job"""
# The node marked seen alone, as the full stack does before an upload's bytes come in.
_SEEN = f"WITH {_CALLER_CTE} UPDATE nodes SET last_seen = %(now)s WHERE nodes.id = {_CALLER}"
# The blob's key locked (``lock_blob_keys``), the output's row and its event; no row if an output of that name
# and type came first (the unique index).
_ADD_OUTPUT = f"""
    WITH locked AS (SELECT pg_advisory_xact_lock(%(lock)s)),
    added AS (
        INSERT INTO job_outputs (job_id, name, type, content_type, blob_key, size, creator_id, creation_time)
        SELECT %(job)s, %(name)s, %(type)s, %(content_type)s, %(key)s, %(size)s, %(user)s, %(now)s FROM locked
        ON CONFLICT DO NOTHING
        RETURNING {", ".join(_OUTPUT_COLUMNS)}),
    announced AS (SELECT pg_notify(%(channel)s, CAST(job_id AS text)) FROM added),
    written AS (
        INSERT INTO job_events ({EVENT_COLUMNS})
        SELECT jobs.id, 'add_output', jobs.status, jobs.progress, jobs.node_id, jobs.error_reason,
               json_build_object('name', added.name, 'type', added.type, 'pk', added.id), %(now)s,
               pg_current_xact_id()::text::bigint
        FROM jobs JOIN added ON added.job_id = jobs.id CROSS JOIN announced
        RETURNING id)
    SELECT {", ".join(f"added.{name}" for name in _OUTPUT_COLUMNS)} FROM added CROSS JOIN written"""


class Refused(Exception):
    """The lane's answer is this error (the storage's: the full stack would meet it again, and log it twice)."""

    def __init__(self, error: ServiceError):
        super().__init__(error.detail)
        self.error = error


def add_output(engine: Engine, storage: OutputStorage, max_size: int, *, user_id: int, node_id: int,
               job_id: int, name: str, type_text: str, body: bytes, content_type: str | None,
               now: datetime) -> dict | None:
    """The output's JSON once it is stored and committed; None when the lane does not apply, with nothing
    written (the node may have been marked seen; bytes stored under a key that no row refers to are removed);
    ``Refused`` when the storage failed, with nothing written but the node's being seen (as the full stack).

    A small body only (``OUTPUT_BODY_LIMIT``, in memory), staged before any lock is taken, as the full stack
    does. Then one transaction of four round trips: the locks and the checks; the key's lock, the row and the
    event; the bytes published under their key while the key's lock is held (see ``lock_blob_keys``); COMMIT."""
    if len(body) > max_size:
        return None  # the full stack's 413
    values = {"user": user_id, "node": node_id, "job": job_id, "now": now, "channel": NOTIFY_CHANNEL}
    try:
        staged, failed = storage.stage(io.BytesIO(body), max_size=max_size), None
    except ServiceError as error:  # answered once the request is known to be in order otherwise
        staged, failed = None, error
    published = unpublished = None
    try:
        with engine.connect() as connection, dropped_if_broken(connection):
            with connection.begin() as transaction, connection.connection.driver_connection.cursor() as cursor:
                cursor.execute(_OPEN_FOR_OUTPUT, values)
                canonical = _new_output_type(cursor.fetchone(), name, type_text)
                if canonical is None:
                    transaction.rollback()
                    return None
                if failed is not None:
                    transaction.commit()  # the node was seen, as the full stack records it before the bytes
                    raise Refused(failed)
                cursor.execute(_ADD_OUTPUT, {**values, "lock": blob_lock_key(staged.key), "name": name,
                                             "type": canonical, "content_type": clean_content_type(content_type),
                                             "key": staged.key, "size": staged.size})
                added = cursor.fetchone()
                if added is None:  # another upload of that name and type committed while we waited for the job
                    transaction.rollback()
                    return None
                try:
                    published = storage.publish(staged).key
                except ServiceError as error:
                    # Nothing is kept but the node's being seen, as in the full stack (which commits that first);
                    # the bytes may be under their key already (a failure after the rename): checked below.
                    transaction.rollback()
                    published, unpublished = staged.key, error
            if unpublished is not None:
                with connection.begin(), connection.connection.driver_connection.cursor() as cursor:
                    cursor.execute(_SEEN, values)
                raise Refused(unpublished)
    except BaseException:
        if published is not None:  # no commit: the bytes may be referred to by no row
            try:
                delete_unreferenced_blobs(engine, storage, {published})
            except Exception:  # noqa: BLE001 - ``ufdl outputs sweep`` removes it later
                log.warning("blob %s of a failed upload is left for 'ufdl outputs sweep'", published, exc_info=True)
        raise
    finally:
        if staged is not None and published is None:
            storage.discard(staged)
    return job_output_json(SimpleNamespace(**dict(zip(_OUTPUT_COLUMNS, added))))


def _new_output_type(row, name: str, type_text: str) -> str | None:
    """The canonical type of the output to add, from ``_OPEN_FOR_OUTPUT``'s row; None if the full stack must
    answer: the job does not take outputs from the node, the name or the type is refused, or the job has an
    output of that name and type already (its 409)."""
    if row is None:
        return None
    outputs, types = row
    try:
        check_output_name(name)
        canonical = canonical_output_type(registry_of(types or ()), type_text)
    except ServiceError:
        return None
    return None if [name, canonical] in (outputs or ()) else canonical


# Creating a job: the plain case of ``JobCreator.create``, a workable template's job.
# The caller's being an admin, if the token's user is active (and owns the node it acts as, which is marked seen).
_CALLER_ALONE = "SELECT users.is_admin FROM users WHERE users.id = %(user)s AND users.is_active"
_CALLER_AS_NODE = f"""
    WITH {_CALLER_CTE},
    seen AS (UPDATE nodes SET last_seen = %(now)s WHERE nodes.id = {_CALLER})
    SELECT users.is_admin FROM users WHERE users.id = %(user)s AND EXISTS (SELECT 1 FROM caller)"""
_JOBS = Job.__table__
_TEMPLATES = JobTemplate.__table__
_NEW_JOB_VALUES = ("description", "input_values", "parameter_values", "notification_override")
# One statement: the job's row, if its template is still not deleted, whose row it share-locks as the full stack
# does until its commit (a registry prune deciding whether the template has jobs waits for it).
_INSERT_JOB = insert(_JOBS).from_select(
    ["template_id", "creator_id", "last_status_change", *_NEW_JOB_VALUES],
    select(_TEMPLATES.c.id, bindparam("creator_id"), bindparam("now", type_=_JOBS.c.last_status_change.type),
           *(bindparam(name, type_=_JOBS.c[name].type) for name in _NEW_JOB_VALUES))
    .where(_TEMPLATES.c.id == bindparam("template_id"), _TEMPLATES.c.deletion_time.is_(None))
    .with_for_update(read=True),
    include_defaults=True).returning(*_JOBS.c)


def create_job(engine: Engine, executors, *, user_id: int, node_id: int | None, template_id: int, body,
               now: datetime) -> dict | None:
    """The new job's JSON (``engine`` must autocommit); None when the lane does not apply, with nothing
    written (the node may have been marked seen): a body or values the full stack refuses, a template that is
    not there, not the caller's to see, deleted or a meta-template (whose children the full stack creates).
    Statements of their own: the caller, the template, the job types, the job (with its template's check)."""
    if not isinstance(body, dict) or "child_notification_overrides" in body:
        return None  # only a meta-job has children: the full stack answers either
    try:
        validate(CREATE_JOB, body)
    except ServiceError:
        return None
    with engine.connect() as connection, dropped_if_broken(connection), Session(bind=connection) as db:
        with connection.connection.driver_connection.cursor() as cursor:
            cursor.execute(_CALLER_AS_NODE if node_id is not None else _CALLER_ALONE,
                           {"user": user_id, "node": node_id, "now": now})
            caller = cursor.fetchone()
        if caller is None:
            return None
        template = db.get(JobTemplate, template_id)
        if (template is None or template.is_meta or not template.is_active
                or not template.visible_to(user_id, bool(caller[0]))):
            return None
        creator = JobCreator(db, TemplateService(db, type_registry(db)), ExecutorChecks(executors, db))
        try:
            values = creator.job_values(template, body)
        except ServiceError:
            return None
        row = connection.execute(_INSERT_JOB, {"template_id": template_id, "creator_id": user_id, "now": now,
                                               **values}).first()
        if row is None:  # deleted meanwhile: the full stack says so
            return None
        job = SimpleNamespace(**row._asdict())
        job.template = SimpleNamespace(id=template.id, name=template.name, version=template.version)
        job.outputs = []
        return job_json(job)
