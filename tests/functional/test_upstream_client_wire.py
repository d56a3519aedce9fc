"""A node's whole life as the upstream UFDL clients put it on the wire, replayed against the app.

The requests are those of ``ufdl-python-client`` (``ufdl.pythonclient``: the functional API and
``UFDLServerContext``) and ``ufdl-job-launcher`` (``ufdl.joblauncher``: register the node, poll, run a job),
with their filters built as ``ufdl-json-messages`` (``ufdl.json.core.filter``) serialises them. What the clients
send, byte for byte where it matters:

- paths come from ``detail_url(url, pk)``, which ends in ``/`` (``v1/jobs/5/``, ``v1/jobs/5/acquire``);
- ``Accept: */*`` on every request, ``Authorization: Bearer <access>``, and once a node is set, ``Node-Id``;
- ``UFDLServerContext.get`` sends ``json={}``: every GET carries the body ``{}`` with a JSON Content-Type;
- uploads are raw bytes, ``Content-Type: application/data``, ``Content-Disposition: attachment; filename=NAME``,
  the type segment percent-encoded by requests (``<``, ``>``, space; not ``'`` or ``,``);
- a 401 makes the context refresh its access token and send the request again.

Each answer is checked for the fields the clients read from it (``job['template']['pk']``,
``obj['current_job']``, ``result['error_reason']``, ``template['executor_class']``, ...).
"""
import json
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from job_helpers import ECHO

LAUNCHER_IP = "10.20.30.40"
PASSWORD = "launcher-pass"


@dataclass
class WireClient:
    """What ``requests`` sends for ``UFDLServerContext``: one method per verb it uses, nothing added."""

    app: object
    username: str
    access: str | None = None
    refresh: str | None = None
    node_id: int | None = None
    sent: list = field(default_factory=list)

    def _headers(self, auth: bool, extra: dict | None = None) -> dict:
        headers = {"Accept": "*/*", "User-Agent": "python-requests/2.31.0"}
        if auth:
            headers["Authorization"] = f"Bearer {self.access}"
        if self.node_id is not None:
            headers["Node-Id"] = str(self.node_id)  # UFDLServerContext.set_node_id: sent on every request
        headers.update(extra or {})
        return headers

    def _send(self, method: str, url: str, *, body: bytes | None = None, content_type: str | None = None,
              auth: bool = True, extra: dict | None = None, status="*", retry_on_401: bool = True):
        headers = self._headers(auth, extra)
        if content_type is not None:
            headers["Content-Type"] = content_type
        self.sent.append((method, url))
        answer = self.app.request(f"/{url}", method=method, body=body or b"", headers=headers, status="*")
        if answer.status_int == 401 and auth and retry_on_401:
            # UFDLServerContext._request_with_auth: refresh (or log in again), then the same request once more.
            self.access = self.post("v1/auth/refresh", {"refresh": self.refresh}, auth=False).json["access"]
            return self._send(method, url, body=body, content_type=content_type, auth=auth, extra=extra,
                              status=status, retry_on_401=False)
        if status != "*":
            assert answer.status_int == status, (method, url, answer.status, answer.body[:500])
        return answer

    # UFDLServerContext.post / put / patch: requests' json= (compact separators, as json.dumps defaults).
    def post(self, url, json_body, **kwargs):
        return self._send("POST", url, body=json.dumps(json_body).encode(), content_type="application/json",
                          **kwargs)

    def post_no_body(self, url, **kwargs):
        # _base_actions.list with no FilterSpec: requests sends json=None, i.e. no body and no Content-Type.
        return self._send("POST", url, **kwargs)

    def patch(self, url, json_body, **kwargs):
        return self._send("PATCH", url, body=json.dumps(json_body).encode(), content_type="application/json",
                          **kwargs)

    def get(self, url, **kwargs):
        # UFDLServerContext.get: requests.get(url, params=params, json={}).
        return self._send("GET", url, body=b"{}", content_type="application/json", **kwargs)

    def delete(self, url, **kwargs):
        return self._send("DELETE", url, **kwargs)

    def download(self, url, **kwargs):
        # UFDLServerContext.download: requests.get(url, params=params, stream=True): no body.
        return self._send("GET", url, **kwargs)

    def upload(self, url, filename, data: bytes, **kwargs):
        return self._send("POST", url, body=data, content_type="application/data",
                          extra={"Content-Disposition": f"attachment; filename={filename}"}, **kwargs)

    # UFDLServerContext._jwt_obtain / _jwt_verify.
    def log_in(self):
        tokens = self.post("v1/auth/obtain", {"username": self.username, "password": PASSWORD}, auth=False,
                           status=200).json
        self.access, self.refresh = tokens["access"], tokens["refresh"]

    def verify(self, token: str) -> bool:
        return self.post("v1/auth/verify", {"token": token}, auth=False).status_int == 200


