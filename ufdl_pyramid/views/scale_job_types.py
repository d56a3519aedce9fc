"""``/v6/job-type-names/`` and ``/v6/job-types/...``: Scale's job-type API (seed 002).

Lists page as Scale's do (``{"count", "next", "previous", "results"}``), with the query parameters checked
here: a malformed one is a 400, never a 500.
"""
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from ..errors import InvalidInput, NotFound
from ..models.jobs import PENDING, RUNNING, SYSTEM
from ..models.meta import MAX_ID, utcnow
from ..permissions import Permission
from ..representations import (seed_job_type_brief_json, seed_job_type_details_json, seed_job_type_json,
                               seed_job_type_names_json, seed_job_type_revision_json, seed_job_type_version_json,
                               timestamp)
from ..resources.scale import (JobTypeName, JobTypeNames, JobTypeRevision, JobTypeRevisions, JobTypeVersion,
                               ScaleJobTypes, seed_job_type_service)
from ..services.seed_job_counts import status_counts, status_oldest, system_failures
from ..services.seed_job_types import (INVALID_PAGE, MAX_KEYWORD_LENGTH, MAX_KEYWORDS, MAX_PAGE_SIZE, Filters,
                                       NodeCapacity, Page, page_of_list, page_of_query)
from ..services.validation import unstorable
from .api import api_view, read_json_object

_INTEGER = re.compile(r"\A[+-]?[0-9]{1,18}\Z")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _integer(name: str, value: str) -> int:
    if not _INTEGER.match(value.strip()):
        raise InvalidInput(f"{name}: {value!r} is not an integer")
    return int(value)


def query_boolean(request, name: str) -> bool | None:
    """A boolean parameter (true/false/1/0, in any case); None when absent. Repeated, the last one counts."""
    values = request.GET.getall(name)
    if not values:
        return None
    if values[-1].strip().lower() not in _BOOLEANS:
        raise InvalidInput(f"{name}: {values[-1]!r} is not a boolean (true, false, 1 or 0)")
    return _BOOLEANS[values[-1].strip().lower()]


def paging(request) -> tuple[int, int]:
    """``page`` (1 by default) and ``page_size`` (100 by default, brought into 1..1000)."""
    page = request.GET.getall("page")
    page_size = request.GET.getall("page_size")
    number = _integer("page", page[-1]) if page else 1
    if number < 1:
        raise NotFound(INVALID_PAGE)
    size = _integer("page_size", page_size[-1]) if page_size else 100
    return number, min(max(size, 1), MAX_PAGE_SIZE)


def filters(request) -> Filters:
    keywords = request.GET.getall("keyword")
    if len(keywords) > MAX_KEYWORDS:
        raise InvalidInput(f"keyword: at most {MAX_KEYWORDS} may be given, not {len(keywords)}")
    for keyword in keywords:
        if len(keyword) > MAX_KEYWORD_LENGTH:
            raise InvalidInput(f"keyword: at most {MAX_KEYWORD_LENGTH} characters, not {len(keyword)}")
        if unstorable(keyword):
            raise InvalidInput("keyword: holds a character that cannot be searched for (NUL, or half of a "
                               "surrogate pair)")
    given = request.GET.getall("id")
    ids = [_integer("id", value) for value in given]
    return Filters(keywords=keywords,
                   # An id no row can have matches nothing (and does not reach the database's integer column).
                   ids=[pk for pk in ids if 1 <= pk <= MAX_ID] if given else None,
                   is_active=query_boolean(request, "is_active"), is_system=query_boolean(request, "is_system"))


def paged(request, page: Page, results: list) -> dict:
    """Scale's page: the other query parameters are kept in the next and previous pages' URLs. As DRF's
    PageNumberPagination, the link to page 1 has no ``page`` (it is the default)."""
    def url(number: int) -> str:
        query = [(name, value) for name, value in request.GET.items() if name != "page"]
        if number > 1:
            query.append(("page", str(number)))
        return f"{request.path_url}?{urlencode(query)}" if query else request.path_url

    return {"count": page.count, "next": url(page.page + 1) if page.has_next else None,
            "previous": url(page.page - 1) if page.page > 1 else None, "results": results}


@api_view(context=JobTypeNames, request_method="GET", permission=Permission.VIEW)
def job_type_names(context, request):
    number, size = paging(request)
    found = seed_job_type_service(request).names_page(filters(request), request.GET.getall("order"), number, size)
    return paged(request, found, [seed_job_type_names_json(versions) for versions in found.items])


@api_view(context=ScaleJobTypes, request_method="GET", permission=Permission.VIEW)
def job_types(context, request):
    number, size = paging(request)
    query = seed_job_type_service(request).list_query(filters(request), request.GET.getall("order"))
    found = page_of_query(request.db, query, number, size)
    return paged(request, found, [seed_job_type_json(row) for row in found.items])


@api_view(context=JobTypeName, request_method="GET", permission=Permission.VIEW)
def job_type_versions(context, request):
    number, size = paging(request)
    versions = seed_job_type_service(request).versions(context.__name__)
    if not versions:
        raise NotFound("Not found.")
    is_active = query_boolean(request, "is_active")
    found = page_of_list([row for row in versions if is_active is None or row.is_active is is_active], number, size)
    capacity = NodeCapacity.read(request.db)
    return paged(request, found, [seed_job_type_version_json(row, capacity.unmet(row.manifest))
                                  for row in found.items])


@api_view(context=JobTypeVersion, request_method="GET", permission=Permission.VIEW)
def job_type_details(context, request):
    return seed_job_type_details_json(context.row, NodeCapacity.read(request.db).unmet(context.row.manifest))


