"""When the server came back: no lease expires until ``ufdl.node_timeout`` after it.

A lease runs out when the server has not heard from a node for the timeout. While the server was stopped, or
could not reach its database, no node could be heard: counted, that time would take its job from every node
that had not called again by the first lease check after the return (a worker calls every few seconds, but an
idle node's poll often comes first), and each such return would count towards ``ufdl.max_tries``.

So the return is recorded: by ``ufdl_pyramid.main`` when a server builds its app (a start), and by a process
on the first request it serves after a database error that made it answer 503 or drop a dead connection. The
lease check then leaves every job alone until the timeout has passed since.
"""
import logging
from datetime import datetime

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ..models import LeaseClock
from ..models.meta import upsert_into

log = logging.getLogger(__name__)

_CLOCK = LeaseClock.__table__


def mark_resumed(engine: Engine, now: datetime) -> None:
    """Record a return at ``now`` (in a transaction of its own; a later mark is kept)."""
    upsert = upsert_into(_CLOCK, engine.dialect.name).values(id=1, resumed_at=now)
    with engine.begin() as connection:
        connection.execute(upsert.on_conflict_do_update(
            index_elements=[_CLOCK.c.id], set_={"resumed_at": upsert.excluded.resumed_at},
            where=_CLOCK.c.resumed_at < upsert.excluded.resumed_at))


def resumed_since(cutoff: datetime) -> ColumnElement[bool]:
    """Whether the server came back after ``cutoff`` (a condition for the lease check's statement)."""
    return exists(select(_CLOCK.c.id).where(_CLOCK.c.resumed_at > cutoff))


class DatabaseOutages:
    """This process's memory of losing its database, until a request it serves afterwards records the return.
    No lock: requests that race here at worst record the same return twice."""

    def __init__(self):
        self.seen_count = self.recorded_count = 0

    def seen(self) -> None:
        self.seen_count += 1

    def record_return(self, engine: Engine, now: datetime) -> None:
        """After an outage, mark the return. Should the mark fail, the outage stays pending for the next
        request; this one goes on (and answers 503 itself if the database is still away)."""
        seen = self.seen_count
        if seen == self.recorded_count:
            return
        try:
            mark_resumed(engine, now)
        except DBAPIError as error:
            # Most likely still away: the request meets the same error and logs it.
            log.info("could not mark the server's return after losing its database: %s", error.orig)
            return
        self.recorded_count = max(self.recorded_count, seen)
