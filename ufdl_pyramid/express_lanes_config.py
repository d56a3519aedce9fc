"""Start-up for the express lanes (``services/express_lanes.py``): a tween in front of pyramid_tm that answers
create-job and a node's acquire, start, progress report, finish and output upload itself when it can, and hands
every other request, and every one it cannot answer, to the full stack unchanged.

They are on with PostgreSQL, unless ``ufdl.express_lanes`` is false; a transition's lane is off when the
server's default notifications have actions for it (the full stack sends those after its commit).
"""
import io
import json
import logging
import re

import psycopg
from pyramid.renderers import render_to_response
from pyramid.response import Response
from pyramid.traversal import quote_path_segment
from sqlalchemy.exc import DBAPIError

from .errors import ServiceError
from .leases_config import request_began
from .models import database_unavailable
from .models.meta import utcnow
from .resources.jobs import MAX_SEGMENT
from .security import bearer_token, node_id_of
from .services import express_lanes
from .services.auth import user_id_of_access_token
from .services.job_lifecycle import parse_progress
from .services.notifications import actions_for
from .views.api import read_json
from .views.errors import service_error

log = logging.getLogger(__name__)

# Only the plain spellings: anything else (extra segments, odd pks) is the full stack's to answer. The raw path:
# webob's decoded one raises on bytes that are not UTF-8 (the full stack answers 400); a segment of an output
# is printable ASCII here (the full stack decodes any other).
_JOB = r"/v1/jobs/([1-9][0-9]{0,17})"
_SEGMENT = rf"([ -.0-~]{{1,{MAX_SEGMENT}}})"
_TRANSITIONS = {"acquire": ("GET", re.compile(_JOB + r"/acquire/?")),
                "start": ("POST", re.compile(_JOB + r"/start/?")),
                "progress": ("POST", re.compile(_JOB + r"/progress/([^/]{1,40})/?")),
                "finish": ("POST", re.compile(_JOB + r"/finish/?"))}
_OUTPUT = re.compile(_JOB + rf"/outputs/{_SEGMENT}/{_SEGMENT}/?")
_CREATE_JOB = re.compile(r"/v1/job-templates/([1-9][0-9]{0,17})/create-job/?")


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


def _json_response(value: dict, status: int = 200) -> Response:
    """What the ``json`` renderer makes of ``value`` (a job's or an output's JSON, which holds no value it would
    adapt), at a quarter of its cost: no renderer lookup, no BeforeRender event."""
    return Response(json.dumps(value).encode(), status=status, content_type="application/json")


def _read_again_later(request, size: int) -> bytes:
    """Up to ``size`` bytes of the body (fewer if the client went away), left in place for the full stack: it
    reads the same bytes, and meets the same end, if the lane hands the request on."""
    raw, chunks, remaining = request.body_file_raw, [], size
    while remaining:
        chunk = raw.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    body = b"".join(chunks)
    request.body_file_raw = io.BytesIO(body)
    return body


