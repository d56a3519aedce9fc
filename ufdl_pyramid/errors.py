"""The errors the services raise; views/errors.py turns each into a JSON answer with its status code.

Services know nothing of HTTP, but each error class carries the status it stands for so that the mapping lives
in one place and cannot drift.
"""
from transaction.interfaces import TransientError


class ServiceError(Exception):
    status = 400
    extra: dict = {}  # more fields for the JSON answer, beside "detail"
    retry_after: int | None = None  # seconds after which the same request may succeed (Retry-After)

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidInput(ServiceError):
    status = 400


class NotAuthenticated(ServiceError):
    status = 401


NO_CREDENTIALS = "Authentication credentials were not provided."
# The answer (503, with Retry-After in seconds) while the database cannot be reached (``database_unavailable``).
DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly."
SCHEMA_NOT_CURRENT = "The database schema is not current: run 'ufdl db upgrade', then restart the server."
RETRY_AFTER_OUTAGE = 5


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class WrongState(ServiceError):
    """The action is not possible in the object's current state (upstream answers 406 for these)."""

    status = 406


class Conflict(ServiceError):
    status = 409


class PayloadTooLarge(ServiceError):
    status = 413


class ServiceUnavailable(ServiceError):
    status = 503


class ConcurrentChange(TransientError):
    """Another request changed the same rows at the same moment. A TransientError, so pyramid_tm has the
    whole request run again (it then sees the other's change); answered 409 if every attempt collides."""

    status = 409

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail
