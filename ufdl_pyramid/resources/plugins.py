"""``/v1/plugins``: what the installed plugins registered."""
from .base import Resource


class Plugins(Resource):
    # Nothing for ordinary users: only the root ACL's administrators may look.
    __acl__ = ()
