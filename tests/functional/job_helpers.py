"""What the job tests share: minimal workable and meta templates, registering a node to act as, and leases."""
import dataclasses
from datetime import timedelta

import webtest
from sqlalchemy import update

from ufdl_pyramid.models import Job, LeaseClock, Node
from ufdl_pyramid.models.meta import utcnow
from ufdl_pyramid.testing import ApiClient, make_test_app

ECHO = {"name": "echo", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"job_type": "Process<str, str>", "executor_class": "tests.Echo", "required_packages": "",
                     "parameters": {}}}
# A two-step meta-job: the first step's output is the second's input.
PRODUCE = {"name": "produce", "version": 1, "scope": "public", "licence": "MIT",
           "specific": {"job_type": "Process<str, BLOB>", "executor_class": "tests.Produce",
                        "required_packages": "", "parameters": {}}}
CONSUME = {"name": "consume", "version": 1, "scope": "public", "licence": "MIT",
           "specific": {"job_type": "Process<JobOutput<BLOB>, BLOB>", "executor_class": "tests.Consume",
                        "required_packages": "", "parameters": {"mode": {"types": ["str"], "help": "",
                                                                          "default": "fast"}}}}
PIPELINE = {"name": "pipeline", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"nodes": {"first": {"name": "produce"}, "second": {"name": "consume"}},
                         "dependencies": [{"from_node": "first", "from_output": "output", "to_node": "second",
                                           "to_input": "input"}]}}


def register(client: ApiClient, ip: str = "10.0.0.1", index: int = 0) -> ApiClient:
    """A node registered by ``client``'s user; the returned client acts as it (sends its Node-Id)."""
    pk = client.post("/v1/nodes/create", {"ip": ip, "index": index}, status=201).json["pk"]
    return client.as_node(pk)


def silence(engine, node_id: int, job_id: int, *, for_=timedelta(hours=1)) -> None:
    """The node was last seen, and the job last changed status, ``for_`` ago: its lease is long lost."""
    past = utcnow() - for_
    with engine.begin() as connection:
        connection.execute(update(Node).where(Node.id == node_id).values(last_seen=past))
        connection.execute(update(Job).where(Job.id == job_id).values(last_status_change=past))


def server_came_back(engine, ago: timedelta) -> None:
    """Move the lease clock's mark of the server's last return ``ago`` into the past."""
    with engine.begin() as connection:
        connection.execute(update(LeaseClock).values(resumed_at=utcnow() - ago))


def full_stack(engine, client: ApiClient) -> ApiClient:
    """``client`` (same tokens, same node) on an app without the express lanes: on PostgreSQL too, what it asks
    goes through the full stack (for tests of its internals)."""
    app = webtest.TestApp(make_test_app(engine, **{"ufdl.express_lanes": "false"}))
    return dataclasses.replace(client, app=app)
