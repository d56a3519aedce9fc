"""A Scale job type's ``is_paused`` and ``max_scheduled`` hold back the acquiring of its jobs (design notes §1):
the jobs of its revisions' templates, acquired and worked through the v1 node lifecycle."""
import copy
import dataclasses
import threading

import webtest
from sqlalchemy import event

from job_helpers import ECHO, register
from ufdl_pyramid.testing import make_test_app
from test_scale_job_types import SPEC_POST, in_threads, run_job, template_of

SEED_EXECUTOR = "ufdl_seed.SeedExecutor"
JOB_TYPE = "/v6/job-types/test/1.0.0/"


def job_type(admin, **fields) -> dict:
    """The spec's job type (max_scheduled 1 unless given) with a second revision: jobs may come from both."""
    created = admin.post("/v6/job-types/", {**SPEC_POST, **fields}, status=201).json
    changed = copy.deepcopy(SPEC_POST)
    changed["manifest"]["job"]["title"] = "Second"
    admin.post("/v6/job-types/", {**changed, **fields}, status=201)
    return created


def jobs_of(client, created: dict, count: int, value: dict) -> list[int]:
    """``count`` jobs of input ``value``, from the job type's two revisions in turn."""
    templates = [template_of(client, created, 1), template_of(client, created, 2)]
    return [run_job(client, templates[index % 2], value)["pk"] for index in range(count)]


def acquire_next(node, status: int = 200, executors=(SEED_EXECUTOR,)):
    return node.post("/v1/jobs/acquire-next", {"executors": list(executors)}, status=status)


def untouched(client, pk: int) -> bool:
    job = client.get(f"/v1/jobs/{pk}").json
    return job["status"] == "PENDING" and job["node"] is None


