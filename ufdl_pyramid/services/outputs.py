"""Job outputs: a node adds the bytes of an output to the job it runs; anyone signed in reads them.

The bytes live in an `OutputStorage` (content-addressed, so identical outputs share one blob); the database
row knows the job, the name, the type and the blob's key. A blob is deleted only **after the commit** that
removed the last row referring to it (`BlobCleanup`), and a blob stored by a transaction that rolled back is
deleted too when nothing refers to it. No Pyramid here.
"""
import logging
import re
import time
from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy import bindparam, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload, sessionmaker

from ..errors import Conflict, Forbidden, InvalidInput, NotFound, WrongState
from ..executors import CONTENT_TYPE
from ..models import Job, JobOutput, Node, User, write_from_here
from ..models.jobs import FINAL_STATUSES, OUTPUT_NAME_LENGTH, RUNNING
from ..models.meta import MAX_ID, utcnow
from ..storage import BlobTooLarge, OutputStorage
from ..types import MAX_TYPE_LENGTH, TypeRegistry
from .auth import ActingNode
from .events import record_event
from .type_registry import resolve, type_registry

log = logging.getLogger(__name__)

OUTPUT_NAME = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{OUTPUT_NAME_LENGTH}}}")
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class NotStarted(WrongState):
    """Adding an output to a job that has not started yet: upstream answers 417."""

    status = 417


def check_output_name(name: str) -> str:
    """A name safe in a URL segment and a filename: letters, digits, ``_ . : -``; not ``.`` or ``..``."""
    if not OUTPUT_NAME.fullmatch(name) or set(name) == {"."}:
        raise InvalidInput(f"Invalid output name {name!r}: use 1 to {OUTPUT_NAME_LENGTH} letters, digits, '_', '.', "
                           "':' or '-'")
    return name


def clean_content_type(value: str | None) -> str:
    """The Content-Type to keep: printable ASCII (no header injection), else the generic binary type."""
    value = (value or "").strip()
    return value if CONTENT_TYPE.fullmatch(value) else DEFAULT_CONTENT_TYPE


def withheld(db: Session, output: JobOutput) -> str | None:
    """Why an output is not served (its bytes, or as a create-job input), or None: it is deleted, or its job is.
    Its record stays readable, to be reinstated. (get-all-values/JobOutput applies the same rule in SQL.)"""
    if not output.is_active:
        return f"Output {output.id} is deleted"
    if db.get(Job, output.job_id).deletion_time is not None:
        return f"Output {output.id} is of job {output.job_id}, which is deleted"
    return None


def servable_output(db: Session, value) -> JobOutput | None:
    """The output a create-job value names by its pk, or None: no pk, no such output, or one `withheld`."""
    known = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID
    output = db.get(JobOutput, value) if known else None
    return None if output is None or withheld(db, output) else output


def canonical_output_type(registry: TypeRegistry, type_text: str) -> str:
    """An output's TYPE, as stored and answered."""
    canonical = str(resolve(registry, type_text, "output type"))
    # The canonical spelling (a space after each comma) may be longer than what was sent; it is what the
    # API answers, so it must still fit a path segment, and the column.
    if len(canonical) > MAX_TYPE_LENGTH:
        raise InvalidInput(f"output type: its canonical form {canonical[:60]}... is longer than "
                           f"{MAX_TYPE_LENGTH} characters")
    return canonical


def blob_lock_key(key: str) -> int:
    """The advisory lock of a blob key (PostgreSQL): its first 60 bits."""
    return int(key[:15], 16)


# The job read again, locked, once an upload's bytes are stored: its own row (``populate_existing`` overwrites
# what the unlocked read saw), not its template and outputs, which the first read loaded and which nothing after
# reads (``db.refresh`` reloaded them: a tenth of the upload's CPU). Built once, as the job's other lookups are.
_LOCKED_JOB = (select(Job).options(lazyload(Job.template), lazyload(Job.outputs)).where(Job.id == bindparam("pk"))
               .with_for_update(of=Job).execution_options(populate_existing=True))
# Its node's row, locked before the job's: a plain Core read on the session's connection (through the ORM's
# execution it cost as much as reading the whole job).
_LOCKED_NODE = select(Node.id).where(Node.id == bindparam("pk")).with_for_update()