def detail_url(base: str, pk: int) -> str:
    """ufdl.pythonclient.functional._util.detail_url: the pk and a trailing slash."""
    return f"{base}/{pk}/"


def launcher_poll_filter() -> dict:
    """ufdl.joblauncher poll/_core.generate_filter, as FilterSpec.to_raw_json gives it: four IsNull joined by
    ``&`` into one And, the last inverted by ``~``."""
    return {"expressions": [{"type": "and", "sub_expressions": [
        {"type": "isnull", "field": "start_time"},
        {"type": "isnull", "field": "error_reason"},
        {"type": "isnull", "field": "node"},
        {"type": "isnull", "field": "template.workabletemplate", "invert": True}]}]}


def launcher_node_filter(ip: str, index: int) -> dict:
    """ufdl.joblauncher _launcher.register_node: And(Exact(ip), Exact(index))."""
    return {"expressions": [{"type": "and", "sub_expressions": [
        {"type": "exact", "field": "ip", "value": ip}, {"type": "exact", "field": "index", "value": index}]}]}


NODE_FIELDS = {"pk", "ip", "index", "driver_version", "hardware_generation", "gpu_mem", "cpu_mem", "last_seen",
               "current_job"}
JOB_FIELDS = {"pk", "template", "parent", "start_time", "end_time", "error_reason", "input_values",
              "parameter_values", "node", "description", "outputs", "is_cancelled", "creator", "creation_time",
              "deletion_time"}
OUTPUT_FIELDS = {"pk", "job", "name", "type", "creator", "creation_time", "deletion_time"}


def logged_in(users, testapp, username: str) -> WireClient:
    users.create(username, password=PASSWORD)
    client = WireClient(testapp, username)
    client.log_in()
    return client


@pytest.fixture
def launcher(users, testapp):
    return logged_in(users, testapp, "launcher")


@pytest.fixture
def submitter(users, testapp):
    return logged_in(users, testapp, "submitter")


@pytest.fixture
def echo(admin):
    return admin.post("/v1/job-templates/import", ECHO, status=201).json


def register_node(launcher: WireClient, memory: int = 64 * 2**30) -> dict:
    """ufdl.joblauncher _launcher.register_node: list by (ip, index), then create (or partially update)."""
    body = {"ip": LAUNCHER_IP, "index": 0, "driver_version": None, "hardware_generation": None, "gpu_mem": None,
            "cpu_mem": memory}
    found = launcher.post("v1/nodes/list", launcher_node_filter(LAUNCHER_IP, 0), status=200).json
    if found:
        launcher.node_id = int(found[0]["pk"])
        node = launcher.patch(detail_url("v1/nodes", launcher.node_id), body, status=200).json
    else:
        node = launcher.post("v1/nodes/create", body, status=201).json
        launcher.node_id = int(node["pk"])
    assert NODE_FIELDS <= set(node)
    return node


def create_job(submitter: WireClient, template_pk: int, text: str = "hello") -> dict:
    # ufdl.pythonclient functional.core.jobs.workable_template.create_job (mixin create_job): input_values,
    # parameter_values and description; parameter_values absent when not given.
    job = submitter.post(detail_url("v1/job-templates", template_pk) + "create-job",
                         {"input_values": {"input": {"value": text, "type": "str"}}, "description": "from the wire"},
                         status=201).json
    assert JOB_FIELDS <= set(job)
    return job


def test_tokens_obtain_refresh_and_verify(launcher):
    # UFDLServerContext._jwt_obtain (done by the fixture), _jwt_refresh and _jwt_verify.
    assert launcher.verify(launcher.access) and launcher.verify(launcher.refresh)
    assert not launcher.verify("expired-or-forged")
    refreshed = launcher.post("v1/auth/refresh", {"refresh": launcher.refresh}, auth=False, status=200).json
    assert set(refreshed) == {"access"} and launcher.verify(refreshed["access"])
    # _request_with_auth: a stale access token is a 401, after which the context refreshes and retries.
    launcher.access = "stale"
    assert launcher.post_no_body("v1/job-types/list", status=200).json
    assert launcher.sent[-3:] == [("POST", "v1/job-types/list"), ("POST", "v1/auth/refresh"),
                                  ("POST", "v1/job-types/list")]
    # _refresh: a refresh token the server refuses is a 401, after which the context logs in again.
    answer = launcher.post("v1/auth/refresh", {"refresh": "revoked"}, auth=False, status=401)
    assert answer.json["detail"]