@api_view(context=JobTypeRevisions, request_method="GET", permission=Permission.VIEW)
def job_type_revisions(context, request):
    number, size = paging(request)
    job_type = context.__parent__.row
    found = page_of_query(request.db, seed_job_type_service(request).revisions_query(job_type), number, size)
    unmet = NodeCapacity.read(request.db).unmet(job_type.manifest)
    return paged(request, found, [seed_job_type_revision_json(row, unmet) for row in found.items])


@api_view(context=JobTypeRevision, request_method="GET", permission=Permission.VIEW)
def job_type_revision(context, request):
    unmet = NodeCapacity.read(request.db).unmet(context.row.job_type.manifest)
    return seed_job_type_revision_json(context.row, unmet, details=True)


@api_view(context=ScaleJobTypes, name="validation", request_method="POST", permission=Permission.VIEW)
def validate_job_type(context, request):
    errors, warnings = seed_job_type_service(request).validate(read_json_object(request))
    return {"is_valid": not errors, "errors": errors, "warnings": warnings}


@api_view(context=ScaleJobTypes, request_method="POST", permission=Permission.CREATE)
def create_job_type(context, request):
    """A new job type (201), or a new revision or an update of an existing (name, version): 201 too, as Scale
    answers; the body is the job type's details either way."""
    row, _created, _warnings = seed_job_type_service(request).create(read_json_object(request))
    version = JobTypeVersion(request, row.version, JobTypeName(request, row.name, context), row)
    request.response.status_int = 201
    request.response.location = request.resource_url(version)
    return seed_job_type_details_json(row, NodeCapacity.read(request.db).unmet(row.manifest))


@api_view(context=JobTypeVersion, request_method="PATCH", permission=Permission.EDIT)
def edit_job_type(context, request):
    warnings = seed_job_type_service(request).edit(context.row, read_json_object(request))
    return {"is_valid": True, "errors": [], "warnings": warnings}


# The job counts (design notes §1): the jobs of the job templates that the job types' revisions are.

# [0-9], not \d: float() reads every script's digits, and an ISO-8601 duration is written in ASCII ones. Any
# component may have a decimal fraction, after a point or a comma (PT1.5H, P0,5D), as ISO 8601 and Scale's parser
# allow.
_NUMBER = r"([0-9]{1,9}(?:[.,][0-9]{1,9})?)"
_DURATION = re.compile(rf"\AP(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?\Z")


def query_moment(request, name: str, now: datetime, default: datetime) -> datetime:
    """An ISO-8601 date/time (UTC unless it names a zone), or an ISO-8601 duration (``PT3H``) before now."""
    values = request.GET.getall(name)
    if not values:
        return default
    text = values[-1].strip()
    try:
        duration = _DURATION.match(text.upper())
        if duration and any(duration.groups()):
            days, hours, minutes, seconds = (float((part or "0").replace(",", ".")) for part in duration.groups())
            return now - timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        moment = datetime.fromisoformat(text)
        # In UTC here, where an overflow (0001-01-01T00:00:00+05:00) is the caller's 400, not the database's 500.
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name}: {text!r} is neither an ISO-8601 date/time (2015-01-01T00:00:00Z) nor an "
                           "ISO-8601 duration (PT3H0M0S)") from None


@api_view(context=ScaleJobTypes, name="status", request_method="GET", permission=Permission.VIEW)
def job_type_status(context, request):
    number, size = paging(request)
    now = utcnow()
    started = query_moment(request, "started", now, now - timedelta(hours=3))
    ended = query_moment(request, "ended", now, now)
    service = seed_job_type_service(request)
    found = page_of_query(request.db, service.list_query(Filters(is_active=query_boolean(request, "is_active")), []),
                          number, size)
    counts = status_counts(request.db, found.items, started, ended)
    capacity = NodeCapacity.read(request.db)
    return paged(request, found, [
        {"job_type": seed_job_type_brief_json(row, capacity.unmet(row.manifest)),
         "job_counts": [{**count, "most_recent": timestamp(count["most_recent"])} for count in counts[row.id]]}
        for row in found.items])


def _oldest(request, status: str, field: str) -> dict:
    number, size = paging(request)
    found = page_of_list(status_oldest(request.db, status), number, size)
    capacity = NodeCapacity.read(request.db)
    return paged(request, found, [{"job_type": seed_job_type_brief_json(row, capacity.unmet(row.manifest)),
                                   "count": count, field: timestamp(time)} for row, count, time in found.items])


@api_view(context=ScaleJobTypes, name="pending", request_method="GET", permission=Permission.VIEW)
def job_types_pending(context, request):
    return _oldest(request, PENDING, "longest_pending")


@api_view(context=ScaleJobTypes, name="running", request_method="GET", permission=Permission.VIEW)
def job_types_running(context, request):
    return _oldest(request, RUNNING, "longest_running")


@api_view(context=ScaleJobTypes, name="system-failures", request_method="GET", permission=Permission.VIEW)
def job_type_system_failures(context, request):
    number, size = paging(request)
    found = page_of_list(system_failures(request.db), number, size)
    capacity = NodeCapacity.read(request.db)
    # There is no table of errors here: the error is named by the failed jobs' error reason.
    return paged(request, found, [
        {"job_type": seed_job_type_brief_json(row, capacity.unmet(row.manifest)),
         "error": {"name": reason, "description": reason, "category": SYSTEM},
         "count": count, "first_error": timestamp(first), "last_error": timestamp(last)}
        for row, reason, count, first, last in found.items])