class JobOutputService:
    def __init__(self, db: Session, storage: OutputStorage, max_size: int | None = None):
        self.db = db
        self.storage = storage
        self.max_size = max_size

    def canonical_type(self, type_text: str) -> str:
        return canonical_output_type(type_registry(self.db), type_text)

    def servable(self, output: JobOutput) -> JobOutput:
        """The output, if its bytes are served (see ``withheld``); NotFound otherwise."""
        reason = withheld(self.db, output)
        if reason is not None:
            raise NotFound(reason)
        return output

    def find(self, job: Job, name: str, type_text: str) -> JobOutput:
        """The job's active output of that name and type, or NotFound."""
        check_output_name(name)
        canonical = self.canonical_type(type_text)
        output = self.db.scalar(select(JobOutput).where(
            JobOutput.job_id == job.id, JobOutput.name == name, JobOutput.type == canonical,
            JobOutput.deletion_time.is_(None)))
        if output is None:
            raise NotFound(f"Job {job.id} has no output {name!r} of type {canonical}")
        return output

    def add(self, job: Job, node: ActingNode | None, name: str, type_text: str, stream: BinaryIO,
            content_type: str | None, creator_id: int | None, declared_size: int | None = None) -> JobOutput:
        """Streams the bytes into storage and records the output (and an ``add_output`` event).
        ``declared_size`` (the Content-Length) past the limit is refused before any byte is stored."""
        self._check_open(job, node)
        check_output_name(name)
        self._check_copied_name(job, name)
        canonical = self.canonical_type(type_text)
        self._check_unique(job, name, canonical)
        if self.max_size is None:
            raise ValueError("JobOutputService.add needs max_size")
        if declared_size is not None and declared_size > self.max_size:
            raise BlobTooLarge(self.max_size)
        # Staged, the bytes are out of reach of a clean-up of identical bytes (after another upload of them that
        # failed, or a deletion for good): they go under their key only once we hold its lock, to our commit.
        staged = self.storage.stage(stream, max_size=self.max_size)
        try:
            self._lock_open_job(job, node)
            lock_blob_keys(self.db.connection(), [staged.key])
        except BaseException:
            self.storage.discard(staged)
            raise
        BlobCleanup.note_stored(self.db, staged.key)
        blob = self.storage.publish(staged)
        output = JobOutput(job_id=job.id, name=name, type=canonical, content_type=clean_content_type(content_type),
                           blob_key=blob.key, size=blob.size, creation_time=utcnow(),
                           creator_id=creator_id)
        self.db.add(output)
        job_id = job.id  # a failed flush expires the session's objects: the message cannot read them
        try:
            self.db.flush()
        except IntegrityError:
            # Another upload of the same (job, name, type) committed first; our blob goes on rollback.
            raise Conflict(f"Job {job_id} already has an output {name!r} of type {canonical}") from None
        self.db.expire(job, ["outputs"])
        record_event(self.db, job, "add_output", data={"name": name, "type": canonical, "pk": output.id})
        return output

    def _lock_open_job(self, job: Job, node: ActingNode) -> None:
        """Lock the node's row, then the job's (the lock order, see job_lifecycle.py), to our commit; the job,
        read again, must still take outputs from the node."""
        # The node was marked seen without holding its row (nor SQLite's write lock) while the bytes streamed in
        # (its heartbeats keep its lease meanwhile).
        write_from_here(self.db)
        if self.db.connection().execute(_LOCKED_NODE, {"pk": node.id}).first() is None:
            raise Forbidden(f"Node {node.id} does not exist")
        # The job was read, unlocked, before the bytes streamed in: an abort or a cancel may have come since
        # (the abort clears the outputs: one added after it would wait for the next run).
        job_id = job.id
        if self.db.scalar(_LOCKED_JOB, {"pk": job_id}) is None:  # deleted for good meanwhile
            raise NotFound(f"Job {job_id} was deleted at the same moment")
        self._check_open(job, node)

    def _check_copied_name(self, job: Job, name: str) -> None:
        """A graph's step's output is copied to its meta-job as ``node:name`` (``outer:node:name`` from an inner
        graph): the copy must fit an output name too, else the graph's completion fails (a 500 on PostgreSQL)."""
        copied, parent_id, graph_node = name, job.parent_id, job.graph_node
        while parent_id is not None:
            copied = f"{graph_node}:{copied}"
            row = self.db.execute(select(Job.parent_id, Job.graph_node).where(Job.id == parent_id)).first()
            parent_id, graph_node = row if row is not None else (None, None)
        if len(copied) > OUTPUT_NAME_LENGTH:
            raise InvalidInput(f"Invalid output name {name!r}: job {job.id} is a step of a graph, whose meta-job "
                               f"would carry it as {copied[:60]!r}..., longer than {OUTPUT_NAME_LENGTH} characters")

    @staticmethod
    def _check_open(job: Job, node: ActingNode | None) -> None:
        """The job takes outputs from this node: it holds the job, RUNNING and not deleted."""
        if node is None:
            raise Forbidden("Only a node may add an output to a job: send the Node-Id header")
        if job.node_id != node.id:
            raise Forbidden(f"Node {node.id} does not hold job {job.id}")
        if not job.is_active:
            raise WrongState(f"Cannot add an output to job {job.id}: it is deleted")
        if job.status in FINAL_STATUSES or job.is_cancelled:
            raise WrongState(f"Cannot add an output to job {job.id}: it is {job.status}")
        if job.status != RUNNING:
            raise NotStarted(f"Cannot add an output to job {job.id}: it has not started ({job.status})")

    def delete(self, job: Job, output: JobOutput, node: ActingNode | None, user: User) -> JobOutput:
        """Soft-deletes an output: by the node running the job, or by an admin."""
        if not user.is_admin:
            if node is None or job.node_id != node.id:
                raise Forbidden(f"Only the node running job {job.id} (or an admin) may delete its outputs")
            if job.status != RUNNING:
                raise WrongState(f"Cannot delete an output of job {job.id}: it is {job.status}")
        output.soft_delete()
        self.db.flush()
        self.db.expire(job, ["outputs"])
        return output

    def _check_unique(self, job: Job, name: str, canonical: str) -> None:
        # Before the bytes are stored: a duplicate is refused without uploading it. The job was loaded with its
        # outputs; an upload racing this one is refused by the unique index when the row is flushed.
        if any(output.name == name and output.type == canonical and output.is_active for output in job.outputs):
            raise Conflict(f"Job {job.id} already has an output {name!r} of type {canonical}")


