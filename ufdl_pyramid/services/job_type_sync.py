"""Filling the job-types table from the plugins' types: the table is the registry of type names to classes."""
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from ..models import JobType
from ..models.meta import upsert_into


@dataclass(frozen=True)
class JobTypeSync:
    """What a sync changed, by type name."""

    added: tuple[str, ...]
    updated: tuple[str, ...]


def job_type_row(name: str, cls: type) -> dict:
    """The row naming ``cls``; ``services.job_types.import_type_class(pkg, cls)`` imports it back."""
    return {"name": name, "pkg": cls.__module__, "cls": cls.__qualname__}


def sync_job_types(engine: Engine, types: Mapping[str, type]) -> JobTypeSync:
    """In one transaction, give each type a row (added, or updated to the plugin's class); rows with other names,
    created through the API, are left as they are."""
    with engine.begin() as connection:
        return sync_job_types_on(connection, types)


def sync_job_types_on(connection: Connection, types: Mapping[str, type]) -> JobTypeSync:
    """``sync_job_types`` in the caller's transaction (which commits it, or rolls it back with the rest)."""
    wanted = sorted((job_type_row(name, cls) for name, cls in types.items()), key=lambda row: row["name"])
    existing = {name: (pkg, cls) for name, pkg, cls in connection.execute(
        select(JobType.name, JobType.pkg, JobType.cls).where(JobType.name.in_([row["name"] for row in wanted])))}
    changed = [row for row in wanted if existing.get(row["name"]) != (row["pkg"], row["cls"])]
    if changed:
        # Several server processes starting at once may sync the same names.
        upsert = upsert_into(JobType.__table__, connection.dialect.name)
        connection.execute(upsert.on_conflict_do_update(
            index_elements=[JobType.__table__.c.name],
            set_={"pkg": upsert.excluded.pkg, "cls": upsert.excluded.cls}), changed)
    return JobTypeSync(added=tuple(row["name"] for row in changed if row["name"] not in existing),
                       updated=tuple(row["name"] for row in changed if row["name"] in existing))
