"""What kind of request this is, read off the raw WSGI path: some of it is decided before Pyramid decodes the
path (which may fail on a malformed one) or finds the view."""
import re

# An output upload: POST /v1/jobs/{pk}/outputs/{NAME}/{TYPE}.
_UPLOAD_PATH = re.compile(r"/v1/jobs/[^/]+/outputs/[^/]+/[^/]+/?")


def is_output_upload(request) -> bool:
    """Its body streams into storage, which may take longer than anything else a request does: it runs once
    (no retry copy of its body), and holds no row or lock of the database while its bytes come in."""
    return request.method == "POST" and _UPLOAD_PATH.fullmatch(request.environ.get("PATH_INFO", "")) is not None
