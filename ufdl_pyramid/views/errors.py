"""Every error as JSON ``{"detail": ...}`` with its status: no HTML pages, no tracebacks to clients."""
import logging
from urllib.parse import unquote_to_bytes

from alembic.runtime.migration import MigrationContext
from pyramid.exceptions import PredicateMismatch, URLDecodeError
from pyramid.httpexceptions import HTTPException
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config
from pyramid_retry import is_last_attempt, mark_error_retryable
from sqlalchemy.exc import DBAPIError

from ..errors import (DATABASE_UNAVAILABLE, NO_CREDENTIALS, RETRY_AFTER_OUTAGE, SCHEMA_NOT_CURRENT, ConcurrentChange,
                      ServiceError)
from ..models import database_error_line, database_unavailable

log = logging.getLogger(__name__)


def error_response(request, status: int, detail: str, headers: dict | None = None, extra: dict | None = None):
    response = request.response
    response.status_int = status
    response.content_type = "application/json"
    response.headers.update(headers or {})
    return {**(extra or {}), "detail": detail}


@exception_view_config(ServiceError, renderer="json")
def service_error(exc, request):
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return error_response(request, exc.status, exc.detail, headers, exc.extra)


@exception_view_config(ConcurrentChange, renderer="json", last_retry_attempt=True)
def concurrent_change(exc, request):
    return error_response(request, exc.status, exc.detail)


@notfound_view_config(renderer="json")
def not_found(exc, request):
    # Traversal found the resource but no view for this method: the path exists, the method does not.
    if isinstance(exc, PredicateMismatch):
        allowed = ", ".join(allowed_methods(request))
        return error_response(request, 405, f'Method "{request.method}" not allowed.', {"Allow": allowed})
    return error_response(request, 404, "Not found.")


def allowed_methods(request) -> list[str]:
    """The methods the views of this resource and view name answer: a 405 must list them (RFC 9110)."""
    methods, head = set(), True
    for entry in request.registry.introspector.get_category("views") or ():
        view = entry["introspectable"]
        context = view["context"]
        if (view["name"] == request.view_name and view["request_methods"]
                and (context is None or isinstance(context, type) and isinstance(request.context, context))):
            found = view["request_methods"]
            methods.update((found,) if isinstance(found, str) else found)
            head = head and not getattr(view["callable"], "refuses_head", False)  # a GET that changes things
    if "GET" in methods and head:
        methods.add("HEAD")  # Pyramid answers HEAD with the GET view
    return sorted(methods)


@forbidden_view_config(renderer="json")
def forbidden(exc, request):
    if request.identity is None:
        detail = request.auth_error or NO_CREDENTIALS
        return error_response(request, 401, detail, {"WWW-Authenticate": "Bearer"})
    return error_response(request, 403, "You do not have permission to perform this action.")


@exception_view_config(URLDecodeError, renderer="json")
def undecodable_path(exc, request):
    return error_response(request, 400, "The URL's path is not valid UTF-8 once percent-decoded.")


@exception_view_config(UnicodeDecodeError, renderer="json")
def undecodable(exc, request):
    # WebOb decodes the query string when a view first reads request.GET; any other decoding error is ours.
    # WSGI hands the query over as bytes decoded as latin-1: percent-escaped or raw, they must be UTF-8.
    try:
        unquote_to_bytes(request.environ.get("QUERY_STRING", "").encode("latin-1")).decode("utf-8")
    except UnicodeDecodeError:
        return error_response(request, 400, "The URL's query string is not valid UTF-8 once percent-decoded.")
    return unexpected_error(exc, request)


@exception_view_config(HTTPException, renderer="json")
def http_exception(exc, request):
    return error_response(request, exc.code, exc.detail or exc.title, {
        name: value for name, value in exc.headers.items() if name.lower() in ("allow", "retry-after")})


# A retryable error must reach pyramid_retry to run the request again, so it is answered here only on the last
# attempt; any other error at once.
@exception_view_config(Exception, renderer="json", retryable_error=False)
@exception_view_config(Exception, renderer="json", last_retry_attempt=True)
def unexpected_error(exc, request):
    # The raw PATH_INFO: decoding it is one of the things that may have failed.
    where = request.method, request.environ.get("PATH_INFO")
    if _transient(request, exc):
        # A deadlock or a serialization failure the database reported. pyramid_tm marks it retryable only
        # after this view has answered: pyramid_retry then runs the request again, unless this was the last try.
        if not is_last_attempt(request):
            log.info("retrying %s %r after a transient database error: %s", *where, exc)
        else:
            attempts = request.environ.get("retry.attempts", 1)
            log.warning("giving up on %s %r after %s attempt(s): %s", *where, attempts, exc)
        return error_response(request, 409, "Another request changed the same data at the same moment; try again.")
    if database_unavailable(exc):
        request.registry["db.outages"].seen()  # the next request records the return: leases wait
        if _lost_pooled_connection(request, exc):
            # A pooled connection the database had dropped (it restarted, say), found dead before anything was
            # committed on it: the pool has let it go, and the request runs again on a fresh one.
            mark_error_retryable(exc)
            log.info("retrying %s %r after losing a database connection: %s", *where, exc.orig)
        else:
            log.warning("database unavailable on %s %r: %s", *where, getattr(exc, "orig", exc))
        return error_response(request, 503, DATABASE_UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_OUTAGE)})
    if isinstance(exc, DBAPIError) and _schema_behind(request):
        # A server started before 'ufdl db upgrade': its tables are missing or old, so every request failed
        # with a 500 and a traceback. No Retry-After, as for the health check: an upgrade ends it, not a wait.
        log.warning("database schema not current on %s %r: %s", *where, database_error_line(exc))
        return error_response(request, 503, SCHEMA_NOT_CURRENT)
    log.exception("unhandled error on %s %r", *where)
    return error_response(request, 500, "Internal server error.")


def _lost_pooled_connection(request, exc) -> bool:
    """A connection found dead while the request's transaction was open, so that nothing of it was committed
    (pyramid_tm hands the manager back before it commits: an error without it may have hit the COMMIT, whose
    outcome is unknown)."""
    return (getattr(exc, "connection_invalidated", False) and request.environ.get("tm.manager") is not None
            and not is_last_attempt(request))


def _schema_behind(request) -> bool:
    """Whether the database is not at the schema this code expects (asked on a connection of its own: the
    request's transaction may be aborted)."""
    try:
        with request.registry["db.engine"].connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    except Exception:  # noqa: BLE001 - it cannot tell: the error stays a 500
        return False
    return revision != request.registry["db.schema_head"]


def _transient(request, exc) -> bool:
    """Whether the transaction's data managers (zope.sqlalchemy) would have the request retried."""
    manager = request.environ.get("tm.manager")
    return manager is not None and manager.get().isRetryableError(exc)


def includeme(config):
    config.scan(__name__)