# What a quoted filename in a header cannot hold: a name stored before the names were checked as they are now (a
# graph node "first\n" named its meta-job's outputs "first\n:output") is offered with "_" in their place.
_NOT_IN_FILENAME = re.compile(r'[^\x20-\x7e]|["\\]')


def download_filename(name: str, filetype: str | None = None) -> str:
    """The filename offered on download: the output's name, its extension replaced by ``filetype``."""
    name = _NOT_IN_FILENAME.sub("_", name)
    if not filetype:
        return name
    extension = filetype.lstrip(".")
    if not OUTPUT_NAME.fullmatch(extension):
        raise InvalidInput(f"Invalid filetype {filetype!r}")
    stem, dot, _ = name.rpartition(".")
    return f"{stem if dot and stem else name}.{extension}"


def lock_blob_keys(connection, keys) -> None:
    """Serialise what decides a blob's fate, per key, until the transaction ends: an upload referring to it and
    a clean-up deleting it (PostgreSQL: advisory locks on the key's first 60 bits; SQLite: its writers take
    turns already, the clean-up taking the write lock too)."""
    if connection.dialect.name == "postgresql":
        for key in sorted(keys):  # one order everywhere: no deadlock between two holders of several keys
            connection.execute(_LOCK_KEY, {"key": blob_lock_key(key)})


_LOCK_KEY = text("SELECT pg_advisory_xact_lock(:key)")


def delete_unreferenced_blobs(engine: Engine, storage: OutputStorage, keys: set[str], *,
                              dry_run: bool = False) -> set[str]:
    """Delete the blobs of ``keys`` that no output row (active or soft-deleted) refers to; answers those keys.
    A transaction of its own holds the keys' locks (SQLite: its write lock) from the check to the deletion,
    so an upload of the same bytes committing meanwhile keeps its blob."""
    with engine.connect().execution_options(sqlite_immediate=True) as connection:
        with connection.begin():
            lock_blob_keys(connection, keys)
            referenced = set(connection.scalars(select(JobOutput.blob_key)
                                                .where(JobOutput.blob_key.in_(sorted(keys))).distinct()))
            unreferenced = keys - referenced
            if not dry_run:
                for key in sorted(unreferenced):
                    storage.delete(key)
    return unreferenced


