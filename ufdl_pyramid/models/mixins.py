"""Soft delete: one mixin for every model whose rows are flagged deleted rather than removed."""
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from .meta import UTCDateTime, utcnow


class SoftDeleteMixin:
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deletion_time: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    @declared_attr
    def creator(cls):
        return relationship("User", foreign_keys=[cls.creator_id], lazy="raise_on_sql")

    @property
    def is_active(self) -> bool:
        return self.deletion_time is None

    def soft_delete(self) -> None:
        if self.deletion_time is None:  # deleting again keeps the time it was deleted at
            self.deletion_time = utcnow()

    def reinstate(self) -> None:
        self.deletion_time = None

    @classmethod
    def active(cls):
        """The SQL condition selecting rows that are not soft-deleted."""
        return cls.deletion_time.is_(None)