def test_a_node_registers_and_registers_again_after_a_restart(launcher):
    # ufdl.joblauncher _launcher.register_node, first start: nothing listed, so node.create.
    node = register_node(launcher)
    assert node["current_job"] is None and node["cpu_mem"] == 64 * 2**30
    # Restarted: node.list finds it, node.partial_update (PATCH .../nodes/{pk}/) answers it with current_job.
    again = register_node(launcher, memory=128 * 2**30)
    assert (again["pk"], again["cpu_mem"]) == (node["pk"], 128 * 2**30)
    assert ("PATCH", f"v1/nodes/{node['pk']}/") in launcher.sent
    # ufdl.pythonclient functional.core.nodes.node.retrieve.
    assert launcher.get(detail_url("v1/nodes", node["pk"]), status=200).json["pk"] == node["pk"]


def test_a_node_pings(launcher, admin):
    # AbstractJobExecutor._ping_backend: functional.core.nodes.node.ping, GET v1/nodes/ping with Node-Id.
    node = register_node(launcher)
    answer = launcher.get("v1/nodes/ping", status=200)
    assert answer.body == b""  # as upstream's PingNodeViewSet
    assert admin.get(f"/v1/nodes/{node['pk']}").json["last_seen"] is not None


def test_templates_are_listed_and_retrieved_with_what_the_launcher_reads(launcher, echo):
    # functional.core.jobs.job_template.list (no FilterSpec: no body) and .retrieve (create_executor).
    listed = launcher.post_no_body("v1/job-templates/list", status=200).json
    assert [template["pk"] for template in listed] == [echo["pk"]]
    template = launcher.get(detail_url("v1/job-templates", echo["pk"]), status=200).json
    # create_executor: executor_class, required_packages; AbstractJobExecutor: type, parameters.
    assert template["executor_class"] == "tests.Echo" and template["required_packages"] == ""
    assert template["type"] == "Process<str, str>" and template["parameters"] == {}
    # The job types the executor lists first (AbstractJobExecutor._initialise_contracts_and_types): FilterSpec()
    # serialises to {}.
    types = launcher.post("v1/job-types/list", {}, status=200).json
    assert {"name", "pkg", "cls"} <= set(types[0])


def test_a_node_runs_a_job_from_poll_to_finish(launcher, submitter, echo):
    register_node(launcher)
    job = create_job(submitter, echo["pk"])
    # poll/_simple.Simple.poll: functional.core.jobs.job.list with generate_filter().
    polled = launcher.post("v1/jobs/list", launcher_poll_filter(), status=200).json
    assert [entry["pk"] for entry in polled] == [job["pk"]]
    entry = polled[0]
    assert entry["template"]["pk"] == echo["pk"]  # create_executor: job['template']['pk']
    assert entry["input_values"]["input"] == {"value": "hello", "type": "str"}  # AbstractJobExecutor.__getitem__
    pk = int(entry["pk"])

    # AbstractJobExecutor._pre_run: acquire_job (a GET, with the body {}) then start_job(send_notification).
    acquired = launcher.get(detail_url("v1/jobs", pk) + "acquire", status=200).json
    assert acquired["node"] == launcher.node_id
    assert launcher.post("v1/jobs/list", launcher_poll_filter(), status=200).json == []  # no longer offered
    started = launcher.post(detail_url("v1/jobs", pk) + "start", {"send_notification": "email"}, status=200).json
    assert started["start_time"] is not None

    # AbstractJobExecutor.progress: progress_job(context, pk, progress, **data); the URL holds str(float).
    for value in (0.0, 1e-05, 0.5, 1.0):
        progressed = launcher.post(detail_url("v1/jobs", pk) + f"progress/{value}", {"epoch": 1}, status=200)
        assert progressed.json["pk"] == pk
    launcher.post(detail_url("v1/jobs", pk) + "progress/1", {}, status=200)  # an int's str
    # is_job_cancelled: functional.core.jobs.job.retrieve, then job['is_cancelled'].
    assert launcher.get(detail_url("v1/jobs", pk), status=200).json["is_cancelled"] is False

    # _add_output_to_job: functional.core.jobs.job.add_output, the type percent-encoded by requests.
    output_type = "Array<str>"
    path = detail_url("v1/jobs", pk) + f"outputs/output/{quote(output_type, safe=quote_safe())}"
    added = launcher.upload(path, "output", b'["a", "b"]', status=201).json
    assert OUTPUT_FIELDS <= set(added) and (added["name"], added["type"]) == ("output", output_type)

    # _post_run: finish_job(context, pk, success, notification_type, error=Absent): no "error" key.
    finished = launcher.post(detail_url("v1/jobs", pk) + "finish", {"success": True, "send_notification": "email"},
                             status=200).json
    assert finished["end_time"] is not None and finished["error_reason"] is None

    # The submitter's side: job retrieve, the outputs listed and downloaded.
    job = submitter.get(detail_url("v1/jobs", pk), status=200).json
    assert JOB_FIELDS <= set(job) and [o["name"] for o in job["outputs"]] == ["output"]
    assert {"pk", "name", "type"} <= set(job["outputs"][0])
    outputs = submitter.post_no_body("v1/job-outputs/list", status=200).json
    assert [o["pk"] for o in outputs] == [added["pk"]] and OUTPUT_FIELDS <= set(outputs[0])
    assert submitter.get(detail_url("v1/job-outputs", added["pk"]), status=200).json["job"] == pk
    # functional.core.jobs.job_output.download (mixin download: filetype as a query parameter, no body) ...
    download = submitter.download(detail_url("v1/job-outputs", added["pk"]) + "download?filetype=json", status=200)
    assert download.body == b'["a", "b"]' and download.headers["Content-Type"] == "application/data"
    # ... the older POST form with {"params": {}} ...
    download = submitter.post(detail_url("v1/job-outputs", added["pk"]) + "download", {"params": {}}, status=200)
    assert download.body == b'["a", "b"]'
    # ... and functional.core.jobs.job.get_output by name and type.
    by_name = submitter.download(path, status=200)
    assert by_name.body == b'["a", "b"]'


