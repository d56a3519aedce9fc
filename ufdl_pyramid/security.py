"""Who is calling: Bearer access tokens, the optional ``Node-Id`` header, and the ACL check (Pyramid 2 policy)."""
from functools import cached_property

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.events import ContextFound, subscriber
from sqlalchemy import select

from .errors import Forbidden, InvalidInput, NotAuthenticated
from .models import Node, User
from .models.meta import MAX_ID
from .permissions import ADMIN_ROLE, user_principal
from .request_kinds import is_health_check, is_output_upload
from .resources.nodes import Nodes
from .resources.root import Auth
from .services.auth import ActingNode, ActiveUser, AuthConfig, AuthService
from .services.validation import shown


class Identity:
    """The caller: id and role, read on every request; the full user row only when a view asks for it."""

    def __init__(self, db, active: ActiveUser):
        self._db = db
        self.user_id = active.id
        self.is_admin = active.is_admin

    @cached_property
    def user(self) -> User:
        # The same transaction that found the user active; few requests need the row itself.
        return self._db.get(User, self.user_id)


def bearer_token(request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; ``?access_token=`` only where a path allows it."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Authorization header must be 'Bearer <access token>'")
        return token.strip()
    return None


def node_id_of(request) -> int | None:
    """The ``Node-Id`` header's node pk; None without one (or with a malformed one, which ``node`` refuses)."""
    text = request.headers.get("Node-Id", "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= MAX_ID else None


def _identity(request) -> Identity | None:
    """Computed once per request; the reason for a refusal is kept for the 401 answer. A node's request (the
    bulk of the traffic) also finds its node here, in the same statement (``request.node`` hands it out)."""
    request.auth_error = None
    request.seen_node = None
    try:
        token = bearer_token(request)
        if token is None:
            return None
        service = request.auth_service
        # The health check ignores Node-Id (see _acting_node): the node is not marked seen.
        node_id = None if is_health_check(request) else node_id_of(request)
        found = (service.active_user_acting_as(token, node_id, unlocked=is_output_upload(request))
                 if node_id is not None else None)
        if found is not None:
            active, request.seen_node = found
        else:
            active = service.active_user_for_access_token(token)
    except NotAuthenticated as error:
        request.auth_error = error.detail
        return None
    return Identity(request.db, active)


def _acting_node(request) -> ActingNode | None:
    """The node named by ``Node-Id``; only its owner (or an admin) may act as it. None for the health check, a
    liveness probe that answers alike with the header or without (a client sends its own on every request)."""
    header = request.headers.get("Node-Id")
    if header is None or is_health_check(request):
        return None
    node_id = node_id_of(request)
    if node_id is None:
        raise InvalidInput(f"Node-Id header must be a node's primary key, not {shown(header)}")
    identity = request.identity
    if identity is None:
        return None
    if request.seen_node is not None:
        return request.seen_node
    # The user is active but the one-statement check found no node of theirs: say which it is.
    owner = request.db.scalar(select(Node.owner_id).where(Node.id == node_id))
    if owner is None:
        raise Forbidden(f"Node {node_id} does not exist")
    if owner != identity.user_id and not identity.is_admin:
        raise Forbidden(f"Node {node_id} belongs to another user")
    node = request.auth_service.see_node(node_id)  # deleted or handed over in the meantime
    if node is None:
        raise Forbidden(f"Node {node_id} does not exist")
    return node


class TokenSecurityPolicy:
    def __init__(self):
        self.acl = ACLHelper()

    def identity(self, request) -> Identity | None:
        return request.auth_identity

    def authenticated_userid(self, request):
        identity = request.auth_identity
        return identity.user_id if identity else None

    def permits(self, request, context, permission):
        principals = [Everyone]
        identity = request.auth_identity
        if identity is not None:
            principals += [Authenticated, user_principal(identity.user_id)]
            if identity.is_admin:
                principals.append(ADMIN_ROLE)
        return self.acl.permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


@subscriber(ContextFound)
def check_node_header(event):
    """Resolve ``Node-Id`` (recording that the node was seen) before the view runs, so that a node that is
    not yours is refused on every call; but for logging in and registering a node, which a client whose node
    was deleted (it still sends its old ``Node-Id``, as on every call) must be able to do."""
    request = event.request
    if isinstance(request.context, Auth) or (isinstance(request.context, Nodes) and request.view_name == "create"):
        return
    request.node


def includeme(config):
    auth_config = AuthConfig.from_settings(config.get_settings())
    config.registry["auth.config"] = auth_config
    config.add_request_method(lambda request: AuthService(request.db, auth_config), "auth_service", reify=True)
    config.add_request_method(_identity, "auth_identity", reify=True)
    config.add_request_method(_acting_node, "node", reify=True)
    config.set_security_policy(TokenSecurityPolicy())
    config.scan(__name__)
