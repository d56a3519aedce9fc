"""``/v1/job-templates/...``: import, export, a registry sync, the questions about a template, and create-job."""
from urllib.parse import parse_qsl

from pyramid.response import Response

from ..errors import InvalidInput
from ..permissions import Permission
from ..representations import job_json, template_json
from ..resources.templates import JobTemplates, TemplateItem
from ..services.executor_checks import ExecutorChecks
from ..services.job_creation import JobCreator
from ..services.template_documents import json_compatible, parse_yaml, to_json, to_yaml
from ..services.template_registry import RegistrySync
from ..services.templates import TemplateService, template_document
from ..services.type_registry import resolve, type_registry
from ..services.validation import compile_schema, validate
from .api import api_view, read_body, read_json, read_json_object, rest_of_path

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def template_service(request) -> TemplateService:
    return TemplateService(request.db, type_registry(request.db))


def read_document(request):
    """An import body in JSON or (by its Content-Type) YAML, held to the same limits."""
    if request.content_type.lower() in YAML_TYPES:  # media types are case-insensitive (RFC 9110 §8.3.1)
        return parse_yaml(read_body(request))
    return json_compatible(read_json(request), language="JSON")


@api_view(context=JobTemplates, name="import", request_method="POST", permission=Permission.CREATE)
def import_template(context, request):
    template, created = template_service(request).import_document(read_document(request), request.identity.user)
    if created:
        request.response.status_int = 201
        request.response.location = request.resource_url(context.item(template)).rstrip("/")
    return template_json(template)


SYNC = compile_schema({"type": "object", "additionalProperties": False, "required": ["files"], "properties": {
    "files": {"type": "object", "additionalProperties": {"type": "string"}},
    "prune": {"type": "boolean"}, "dry_run": {"type": "boolean"}}})


@api_view(context=JobTemplates, name="sync", request_method="POST", permission=Permission.ADMIN)
def sync_registry(context, request):
    """A templates registry (its files' texts by path) applied as ``ufdl templates sync`` applies a directory:
    all or nothing, in this request's transaction; a dry run is rolled back."""
    body = read_json_object(request, limit_setting="ufdl.max_registry_size")
    validate(SYNC, body)
    sync = RegistrySync(request.db)
    plan = sync.sync(sync.parse(body["files"]), prune=body.get("prune", False))
    if body.get("dry_run"):
        request.tm.doom()  # pyramid_tm rolls the transaction back
    return {**plan.as_json(), "applied": not body.get("dry_run")}


def _accept_prefers_yaml(accept) -> bool:
    offers = accept.acceptable_offers(["application/json", *YAML_TYPES])
    if not offers:
        return False
    tied = [offer for offer, quality in offers if quality == offers[0][1]]
    # Of the types rated alike, one the client names beats one it reaches through a wildcard: "application/yaml,
    # */*" asks for YAML (webob breaks the tie by the order of the offers, which put JSON first).
    named = {media_range.lower() for media_range, *_ in getattr(accept, "parsed", None) or ()}
    return ([offer for offer in tied if offer in named] or tied)[0] in YAML_TYPES


@api_view(context=TemplateItem, name="export", request_method="GET", permission=Permission.ADMIN)
def export_template(context, request):
    document = template_document(context.row)
    chosen = request.GET.get("format")
    if chosen is not None and chosen not in ("json", "yaml"):  # was answered JSON, as if it had been understood
        raise InvalidInput(f"format must be json or yaml, not {chosen!r}")
    wants_yaml = chosen == "yaml" or (chosen is None and _accept_prefers_yaml(request.accept))
    if wants_yaml:
        response = Response(to_yaml(document), content_type="application/yaml", charset="utf-8")
    else:
        response = Response(to_json(document), content_type="application/json", charset="utf-8")
    if chosen is None:  # Accept chose: a cache must not give one representation to a client asking the other
        response.vary = ("Accept",)
    return response


@api_view(context=TemplateItem, name="get-all-parameters", request_method="GET", permission=Permission.VIEW)
def get_all_parameters(context, request):
    return template_service(request).parameters_with_schemas(context.row)


@api_view(context=TemplateItem, name="get-types", request_method="GET", permission=Permission.VIEW)
def get_types(context, request):
    return template_service(request).contract_arguments(context.row)


@api_view(context=TemplateItem, name="get-outputs", request_method="GET", permission=Permission.VIEW)
def get_outputs(context, request):
    return context.row.outputs


@api_view(context=TemplateItem, name="get-inputs", request_method="GET", permission=Permission.VIEW)
def get_inputs(context, request):
    return context.row.inputs


@api_view(context=JobTemplates, name="get-all-matching-templates", request_method="GET",
          permission=Permission.VIEW, takes_subpath=True)
def get_all_matching_templates(context, request):
    contract = rest_of_path(request)
    if not contract:
        raise InvalidInput("Give the contract: /v1/job-templates/get-all-matching-templates/{CONTRACT}")
    service = template_service(request)
    # The UFDL client sends the query string unencoded (spaces, quotes, <>): parse_qsl decodes leniently.
    raw_query = request.environ.get("QUERY_STRING", "")
    wanted = {name: resolve(service.registry, value, f"input '{name}'")
              for name, value in parse_qsl(raw_query, keep_blank_values=True)}
    templates = service.matching(context.query(), contract, wanted)
    return [template_json(template) for template in templates]


@api_view(context=TemplateItem, name="create-job", request_method="POST", permission=Permission.CREATE_JOB)
def create_job(context, request):
    checks = ExecutorChecks(request.registry["ufdl.plugins"].executors, request.db)
    job = JobCreator(request.db, template_service(request), checks).create(context.row, read_json_object(request),
                                                                           request.identity.user_id)
    request.response.status_int = 201
    request.response.location = request.resource_url(request.root["v1"]["jobs"]).rstrip("/") + f"/{job.id}"
    return job_json(job)
