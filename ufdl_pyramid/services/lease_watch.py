"""Each server process's own lease checks, every ``ufdl.leases.check_interval`` seconds.

Every ``acquire-next`` checks the leases too, but while no node polls (all of them busy, or none left) a job
whose node died would show RUNNING for as long, and its notifications would wait. The check runs in a thread
of each process (started by the process's first request: a forked worker starts its own), in a transaction
of its own, so its aborts are committed, evented and notified as a request's are.
"""
import logging
import os
import threading

import transaction
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from ..models import begin_for, database_error_line, database_unavailable
from ..models.meta import utcnow
from . import schema
from .job_lifecycle import JobLifecycle
from .lease_clock import DatabaseOutages

log = logging.getLogger(__name__)


class LeaseWatch:
    def __init__(self, session_factory: sessionmaker, engine: Engine, outages: DatabaseOutages, *,
                 interval: float, timeout: float, max_tries: int):
        self.session_factory, self.engine, self.outages = session_factory, engine, outages
        self.interval, self.timeout, self.max_tries = interval, timeout, max_tries
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        """Start this process's thread, unless it runs already (cheap: every request calls it)."""
        if self.interval <= 0 or self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._stopped = threading.Event()
                self._thread = threading.Thread(target=self._run, name="ufdl-lease-watch", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def check(self) -> int:
        """One check (its own transaction, committed); how many jobs lost their lease."""
        self.outages.record_return(self.engine, utcnow())
        # This thread's own transaction manager, which the request sessions' factory joins (models.includeme);
        # it closes the session once committed or aborted.
        with transaction.manager:
            db = begin_for(self.session_factory(), read_only=False)
            return len(JobLifecycle(db).expire_leases(utcnow(), self.timeout, self.max_tries))

    def _schema_behind(self) -> bool:
        """Whether the database is not at the schema this code expects (False when it cannot tell)."""
        try:
            return not schema.is_current(self.engine)
        except Exception:  # noqa: BLE001 - it cannot tell: the check's own error is logged
            return False

    def _run(self) -> None:
        away = behind = False
        while not self._stopped.wait(self.interval):
            try:
                lost = self.check()
            except Exception as error:
                # A server started before 'ufdl db upgrade': a traceback at every check said nothing more. (Asked
                # once: alembic logs two lines at every look at the schema.)
                if not database_unavailable(error) and (behind or self._schema_behind()):
                    if not behind:
                        log.warning("the lease check cannot run: the database is not at the newest schema (run "
                                    "'ufdl db upgrade', then restart the server)")
                    behind = True
                elif not database_unavailable(error):
                    log.exception("the lease check failed; trying again in %g s", self.interval)
                elif not away:  # one line for the whole outage
                    log.warning("the lease check cannot reach the database (%s); trying again every %g s",
                                database_error_line(error), self.interval)
                if database_unavailable(error):
                    self.outages.seen()  # the return holds the leases back (lease_clock)
                    away = True
                continue
            away = behind = False
            if lost:
                log.info("%d job(s) lost their lease", lost)
