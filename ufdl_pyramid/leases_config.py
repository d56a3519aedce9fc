"""Start-up for the lease clock (``services/lease_clock.py``): the first request a process serves after it
lost its database records the return (``main`` records the server's start)."""
from pyramid.events import NewRequest

from .models.meta import utcnow
from .services.lease_clock import DatabaseOutages


def record_return_after_outage(event):
    registry = event.request.registry
    registry["db.outages"].record_return(registry["db.engine"], utcnow())


def includeme(config):
    config.registry["db.outages"] = DatabaseOutages()  # the error views note each outage in it
    config.add_subscriber(record_return_after_outage, NewRequest)
