"""What every API view shares: the view decorator that insists on a permission, and JSON body reading."""
import contextlib
import itertools
import json
import logging
import math
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from pyramid.httpexceptions import HTTPNotFound
from pyramid.view import view_config
from pyramid.viewderivers import INGRESS
from sqlalchemy.exc import SQLAlchemyError

from ..errors import InvalidInput, PayloadTooLarge
from ..models import database_error_line
from ..permissions import Permission
from ..resources.base import require_caller
from ..services.listing import LIST_BATCH_SIZE
from ..services.template_documents import MAX_NESTING
from ..services.validation import MAX_INT_DIGITS, UNSTORABLE, holds_unstorable

log = logging.getLogger(__name__)


def api_view(*, permission: Permission, takes_subpath: bool = False, **settings):
    """``view_config`` for the JSON API: a permission must be named, and the answer is JSON. Path segments past
    the view's own path are 404 unless ``takes_subpath`` (see `refuse_subpath`)."""
    if not isinstance(permission, Permission):
        raise TypeError("api_view needs a Permission")
    return view_config(permission=permission, renderer="json", takes_subpath=takes_subpath, **settings)


def refuse_subpath(view, info):
    """A view deriver: an API view answers its own path, not that path with more segments (traversal hands them to
    the view as ``request.subpath``). Upstream's URL patterns end there, and ``DELETE /v1/jobs/5/hard/6`` deleted
    job 5 for good. Views that read a value there (``progress/{P}``) are declared with ``takes_subpath``.

    It runs before the permission check (``includeme``): a path that names no view is 404 to whoever may not use the
    view it extends too (it was 403). An anonymous caller is still 401 first, as on any path under a collection."""
    if info.options.get("takes_subpath", True):  # the error views, which api_view does not declare, too
        return view
    public = info.options.get("permission") in (Permission.AUTHENTICATE, Permission.PROBE)

    def view_of_its_own_path(context, request):
        if request.subpath:
            if not public:
                require_caller(request)
            raise HTTPNotFound()
        return view(context, request)

    return view_of_its_own_path


refuse_subpath.options = ("takes_subpath",)


def rest_of_path(request) -> str:
    """What follows a ``takes_subpath`` view's name in the path, slashes included (a trailing one dropped), as
    upstream's ``get-all-values/(?P<type_string>.*)`` takes it: a type's literal may hold a ``/``
    (``Framework<'tf/keras', '2.1'>``), which traversal splits into segments."""
    return request.path_info.partition(f"/{request.view_name}/")[2].removesuffix("/")


