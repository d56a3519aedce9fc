"""Random and malformed requests on every endpoint never get a 5xx, and every refusal is a JSON ``detail``.

Each request is a valid one bent out of shape: a path segment swapped for a strange one, a body field replaced,
dropped or added, a body that is not JSON or not UTF-8, a header a client should not send. The requests come
from a seeded random generator, so a failure names the seed and the request that reproduce it. The suite runs
``UFDL_FUZZ_REQUESTS`` requests (default 1,500) for each of the seeds ``UFDL_FUZZ_SEEDS`` (default ``1,2``);
raise them for a longer hunt.
"""
import json
import os
import random

import pytest

from job_helpers import CONSUME, ECHO, PIPELINE, PRODUCE, register

REQUESTS = int(os.environ.get("UFDL_FUZZ_REQUESTS", "1500"))
SEEDS = [int(seed) for seed in os.environ.get("UFDL_FUZZ_SEEDS", "1,2").split(",")]

ODD_SEGMENTS = ["0", "-1", "abc", "2147483647", "2147483648", "99999999999999999999999", "1.5", "1e3", "%20",
                "%00", "%ff", "%C3%A9", "%D9%A1", "%EF%BC%91", "..", "%2e%2e", "a" * 300, "null", "true", "%201",
                "1%0a", "%2F", "BLOB", "str", "Domain<'ic'>", "JobOutput<BLOB>", "Process<str,%20str>",
                "Array<", "Union<int,%20>", "0x10", "+1", "1_000"]
ODD_STRINGS = ["", " ", "\u0000", "\ud800x", "\ud7ff\ue000", "é" * 50, "x" * 5000, "../../etc/passwd", "NaN",
               "1e999", "<script>", "' OR 1=1 --", "%s%s%n", "\\", "Domain<'ic'>", "JobOutput<str>", "2147483648"]
ODD_NUMBERS = [0, -1, 1, 0.5, -0.0, 2 ** 31, 2 ** 63, 2 ** 64, 10 ** 30, 1e308, 1.5e-320, True, False]
ODD_BODIES = [b"", b"{", b"[]", b"null", b"1", b'"x"', b"\xff\xfe", b'{"a": NaN}', b'{"a": Infinity}',
              b"[" * 5000 + b"]" * 5000, b'{"a": ' * 3000 + b"1" + b"}" * 3000, b'{"a": 1, "a": 2}',
              b"\x00\x01", b"a: [1, 2\n", "{\"é\": \"\u2028\"}".encode(), b'{"page": 1e400}']
# A token that says it needs no signature (alg "none"), for an admin that may exist.
NO_SIGNATURE = "eyJhbGciOiAibm9uZSIsICJ0eXAiOiAiSldUIn0.eyJzdWIiOiAiMSIsICJ0eXBlIjogImFjY2VzcyIsICJleHAiOiA5OTk5OTk5OTk5fQ."
ODD_HEADERS = [{"Node-Id": "abc"}, {"Node-Id": "-1"}, {"Node-Id": "99999999999999999999"}, {"Node-Id": ""},
               {"Node-Id": "1, 2"}, {"Content-Type": "application/yaml"}, {"Content-Type": "text/plain"},
               {"Content-Type": "application/json; charset=latin-1"}, {"Range": "bytes=5-1"},
               {"Range": "bytes=-0"}, {"Range": "bytes=0-99999999999999999999"}, {"Range": "items=0-1"},
               {"Range": "bytes=0-1,2-3"}, {"If-None-Match": "*"}, {"If-Range": "\"nope\""},
               {"Accept": "application/yaml"}, {"Authorization": "Bearer x.y.z"}, {"Authorization": "Basic Zm9v"},
               {"Authorization": "Bearer"}, {"Authorization": "Bearer a b"}, {"Authorization": "bearer " + "A" * 9000},
               {"Authorization": f"Bearer {NO_SIGNATURE}"},
               {"Content-Length": "5"}, {"Accept": "text/html"}]
