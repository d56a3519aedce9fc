"""ufdl-pyramid: a job-management server implementing the UFDL v1 API."""
from datetime import datetime

from pyramid.config import Configurator
from pyramid.renderers import JSON

from .models.meta import utcnow
from .plugins import PluginError
from .services import schema
from .services.lease_clock import mark_resumed
from .settings import SettingsError, load_settings


def json_renderer() -> JSON:
    renderer = JSON()
    renderer.add_adapter(datetime, lambda value, request: value.isoformat().replace("+00:00", "Z"))
    return renderer


def make_config(settings: dict) -> Configurator:
    """The configured application; ``main`` and the tests build the WSGI app from it."""
    config = Configurator(settings=load_settings(settings), root_factory="ufdl_pyramid.resources.root_factory")
    config.add_renderer("json", json_renderer())
    config.include(".models")  # the database session, bound to the request's transaction
    config.include(".security")  # tokens, Node-Id, ACLs
    config.include(".leases_config")  # a return after losing the database holds leases back
    config.include(".plugins_config")  # load the plugins; sync the job-types table with their types
    config.include(".registry_config")  # sync ufdl.templates_registry, when set
    config.include(".outputs_config")  # output storage, blob clean-up after commit
    config.include(".notifications_config")  # notifications sent after commit
    config.include(".express_lanes_config")  # create-job and a node's requests, in order, ahead of the rest
    config.include(".views")  # the API, area by area
    return config


def main(global_config, **settings):
    """The WSGI application factory named in the INI files."""
    try:
        app = make_config(settings).make_wsgi_app()
    except (SettingsError, PluginError) as error:  # one line and status 1, as `ufdl serve`: pserve printed a traceback
        raise SystemExit(f"ufdl: {error}") from None
    engine = app.registry["db.engine"]
    if schema.is_current(engine):  # else the app serves what there is (see plugins_config.py)
        # A start: no node could reach the server while it was down (services/lease_clock.py).
        mark_resumed(engine, utcnow())
    return app