def test_the_jobs_of_a_paused_job_type_are_not_acquired(admin, alice, bob, spec_input):
    created = job_type(admin, max_scheduled=None)
    first, second = jobs_of(bob, created, 2, spec_input)
    admin.patch(JOB_TYPE, {"is_paused": True}, status=200)
    node = register(alice)
    refused = node.get(f"/v1/jobs/{first}/acquire", status=406).json
    assert refused == {"detail": f"Cannot acquire job {first}: its job type test 1.0.0 is paused"}
    assert untouched(bob, first) and untouched(bob, second)
    acquire_next(node, 204)
    # acquire-next passes over them to the next job this node can run.
    echo = admin.post("/v1/job-templates/import", ECHO, status=201).json
    other = bob.post(f"/v1/job-templates/{echo['pk']}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    assert acquire_next(node, executors=(SEED_EXECUTOR, ECHO["specific"]["executor_class"])).json["pk"] == other
    assert untouched(bob, first) and untouched(bob, second)

    admin.patch(JOB_TYPE, {"is_paused": False}, status=200)
    assert register(alice, "10.0.0.2").get(f"/v1/jobs/{first}/acquire").json["status"] == "QUEUED"
    assert acquire_next(register(alice, "10.0.0.3")).json["pk"] == second


def test_max_scheduled_caps_the_queued_and_running_jobs_of_all_its_revisions(admin, alice, bob, spec_input):
    created = job_type(admin)  # max_scheduled 1
    first, second, third = jobs_of(bob, created, 3, spec_input)
    node, other = register(alice), register(alice, "10.0.0.2")
    node.get(f"/v1/jobs/{first}/acquire")
    limit = "its job type test 1.0.0 already has 1 jobs queued or running (max_scheduled 1)"
    # The second job is of the other revision: the limit is the job type's.
    assert other.get(f"/v1/jobs/{second}/acquire", status=406).json == {
        "detail": f"Cannot acquire job {second}: {limit}"}
    acquire_next(other, 204)
    assert node.get(f"/v1/jobs/{first}/acquire").json["node"] == node.node_id  # its holder asking again
    node.post(f"/v1/jobs/{first}/start", {})
    other.get(f"/v1/jobs/{second}/acquire", status=406)
    acquire_next(other, 204)
    assert untouched(bob, second) and untouched(bob, third)
    node.post(f"/v1/jobs/{first}/finish", {"success": True})
    assert other.get(f"/v1/jobs/{second}/acquire").json["status"] == "QUEUED"
    node.get(f"/v1/jobs/{third}/acquire", status=406)
    # A higher limit lets the next one go; a released job frees its place.
    admin.patch(JOB_TYPE, {"max_scheduled": 2}, status=200)
    assert acquire_next(node).json["pk"] == third
    register(alice, "10.0.0.3").get(f"/v1/jobs/{jobs_of(bob, created, 1, spec_input)[0]}/acquire", status=406)
    other.delete(f"/v1/jobs/{second}/release")
    assert acquire_next(other).json["pk"] == second


def test_8_nodes_racing_for_8_jobs_with_max_scheduled_2_schedule_exactly_2(wsgi_app, admin, alice, bob, spec_input):
    created = job_type(admin, max_scheduled=2)
    jobs = jobs_of(bob, created, 8, spec_input)
    nodes = [register(alice, f"10.2.0.{index}") for index in range(8)]

    def acquire(index):
        app = webtest.TestApp(wsgi_app)
        return app.get(f"/v1/jobs/{jobs[index]}/acquire", headers=nodes[index].headers(), expect_errors=True)

    answers = in_threads(8, acquire)
    assert sorted(answer.status_int for answer in answers) == [200] * 2 + [406] * 6, [a.text for a in answers]
    assert all("max_scheduled 2" in answer.json["detail"] for answer in answers if answer.status_int == 406)
    assert sum(not untouched(bob, pk) for pk in jobs) == 2


def test_8_nodes_racing_acquire_next_with_max_scheduled_2_get_exactly_2(wsgi_app, admin, alice, bob, spec_input):
    created = job_type(admin, max_scheduled=2)
    jobs_of(bob, created, 8, spec_input)
    nodes = [register(alice, f"10.3.0.{index}") for index in range(8)]
    lock, won = threading.Lock(), []

    def acquire(index):
        app = webtest.TestApp(wsgi_app)
        answer = app.post_json("/v1/jobs/acquire-next", {"executors": [SEED_EXECUTOR]},
                               headers=nodes[index].headers(), expect_errors=True)
        assert answer.status_int in (200, 204), answer.text
        if answer.status_int == 200:
            with lock:
                won.append(answer.json["pk"])

    in_threads(8, acquire)
    assert len(won) == len(set(won)) == 2


def test_acquiring_any_other_job_asks_nothing_of_the_job_types(engine, admin, alice, bob):
    """The plain v1 acquire (the lifecycle benchmark's) costs no statement more: only a revision's template
    (by its name) looks its job type up. (The full stack's acquire: on PostgreSQL its express lane, which
    sends one statement of its own, would answer.)"""
    job_type(admin, is_paused=True)
    echo = admin.post("/v1/job-templates/import", ECHO, status=201).json
    job = bob.post(f"/v1/job-templates/{echo['pk']}/create-job",
                   {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    sent = []

    def record(connection, cursor, statement, *args):
        sent.append(statement)

    full_stack = webtest.TestApp(make_test_app(engine, **{"ufdl.express_lanes": "false"}))
    node = dataclasses.replace(register(alice), app=full_stack)
    event.listen(engine, "before_cursor_execute", record)
    try:
        node.get(f"/v1/jobs/{job}/acquire")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert sent and not any("seed_job_type" in statement for statement in sent)


def test_a_reset_is_held_back_as_an_acquire_is(admin, alice, bob, spec_input):
    """A reset puts a FAILED job back in QUEUED on its node, scheduled again: it went past the job type's
    max_scheduled (a FAILED job does not count) and its pause."""
    created = job_type(admin)  # max_scheduled 1
    first, second = jobs_of(bob, created, 2, spec_input)
    node, other = register(alice), register(alice, "10.0.0.2")
    node.get(f"/v1/jobs/{first}/acquire")
    node.post(f"/v1/jobs/{first}/start", {})
    assert node.post(f"/v1/jobs/{first}/finish", {"error": "boom"}).json["status"] == "FAILED"
    assert other.get(f"/v1/jobs/{second}/acquire").json["status"] == "QUEUED"
    refused = node.delete(f"/v1/jobs/{first}/reset", status=406).json
    assert refused == {"detail": f"Cannot reset job {first}: its job type test 1.0.0 already has 1 jobs queued or "
                                 "running (max_scheduled 1)"}
    assert bob.get(f"/v1/jobs/{first}").json["status"] == "FAILED"
    other.delete(f"/v1/jobs/{second}/release")  # its place is free again
    admin.patch(JOB_TYPE, {"is_paused": True}, status=200)
    assert node.delete(f"/v1/jobs/{first}/reset", status=406).json == {
        "detail": f"Cannot reset job {first}: its job type test 1.0.0 is paused"}
    admin.patch(JOB_TYPE, {"is_paused": False}, status=200)
    reset = node.delete(f"/v1/jobs/{first}/reset").json
    assert (reset["status"], reset["node"]) == ("QUEUED", node.node_id)


def node_with_memory(client, ip: str, mib: float | None, gpu_mib: float | None = None, **counts):
    """A node registered with ``mib`` MiB of memory and ``gpu_mib`` of GPU memory (in bytes, as the job launcher
    and the worker send them), and ``counts`` (``cpus``, ``gpus``)."""
    body = {"ip": ip, "index": 0, **({"cpu_mem": int(mib * 2**20)} if mib is not None else {}),
            **({"gpu_mem": int(gpu_mib * 2**20)} if gpu_mib is not None else {}), **counts}
    return client.as_node(client.post("/v1/nodes/create", body, status=201).json["pk"])


def test_a_node_acquires_no_job_whose_manifest_asks_more_memory_than_it_has(admin, alice, bob, spec_input):
    """The spec's manifest asks 244 MiB (``mem``): a node that registered less is passed over; one that registered
    nothing is not held back (it did not say)."""
    created = job_type(admin, max_scheduled=None)
    first, second, third = jobs_of(bob, created, 3, spec_input)
    small = node_with_memory(alice, "10.4.0.1", 243.5)
    refused = small.get(f"/v1/jobs/{first}/acquire", status=406).json
    assert refused == {"detail": f"Cannot acquire job {first}: it needs 244 MiB of memory (its job type test "
                                 "1.0.0's manifest), the node has 243.5 MiB"}
    assert untouched(bob, first)
    acquire_next(small, 204)
    echo = admin.post("/v1/job-templates/import", ECHO, status=201).json
    other = bob.post(f"/v1/job-templates/{echo['pk']}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    assert acquire_next(small, executors=(SEED_EXECUTOR, ECHO["specific"]["executor_class"])).json["pk"] == other
    assert untouched(bob, first) and untouched(bob, second) and untouched(bob, third)

    assert acquire_next(node_with_memory(alice, "10.4.0.2", 244)).json["pk"] == first  # just enough
    assert node_with_memory(alice, "10.4.0.3", 8192).get(f"/v1/jobs/{second}/acquire").json["status"] == "QUEUED"
    assert acquire_next(node_with_memory(alice, "10.4.0.4", None)).json["pk"] == third


def test_a_manifest_asking_no_memory_holds_back_no_node(admin, alice, bob, spec_input):
    spec = copy.deepcopy(SPEC_POST)
    spec["manifest"]["job"]["resources"]["scalar"] = [
        resource for resource in spec["manifest"]["job"]["resources"]["scalar"] if resource["name"] != "mem"]
    created = admin.post("/v6/job-types/", spec, status=201).json
    job = run_job(bob, template_of(bob, created), spec_input)["pk"]
    assert acquire_next(node_with_memory(alice, "10.5.0.1", 1)).json["pk"] == job


def test_a_job_whose_manifest_asks_a_gpu_goes_only_to_a_node_with_one(admin, alice, bob, spec_input):
    spec = copy.deepcopy(SPEC_POST)
    spec["manifest"]["job"]["resources"]["scalar"].append({"name": "gpus", "value": 1})
    created = admin.post("/v6/job-types/", spec, status=201).json
    first, second = (run_job(bob, template_of(bob, created), spec_input)["pk"] for _ in range(2))
    for gpu_mib, ip in ((None, "10.6.0.1"), (0, "10.6.0.2")):  # did not say; said none
        node = node_with_memory(alice, ip, 4096, gpu_mib)
        assert node.get(f"/v1/jobs/{first}/acquire", status=406).json == {
            "detail": f"Cannot acquire job {first}: it needs 1 GPU (its job type test 1.0.0's manifest), the node "
                      "has none"}
        acquire_next(node, 204)
    assert untouched(bob, first) and untouched(bob, second)
    assert acquire_next(node_with_memory(alice, "10.6.0.3", 4096, 8192)).json["pk"] == first
    # Memory is still matched on a node with a GPU.
    node_with_memory(alice, "10.6.0.4", 100, 8192).get(f"/v1/jobs/{second}/acquire", status=406)


def test_a_node_acquires_no_job_whose_manifest_asks_more_cores_or_gpus_than_it_has(admin, alice, bob, spec_input):
    """The spec's manifest asks 1.5 cores (``cpus``), and 2 GPUs here: a node that registered fewer is passed
    over; one that did not say is not held back (for GPUs: one that registered GPU memory, of no count)."""
    spec = copy.deepcopy(SPEC_POST)
    spec["manifest"]["job"]["resources"]["scalar"].append({"name": "gpus", "value": 2})
    created = admin.post("/v6/job-types/", {**spec, "max_scheduled": None}, status=201).json
    first, second, third = (run_job(bob, template_of(bob, created), spec_input)["pk"] for _ in range(3))
    manifest = "its job type test 1.0.0's manifest"
    for counts, has in (({"cpus": 1, "gpus": 4}, "it needs 1.5 cores ({}), the node has 1"),
                        ({"cpus": 0, "gpus": 4}, "it needs 1.5 cores ({}), the node has none"),
                        ({"cpus": 8, "gpus": 1}, "it needs 2 GPUs ({}), the node has 1"),
                        ({"gpus": 0}, "it needs 2 GPUs ({}), the node has none")):
        node = node_with_memory(alice, f"10.7.0.{len(counts)}{counts.get('cpus', 9)}", 4096, 8192, **counts)
        assert node.get(f"/v1/jobs/{first}/acquire", status=406).json == {
            "detail": f"Cannot acquire job {first}: {has.format(manifest)}"}
        acquire_next(node, 204)
    assert untouched(bob, first) and untouched(bob, second) and untouched(bob, third)
    assert acquire_next(node_with_memory(alice, "10.7.1.1", 4096, 8192)).json["pk"] == first  # said no count
    assert acquire_next(node_with_memory(alice, "10.7.1.2", 4096, None, cpus=2, gpus=2)).json["pk"] == second
    # Only a job type that asks is held back: a node of 1 core and no GPU takes the others.
    asks_nothing = copy.deepcopy(SPEC_POST)
    asks_nothing["manifest"]["job"].update(name="asks-nothing", resources={"scalar": []})
    job = run_job(bob, template_of(bob, admin.post("/v6/job-types/", asks_nothing, status=201).json),
                  spec_input)["pk"]
    assert acquire_next(node_with_memory(alice, "10.7.1.3", None, cpus=1, gpus=0)).json["pk"] == job
