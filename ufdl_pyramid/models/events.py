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

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    transition: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    node_id: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    transition_data: Mapped[dict | None] = mapped_column(JSON)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
