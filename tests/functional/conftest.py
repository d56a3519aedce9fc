"""Job fixtures: the ECHO template, jobs bob creates from it, and nodes of alice's to work them; an app without
the secret settings' key."""
import dataclasses
import logging

import pytest
import webtest

from job_helpers import ECHO, register
from tcp_proxy import TcpProxy
from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import ApiClient, make_test_app


@pytest.fixture
def on_postgresql(engine):
    """Skips a test that needs PostgreSQL when the suite runs on SQLite."""
    if engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL (UFDL_TEST_DATABASE_URL)")


@pytest.fixture
def proxy(engine, on_postgresql):
    """A TCP proxy to the test database (PostgreSQL): ``cut``, ``sever`` and ``restore`` play an outage."""
    proxy = TcpProxy((engine.url.host or "127.0.0.1", engine.url.port or 5432))
    yield proxy
    proxy.close()


@pytest.fixture
def through_proxy(engine, proxy):
    """A second app whose database connections go through the proxy; ``client(api_client)`` re-targets a
    logged-in client (same tokens, same node) at it."""
    url = engine.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    proxied = get_engine({"sqlalchemy.url": url, "ufdl.db.pool_size": 2})
    app = webtest.TestApp(make_test_app(proxied))
    yield lambda client: dataclasses.replace(client, app=app)
    proxied.dispose()


@pytest.fixture
def template(admin):
    return admin.post("/v1/job-templates/import", ECHO, status=201).json


@pytest.fixture
def make_job(bob, template):
    def make(text="hello"):
        return bob.post(f"/v1/job-templates/{template['pk']}/create-job",
                        {"input_values": {"input": {"value": text, "type": "str"}}}, status=201).json
    return make


@pytest.fixture
def job(make_job):
    return make_job()


@pytest.fixture
def worker(alice):
    """alice's node: the client acts as it."""
    return register(alice)


@pytest.fixture
def running(make_job, worker):
    """bob's job, acquired and started by ``worker``."""
    job = make_job()
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    worker.post(f"/v1/jobs/{job['pk']}/start", {})
    return job


@pytest.fixture
def source_output(admin) -> int:
    """The pk of an output of a completed job of admin's (of a template of its own), worked by a node of
    admin's: what a job names to read a file (create-job checks that it is there)."""
    template = admin.post("/v1/job-templates/import", {**ECHO, "name": "source"}, status=201).json
    job = admin.post(f"/v1/job-templates/{template['pk']}/create-job",
                     {"input_values": {"input": {"value": "source", "type": "str"}}}, status=201).json["pk"]
    node = register(admin, "10.99.0.1")
    node.get(f"/v1/jobs/{job}/acquire")
    node.post(f"/v1/jobs/{job}/start", {})
    output = node.request("POST", f"/v1/jobs/{job}/outputs/source.txt/BLOB", body=b"some text",
                          content_type="text/plain").json["pk"]
    node.post(f"/v1/jobs/{job}/finish", {})
    return output


@pytest.fixture
def spec_input(source_output) -> dict:
    """An input of the spec's manifest (seed_manifests/spec_add_seed_image.json): its file input INPUT_TEXT an output,
    READ_LENGTH an integer."""
    return {"INPUT_TEXT": source_output, "READ_LENGTH": 5}


@pytest.fixture
def other_worker(alice):
    return register(alice, "10.0.0.2")


@pytest.fixture
def retried(caplog):
    """The requests run again after a transient database error (a deadlock, say), as the error view logs them."""
    caplog.set_level(logging.INFO, logger="ufdl_pyramid.views.errors")
    return lambda: [record.getMessage() for record in caplog.records
                    if record.name == "ufdl_pyramid.views.errors" and record.getMessage().startswith("retrying")]


@pytest.fixture
def keyless(engine):
    """A client of an app configured without ufdl.seed.secret_key."""
    app = webtest.TestApp(make_test_app(engine, **{"ufdl.seed.secret_key": ""}))
    return lambda client: ApiClient(app, client.token, client.refresh_token, user_id=client.user_id)
