"""``/v1/jobs/...``: the node lifecycle (acquire ... cancel). Every action answers the job's JSON."""
from pyramid.httpexceptions import HTTPMethodNotAllowed
from pyramid.response import Response

from ..errors import InvalidInput
from ..models.jobs import ALGORITHM, NODE_ERROR_CATEGORIES
from ..models.meta import utcnow
from ..permissions import Permission
from ..representations import job_json
from ..resources.jobs import JobItem, Jobs
from ..services.job_lifecycle import JobLifecycle, parse_progress
from ..services.seed_job_configuration import SeedJobConfiguration
from ..services.seed_job_types import SecretBox
from ..services.validation import compile_schema, validate
from .api import api_view, read_json, read_json_object

# Upstream requires these fields but ignores them; we accept them and need none.
START = compile_schema({"type": "object", "properties": {"send_notification": {}}})
FINISH = compile_schema({"type": "object", "properties": {
    "success": {}, "send_notification": {}, "error": {"type": ["string", "null"], "maxLength": 100000},
    "error_category": {"enum": list(NODE_ERROR_CATEGORIES)}}})
ACQUIRE_NEXT = compile_schema({"type": "object", "additionalProperties": False, "required": ["executors"],
                               "properties": {"executors": {"type": "array", "maxItems": 1000,
                                                            "items": {"type": "string", "maxLength": 200}}}})


def lifecycle(request) -> JobLifecycle:
    return JobLifecycle(request.db)


@api_view(context=JobItem, name="acquire", request_method="GET", permission=Permission.ACT)
def acquire(context, request):
    if request.method != "GET":  # Pyramid routes HEAD to GET views; this GET changes the job
        raise HTTPMethodNotAllowed(headers={"Allow": "GET"})
    return job_json(lifecycle(request).acquire(context.row, request.node, request.identity))


acquire.refuses_head = True  # so a 405's Allow (views/errors.py) does not offer HEAD here


@api_view(context=Jobs, name="acquire-next", request_method="POST", permission=Permission.ACT)
def acquire_next(context, request):
    body = read_json_object(request)
    validate(ACQUIRE_NEXT, body)
    jobs = lifecycle(request)
    # Idle nodes poll here, so this is where lost leases are noticed.
    settings = request.registry.settings
    jobs.expire_leases(utcnow(), settings["ufdl.node_timeout"], settings["ufdl.max_tries"])
    job = jobs.acquire_next(request.node, body["executors"], request.identity)
    if job is None:
        nothing = Response(status=204)
        nothing.content_type = None  # a 204 has no body, so no type either
        return nothing
    return job_json(job)


@api_view(context=JobItem, name="release", request_method="DELETE", permission=Permission.ACT)
def release(context, request):
    return job_json(lifecycle(request).release(context.row, request.node))


@api_view(context=JobItem, name="start", request_method="POST", permission=Permission.ACT)
def start(context, request):
    validate(START, read_json_object(request, optional=True))
    return job_json(lifecycle(request).start(context.row, request.node))


@api_view(context=JobItem, name="progress", request_method="POST", permission=Permission.ACT,
          takes_subpath=True)
def progress(context, request):
    if len(request.subpath) != 1:
        raise InvalidInput("Give the progress: /v1/jobs/{pk}/progress/{PROGRESS}")
    value = parse_progress(request.subpath[0])
    data = read_json(request, optional=True)
    if not isinstance(data, dict):
        raise InvalidInput("The progress body must be a JSON object")
    return job_json(lifecycle(request).progress(context.row, request.node, value, data))


@api_view(context=JobItem, name="finish", request_method="POST", permission=Permission.ACT)
def finish(context, request):
    body = read_json_object(request, optional=True)
    validate(FINISH, body)
    error = body.get("error")
    if "error_category" in body and error is None:
        raise InvalidInput("error_category: it goes with an error (a finish without one completes the job)")
    return job_json(lifecycle(request).finish(context.row, request.node, error,
                                              body.get("error_category", ALGORITHM)))


@api_view(context=JobItem, name="reset", request_method="DELETE", permission=Permission.ACT)
def reset(context, request):
    return job_json(lifecycle(request).reset(context.row, request.node))


@api_view(context=JobItem, name="abort", request_method="DELETE", permission=Permission.ADMIN)
def abort(context, request):
    return job_json(lifecycle(request).abort(context.row))


@api_view(context=JobItem, name="cancel", request_method="DELETE", permission=Permission.CANCEL)
def cancel(context, request):
    return job_json(lifecycle(request).cancel(context.row, request.identity.user))


@api_view(context=JobItem, name="seed-configuration", request_method="GET", permission=Permission.ACT)
def seed_configuration(context, request):
    """The settings (secret ones decrypted) and mounts of a Scale job type's job, for the node running it."""
    secrets = SecretBox.from_settings(request.registry.settings)
    answer = SeedJobConfiguration(request.db, secrets).for_node(context.row, request.node)
    request.response.cache_control = "no-store"  # secret values: no proxy or client cache keeps them
    return answer
