"""Worker nodes: any user may register one; its owner (or an admin) changes or removes it."""
from pyramid.authorization import Allow, Authenticated

from ..models import Node
from ..permissions import Permission, user_principal
from ..representations import node_json
from ..services.nodes import NodeService
from .base import CreatableCollection, RecordItem


class NodeItem(RecordItem):
    @property
    def __acl__(self):
        owner = user_principal(self.row.owner_id)
        return [(Allow, owner, Permission.EDIT), (Allow, owner, Permission.DELETE),
                (Allow, Authenticated, Permission.VIEW)]


class Nodes(CreatableCollection):
    __acl__ = [(Allow, Authenticated, Permission.VIEW), (Allow, Authenticated, Permission.CREATE)]
    model = Node
    item_class = NodeItem
    service_class = NodeService
    represent = staticmethod(node_json)
