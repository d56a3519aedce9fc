"""Database access: the engine, the session factory and the request-scoped session bound to pyramid_tm."""
import logging
import os
import sqlite3

import psycopg
from sqlalchemy import engine_from_config, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, configure_mappers, sessionmaker
import transaction
import zope.sqlalchemy
from zope.sqlalchemy.datamanager import _SESSION_STATE, STATUS_CHANGED

from ..request_kinds import is_health_check, is_output_upload
from ..settings import SettingsError
from .meta import Base
from .users import RefreshToken, User
from .nodes import LeaseClock, Node
from .catalogue import DataDomain, Framework, Licence
from .job_types import JobType
from .templates import JobTemplate, TemplateChild, TemplateTypeReference
from .jobs import Job, JobOutput
from .events import JobEvent
from .seed_job_types import SeedJobType, SeedJobTypeRevision

__all__ = ["Base", "User", "RefreshToken", "Node", "LeaseClock", "Licence", "DataDomain", "Framework", "JobType",
           "JobTemplate", "TemplateChild", "TemplateTypeReference", "Job", "JobOutput", "JobEvent",
           "SeedJobType", "SeedJobTypeRevision",
           "get_engine", "get_session_factory", "get_tm_session", "begin_for", "write_from_here", "mark_written",
           "database_unavailable"]

configure_mappers()


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, foreign keys on, and SQLAlchemy (not pysqlite) in charge of BEGIN.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; the documented recipe is to
    switch it off and emit BEGIN ourselves.
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # LIKE is case-insensitive on SQLite by default; PostgreSQL's is not. Make them agree.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()
        # SQLite's lower() folds ASCII letters only, PostgreSQL's every one: the case-insensitive filters
        # lower both sides, the value in Python. No index is built on lower(), so replacing it changes none.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        # A deferred BEGIN that later writes cannot wait for the write lock (SQLite answers "database is
        # locked" at once); sessions that may write therefore take it at BEGIN and wait their turn.
        immediate = connection.get_execution_options().get("sqlite_immediate")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def get_engine(settings: dict, prefix: str = "sqlalchemy.") -> Engine:
    url = settings[prefix + "url"]
    options = {}
    if url.startswith("postgresql"):
        options = {"pool_size": settings.get("ufdl.db.pool_size", 10), "max_overflow": 10,
                   # No ping per checkout (a round trip on every request); stale connections are recycled.
                   "pool_recycle": 1800,
                   # libpq waits for ever by default: a host that drops packets would hold every thread.
                   "connect_args": {"connect_timeout": settings.get("ufdl.db.connect_timeout", 10)}}
    elif url.startswith("sqlite"):
        options = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        # The embedded database lives in a file under the project (var/ by default): make its folder.
        folder = os.path.dirname(os.path.abspath(url.removeprefix("sqlite:///")))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:  # a file in the way, no permission: a traceback from the CLI and `ufdl serve`
            raise SettingsError(f"the database URL cannot be used: cannot make the folder {folder} of its SQLite "
                                f"file: {error.strerror or error}") from None
    echo = settings.get("ufdl.db.echo", False)
    statements = logging.getLogger("sqlalchemy.engine.Engine")
    if echo and statements.hasHandlers():
        # Logging is set up (the INI's sections): it shows the statements once its level lets them through.
        # SQLAlchemy's echo adds a handler of its own besides, and each statement was logged twice.
        statements.setLevel(logging.INFO)
        echo = False
    try:
        engine = engine_from_config({"url": url}, prefix="", echo=echo, **options)
    # No driver here can use it, or its port is no number ('host:port' of an IPv6 address without brackets):
    # the CLI, `ufdl serve` and pserve printed a traceback (or misnamed the setting).
    except (ArgumentError, ModuleNotFoundError, ValueError) as error:
        raise SettingsError(f"the database URL cannot be used: {error}") from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def database_unavailable(error: BaseException) -> bool:
    """The database could not be reached or could not serve (down, restarting, out of connections, locked):
    nobody's fault here, and worth trying again later. SQLAlchemy's errors, or the driver's own (for
    statements sent to psycopg directly)."""
    if isinstance(error, PoolTimeout):  # every pooled connection stayed busy
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig
    if isinstance(error, psycopg.OperationalError):
        # No SQLSTATE: the client's own failure to connect or to talk. 08 connection exception, 53 insufficient
        # resources (too many connections, disk full), 57 operator intervention (shutdown, cannot connect now).
        return error.sqlstate is None or error.sqlstate[:2] in ("08", "53", "57")
    # SQLite: another process held the write lock for longer than the busy timeout, or the disk is full (as
    # PostgreSQL's class 53 above: the write can succeed once space is freed, and nothing was half-written).
    return isinstance(error, sqlite3.OperationalError) and any(
        message in str(error) for message in ("database is locked", "database or disk is full"))


