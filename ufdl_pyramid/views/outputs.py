"""Job outputs over HTTP: ``/v1/jobs/{pk}/outputs/{NAME}/{TYPE}`` (add, download, delete, info) and
``/v1/job-outputs/{pk}/download``. Bodies stream in and out: an output is never held whole in memory.

List, retrieve, destroy, reinstate and hard delete of ``/v1/job-outputs`` are the generic views of
views/records.py; deleting a blob once no row needs it is `services.outputs.BlobCleanup`'s job.
"""
import logging
from collections.abc import Iterable, Iterator

from pyramid.response import Response

from ..errors import InvalidInput
from ..permissions import Permission
from ..representations import job_output_json
from ..resources.jobs import JobOutputItem, OutputSlot
from ..services.outputs import JobOutputService, download_filename
from ..storage import BlobNotFound, DamagedBlob, RangeNotSatisfiable, parse_range
from .api import api_view, read_json
from .errors import error_response

log = logging.getLogger(__name__)


def output_service(request) -> JobOutputService:
    return JobOutputService(request.db, request.registry["ufdl.storage"],
                            request.registry.settings["ufdl.max_output_size"])


@api_view(context=OutputSlot, request_method="POST", permission=Permission.ACT)
def add_output(context, request):
    # The type is checked before the body is read, so a bad request costs no upload.
    output = output_service(request).add(context.job, request.node, context.output_name, context.output_type,
                                         request.body_file, request.headers.get("Content-Type"),
                                         request.identity.user_id, request.content_length)
    request.response.status_int = 201
    request.response.location = request.resource_url(context).rstrip("/") + "/info"
    return job_output_json(output)


@api_view(context=OutputSlot, request_method="GET", permission=Permission.VIEW)
def get_output(context, request):
    service = output_service(request)
    output = service.servable(service.find(context.job, context.output_name, context.output_type))
    return stream_output(request, output, download_filename(output.name))


@api_view(context=OutputSlot, name="info", request_method="GET", permission=Permission.VIEW)
def output_info(context, request):
    return job_output_json(output_service(request).find(context.job, context.output_name, context.output_type))


@api_view(context=OutputSlot, request_method="DELETE", permission=Permission.ACT)
def delete_output(context, request):
    service = output_service(request)
    output = service.find(context.job, context.output_name, context.output_type)
    return job_output_json(service.delete(context.job, output, request.node, request.identity.user))


@api_view(context=JobOutputItem, name="download", request_method=("GET", "POST"), permission=Permission.VIEW)
def download(context, request):
    """The UFDL client POSTs ``{"params": {}}``; ``filetype`` (in the body, its params or the query) changes
    the extension of the offered filename."""
    body = read_json(request, optional=True) if request.method == "POST" else {}
    if not isinstance(body, dict):
        raise InvalidInput("The download body must be a JSON object")
    params = body.get("params", {})
    if not isinstance(params, dict):  # null too: it was taken as no params, as any other value was
        raise InvalidInput("params must be a JSON object, such as {} or {\"filetype\": \"zip\"}")
    given = (body.get("filetype"), params.get("filetype"))
    # Each checked, not only the one taken: a 0, false, [] or {} was taken as no filetype without a word.
    if any(value is not None and not isinstance(value, str) for value in given):
        raise InvalidInput("filetype must be a string")
    filetype = given[0] or given[1] or request.GET.get("filetype")
    output = output_service(request).servable(context.row)
    return stream_output(request, output, download_filename(output.name, filetype))


def stream_output(request, output, filename: str):
    """The blob as the answer: whole, or (GET) the one byte range asked for (206), or 416; 304 when the client
    already has it. The blob's key is its SHA-256, a strong ETag (RFC 9110 §8.8.3)."""
    storage = request.registry["ufdl.storage"]
    etag = f'"{output.blob_key}"'
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'attachment; filename="{filename}"', "ETag": etag}
    if request.method in ("GET", "HEAD") and not _if_match_holds(request.headers.get("If-Match"), etag):
        # Checked before If-None-Match and Range (RFC 9110 §13.2.2): a resumed download gets no other bytes' range.
        return error_response(request, 412, "The output's bytes are not the ones If-Match names", {"ETag": etag})
    if request.method in ("GET", "HEAD") and _etag_listed(request.headers.get("If-None-Match"), etag):
        response = Response(status=304)
        response.headers["ETag"] = etag
        response.content_type = None
        return response
    span = None
    # Range is for GET alone (RFC 9110 §14.2), and If-Range asks for the whole body unless the tag still holds.
    if request.method == "GET" and request.headers.get("If-Range", etag) == etag:
        try:
            span = parse_range(request.headers.get("Range"), output.size)
        except RangeNotSatisfiable as error:
            return error_response(request, 416, error.detail, {"Content-Range": error.content_range})
    if span is None:
        status = 200
        app_iter = (_blob_range(storage, output, 0, output.size - 1, head=request.method == "HEAD")
                    if output.size else [])
        length = output.size
    else:
        start, end = span
        status = 206
        app_iter = _blob_range(storage, output, start, end)
        length = end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{output.size}"
    response = Response(status=status, app_iter=_cut_short_on_error(app_iter, output.id),
                        content_type=output.content_type, charset=None)
    response.headers.update(headers)
    response.content_length = length
    return response


def _blob_range(storage, output, start: int, end: int, *, head: bool = False) -> Iterable[bytes]:
    """``head``: the same checks (a missing or damaged blob answers as for GET), but no body and no file opened.
    WebOb never iterates a HEAD's body, and closing the unstarted iterator left the opened file to the garbage
    collector (a ResourceWarning per HEAD)."""
    try:
        if head:
            storage.check_range(output.blob_key, start, end)
            return []
        return storage.iter_range(output.blob_key, start, end)
    except BlobNotFound:
        # A row refers to it, so it was stored: it went behind the server's back, the damage a blob cut short is.
        log.error("output %s: its blob %s is missing from the output storage", output.id, output.blob_key)
        raise DamagedBlob() from None


def _cut_short_on_error(chunks: Iterable[bytes], output_id: int) -> Iterator[bytes]:
    """The body, once the answer has started: its status is sent, so a failing read can only be logged. The body
    then ends short of its Content-Length, which makes the server close the connection (the client sees it cut)."""
    try:
        yield from chunks
    except OSError as error:
        log.error("output %s: reading its blob failed after the answer started (the connection is closed): %s",
                  output_id, error)


def _if_match_holds(header: str | None, etag: str) -> bool:
    """Whether an If-Match header (if any) names ``etag`` or is ``*``, comparing strongly: a ``W/`` tag never
    matches (RFC 9110 §13.1.1)."""
    if header is None:
        return True
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or etag in tags


def _etag_listed(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match list names ``etag`` (or is ``*``), comparing weakly (``W/`` ignored)."""
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags
