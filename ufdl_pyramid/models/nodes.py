"""Worker nodes: machines that acquire and run jobs on behalf of the user who registered them."""
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import IDS_NEVER_REUSED, Base, UTCDateTime
from .users import User


# Memory as the job launcher reports it: bytes (psutil's total), past 2**31 on any machine of 2 GiB or more.
# SQLite's INTEGER holds 64 bits already (and rebuilding the table to rename its type would, with foreign keys
# on, null every job's node): only PostgreSQL's column is a BIGINT.
MEMORY = BigInteger().with_variant(Integer(), "sqlite")


class Node(Base):
    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("ip", "index", name="uq_nodes_ip_index"), IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    ip: Mapped[str] = mapped_column(String(39))
    index: Mapped[int] = mapped_column(Integer, default=0)
    driver_version: Mapped[str | None] = mapped_column(String(32))
    hardware_generation: Mapped[str | None] = mapped_column(String(32))
    gpu_mem: Mapped[int | None] = mapped_column(MEMORY)
    cpu_mem: Mapped[int | None] = mapped_column(MEMORY)
    # Our extension: how many cores and GPUs the node has (null: it did not say), for the Scale jobs' manifests.
    cpus: Mapped[int | None] = mapped_column(Integer)
    gpus: Mapped[int | None] = mapped_column(Integer)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The job this node is working on.
    current_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL",
                                                                  use_alter=True))

    owner: Mapped[User] = relationship(lazy="raise_on_sql")


class LeaseClock(Base):
    """One row (id 1): when the server last came back, having been stopped or cut off from its database.
    Nodes could not reach it meanwhile, so no lease expires until ``ufdl.node_timeout`` after that."""
    __tablename__ = "lease_clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    resumed_at: Mapped[datetime] = mapped_column(UTCDateTime)