def database_error_line(error: BaseException) -> str:
    """The first line of what the database or its driver said, for a log or a message: SQLAlchemy's own text
    adds the statement and a link on lines of their own."""
    said = getattr(error, "orig", None) or error
    return (str(said).strip().splitlines() or [type(said).__name__])[0]


def get_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_tm_session(session_factory, transaction_manager, request=None, *, read_only: bool = False) -> Session:
    """A session joined to a transaction manager: it commits or aborts with it (the CLI's and tests' way)."""
    session = session_factory(info={"request": request})
    zope.sqlalchemy.register(session, transaction_manager=transaction_manager)
    return begin_for(session, read_only=read_only)


def begin_for(session: Session, *, read_only: bool) -> Session:
    """``read_only`` sessions let SQLite readers run side by side; the others take SQLite's write lock when
    their transaction begins (PostgreSQL needs neither)."""
    if not read_only and session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_immediate": True})
    return session


def mark_written(session: Session) -> None:
    """Tell zope.sqlalchemy that Core statements wrote (it sees only the ORM's, and would roll back a session
    it thinks unchanged); a session not joined to a transaction manager (a test's plain one) commits itself."""
    if session in _SESSION_STATE:
        zope.sqlalchemy.mark_changed(session)


def request_may_write(request) -> bool:
    """Reads are GETs without Node-Id; a node's GET records last_seen (and acquire is a GET), but for the health
    check's, which ignores its Node-Id. An output upload begins as a reader too, and becomes the writer once its
    bytes are stored (``write_from_here``)."""
    if is_output_upload(request):
        return False
    if request.method in ("GET", "HEAD"):
        return "Node-Id" in request.headers and not is_health_check(request)
    return True


def write_from_here(session: Session) -> None:
    """A session begun as a reader takes SQLite's write lock now, waiting its turn as BEGIN IMMEDIATE does
    (PostgreSQL locks rows as it goes: nothing to do). What it read before is of an older snapshot: the
    caller reads again, locked, what it decides on."""
    connection = session.connection()
    if connection.dialect.name != "sqlite" or connection.get_execution_options().get("sqlite_immediate"):
        return
    # A reader of a WAL database cannot become its writer once another writer has committed since its
    # snapshot (SQLite refuses at once, without waiting): it has written nothing, so it ends its read and
    # begins again. pysqlite, left out of transaction handling (see _configure_sqlite), commits what we begin.
    connection.exec_driver_sql("COMMIT")
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def includeme(config):
    settings = config.get_settings()
    # pyramid_tm's default manager is per thread (each waitress thread serves one request at a time), so the
    # request sessions join it through one registration on their factory instead of one per request.
    config.include("pyramid_tm")
    config.include("pyramid_retry")
    # pyramid_tm would read the caller's identity (a database query) to note it on the transaction, outside the
    # exception views: an error there (the database unreachable) would escape them as a bare 500.
    settings["tm.annotate_user"] = False

    # Tests pass their own engine so that the whole suite shares one connection pool.
    engine = settings.get("ufdl.db.engine") or get_engine(settings)
    session_factory = get_session_factory(engine)
    # A request that succeeds commits, whether or not it wrote: on PostgreSQL a ROLLBACK, zope.sqlalchemy's end of
    # a session it thinks unchanged, makes psycopg forget the statements it prepared on that connection (and how
    # often it saw the others), so that with readers among the writers no statement was ever prepared again.
    zope.sqlalchemy.register(session_factory, transaction_manager=transaction.manager, initial_state=STATUS_CHANGED)
    config.registry["db.engine"] = engine
    config.registry["db.session_factory"] = session_factory

    def db(request) -> Session:
        return begin_for(session_factory(info={"request": request}), read_only=not request_may_write(request))

    config.add_request_method(db, "db", reify=True)