def express_lanes_tween_factory(handler, registry):
    settings = registry.settings
    engine = registry["db.engine"]
    defaults = settings["ufdl.notifications.defaults"] or {}
    transitions = {transition: route for transition, route in _TRANSITIONS.items()
                   if not actions_for(defaults, None, transition)}
    if not settings["ufdl.express_lanes"] or engine.dialect.name != "postgresql":
        return handler
    # create-job's: connections of the same pool, in autocommit while checked out (each statement its own
    # transaction), through SQLAlchemy, as the checks it shares with the full stack read through a session.
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    secret = registry["auth.config"].secret
    storage = registry["ufdl.storage"]
    max_output_size = settings["ufdl.max_output_size"]
    executors = registry["ufdl.plugins"].executors

    def move(request, transition: str, match, user_id: int, node_id: int):
        values = _values(transition, request, match)
        if values is None:
            return None
        with express_lanes.autocommitted(engine) as connection:
            job = express_lanes.run(connection, express_lanes.LANES[transition], user_id=user_id,
                                    node_id=node_id, job_id=int(match.group(1)), now=utcnow(), **values)
        return _json_response(job) if job is not None else None

    def add_output(request, match, user_id: int, node_id: int):
        size = request.content_length
        if size is None or size > express_lanes.OUTPUT_BODY_LIMIT or size > max_output_size:
            return None  # streamed in by the full stack, which holds no lock meanwhile (or refuses it: 413)
        job_id, name, type_text = match.groups()
        body = _read_again_later(request, size)
        if len(body) < size:
            return None  # the client went away: the full stack reads what came and answers that
        try:
            output = express_lanes.add_output(engine, storage, max_output_size, user_id=user_id, node_id=node_id,
                                              job_id=int(job_id), name=name, type_text=type_text, body=body,
                                              content_type=request.headers.get("Content-Type"), now=utcnow())
        except express_lanes.Refused as refused:
            return render_to_response("json", service_error(refused.error, request), request=request,
                                      response=request.response)
        if output is None:
            return None
        response = _json_response(output, 201)
        # As the full stack's: the output slot's URL (its segments as sent), then its info.
        response.location = (f"{request.application_url}/v1/jobs/{job_id}/outputs/{quote_path_segment(name)}/"
                             f"{quote_path_segment(type_text)}/info")
        return response

    def create_job(request, match, user_id: int, node_id: int | None):
        job = express_lanes.create_job(autocommit, executors, user_id=user_id, node_id=node_id,
                                       template_id=int(match.group(1)), body=read_json(request), now=utcnow())
        if job is None:
            return None
        response = _json_response(job, 201)
        response.location = f"{request.application_url}/v1/jobs/{job['pk']}"  # as the full stack's
        return response

    def answer(request, lane: str, match):
        try:
            token = bearer_token(request)
            node_id = node_id_of(request)
            if token is None or (node_id is None and lane != "create_job"):
                return None
            if node_id is None and request.headers.get("Node-Id", "").strip():
                return None  # a malformed Node-Id: the full stack's 400
            user_id = user_id_of_access_token(secret, token)
            if lane == "create_job":
                return create_job(request, match, user_id, node_id)
            if lane == "add_output":
                return add_output(request, match, user_id, node_id)
            return move(request, lane, match, user_id, node_id)
        except ServiceError:
            return None  # the full stack answers the error (or meets the same trouble: a full disk, say)
        except (DBAPIError, psycopg.Error) as error:
            # Nothing was written (a statement sent to psycopg itself raises its errors unwrapped, a deadlock
            # say); the full stack meets the same trouble and answers it as usual (503 for a database it
            # cannot reach).
            unreachable = database_unavailable(error)
            log.warning("express lane for %s failed; the full stack answers instead%s", lane,
                        f": {error}" if unreachable else "", exc_info=not unreachable)
            return None

    def lane_of(request) -> tuple[str | None, re.Match | None]:
        """The lane for the request (its transition, ``add_output`` or ``create_job``) and its path's match."""
        if "HTTP_X_VHM_ROOT" in request.environ:  # a virtual root: traversal reads the path under it
            return None, None
        path = request.environ.get("PATH_INFO", "")
        if request.method == "POST":  # an upload or a creation: no notification is ever due for them
            for lane, route in (("add_output", _OUTPUT), ("create_job", _CREATE_JOB)):
                match = route.fullmatch(path)
                if match is not None:
                    return lane, match
        for transition, (method, route) in transitions.items():
            match = route.fullmatch(path) if request.method == method else None
            if match is not None:
                return transition, match
        return None, None

    def express_lanes_tween(request):
        lane, match = lane_of(request)
        if lane is not None:
            request_began(registry)
            response = answer(request, lane, match)
            if response is not None:
                return response
        return handler(request)

    return express_lanes_tween


def includeme(config):
    # Over pyramid_tm: an answered request opens no transaction and no session.
    config.add_tween("ufdl_pyramid.express_lanes_config.express_lanes_tween_factory",
                     over="pyramid_tm.tm_tween_factory")
