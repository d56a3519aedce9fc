"""The server's type registry: the job-types table's rows resolved to their classes.

Types resolve through the table (names -> pkg/cls), so an admin's change through the API takes effect on the
next request. Importing and registering is cached on the table's content: one small query per use.
"""
import logging
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..models import JobType
from ..types import InvalidType, TypeInstance, TypeRegistry
from .job_types import import_ufdl_type
from .validation import UNSTORABLE, unstorable

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cached: tuple[tuple, TypeRegistry] | None = None
_ROWS = select(JobType.name, JobType.pkg, JobType.cls).order_by(JobType.name)


def type_registry(db: Session) -> TypeRegistry:
    # The session's connection: a plain Core read, without the ORM's execution around it.
    return registry_of(db.connection().execute(_ROWS))


def registry_of(rows) -> TypeRegistry:
    """The registry of the job-types table's rows (name, pkg, cls), ordered by name."""
    global _cached
    rows = tuple(tuple(row) for row in rows)
    with _lock:
        if _cached is not None and _cached[0] == rows:
            return _cached[1]
    registry = TypeRegistry()
    for name, pkg, cls in rows:
        try:
            found = import_ufdl_type(name, pkg, cls)
        except InvalidInput as error:  # a plugin since uninstalled, say: the other types still work
            log.warning("job type %s cannot be loaded: %s", name, error.detail)
            continue
        if name not in registry:  # 'Any' is every registry's own
            registry.register(found)
    with _lock:
        _cached = (rows, registry)
    return registry


def resolve(registry: TypeRegistry, text, where: str) -> TypeInstance:
    """A type string resolved, or a 400 naming the field it came from."""
    if not isinstance(text, str):
        raise InvalidInput(f"{where}: a type must be a string")
    if unstorable(text):
        # A URL segment (an output's TYPE, get-all-values') is no JSON body, which is checked for these already:
        # a NUL in a literal reached PostgreSQL and answered 500.
        raise InvalidInput(f"{where}: {UNSTORABLE}")
    try:
        return registry.resolve(text)
    except InvalidType as error:
        raise InvalidInput(f"{where}: {error}") from None