def sweep_blobs(engine: Engine, storage: OutputStorage, *, older_than: float, dry_run: bool = False,
                batch_size: int = 100, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Delete the stored blobs, last written over ``older_than`` seconds ago, that no output row refers to:
    those a crash left between an upload's rename and its commit. Answers (blobs checked, blobs deleted);
    ``progress(checked, deleted)`` is called after each batch."""
    checked = deleted = 0
    batch: set[str] = set()

    def sweep_batch() -> None:
        nonlocal checked, deleted
        deleted += len(delete_unreferenced_blobs(engine, storage, batch, dry_run=dry_run))
        checked += len(batch)
        batch.clear()
        if progress is not None:
            progress(checked, deleted)

    for key in storage.keys(stored_before=time.time() - older_than):
        batch.add(key)
        if len(batch) >= batch_size:
            sweep_batch()
    if batch:
        sweep_batch()
    return checked, deleted


class BlobCleanup:
    """Deletes blobs that no output row refers to any more, once the database says so for good.

    Listens on a session factory: before each flush it notes the blob keys of the outputs being deleted (an
    output, or a job with its outputs and its children's, which the database removes by ON DELETE CASCADE);
    after the commit it deletes those of the keys that no row, active or soft-deleted, still refers to. Blobs
    stored by a transaction that ends without committing (an error, whatever raised it) are checked the same
    way when it ends. The check and the deletion run in a transaction of their own that holds the keys' locks
    (`lock_blob_keys`), which an upload of the same bytes takes too, before it publishes them under the key,
    and keeps until it commits: the check sees the upload's row, or runs before the upload's bytes are there.
    """

    DELETED = "ufdl.deleted_blob_keys"
    STORED = "ufdl.stored_blob_keys"

    def __init__(self, storage: OutputStorage):
        self.storage = storage

    @classmethod
    def note_stored(cls, db: Session, key: str) -> None:
        db.info.setdefault(cls.STORED, set()).add(key)

    def install(self, session_factory: sessionmaker) -> None:
        event.listen(session_factory, "before_flush", self.before_flush)
        event.listen(session_factory, "after_commit", self.after_commit)
        event.listen(session_factory, "after_transaction_end", self.after_transaction_end)

    def before_flush(self, session: Session, _context, _instances) -> None:
        keys = set()
        jobs = []
        for row in session.deleted:
            if isinstance(row, JobOutput):
                keys.add(row.blob_key)
            elif isinstance(row, Job):
                jobs.append(row.id)
        if jobs:
            keys |= self._keys_of_jobs(session, jobs)
        if keys:
            session.info.setdefault(self.DELETED, set()).update(keys)

    @staticmethod
    def _keys_of_jobs(session: Session, job_ids: list[int]) -> set[str]:
        """The blob keys of these jobs' outputs and of all their descendants' (children die with the parent)."""
        keys: set[str] = set()
        seen: set[int] = set()
        frontier = [job_id for job_id in job_ids if job_id is not None]
        with session.no_autoflush:
            while frontier:
                seen.update(frontier)
                keys.update(session.scalars(select(JobOutput.blob_key).where(JobOutput.job_id.in_(frontier))))
                frontier = [child for child in session.scalars(select(Job.id).where(Job.parent_id.in_(frontier)))
                            if child not in seen]
        return keys

    def after_commit(self, session: Session) -> None:
        session.info.pop(self.STORED, None)
        self._delete_unreferenced(session, session.info.pop(self.DELETED, set()))

    def after_transaction_end(self, session: Session, transaction) -> None:
        """After a commit nothing is left here; otherwise the transaction ended without one: a rollback, or
        pyramid_tm closing the session on an error (which fires no ``after_rollback``)."""
        if transaction.parent is not None:
            return  # a savepoint: the outer transaction decides
        session.info.pop(self.DELETED, None)
        self._delete_unreferenced(session, session.info.pop(self.STORED, set()))

    def _delete_unreferenced(self, session: Session, keys: set[str]) -> None:
        if not keys:
            return
        try:
            # The session cannot run SQL now (its transaction is over): the check runs in a transaction of its own.
            delete_unreferenced_blobs(session.get_bind(), self.storage, keys)
        except Exception:
            # The commit has happened: a blob left behind wastes space but breaks nothing.
            log.exception("could not delete unreferenced output blobs %s", sorted(keys))
