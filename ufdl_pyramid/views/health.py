"""``GET /v1/health``: 200 when this process can reach its database at the newest schema, else 503 with why
(a load balancer's or a service manager's check; no token needed, nothing about the data told)."""
from alembic.runtime.migration import MigrationContext

from ..errors import SCHEMA_NOT_CURRENT, ServiceUnavailable
from ..permissions import Permission
from ..resources.health import Health
from ..services import schema
from .api import api_view


@api_view(context=Health, request_method="GET", permission=Permission.PROBE)
def health(context, request):
    # A database that cannot be reached raises here, and is answered 503 like any request (views/errors.py).
    revision = MigrationContext.configure(request.db.connection()).get_current_revision()
    if revision != request.registry["db.schema_head"]:  # read once, at start-up
        raise ServiceUnavailable(SCHEMA_NOT_CURRENT)
    return {"status": "ok"}


def includeme(config):
    config.registry["db.schema_head"] = schema.head()
    config.scan(__name__)
