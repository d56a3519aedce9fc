"""``/v1/health``: whether this server can serve, for load balancers and service managers."""
from pyramid.authorization import Allow, Everyone

from ..permissions import Permission
from .base import Resource


class Health(Resource):
    __acl__ = [(Allow, Everyone, Permission.PROBE)]
