"""Start-up for the express lanes (``services/express_lanes.py``): a tween in front of pyramid_tm that answers a
node's acquire, start, progress report and finish itself when it can, and hands every other request, and every
one it cannot answer, to the full stack unchanged.

They are on with PostgreSQL, unless ``ufdl.express_lanes`` is false; a lane is off when the server's default
notifications have actions for its transition (the full stack sends those after its commit).
"""
import logging
import re

import psycopg
from pyramid.renderers import render_to_response
from sqlalchemy.exc import DBAPIError

from .errors import ServiceError
from .models import database_unavailable
from .models.meta import utcnow
from .security import bearer_token, node_id_of
from .services import express_lanes
from .services.auth import user_id_of_access_token
from .services.job_lifecycle import parse_progress
from .services.notifications import actions_for
from .views.api import read_json

log = logging.getLogger(__name__)

# Only the plain spellings: anything else (extra segments, odd pks) is the full stack's to answer.
_JOB = r"/v1/jobs/([1-9][0-9]{0,17})"
_PATHS = {"acquire": ("GET", re.compile(_JOB + r"/acquire/?")),
          "start": ("POST", re.compile(_JOB + r"/start/?")),
          "progress": ("POST", re.compile(_JOB + r"/progress/([^/]{1,40})/?")),
          "finish": ("POST", re.compile(_JOB + r"/finish/?"))}


def _values(transition: str, request, match) -> dict | None:
    """The lane's values from the request (``data``: the event's), or None when the full stack must answer: a
    body it would refuse, or a finish with an error. Raises ``ServiceError`` for a progress it would refuse."""
    body = read_json(request, optional=True)
    if not isinstance(body, dict):
        return None
    if transition == "progress":
        return {"progress": parse_progress(match.group(2)), "data": body or None}
    if transition == "finish" and (body.get("error") is not None or "error_category" in body):
        return None
    return {}  # the bodies of acquire and start, and a success's, name nothing the job keeps


def express_lanes_tween_factory(handler, registry):
    settings = registry.settings
    engine = registry["db.engine"]
    defaults = settings["ufdl.notifications.defaults"] or {}
    lanes = {transition: _PATHS[transition] for transition in express_lanes.LANES
             if not actions_for(defaults, None, transition)}
    if not settings["ufdl.express_lanes"] or engine.dialect.name != "postgresql" or not lanes:
        return handler
    # Connections of the same pool, in autocommit while checked out: the statement is its own transaction.
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    secret = registry["auth.config"].secret

    def answer(request, transition: str, match):
        try:
            token = bearer_token(request)
            node_id = node_id_of(request)
            if token is None or node_id is None:
                return None
            user_id = user_id_of_access_token(secret, token)
            values = _values(transition, request, match)
        except ServiceError:
            return None  # the full stack answers the error
        if values is None:
            return None
        try:
            with autocommit.connect() as connection:
                try:
                    job = express_lanes.run(connection, express_lanes.LANES[transition], user_id=user_id,
                                            node_id=node_id, job_id=int(match.group(1)), now=utcnow(), **values)
                except psycopg.Error:
                    if connection.connection.driver_connection.broken:
                        # The database dropped it (a restart, say): the pool must not hand it out again. SQLAlchemy
                        # does this itself for the statements it runs; this one went to psycopg directly.
                        connection.invalidate()
                    raise
        except (DBAPIError, psycopg.Error) as error:
            # Nothing was written (the statement goes to psycopg itself: its errors come unwrapped, a deadlock
            # say); the full stack meets the same trouble and answers it as usual (503 for a database it
            # cannot reach).
            unreachable = database_unavailable(error)
            log.warning("express lane for %s failed; the full stack answers instead%s", transition,
                        f": {error}" if unreachable else "", exc_info=not unreachable)
            return None
        return render_to_response("json", job, request=request) if job is not None else None

    def express_lanes_tween(request):
        for transition, (method, path) in lanes.items():
            if request.method != method:
                continue
            # The raw path: webob's decoded one raises on bytes that are not UTF-8 (the full stack answers 400).
            match = path.fullmatch(request.environ.get("PATH_INFO", ""))
            if match is not None:
                response = answer(request, transition, match)
                if response is not None:
                    return response
                break
        return handler(request)

    return express_lanes_tween


def includeme(config):
    # Over pyramid_tm: an answered request opens no transaction and no session.
    config.add_tween("ufdl_pyramid.express_lanes_config.express_lanes_tween_factory",
                     over="pyramid_tm.tm_tween_factory")
