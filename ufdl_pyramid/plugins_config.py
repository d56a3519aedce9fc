"""Start-up: load the plugins once, keep them at ``registry["ufdl.plugins"]``, and sync the job-types table."""
import logging

from .plugins import load_plugins
from .services import schema
from .services.job_type_sync import sync_job_types

log = logging.getLogger(__name__)


def includeme(config):
    settings = config.get_settings()
    # ``ufdl.plugins.extra``: plugin objects registered directly, for tests (an INI file cannot hold objects).
    plugins = load_plugins(settings["ufdl.plugins.strict"], settings.get("ufdl.plugins.extra", ()))
    config.registry["ufdl.plugins"] = plugins
    for plugin in plugins.plugins:
        if plugin.error is None:
            log.info("%s: %d types, %d contracts, %d executors, %d notifiers", plugin.label, len(plugin.types),
                     len(plugin.contracts), len(plugin.executors), len(plugin.notifiers))
    engine = config.registry["db.engine"]
    # Before 'ufdl db upgrade' the table may not exist (or have other columns): serve what there is.
    if not schema.is_current(engine):
        log.warning("the database schema is not current: the job-types table was not synced with the plugins' "
                    "types (run 'ufdl db upgrade', then restart the server)")
        return
    synced = sync_job_types(engine, plugins.types)
    if synced.added or synced.updated:
        log.info("job types from plugins: added %s; updated %s", ", ".join(synced.added) or "none",
                 ", ".join(synced.updated) or "none")
