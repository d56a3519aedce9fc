"""``/v1/job-types/get-all-values/{TYPE}``: the values of a server-resident type."""
from ..errors import InvalidInput
from ..permissions import Permission
from ..resources.job_types import JobTypes
from ..services.resident_values import all_values
from ..services.type_registry import type_registry
from .api import api_view, rest_of_path


@api_view(context=JobTypes, name="get-all-values", request_method="GET", permission=Permission.VIEW,
          takes_subpath=True)
def get_all_values(context, request):
    type_text = rest_of_path(request)
    if not type_text:
        raise InvalidInput("Give the type: /v1/job-types/get-all-values/{TYPE}")
    return all_values(request.db, type_registry(request.db), type_text)
