"""``GET /v1/plugins``: each plugin, its distribution, what it registered, and why it was skipped, if it was."""
from ..permissions import Permission
from ..resources.plugins import Plugins
from .api import api_view


@api_view(context=Plugins, request_method="GET", permission=Permission.ADMIN)
def list_plugins(context, request):
    return request.registry["ufdl.plugins"].json()
