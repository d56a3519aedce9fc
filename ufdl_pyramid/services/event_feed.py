"""Tailing the job-events outbox without ever skipping an event (no Pyramid, no gevent here).

One ``EventFeed`` per process reads every new event with one query per wake-up; the caller fans the rows out.

SQLite has one writer at a time, so ids commit in order: remembering the highest id read is enough (ids are
AUTOINCREMENT: never reused).

PostgreSQL draws ids when a row is inserted but transactions commit in any order: id 11 can be visible while
id 10 is not yet (its transaction is still running: it will appear later) or never will be (rolled back). A
tailer that only remembers "the highest id seen" skips 10 when it commits late. So the feed keeps a
*horizon* (every id at or below it is settled: read, or never to appear), re-reads above it, and remembers
the ids it already returned there. An id missing below the highest one read (a *gap*) is settled once the
transaction that drew it has ended: ``record_event`` takes the transaction id before drawing the event id,
so that transaction's id is below any transaction id assigned after the gap was seen; the feed takes one such
id (``pg_current_xact_id()`` in a tiny transaction of its own) per batch of new gaps, and the gaps of that
batch are settled once the oldest running transaction (``pg_snapshot_xmin``) is past it: a late commit is
then visible, a rollback never will be. A gap that stays open longer than ``gap_timeout`` (a transaction
left open for minutes) is given up with a warning, so the re-read window cannot grow without bound.
"""
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import literal_column, select, text
from sqlalchemy.engine import Connection, Engine

from ..models import JobEvent
from .events import event_json

log = logging.getLogger(__name__)

EVENTS = JobEvent.__table__
XMIN = literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint").label("xmin_")
BATCH = 5000


@dataclass
class _GapBatch:
    ids: set[int]
    xid: int  # a transaction id assigned after these gaps were seen
    since: float


@dataclass
class EventFeed:
    engine: Engine
    gap_timeout: float = 300.0
    horizon: int = 0
    _returned: set[int] = field(default_factory=set)  # ids above the horizon already returned
    _highest: int = 0
    _gaps: list[_GapBatch] = field(default_factory=list)

    @property
    def postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def has_open_gaps(self) -> bool:
        """True while a gap may still fill: the caller should poll again soon, even without a notification."""
        return bool(self._gaps)

    def start(self) -> None:
        """Start at the newest event: earlier ones are served by each connection's own replay.

        On PostgreSQL, ids at or below the current maximum may still be drawn by running transactions: wait
        until those have ended (normally milliseconds), so the horizon starts settled.
        """
        with self.engine.connect() as connection:
            highest = connection.scalar(text("SELECT coalesce(max(id), 0) FROM job_events"))
            if self.postgresql:
                # Every id drawn so far: its transaction's id is below the one taken next.
                drawn = connection.scalar(text(
                    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM job_events_id_seq"))
                highest = max(highest, drawn or 0)
                connection.rollback()
                xid = self._new_xid()
                deadline = time.monotonic() + self.gap_timeout
                while self._xmin(connection) <= xid and time.monotonic() < deadline:
                    connection.rollback()
                    time.sleep(0.01)
            connection.rollback()
        self.horizon = self._highest = highest
        self._returned.clear()
        self._gaps.clear()

    def poll(self) -> list[dict]:
        """The events committed since the last poll, in id order (each returned once)."""
        query = (select(EVENTS).where(EVENTS.c.id > self.horizon).order_by(EVENTS.c.id).limit(BATCH))
        if not self.postgresql:
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
                connection.rollback()
            if rows:
                self.horizon = self._highest = rows[-1].id
            return [self._message(row) for row in rows]
        # One statement: the rows and the oldest running transaction, from the same snapshot. While gaps are
        # open and nothing new comes, the xmin must come from a snapshot no later than the rows' one: take it
        # first.
        with self.engine.connect() as connection:
            early_xmin = self._xmin(connection) if self._gaps else 0
            rows = connection.execute(query.add_columns(XMIN)).all()
            xmin = rows[0].xmin_ if rows else early_xmin
            connection.rollback()
        fresh = [row for row in rows if row.id not in self._returned]
        self._settle([row.id for row in rows], xmin)
        return [self._message(row) for row in fresh]

    # PostgreSQL bookkeeping

    def _settle(self, ids: list[int], xmin: int) -> None:
        seen = set(ids)
        for batch in self._gaps:
            batch.ids -= seen
        new_highest = max(ids, default=self._highest)
        if new_highest > self._highest:
            missing = set(range(self._highest + 1, new_highest)) - seen
            missing.discard(0)
            if missing:
                self._gaps.append(_GapBatch(missing, self._new_xid(), time.monotonic()))
            self._highest = new_highest
        self._returned |= seen
        now = time.monotonic()
        kept = []
        for batch in self._gaps:
            if not batch.ids or batch.xid < xmin:
                continue  # filled, or its transactions have all ended: what was not seen never will be
            if now - batch.since > self.gap_timeout:
                log.warning("giving up on event ids %s: their transaction stayed open over %ss",
                            sorted(batch.ids)[:10], self.gap_timeout)
                continue
            kept.append(batch)
        self._gaps = kept
        open_ids = [min(batch.ids) for batch in self._gaps]
        self.horizon = (min(open_ids) - 1) if open_ids else self._highest
        self._returned = {i for i in self._returned if i > self.horizon}

    def _new_xid(self) -> int:
        """A transaction id assigned now (after everything read so far); committed at once, WAL not flushed."""
        with self.engine.connect() as connection:
            with connection.begin():
                connection.execute(text("SET LOCAL synchronous_commit TO off"))
                return connection.scalar(text("SELECT pg_current_xact_id()::text::bigint"))

    @staticmethod
    def _xmin(connection: Connection) -> int:
        return connection.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))

    @staticmethod
    def _message(row) -> dict:
        return event_json(JobEvent(**{key: value for key, value in row._mapping.items() if key != "xmin_"}))
