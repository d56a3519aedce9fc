"""Base classes of the traversal tree: containers load one row lazily and answer KeyError (so: 404) otherwise."""
from typing import Any, Callable, ClassVar

from pyramid.authorization import ALL_PERMISSIONS, Allow
from sqlalchemy import select
from sqlalchemy.sql import Select

from ..errors import NO_CREDENTIALS, NotAuthenticated
from ..models.meta import MAX_ID
from ..permissions import ADMIN_ROLE


def require_caller(request) -> None:
    """Who asks comes before what exists: without valid credentials a lookup answers 401, not a 404 that
    would tell an anonymous caller which primary keys exist."""
    if request.identity is None:
        raise NotAuthenticated(request.auth_error or NO_CREDENTIALS)


def parse_pk(key: str) -> int:
    """A primary key from a path segment; KeyError (404) for anything that is not a positive integer."""
    if not key.isascii() or not key.isdigit() or len(key) > 10 or not 1 <= int(key) <= MAX_ID:
        raise KeyError(key)
    return int(key)


class Resource:
    __acl__: Any = ()

    def __init__(self, request, name: str = "", parent: "Resource | None" = None):
        self.request = request
        self.__name__ = name
        self.__parent__ = parent


class Container(Resource):
    """A resource whose children are other fixed resources (``children`` maps names to classes)."""

    children: ClassVar[dict[str, Callable]] = {}

    def __getitem__(self, key: str):
        return self.children[key](self.request, key, self)


class Item(Resource):
    """A resource wrapping one row; its ACL is its collection's unless it says otherwise."""

    def __init__(self, request, name: str, parent: "Collection", row):
        super().__init__(request, name, parent)
        self.row = row

    def json(self) -> dict:
        return self.__parent__.represent(self.row)


class EditableItem(Item):
    """An item whose row can be replaced (PUT) or partly changed (PATCH)."""


class DeletableItem(Item):
    """An item whose row can be deleted (DELETE): soft where the model allows, else for good."""


class SoftDeletableItem(DeletableItem):
    """An item whose row can be soft-deleted, reinstated and hard-deleted."""


class RecordItem(EditableItem, DeletableItem):
    """A plain table row: read, changed and deleted through the API."""


class CatalogueItem(EditableItem, SoftDeletableItem):
    """A row of a reference table: changed, soft-deleted and reinstated by admins."""


class Collection(Resource):
    """A table seen through the API: lists, and finds one row by primary key."""

    model: ClassVar[type]
    item_class: ClassVar[type[Item]]
    service_class: ClassVar[type]
    represent: ClassVar[Callable[[Any], dict]]

    def __getitem__(self, key: str) -> Item:
        require_caller(self.request)
        row = self.request.db.get(self.model, parse_pk(key))
        if row is None or not self.can_see(row):
            raise KeyError(key)
        return self.item_class(self.request, key, self, row)

    def can_see(self, row) -> bool:
        return True

    def query(self) -> Select:
        """The rows this caller may list (before the list filter)."""
        return select(self.model)

    def service(self):
        return self.service_class(self.request.db)

    def item(self, row) -> Item:
        return self.item_class(self.request, str(row.id), self, row)


class CreatableCollection(Collection):
    """A collection whose rows are created with ``POST .../create``."""


ADMIN_ACE = (Allow, ADMIN_ROLE, ALL_PERMISSIONS)
