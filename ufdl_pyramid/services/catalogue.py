"""Licences and data domains."""
from typing import ClassVar
from urllib.parse import urlsplit

from sqlalchemy import case, func, select

from ..errors import Conflict, InvalidInput, NotFound
from ..models import DataDomain, Framework, JobTemplate, Licence
from .records import RecordService


class NamedByTemplates(RecordService):
    """A licence or domain. Job templates name it by its name, in the documents that export gives and import
    takes, and so do a registry's files: it is neither renamed nor deleted while templates use it (design notes
    §3: a template never changes once it has jobs, and export gives what import takes). Every active template
    counts, not only those with jobs (a registry's files would name a licence that no longer exists), and for a
    rename the deleted ones too. Its other fields stay editable."""

    # The column of job_templates that points at the row, and what the messages call the row.
    template_column: ClassVar[str]
    label: ClassVar[str]

    def check(self, data, row=None):
        if row is not None and data.get("name", row.name) != row.name:
            # Locked first, as for a deletion: an import naming it waits for the change, then finds it gone.
            self._lock(row)
            # Deleted templates count too: a reinstated one would export the new name.
            self._refuse_if_named(row, "renamed", active_only=False)
        return data

    def destroy(self, row):
        self._lock(row)
        # A deleted template may be reinstated once the row is reinstated (not before: TemplateRecords).
        self._refuse_if_named(row, "deleted", active_only=True)
        return super().destroy(row)

    def check_unreferenced(self, row) -> None:
        self._refuse_if_named(row, "deleted", active_only=False)  # their foreign key needs it

    def _lock(self, row) -> None:
        if self.db.scalar(select(self.model.id).where(self.model.id == row.id).with_for_update()) is None:
            raise NotFound("Not found.")

    def _refuse_if_named(self, row, change: str, *, active_only: bool) -> None:
        query = select(func.count(), func.count(case((JobTemplate.deletion_time.is_not(None), 1)))).where(
            getattr(JobTemplate, self.template_column) == row.id)
        if active_only:
            query = query.where(JobTemplate.active())
        templates, deleted = self.db.execute(query).one()
        if templates:
            among = f" ({deleted} of them deleted, which may be reinstated)" if deleted else ""
            raise Conflict(f"{self.label} '{row.name}' is used by {templates} job template(s){among}: it cannot "
                           f"be {change}")


class LicenceService(NamedByTemplates):
    model = Licence
    template_column = "licence_id"
    label = "Licence"
    unique_together = (("name",),)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "url"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                       "url": {"type": "string", "maxLength": 200}},
    }

    def check(self, data, row=None):
        if "url" in data:
            _check_web_url(data["url"])
        return super().check(data, row)


def _check_web_url(url: str) -> None:
    """An absolute http(s) URL, as upstream's URLField (not blank) asks: anything was stored before."""
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a port that is not a number, or out of range
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or any(character.isspace() or not character.isprintable() for character in url)):
        raise InvalidInput(f"url must be an absolute http or https URL, not {url!r}")


class DomainService(NamedByTemplates):
    model = DataDomain
    template_column = "domain_id"
    label = "Domain"
    unique_together = (("name",),)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "description"],
        "properties": {"name": {"type": "string", "pattern": r"\A[a-z]{2}\Z", "description": "two lower-case letters"},
                       "description": {"type": "string", "minLength": 1, "maxLength": 100}},
    }


class FrameworkService(RecordService):
    model = Framework
    unique_together = (("name", "version"),)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "version"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                       "version": {"type": "string", "minLength": 1, "maxLength": 50}},
    }
