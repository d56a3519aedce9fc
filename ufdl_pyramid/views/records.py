"""The actions every table of the API has: list, create, retrieve, update, destroy, reinstate, hard delete.

They bind to the base resource classes, so each collection gets them by being one; what differs between
tables (model, schema, checks, JSON form, ACL) lives on the collection and its service.
"""
from ..permissions import Permission
from ..resources.base import (Collection, CreatableCollection, DeletableItem, EditableItem, Item,
                              SoftDeletableItem)
from ..services.listing import LIST_BATCH_SIZE, parse_paging, read_rows, run_list, stream_rows
from .api import (api_view, json_array_response, json_array_stream, read_json, read_json_object,
                  set_paging_headers)


@api_view(context=Collection, name="list", request_method="POST", permission=Permission.VIEW)
def list_rows(context, request):
    body = read_json_object(request, optional=True)
    page, page_size = parse_paging(body, request.GET, request.registry.settings["ufdl.max_page_size"])
    body = {key: value for key, value in body.items() if key not in ("page", "page_size")}
    result = run_list(request.db, context.query(), context.model, body, page=page, page_size=page_size,
                      caller=request.identity)
    set_paging_headers(request, result)
    if result.page_size is None and result.total > LIST_BATCH_SIZE:
        # A long unpaged list is sent as it is read, from a transaction of its own: the process holds one
        # batch of it at a time, however long it is.
        rows = stream_rows(request.registry["db.engine"], result.query)
        return json_array_stream(request, rows, context.represent)
    return json_array_response(request, map(context.represent, read_rows(request.db, result.query)))


@api_view(context=CreatableCollection, name="create", request_method="POST", permission=Permission.CREATE)
def create(context, request):
    row = context.service().create(read_json(request), request.identity.user)
    request.response.status_int = 201
    # Upstream paths have no trailing slash; resource_url adds one.
    request.response.location = request.resource_url(context.item(row)).rstrip("/")
    return context.represent(row)


@api_view(context=Item, request_method="GET", permission=Permission.VIEW)
def retrieve(context, request):
    return context.json()


@api_view(context=EditableItem, request_method="PUT", permission=Permission.EDIT)
def update(context, request):
    context.__parent__.service().update(context.row, read_json(request), partial=False)
    return context.json()


@api_view(context=EditableItem, request_method="PATCH", permission=Permission.EDIT)
def partial_update(context, request):
    context.__parent__.service().update(context.row, read_json(request), partial=True)
    return context.json()


@api_view(context=DeletableItem, request_method="DELETE", permission=Permission.DELETE)
def destroy(context, request):
    context.__parent__.service().destroy(context.row)
    return context.json()


@api_view(context=SoftDeletableItem, name="reinstate", request_method="DELETE", permission=Permission.DELETE)
def reinstate(context, request):
    context.__parent__.service().reinstate(context.row)
    return context.json()


@api_view(context=SoftDeletableItem, name="hard", request_method="DELETE", permission=Permission.DELETE)
def hard_delete(context, request):
    representation = context.json()
    context.__parent__.service().hard_delete(context.row)
    return representation
