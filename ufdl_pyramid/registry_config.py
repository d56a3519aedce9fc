"""Start-up: sync the templates registry named by ``ufdl.templates_registry`` (off when unset).

Runs after the job-types sync (the templates name the plugins' types), in one transaction; a registry that
cannot be applied (invalid, conflicting) is logged as an error and changes nothing: the server still starts.
"""
import logging

from sqlalchemy.orm import Session

from .errors import ServiceError
from .services import schema
from .services.template_registry import RegistryConflicts, RegistryInvalid, RegistrySync

log = logging.getLogger(__name__)


def sync_registry(engine, directory: str) -> bool:
    """Apply the registry; True if it was applied (or there was nothing to do)."""
    try:
        with Session(engine) as db, db.begin():
            sync = RegistrySync(db)
            plan = sync.sync(sync.read(directory))
    except RegistryConflicts as error:
        log.error("templates registry %s: not synced, conflicting versions (a changed template needs a new "
                  "version): %s", directory, ", ".join(c["path"] for c in error.plan["conflicts"]))
        return False
    except RegistryInvalid as error:
        log.error("templates registry %s: not synced:\n%s", directory, "\n".join(map(str, error.problems)))
        return False
    except ServiceError as error:
        log.error("templates registry %s: not synced: %s", directory, error.detail)
        return False
    log.info("templates registry %s: %d created (%s), %d identical", directory, len(plan.create),
             ", ".join(entry.path for entry in plan.create) or "none", len(plan.identical))
    return True


def includeme(config):
    directory = config.get_settings().get("ufdl.templates_registry")
    if not directory:
        return
    engine = config.registry["db.engine"]
    if not schema.is_current(engine):
        log.warning("the database schema is not current: the templates registry %s was not synced", directory)
        return
    sync_registry(engine, directory)
