"""The transactional outbox of job events: one row per transition, written in the transition's transaction.

Ids grow; the progress channel tails this table and pushes the rows to the job's watchers.
"""
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit sequence.
EventId = BigInteger().with_variant(Integer, "sqlite")


class JobEvent(Base):
    __tablename__ = "job_events"
    # Ids are never reused on SQLite either (the progress channel's clients resume after an id).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    transition: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    node_id: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    transition_data: Mapped[dict | None] = mapped_column(JSON)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # PostgreSQL: the writing transaction's id (pg_current_xact_id), taken before the event id is drawn.
    txid: Mapped[int | None] = mapped_column(BigInteger)


class JobEventRetention(Base):
    """One row (id 1): the highest event id pruned so far; resuming after an older id has missed events."""
    __tablename__ = "job_event_retention"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pruned_through: Mapped[int] = mapped_column(BigInteger)
