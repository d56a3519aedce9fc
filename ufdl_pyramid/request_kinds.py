"""What kind of request this is, read off the raw WSGI path: some of it is decided before Pyramid decodes the
path (which may fail on a malformed one) or finds the view."""
from pyramid.traversal import split_path_info


def is_output_upload(request) -> bool:
    """An output upload, POST /v1/jobs/{pk}/outputs/{NAME}/{TYPE}, however traversal will read its path
    (``/v1//jobs/3/./outputs/a/B`` is one: empty and '.' segments are none, '..' drops the one before). Its
    body streams into storage, which may take longer than anything else a request does: it runs once (no retry
    copy of its body), and holds no row or lock of the database while its bytes come in."""
    if request.method != "POST":
        return False
    segments = split_path_info(request.environ.get("PATH_INFO", ""))
    return len(segments) == 6 and segments[:2] == ("v1", "jobs") and segments[3] == "outputs"


def is_health_check(request) -> bool:
    """``/v1/health``, a load balancer's liveness probe: a ``Node-Id`` sent with it (a client sends its own on
    every request) is no node's call, so it neither marks the node seen nor is checked."""
    return split_path_info(request.environ.get("PATH_INFO", "")) == ("v1", "health")
