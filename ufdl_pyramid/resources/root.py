"""The top of the traversal tree: ``/``, ``/v1`` (the UFDL API) and ``/v6`` (the Scale job-type API)."""
from pyramid.authorization import Allow, Everyone

from ..permissions import Permission
from .base import ADMIN_ACE, Container, Resource
from .catalogue import Domains, Frameworks, Licences
from .health import Health
from .job_types import JobTypes
from .jobs import JobOutputs, Jobs
from .nodes import Nodes
from .plugins import Plugins
from .scale import V6
from .templates import JobTemplates


class Auth(Resource):
    __acl__ = [(Allow, Everyone, Permission.AUTHENTICATE)]


class V1(Container):
    children = {
        "auth": Auth,
        "health": Health,
        "nodes": Nodes,
        "licences": Licences,
        "domains": Domains,
        "frameworks": Frameworks,
        "job-types": JobTypes,
        "plugins": Plugins,
        "job-templates": JobTemplates,
        "jobs": Jobs,
        "job-outputs": JobOutputs,
    }


class Root(Container):
    # Admins may do anything; everything below only grants to ordinary users.
    __acl__ = [ADMIN_ACE]
    children = {"v1": V1, "v6": V6}

    def __init__(self, request):
        super().__init__(request)


def root_factory(request) -> Root:
    return Root(request)