def test_a_failing_job_and_the_launchers_restart_clean_up(launcher, submitter, echo):
    """_post_run with an error, then register_node after a restart mid-job: finish with the error, read
    result['error_reason'], reset and release."""
    register_node(launcher)
    job = create_job(submitter, echo["pk"])
    pk = job["pk"]
    launcher.get(detail_url("v1/jobs", pk) + "acquire", status=200)
    launcher.post(detail_url("v1/jobs", pk) + "start", {"send_notification": "email"}, status=200)

    # The launcher restarts: register_node finds its node, whose current_job is the job.
    node = register_node(launcher)
    assert node["current_job"] == pk
    error = "Node restarted during job execution."
    result = launcher.post(detail_url("v1/jobs", pk) + "finish",
                           {"success": False, "send_notification": "", "error": error}, status=200).json
    assert result["error_reason"] == error
    launcher.delete(detail_url("v1/jobs", pk) + "reset", status=200)
    released = launcher.delete(detail_url("v1/jobs", pk) + "release", status=200).json
    assert released["node"] is None
    # Back in the poll, for this node or another.
    assert [entry["pk"] for entry in launcher.post("v1/jobs/list", launcher_poll_filter(), status=200).json] == [pk]


def test_a_cancelled_job_is_seen_by_the_launcher_and_its_finish_changes_nothing(launcher, submitter, echo):
    register_node(launcher)
    pk = create_job(submitter, echo["pk"])["pk"]
    launcher.get(detail_url("v1/jobs", pk) + "acquire", status=200)
    launcher.post(detail_url("v1/jobs", pk) + "start", {"send_notification": "email"}, status=200)
    # The submitter cancels (functional.core.jobs.job.cancel_job: DELETE .../cancel).
    assert submitter.delete(detail_url("v1/jobs", pk) + "cancel", status=200).json["is_cancelled"] is True
    # is_job_cancelled reads it; the progress the launcher may still send is refused (it then checks again).
    assert launcher.get(detail_url("v1/jobs", pk), status=200).json["is_cancelled"] is True
    launcher.post(detail_url("v1/jobs", pk) + "progress/0.5", {}, status=406)
    # _post_run still calls finish_job: 2xx, nothing changes.
    finished = launcher.post(detail_url("v1/jobs", pk) + "finish",
                             {"success": False, "send_notification": "email",
                              "error": "An error occurred during run, check log!"}, status=200).json
    assert finished["is_cancelled"] is True and finished["error_reason"] == "Cancelled by submitter"


def test_a_job_cancelled_before_any_node_took_it_leaves_the_launchers_poll(launcher, submitter, echo):
    """It had no start time, error or node, so it matched the poll: every launcher took the oldest match, had
    its acquire refused (406) and polled the same job again, for ever."""
    register_node(launcher)
    cancelled, waiting = (create_job(submitter, echo["pk"])["pk"] for _ in range(2))
    submitter.delete(detail_url("v1/jobs", cancelled) + "cancel", status=200)
    assert [entry["pk"] for entry in launcher.post("v1/jobs/list", launcher_poll_filter(), status=200).json] == \
        [waiting]


def quote_safe() -> str:
    # requests (urllib3) leaves these unescaped in a path, as the UFDL clients' type segments show ("'" and ",").
    return "/'(),!$&*+;=:@~"
