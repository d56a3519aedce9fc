"""``/v1/nodes/ping``: a node tells the server it is alive, between jobs as during one."""
from pyramid.response import Response

from ..errors import Forbidden
from ..permissions import Permission
from ..resources.nodes import Nodes
from .api import api_view


@api_view(context=Nodes, name="ping", request_method="GET", permission=Permission.VIEW)
def ping(context, request):
    # Resolving the Node-Id (security.check_node_header, before any view) already marked the node seen.
    if request.node is None:
        raise Forbidden("Only a node may ping: send its Node-Id")
    # As upstream: 200 with an empty body.
    answer = Response(status=200)
    answer.content_type = None
    return answer