ODD_QUERIES = ["page=0", "page=-1", "page=abc", "page_size=0", "page_size=99999999999", "page=1&page_size=x",
               "format=yaml", "format=xml", "filetype=", "filetype=../x", "filetype=%00", "input=str",
               "input=Array<", "input", "page=1&page=2", "%ff=%fe"]


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(6 if depth < 3 else 3)
    if kind == 0:
        return rng.choice([None, *ODD_NUMBERS])
    if kind in (1, 2):
        return rng.choice(ODD_STRINGS + ["pk", "name", "value", "type", "str", "int", "exact", "compare"])
    if kind == 3:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["value", "type", "field", "name", "pk", "sub_expressions", "expressions", "operator", "files", "x"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def paths_of(value, prefix=()):
    """The paths to every value inside ``value`` (dict keys and list indices)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, (*prefix, index))


def bend(rng: random.Random, body):
    """``body`` (a valid JSON document) with one thing changed."""
    body = json.loads(json.dumps(body))
    path = rng.choice(list(paths_of(body)))
    if not path:
        return random_json(rng)
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    what = rng.randrange(3)
    if what == 0:
        parent[path[-1]] = random_json(rng)
    elif what == 1:
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[rng.choice(ODD_STRINGS)] = random_json(rng)
    else:
        parent.append(random_json(rng))
    return body


class World:
    """Records of every kind, in several states, the clients that act on them, and the valid requests to bend.
    Bent requests delete and change things: ``replenish`` brings back a working set (a node, active templates, a
    running job with an output) every so often, so that later requests still reach deep into the views."""

    def __init__(self, testapp, admin, bob, alice, anonymous):
        self.testapp, self.admin, self.bob, self.alice = testapp, admin, bob, alice
        self.echo = admin.post("/v1/job-templates/import", ECHO, status=201).json["pk"]
        for document in (PRODUCE, CONSUME):
            admin.post("/v1/job-templates/import", document, status=201)
        self.pipeline = admin.post("/v1/job-templates/import", PIPELINE, status=201).json["pk"]
        self.node = register(alice)
        self.clients = {"admin": admin, "bob": bob, "node": self.node, "anonymous": anonymous}
        self.create_echo = {"input_values": {"input": {"value": "hi", "type": "str"}}, "description": "d",
                            "notification_override": {"keep_default": True, "actions": {
                                "on_finish": [{"type": "print", "message": "{pk}"}]}}}
        pending = bob.post(f"/v1/job-templates/{self.echo}/create-job", self.create_echo, status=201).json["pk"]
        meta = bob.post(f"/v1/job-templates/{self.pipeline}/create-job",
                        {"input_values": {"first:input": {"value": "x", "type": "str"}},
                         "parameter_values": {"second:mode": {"value": "slow", "type": "str"}}},
                        status=201).json["pk"]
        licence = admin.post("/v1/licences/list").json[0]["pk"]
        job_type = admin.post("/v1/job-types/list").json[0]["pk"]
        domain = admin.post("/v1/domains/list").json[0]["pk"]
        self.values = {"job": [pending, meta], "template": [self.echo, self.pipeline], "output": [],
                       "node": [self.node.node_id], "licence": [licence], "type_pk": [job_type],
                       "domain": [domain], "name": ["model"], "type": ["BLOB", "JobOutput<BLOB>"],
                       "p": ["0.5", "1"], "contract": ["Process<str, str>", "Process"]}
        self.replenish()

    def call(self, client, method: str, path: str, body=None):
        raw, content_type = ((body, "application/octet-stream") if isinstance(body, bytes)
                             else (json.dumps(body or {}).encode(), "application/json"))
        return self.testapp.request(path, method=method, headers=client.headers({"Content-Type": content_type}),
                                    body=raw, expect_errors=True)

    def replenish(self) -> None:
        admin = self.admin
        for pk in (self.echo, self.pipeline):
            self.call(admin, "DELETE", f"/v1/job-templates/{pk}/reinstate")
        # A bent request may have deleted the node, or given it to another user.
        if self.call(self.node, "GET", f"/v1/nodes/{self.node.node_id}").status_int != 200:
            self.node = self.clients["node"] = register(self.alice, f"10.0.1.{len(self.values['job'])}",
                                                        index=self.node.node_id)
            self.values["node"] = [self.node.node_id]
        job = self.call(self.bob, "POST", f"/v1/job-templates/{self.echo}/create-job", self.create_echo).json["pk"]
        current = self.call(admin, "GET", f"/v1/nodes/{self.node.node_id}").json["current_job"]
        if current is not None:  # free the node for the new job
            self.call(admin, "DELETE", f"/v1/jobs/{current}/abort")
        self.call(self.node, "GET", f"/v1/jobs/{job}/acquire")
        self.call(self.node, "POST", f"/v1/jobs/{job}/start")
        added = self.call(self.node, "POST", f"/v1/jobs/{job}/outputs/model/BLOB", b"0123456789")
        assert added.status_int == 201, added.text
        self.values["job"] = [job, *self.values["job"][:3]]
        self.values["output"] = [added.json["pk"], *self.values["output"][:2]]


@pytest.fixture
def world(testapp, admin, bob, alice, anonymous):
    world = World(testapp, admin, bob, alice, anonymous)
    listing = {"expressions": [{"type": "exact", "field": "pk", "value": 1, "invert": False},
                               {"type": "contains", "field": "name", "sub_string": "e", "case_insensitive": True},
                               {"type": "or", "sub_expressions": [{"type": "isnull", "field": "creator"},
                                                                  {"type": "compare", "field": "pk",
                                                                   "operator": ">=", "value": 0}]}],
               "order_by": [{"field": "pk", "ascending": False, "nulls_first": False}],
               "include_inactive": True, "page": 1, "page_size": 2}
    bob, create_echo = world.bob, world.create_echo
    endpoints = [
        ("POST", "/v1/auth/obtain", {"username": "bob", "password": "password123"}),
        ("POST", "/v1/auth/refresh", {"refresh": bob.refresh_token}),
        ("POST", "/v1/nodes/create", {"ip": "10.1.1.1", "index": 1, "gpu_mem": 10, "cpu_mem": 10,
                                      "driver_version": "1", "hardware_generation": "Ampere"}),
        ("POST", "/v1/nodes/list", listing), ("GET", "/v1/nodes/{node}", None),
        ("PATCH", "/v1/nodes/{node}", {"ip": "10.1.1.2", "index": 2}),
        ("PUT", "/v1/nodes/{node}", {"ip": "10.1.1.2", "index": 2}), ("DELETE", "/v1/nodes/{node}", None),
        ("POST", "/v1/licences/list", listing), ("GET", "/v1/licences/{licence}", None),
        ("POST", "/v1/licences/create", {"name": "L", "url": "https://example.com"}),
        ("PATCH", "/v1/licences/{licence}", {"url": "https://example.org"}),
        ("DELETE", "/v1/licences/{licence}/reinstate", None),
        ("POST", "/v1/domains/create", {"name": "zz", "description": "z"}), ("POST", "/v1/domains/list", listing),
        ("PUT", "/v1/domains/{domain}", {"name": "zy", "description": "y"}),
        ("POST", "/v1/frameworks/create", {"name": "torch", "version": "2"}),
        ("POST", "/v1/job-types/list", listing), ("GET", "/v1/job-types/{type_pk}", None),
        ("POST", "/v1/job-types/create", {"name": "T", "pkg": "ufdl_pyramid", "cls": "Nope"}),
        ("PATCH", "/v1/job-types/{type_pk}", {"pkg": "os", "cls": "path"}),
        ("GET", "/v1/job-types/get-all-values/{type}", None),
        ("POST", "/v1/job-templates/list", {**listing, "expressions": [
            {"type": "exact", "field": "domain.name", "value": "ic"}]}),
        ("GET", "/v1/job-templates/{template}", None), ("GET", "/v1/job-templates/{template}/export", None),
        ("POST", "/v1/job-templates/import", {**ECHO, "name": "echo2", "description": "e", "domain": "ic"}),
        ("POST", "/v1/job-templates/import", {**PIPELINE, "name": "pipe2"}),
        ("POST", "/v1/job-templates/sync", {"files": {"echo3/1.yaml": "name: echo3\nversion: 1\n"},
                                            "prune": False, "dry_run": True}),
        ("GET", "/v1/job-templates/{template}/get-inputs", None),
        ("GET", "/v1/job-templates/{template}/get-all-parameters", None),
        ("GET", "/v1/job-templates/{template}/get-types", None),
        ("GET", "/v1/job-templates/get-all-matching-templates/{contract}", None),
        ("POST", "/v1/job-templates/{template}/create-job", create_echo),
        ("DELETE", "/v1/job-templates/{template}", None),
        ("POST", "/v1/jobs/list", {**listing, "expressions": [
            {"type": "compare", "field": "progress", "operator": ">=", "value": 0.5},
            {"type": "exact", "field": "status", "value": "RUNNING", "invert": True},
            {"type": "exact", "field": "creator.username", "value": "bob"}],
            "order_by": [{"field": "last_status_change", "ascending": False}]}),
        ("GET", "/v1/jobs/{job}", None), ("PATCH", "/v1/jobs/{job}", {"description": "new"}),
        ("PUT", "/v1/jobs/{job}", {"description": "new"}),
        ("GET", "/v1/jobs/{job}/acquire", None), ("POST", "/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}),
        ("DELETE", "/v1/jobs/{job}/release", None), ("POST", "/v1/jobs/{job}/start", {"send_notification": "x"}),
        ("POST", "/v1/jobs/{job}/progress/{p}", {"step": 1}),
        ("POST", "/v1/jobs/{job}/finish", {"success": False, "error": "it broke", "send_notification": "x"}),
        ("DELETE", "/v1/jobs/{job}/reset", None), ("DELETE", "/v1/jobs/{job}/abort", None),
        ("DELETE", "/v1/jobs/{job}/cancel", None), ("DELETE", "/v1/jobs/{job}", None),
        ("DELETE", "/v1/jobs/{job}/reinstate", None),
        ("GET", "/v1/jobs/{job}/outputs/{name}/{type}", None),
        ("POST", "/v1/jobs/{job}/outputs/{name}/{type}", b"some bytes"),
        ("DELETE", "/v1/jobs/{job}/outputs/{name}/{type}", None),
        ("GET", "/v1/jobs/{job}/outputs/{name}/{type}/info", None),
        ("POST", "/v1/job-outputs/list", listing), ("GET", "/v1/job-outputs/{output}", None),
        ("POST", "/v1/job-outputs/{output}/download", {"filetype": "zip"}),
        ("GET", "/v1/job-outputs/{output}/download", None),
        ("DELETE", "/v1/job-outputs/{output}", None), ("DELETE", "/v1/job-outputs/{output}/reinstate", None),
    ]
    world.endpoints = endpoints
    return world


def one_request(rng: random.Random, values: dict, endpoints: list) -> dict:
    """A request description: method, path, headers and body, some part of a valid request bent."""
    method, template, body = rng.choice(endpoints)
    path = template
    for name, choices in values.items():
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", str(rng.choice(choices)))
    headers = {}
    raw = None
    what = rng.randrange(10)
    if what == 0:
        segments = path.split("/")
        segments[rng.randrange(2, len(segments))] = rng.choice(ODD_SEGMENTS)
        path = "/".join(segments)
    elif what == 1:
        raw = rng.choice(ODD_BODIES)
    elif what == 2:
        headers = dict(rng.choice(ODD_HEADERS))
    elif what == 3:
        path += "?" + rng.choice(ODD_QUERIES)
    elif what == 4:
        method = rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    elif isinstance(body, dict):
        body = bend(rng, body)
    if raw is None and body is not None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"method": method, "path": path, "headers": headers, "body": raw,
            "who": rng.choice(["admin", "bob", "node", "anonymous"])}


@pytest.mark.parametrize("seed", SEEDS)
def test_bent_requests_never_get_a_server_error(world, seed):
    rng = random.Random(seed)
    statuses = {}
    for number in range(REQUESTS):
        if number % 100 == 99:
            world.replenish()
        request = one_request(rng, world.values, world.endpoints)
        client = world.clients[request["who"]]
        content_type = "application/octet-stream" if "/outputs/" in request["path"] else "application/json"
        headers = client.headers({"Content-Type": content_type, **request["headers"]})
        response = world.testapp.request(request["path"], method=request["method"], headers=headers,
                                         body=request["body"] or b"", expect_errors=True)
        where = f"seed {seed}, request {number}: {request}"
        assert response.status_int < 500, f"{where} -> {response.status}: {response.text[:500]}"
        if response.status_int >= 400 and request["method"] != "HEAD":
            assert response.content_type == "application/json", f"{where} -> {response.text[:500]}"
            assert isinstance(response.json.get("detail"), str), where
        statuses[response.status_int] = statuses.get(response.status_int, 0) + 1
    # The bent requests reached the views: some succeeded and many were refused for many reasons.
    assert sum(count for status, count in statuses.items() if status < 300) > REQUESTS / 10, statuses
    assert {400, 401, 403, 404, 405, 406, 409} <= set(statuses), statuses


@pytest.mark.parametrize("text", ["\x00", "a\ud800", "\udfff"])
def test_a_string_the_database_cannot_store_is_400_everywhere(admin, bob, worker, make_job, text):
    # NUL (PostgreSQL stores none) and half of a surrogate pair (no UTF-8 holds one) answered 500.
    job = make_job()
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    worker.post(f"/v1/jobs/{job['pk']}/start", {})
    for client, method, path, body in (
            (bob, "POST", "/v1/auth/obtain", {"username": f"bob{text}", "password": "password123"}),
            (admin, "POST", "/v1/licences/create", {"name": text, "url": "https://example.com"}),
            (admin, "POST", "/v1/job-templates/import", {**ECHO, "description": text}),
            (bob, "PATCH", f"/v1/jobs/{job['pk']}", {"description": f"a{text}b"}),
            (bob, "POST", "/v1/jobs/list", {"expressions": [{"type": "exact", "field": "description",
                                                             "value": text}]}),
            (worker, "POST", f"/v1/jobs/{job['pk']}/progress/0.5", {"note": [text]}),
            (worker, "POST", f"/v1/jobs/{job['pk']}/finish", {"error": {text: 1}})):
        # Escaped (\\u0000, \\ud800), and raw in UTF-8 (Python's parser reads a raw surrogate) or UTF-16.
        for encoding, escaped in (("utf-8", True), ("utf-8", False), ("utf-16", False)):
            raw = json.dumps(body, ensure_ascii=escaped).encode(encoding, "surrogatepass")
            response = client.request(method, path, body=raw, content_type="application/json", status=400)
            assert "cannot be stored" in response.json["detail"], (path, encoding, escaped)
    assert admin.get(f"/v1/jobs/{job['pk']}").json["status"] == "RUNNING"
    # The text \u0000 (a backslash, then u0000) and a whole surrogate pair (an emoji) are fine.
    for fine in ("\\u0000", "\U0001F600"):
        assert bob.patch(f"/v1/jobs/{job['pk']}", {"description": fine}).json["description"] == fine
