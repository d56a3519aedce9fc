"""The job-types table: type names mapped to the Python classes (package + class path) that implement them."""
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .meta import IDS_NEVER_REUSED, Base


class JobType(Base):
    __tablename__ = "job_types"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    pkg: Mapped[str] = mapped_column(String(200))
    cls: Mapped[str] = mapped_column(String(200))
