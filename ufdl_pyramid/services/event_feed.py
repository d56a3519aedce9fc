"""Tailing the job-events outbox without ever skipping an event (no Pyramid, no gevent here).

One ``EventFeed`` per process reads every new event with one query per wake-up; the caller fans the rows out.

SQLite has one writer at a time, so ids commit in order: remembering the highest id read is enough (ids are
AUTOINCREMENT: never reused).

PostgreSQL draws ids when a row is inserted but transactions commit in any order: id 11 can be visible while
id 10 is not yet (its transaction is still running: it will appear later) or never will be (rolled back). A
tailer that only remembers "the highest id seen" skips 10 when it commits late. So the feed remembers the
highest id it read and the ids missing below it (*gaps*), and asks for both each time: the rows above the
highest, and the gap ids that have appeared since (one statement; a gap that fills is returned once, late, but
in order for its job, whose events its row lock serialises). A gap is settled once the transaction that drew
it has ended: ``record_event`` takes the transaction id before drawing the event id, so that transaction's id
is below any transaction id assigned after the gap was seen; the feed takes one such id
(``pg_current_xact_id()`` in a tiny transaction of its own) per batch of new gaps, and the gaps of that batch
are settled once the oldest transaction still running *in our database* is past it: a late commit is then
visible, a rollback never will be. (Only our database's transactions write our events: one left open in
another database of the same server must not hold our gaps open.) That oldest transaction is read from
``pg_stat_activity`` before the rows are: one seen ended there has committed (or rolled back) before the
rows' snapshot is taken. However long a transaction stays open, its gap stays open: only beyond
``max_pending`` open ids at once are the oldest given up (with a warning). Young gaps are looked at again
within milliseconds (their transaction is committing), old ones once a second. A gap id is settled only by a
read that looked for it (not one cut short below it by the batch size), and a read that fails midway changes
nothing, so its rows are read again.
"""
import logging
import math
import time
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, any_, literal, or_, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from ..models import JobEvent
from .events import event_json

log = logging.getLogger(__name__)

EVENTS = JobEvent.__table__
# The id (xid8) of the oldest transaction running in our database, or the next id if none is: what is running
# holds a 32-bit xid, widened against the snapshot's next xid by its signed distance from it. Read at the first
# look at pg_stat_activity in a transaction (later ones reuse that copy), so ask it in a fresh transaction.
OLDEST_RUNNING_HERE = text("""
    WITH snapshot AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS next_xid),
    running AS (
        SELECT backend_xid AS xid FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL AND datid = (SELECT oid FROM pg_database WHERE datname = current_database())
        UNION ALL
        SELECT transaction FROM pg_prepared_xacts WHERE database = current_database())
    SELECT least(next_xid, min(next_xid + ((xid::text::bigint - next_xid) % 4294967296 + 6442450944)
                                          % 4294967296 - 2147483648))
    FROM snapshot LEFT JOIN running ON true GROUP BY next_xid""")
BATCH = 5000
MAX_PENDING = 100_000
START_WAIT = 5.0  # seconds a start waits for the transactions that drew the ids so far to end
START_WINDOW = 10_000  # should one stay open: the ids drawn last that are not visible yet become open gaps


@dataclass
class _GapBatch:
    ids: set[int]
    xid: int  # a transaction id assigned after these gaps were seen
    since: float


