"""Jobs and their outputs. The status is stored, not derived: every change also sets last_status_change."""
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import IDS_NEVER_REUSED, Base, UTCDateTime, utcnow
from .mixins import SoftDeleteMixin
from .nodes import Node
from .templates import JobTemplate

PENDING = "PENDING"  # created, not acquired
QUEUED = "QUEUED"  # acquired by a node, not started
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELED = "CANCELED"
FINAL_STATUSES = (COMPLETED, FAILED, CANCELED)
STATUSES = (PENDING, QUEUED, RUNNING, COMPLETED, FAILED, CANCELED)
ALGORITHM = "ALGORITHM"  # the executor reported an error
SYSTEM = "SYSTEM"  # the infrastructure failed the job (lost node, expired lease)
DATA = "DATA"  # the executor blamed the job's input data
ERROR_CATEGORIES = (SYSTEM, ALGORITHM, DATA)
NODE_ERROR_CATEGORIES = (ALGORITHM, DATA)  # what a node's finish may say: SYSTEM is the server's own verdict
OUTPUT_NAME_LENGTH = 200


class Job(SoftDeleteMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"), IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("job_templates.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # For a meta-job's child: the node of the parent's graph it runs.
    graph_node: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    input_values: Mapped[dict] = mapped_column(JSON)
    parameter_values: Mapped[dict | None] = mapped_column(JSON)
    notification_override: Mapped[dict | None] = mapped_column(JSON)
    # "choices": the only values the column holds; a list filter refuses others (services/listing.py).
    status: Mapped[str] = mapped_column(String(16), default=PENDING, info={"choices": STATUSES})
    last_status_change: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"), index=True)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_reason: Mapped[str | None] = mapped_column(Text)
    error_category: Mapped[str | None] = mapped_column(String(16), info={"choices": ERROR_CATEGORIES})
    is_cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    lost_leases: Mapped[int] = mapped_column(Integer, default=0)  # automatic aborts; ufdl.max_tries fails it

    template: Mapped[JobTemplate] = relationship(lazy="joined")
    node: Mapped[Node | None] = relationship(lazy="raise_on_sql", foreign_keys=[node_id])
    # The database deletes a job's outputs and children with it (ON DELETE CASCADE).
    # Loaded with the job in the same query: every answer about a job lists its outputs.
    outputs: Mapped[list["JobOutput"]] = relationship(back_populates="job", lazy="joined",
                                                      order_by="JobOutput.id", cascade="all, delete-orphan",
                                                      passive_deletes=True)


class JobOutput(SoftDeleteMixin, Base):
    __tablename__ = "job_outputs"
    __table_args__ = (
        Index("uq_job_outputs_active_job_name_type", "job_id", "name", "type", unique=True,
              sqlite_where=text("deletion_time IS NULL"), postgresql_where=text("deletion_time IS NULL")),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(OUTPUT_NAME_LENGTH))
    type: Mapped[str] = mapped_column(String(1000))
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    blob_key: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)

    job: Mapped[Job] = relationship(back_populates="outputs", lazy="raise_on_sql")
