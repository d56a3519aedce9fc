"""Licences and data domains."""
from urllib.parse import urlsplit

from ..errors import InvalidInput
from ..models import DataDomain, Framework, Licence
from .records import RecordService


class LicenceService(RecordService):
    model = Licence
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
        return data


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


class DomainService(RecordService):
    model = DataDomain
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
