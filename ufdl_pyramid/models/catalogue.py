"""Small reference tables that templates point at: licences and data domains."""
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base
from .mixins import SoftDeleteMixin


class Licence(SoftDeleteMixin, Base):
    __tablename__ = "licences"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(200), default="")


class DataDomain(SoftDeleteMixin, Base):
    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(2), unique=True)
    description: Mapped[str] = mapped_column(String(100))