@dataclass
class EventFeed:
    engine: Engine
    max_pending: int = MAX_PENDING
    batch: int = BATCH
    _highest: int = 0
    _gaps: list[_GapBatch] = field(default_factory=list)

    @property
    def postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def horizon(self) -> int:
        """Every id at or below it is settled: read, or never to appear."""
        return min((min(batch.ids) for batch in self._gaps), default=self._highest + 1) - 1

    @property
    def has_open_gaps(self) -> bool:
        """True while a gap may still fill: the caller should poll again soon, even without a notification."""
        return bool(self._gaps)

    def poll_delay(self, idle: float = 1.0) -> float:
        """How soon to look again without a notification: a gap seen a moment ago is a transaction committing
        (milliseconds); one open for seconds is a transaction left open, looked at less often."""
        if not self._gaps:
            return idle
        age = time.monotonic() - max(batch.since for batch in self._gaps)
        return 0.02 if age < 1 else 0.2 if age < 10 else idle

    def start(self) -> None:
        """Start at the newest event: earlier ones are served by each connection's own replay.

        On PostgreSQL, ids already drawn may belong to transactions still running. Those end within
        milliseconds, normally: the start waits up to ``START_WAIT`` for them. Should one stay open longer, the
        last ``START_WINDOW`` ids drawn that are not visible yet become open gaps, settled like any other.
        """
        with self.engine.connect() as connection:
            highest = connection.scalar(text("SELECT coalesce(max(id), 0) FROM job_events"))
            connection.rollback()
            gaps = []
            if self.postgresql:
                # Every id drawn so far: its transaction's id is below the one taken next.
                highest = max(highest, connection.scalar(text(
                    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM job_events_id_seq")) or 0)
                connection.rollback()
                xid = self._new_xid()
                deadline = time.monotonic() + START_WAIT
                while True:
                    settled = self._xmin(connection) > xid
                    connection.rollback()
                    if settled or time.monotonic() >= deadline:
                        break
                    time.sleep(0.01)
                if not settled:
                    low = max(0, highest - START_WINDOW)
                    visible = set(connection.scalars(select(EVENTS.c.id).where(EVENTS.c.id > low,
                                                                               EVENTS.c.id <= highest)))
                    connection.rollback()
                    gaps.append(_GapBatch(set(range(low + 1, highest + 1)) - visible, xid, time.monotonic()))
                    log.warning("a transaction open since before this start is still running: if it wrote an "
                                "event more than %d ids before the newest, watchers get it only by reconnecting",
                                START_WINDOW)
        self._highest = highest
        self._gaps = [batch for batch in gaps if batch.ids]

    def poll(self) -> list[dict]:
        """The events committed since the last poll, each returned once: in id order, but for gaps that fill."""
        if not self.postgresql:
            query = select(EVENTS).where(EVENTS.c.id > self._highest).order_by(EVENTS.c.id).limit(self.batch)
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
                connection.rollback()
            if rows:
                self._highest = rows[-1].id
            return [self._message(row) for row in rows]
        wanted = EVENTS.c.id > self._highest
        pending = sorted(set().union(*(batch.ids for batch in self._gaps)))
        if pending:
            wanted = or_(wanted, EVENTS.c.id == any_(literal(pending, ARRAY(BigInteger))))
        query = select(EVENTS).where(wanted).order_by(EVENTS.c.id).limit(self.batch)
        with self.engine.connect() as connection:
            # Before the rows' snapshot (each statement takes its own): a transaction ended by then is in it.
            xmin = self._xmin(connection) if self._gaps else 0
            rows = connection.execute(query).all()
            connection.rollback()
        self._settle([row.id for row in rows], xmin, complete=len(rows) < self.batch)
        return [self._message(row) for row in rows]

    # PostgreSQL bookkeeping

    def _settle(self, ids: list[int], xmin: int, complete: bool) -> None:
        """After a read of ``ids`` (``complete``: not cut short by the batch size) from a snapshot whose oldest
        running transaction was ``xmin``."""
        seen = set(ids)
        last_read = max(ids, default=self._highest)
        new_highest = max(self._highest, last_read)
        missing = set(range(self._highest + 1, new_highest)) - seen
        # Taken before anything changes: should it fail, the next poll reads the same rows again.
        new_batch = _GapBatch(missing, self._new_xid(), time.monotonic()) if missing else None
        # A read cut short looked for no gap id above the last id it returned.
        looked_through = math.inf if complete else last_read
        kept = []
        for batch in self._gaps:
            batch.ids -= seen
            if batch.xid < xmin:  # its transactions have all ended: an id looked for and not seen never will be
                batch.ids = {i for i in batch.ids if i > looked_through}
            if batch.ids:
                kept.append(batch)
        self._gaps = kept + ([new_batch] if new_batch else [])
        self._highest = new_highest
        while sum(len(batch.ids) for batch in self._gaps) > self.max_pending:
            oldest = self._gaps.pop(0)
            log.warning("giving up on event ids %s (over %d held open: a transaction stayed open since %.0f s)",
                        sorted(oldest.ids)[:10], self.max_pending, time.monotonic() - oldest.since)

    def _new_xid(self) -> int:
        """A transaction id assigned now (after everything read so far); committed at once, WAL not flushed."""
        with self.engine.connect() as connection:
            with connection.begin():
                connection.execute(text("SET LOCAL synchronous_commit TO off"))
                return connection.scalar(text("SELECT pg_current_xact_id()::text::bigint"))

    @staticmethod
    def _xmin(connection: Connection) -> int:
        """The oldest transaction running in our database (see ``OLDEST_RUNNING_HERE``): the connection must
        have no transaction under way."""
        return connection.scalar(OLDEST_RUNNING_HERE)

    @staticmethod
    def _message(row) -> dict:
        return event_json(JobEvent(**row._mapping))
