"""Start-up for leases: the lease clock (``services/lease_clock.py``), whose mark the first request a process
serves after it lost its database records (``main`` records the server's start), and each process's own lease
checks (``services/lease_watch.py``), which its first request starts."""
from pyramid.events import NewRequest

from .models.meta import utcnow
from .services.lease_clock import DatabaseOutages
from .services.lease_watch import LeaseWatch


def request_began(registry) -> None:
    """What a request does first: mark a return from an outage, start the process's lease checks (the express
    lanes call it too: they answer before Pyramid sends NewRequest)."""
    registry["db.outages"].record_return(registry["db.engine"], utcnow())
    registry["ufdl.lease_watch"].ensure_running()


def on_request(event):
    request_began(event.request.registry)


def includeme(config):
    settings = config.get_settings()
    outages = config.registry["db.outages"] = DatabaseOutages()  # the error views note each outage in it
    config.registry["ufdl.lease_watch"] = LeaseWatch(
        config.registry["db.session_factory"], config.registry["db.engine"], outages,
        interval=settings["ufdl.leases.check_interval"], timeout=settings["ufdl.node_timeout"],
        max_tries=settings["ufdl.max_tries"])
    config.add_subscriber(on_request, NewRequest)
