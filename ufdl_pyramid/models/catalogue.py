"""Small reference tables that templates point at: licences and data domains."""
from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .meta import IDS_NEVER_REUSED, Base
from .mixins import SoftDeleteMixin


class Licence(SoftDeleteMixin, Base):
    __tablename__ = "licences"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(200), default="")


class DataDomain(SoftDeleteMixin, Base):
    __tablename__ = "domains"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(2), unique=True)
    description: Mapped[str] = mapped_column(String(100))


class Framework(SoftDeleteMixin, Base):
    """A machine-learning framework at a version (the values of the ``Framework<'name', 'version'>`` type)."""

    __tablename__ = "frameworks"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_frameworks_name_version"), IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))
