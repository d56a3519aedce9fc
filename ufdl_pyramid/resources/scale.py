"""``/v6``: the Scale job-type API. Job types by name, then version, then their revisions."""
from pyramid.authorization import Allow, Authenticated

from ..models.seed_job_types import NAME_LENGTH, VERSION_LENGTH
from ..permissions import Permission
from ..services.seed_job_types import RESERVED_NAMES, SecretBox, SeedJobTypeService
from ..services.validation import unstorable
from .base import Container, Resource, parse_pk, require_caller


def seed_job_type_service(request) -> SeedJobTypeService:
    return SeedJobTypeService(request.db, SecretBox.from_settings(request.registry.settings))


def _segment(key: str, longest: int) -> str:
    """A path segment no row can hold (too long, or with a character no database stores) is a 404 at once."""
    if not key or len(key) > longest or unstorable(key):
        raise KeyError(key)
    return key


class JobTypeNames(Resource):
    """``/v6/job-type-names/``."""


class ScaleJobTypes(Resource):
    """``/v6/job-types/``: the list and creation; below it, the names (``validation`` is a view of its own)."""

    def __getitem__(self, key: str) -> "JobTypeName":
        if key in RESERVED_NAMES:
            raise KeyError(key)  # the view of that name
        require_caller(self.request)
        return JobTypeName(self.request, _segment(key, NAME_LENGTH), self)


class JobTypeName(Resource):
    """``/v6/job-types/{name}/``: the versions of one name."""

    def __getitem__(self, key: str) -> "JobTypeVersion":
        row = seed_job_type_service(self.request).find(self.__name__, _segment(key, VERSION_LENGTH))
        if row is None:
            raise KeyError(key)
        return JobTypeVersion(self.request, key, self, row)


class JobTypeVersion(Resource):
    """``/v6/job-types/{name}/{version}/``."""

    def __init__(self, request, name: str, parent: Resource, row):
        super().__init__(request, name, parent)
        self.row = row

    def __getitem__(self, key: str) -> "JobTypeRevisions":
        if key != "revisions":
            raise KeyError(key)
        return JobTypeRevisions(self.request, key, self)


class JobTypeRevisions(Resource):
    """``/v6/job-types/{name}/{version}/revisions/``."""

    def __getitem__(self, key: str) -> "JobTypeRevision":
        row = seed_job_type_service(self.request).revision(self.__parent__.row, parse_pk(key))
        if row is None:
            raise KeyError(key)
        return JobTypeRevision(self.request, key, self, row)


class JobTypeRevision(Resource):
    def __init__(self, request, name: str, parent: Resource, row):
        super().__init__(request, name, parent)
        self.row = row


class V6(Container):
    # Every user reads and validates; creating and editing are the admins' (the root's ACL).
    __acl__ = [(Allow, Authenticated, Permission.VIEW)]
    children = {"job-type-names": JobTypeNames, "job-types": ScaleJobTypes}
