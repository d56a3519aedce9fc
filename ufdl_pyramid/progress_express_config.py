"""Start-up for the progress express lane (``services/progress_express.py``): a tween in front of pyramid_tm
that answers ``POST /v1/jobs/{pk}/progress/{P}`` itself when it can and hands every other request, and every
report it cannot answer, to the full stack unchanged.

It is on with PostgreSQL, unless ``ufdl.progress_express`` is false or the server's default notifications
have ``on_progress`` actions (the full stack sends those after its commit).
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
from .services import progress_express
from .services.auth import user_id_of_access_token
from .services.job_lifecycle import parse_progress
from .services.notifications import actions_for
from .views.api import read_json

log = logging.getLogger(__name__)

# Only the plain spelling: anything else (extra segments, odd pks) is the full stack's to answer.
PROGRESS_PATH = re.compile(r"/v1/jobs/([1-9][0-9]{0,17})/progress/([^/]{1,40})/?")


def progress_express_tween_factory(handler, registry):
    settings = registry.settings
    engine = registry["db.engine"]
    if (not settings["ufdl.progress_express"] or engine.dialect.name != "postgresql"
            or actions_for(settings["ufdl.notifications.defaults"] or {}, None, "progress")):
        return handler
    # Connections of the same pool, in autocommit while checked out: the statement is its own transaction.
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    secret = registry["auth.config"].secret

    def answer(request, job_id: str, progress_text: str):
        try:
            token = bearer_token(request)
            node_id = node_id_of(request)
            if token is None or node_id is None:
                return None
            user_id = user_id_of_access_token(secret, token)
            progress = parse_progress(progress_text)
            data = read_json(request, optional=True)
        except ServiceError:
            return None  # the full stack answers the error
        if not isinstance(data, dict):
            return None
        now = utcnow()
        try:
            with autocommit.connect() as connection:
                try:
                    job = progress_express.report(connection, user_id=user_id, node_id=node_id,
                                                  job_id=int(job_id), progress=progress, data=data or None, now=now)
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
            log.warning("progress express lane failed; the full stack answers instead%s",
                        f": {error}" if unreachable else "", exc_info=not unreachable)
            return None
        return render_to_response("json", job, request=request) if job is not None else None

    def progress_express_tween(request):
        if request.method == "POST":
            # The raw path: webob's decoded one raises on bytes that are not UTF-8 (the full stack answers 400).
            match = PROGRESS_PATH.fullmatch(request.environ.get("PATH_INFO", ""))
            if match is not None:
                response = answer(request, *match.groups())
                if response is not None:
                    return response
        return handler(request)

    return progress_express_tween


def includeme(config):
    # Over pyramid_tm: an answered report opens no transaction and no session.
    config.add_tween("ufdl_pyramid.progress_express_config.progress_express_tween_factory",
                     over="pyramid_tm.tm_tween_factory")
