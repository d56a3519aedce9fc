"""``/v1/job-types/get-all-values/{TYPE}``: the values of a server-resident type."""
from ..errors import InvalidInput
from ..permissions import Permission
from ..resources.job_types import JobTypes
from ..services.resident_values import all_values
from ..services.type_registry import type_registry
from .api import api_view


@api_view(context=JobTypes, name="get-all-values", request_method="GET", permission=Permission.VIEW,
          takes_subpath=True)
def get_all_values(context, request):
    if len(request.subpath) != 1:
        raise InvalidInput("Give the type: /v1/job-types/get-all-values/{TYPE}")
    return all_values(request.db, type_registry(request.db), request.subpath[0])
