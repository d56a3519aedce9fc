"""``/v1/job-types/get-all-values/{TYPE}``: the values of a server-resident type."""
from ..errors import InvalidInput
from ..permissions import Permission
from ..resources.job_types import JobTypes
from .api import api_view


@api_view(context=JobTypes, name="get-all-values", request_method="GET", permission=Permission.VIEW)
def get_all_values(context, request):
    if len(request.subpath) != 1:
        raise InvalidInput("Give the type: /v1/job-types/get-all-values/{TYPE}")
    raise InvalidInput(f"Type '{request.subpath[0]}' has no server-resident values: the type system is not "
                       "installed on this server yet")
