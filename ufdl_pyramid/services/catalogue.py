"""Licences and data domains."""
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


class DomainService(RecordService):
    model = DataDomain
    unique_together = (("name",),)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "description"],
        "properties": {"name": {"type": "string", "pattern": "^[a-z]{2}$", "description": "two lower-case letters"},
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