def read_body(request, limit_setting: str = "ufdl.max_json_size") -> bytes:
    """The request body, refused with 413 beyond the size the setting allows (without reading all of it)."""
    limit = request.registry.settings[limit_setting]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes")
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        # A body of unknown length: read no more than the limit allows.
        body = request.body_file.read(limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes")
        return body
    # webob keeps the body it read, so a retried attempt (pyramid_retry) reads it again.
    return request.body


def read_json(request, *, optional: bool = False, limit_setting: str = "ufdl.max_json_size"):
    """The request body as JSON: 413 beyond ``ufdl.max_json_size`` (or ``limit_setting``), 400 if it does not
    parse.

    ``optional`` bodies may be absent: the UFDL clients POST ``.../list`` with no body and no Content-Type.
    """
    body = read_body(request, limit_setting)
    if not body.strip():
        if optional:
            return {}
        raise InvalidInput("A JSON body is required")
    try:
        value = json.loads(body, parse_float=_finite_float, parse_constant=_no_constant,
                           object_pairs_hook=_unique_keys)
        # Checked here, or the database would refuse it as a 500. Bodies that hold no escape, no NUL byte (UTF-16
        # and 32 hold many) and no UTF-8 lead byte of the surrogates' block cannot hold one: no walk for them.
        bad_text = (b"\\u" in body or b"\x00" in body or b"\xed" in body) and holds_unstorable(value)
    except (UnicodeDecodeError, ValueError) as error:
        if str(error).startswith("Exceeds the limit"):  # Python's message names sys.set_int_max_str_digits
            error = f"an integer of more than {MAX_INT_DIGITS} digits"
        raise InvalidInput(f"Malformed JSON body: {error}") from None
    except RecursionError:  # Python's parser recurses once per level of nesting
        raise InvalidInput("Malformed JSON body: nested too deeply") from None
    if bad_text:
        raise InvalidInput(f"Malformed JSON body: {UNSTORABLE}")
    # Fewer brackets than the limit cannot nest past it: most bodies are not walked.
    if body.count(b"[") + body.count(b"{") > MAX_NESTING and _nested_too_deep(value):
        raise InvalidInput(f"Invalid JSON (body): nested more than {MAX_NESTING} levels deep")
    return value


def _nested_too_deep(value) -> bool:
    """Whether lists and objects nest more than `MAX_NESTING` levels (the body itself the first), as an import
    refuses: deeper, what reads the body next (a list filter's schema check, say) could recurse past Python's
    limit and answer 500. A loop, not a recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_NESTING:
                    return True
                stack.append((child, depth + 1))
    return False


def _finite_float(text: str) -> float:
    # JSON has no infinities; Python would read 1e400 as one and let it reach the database.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _unique_keys(pairs: list) -> dict:
    # Python keeps a repeated key's last value without a word; YAML bodies refuse it too (UniqueKeys).
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"the key {repeated!r} is given twice in one object")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def read_json_object(request, *, optional: bool = False, limit_setting: str = "ufdl.max_json_size") -> dict:
    body = read_json(request, optional=optional, limit_setting=limit_setting)
    if not isinstance(body, dict):
        raise InvalidInput("The JSON body must be an object")
    return body


def json_array_chunks(items: Iterable[dict]) -> Iterator[bytes]:
    """The items as a JSON array, encoded LIST_BATCH_SIZE at a time: what is in memory is one batch of items,
    not the whole list of them."""
    yield b"["
    items = iter(items)
    separator = b""
    for batch in iter(lambda: list(itertools.islice(items, LIST_BATCH_SIZE)), []):
        yield separator + json.dumps(batch)[1:-1].encode()  # the batch's items without their brackets
        separator = b", "
    yield b"]"


def json_array_response(request, items: Iterable[dict]):
    """The items as a JSON array, encoded before the answer starts (its Content-Length known), on
    ``request.response`` (headers set before are kept)."""
    chunks = list(json_array_chunks(items))
    response = request.response
    response.content_type = "application/json"
    response.app_iter = chunks
    response.content_length = sum(map(len, chunks))
    return response


def json_array_stream(request, rows: Generator, represent: Callable[[Any], dict]):
    """The rows as a JSON array, sent as they are read and encoded (chunked: no Content-Length), on
    ``request.response``. The end of the answer, sent or abandoned by the client, closes ``rows``."""
    def chunks():
        with contextlib.closing(rows):
            try:
                yield from json_array_chunks(map(represent, rows))
            except SQLAlchemyError as error:
                log.error("%s: the database failed after the answer started (the connection is closed): %s",
                          request.path, database_error_line(error))
                raise AnswerCutShort() from None

    response = request.response
    response.content_type = "application/json"
    response.app_iter = chunks()
    return response


class AnswerCutShort(Exception):
    """Raised from a chunked body under way, whose failure was logged: the WSGI server must close the connection
    before the body's last chunk, so that the client sees the answer cut, not complete. Raising is the only way
    to say so through WSGI, and waitress logs what is raised with a traceback: ``includeme`` keeps it from
    logging this one, which says nothing the line before it did not."""


def _not_a_cut_answer(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], AnswerCutShort))


def includeme(config):
    config.add_view_deriver(refuse_subpath, under=INGRESS, over="secured_view")
    waitress_log = logging.getLogger("waitress")
    if _not_a_cut_answer not in waitress_log.filters:  # one app per process, but tests build many
        waitress_log.addFilter(_not_a_cut_answer)


def set_paging_headers(request, result) -> None:
    """X-Total-Count always; a Link header with the page URLs when the caller asked for a page."""
    response = request.response
    response.headers["X-Total-Count"] = str(result.total)
    if result.page_size is None:
        return
    links = []

    def link(page: int, rel: str) -> None:
        query = urlencode({"page": page, "page_size": result.page_size})
        links.append(f'<{request.path_url}?{query}>; rel="{rel}"')

    if result.page < result.last_page:
        link(result.page + 1, "next")
    if result.page > 1:
        link(result.page - 1, "prev")
    link(1, "first")
    link(result.last_page, "last")
    response.headers["Link"] = ", ".join(links)
