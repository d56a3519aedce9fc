"""Scale job types (the v6 API): a Seed image and its manifest, by (name, version), with its revisions."""
from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import IDS_NEVER_REUSED, Base, UTCDateTime, utcnow

NAME_LENGTH = 200
VERSION_LENGTH = 200
DOCKER_IMAGE_LENGTH = 1000
ICON_CODE_LENGTH = 200
# The job templates that job types' revisions are (design notes §1) are named with it, and only they: the v6 API
# makes and keeps them, a registry neither prunes nor exports them, and an import may not take the prefix.
SCALE_TEMPLATE_PREFIX = "seed-job-type-"


class SeedJobType(Base):
    __tablename__ = "seed_job_types"
    __table_args__ = (UniqueConstraint("name", "version"), IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    version: Mapped[str] = mapped_column(String(VERSION_LENGTH))
    # From the manifest's job: what the lists show and the keyword search reads (tags one per line).
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(Text, default="")
    icon_code: Mapped[str | None] = mapped_column(String(ICON_CODE_LENGTH))
    is_published: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)
    max_scheduled: Mapped[int | None] = mapped_column(Integer)
    max_tries: Mapped[int] = mapped_column(Integer, default=3)
    docker_image: Mapped[str] = mapped_column(String(DOCKER_IMAGE_LENGTH))
    manifest: Mapped[dict] = mapped_column(JSON)
    # Without the secret settings' values: those are in ``secrets``, encrypted (a Fernet token of a JSON object).
    configuration: Mapped[dict | None] = mapped_column(JSON)
    secrets: Mapped[str | None] = mapped_column(Text)
    revision_num: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deprecated: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_modified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    revisions: Mapped[list["SeedJobTypeRevision"]] = relationship(
        back_populates="job_type", order_by="SeedJobTypeRevision.revision_num", lazy="raise_on_sql")


class SeedJobTypeRevision(Base):
    __tablename__ = "seed_job_type_revisions"
    __table_args__ = (UniqueConstraint("job_type_id", "revision_num"), IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_type_id: Mapped[int] = mapped_column(ForeignKey("seed_job_types.id", ondelete="CASCADE"))
    revision_num: Mapped[int] = mapped_column(Integer)
    docker_image: Mapped[str] = mapped_column(String(DOCKER_IMAGE_LENGTH))
    manifest: Mapped[dict] = mapped_column(JSON)
    # The manifest's ``mem`` (MiB), ``cpus`` and ``gpus`` resources, null when it asks none: columns, so that
    # acquire-next passes over the jobs a node has not the memory, the cores or the GPUs for in its query, as
    # over a paused job type's.
    needed_mem_mib: Mapped[float | None] = mapped_column(Float)
    needed_cpus: Mapped[float | None] = mapped_column(Float)
    needed_gpus: Mapped[float | None] = mapped_column(Float)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The workable job template this revision is (design notes §1): its jobs are the job type's.
    template_id: Mapped[int | None] = mapped_column(ForeignKey("job_templates.id", ondelete="SET NULL"),
                                                    index=True)

    job_type: Mapped[SeedJobType] = relationship(back_populates="revisions", lazy="joined")
